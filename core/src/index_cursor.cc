#include "index_cursor.h"

#include "keys.h"
#include "rocks_status.h"

namespace cs {

IndexCursor::IndexCursor(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, std::string prefix, Kind kind,
                         const rocksdb::ReadOptions& read_options)
    : it_(db.NewIterator(read_options, family)), prefix_(std::move(prefix)), kind_(kind) {}

bool IndexCursor::on_prefix() const {
  auto key = it_->key().ToStringView();
  return key.size() == prefix_.size() + 8 && key.starts_with(prefix_);
}

std::uint64_t IndexCursor::position() const {
  return kind_ == Kind::stream ? first_position_ + index_ : seqs_[index_];
}

bool IndexCursor::load_block() {
  if (!it_->Valid()) {
    if (!it_->status().ok()) status_ = from_rocks(it_->status(), "read index");
    return false;
  }
  if (!on_prefix()) return false;
  auto block = keys::decode_block(it_->value().ToStringView());
  if (!block) {
    status_ = corruption_error("malformed index block under key of " + std::to_string(it_->key().size()) + " bytes");
    return false;
  }
  first_position_ = keys::get_u64(it_->key().ToStringView().substr(prefix_.size()));
  seqs_ = std::move(*block);
  return true;
}

void IndexCursor::seek(std::uint64_t from, bool backward) {
  backward_ = backward;
  valid_ = false;
  it_->SeekForPrev(keys::block_key(prefix_, from));
  if (!load_block()) {
    if (backward || !status_.ok()) return;
    // Every block starts after `from`: begin with the first.
    it_->Seek(prefix_);
    if (!load_block()) return;
    index_ = 0;
    valid_ = true;
    return;
  }
  // This block starts at or before `from`.
  if (backward) {
    index_ = seqs_.size() - 1;
    while (position() > from) --index_;  // the first entry's position is <= from
    valid_ = true;
    return;
  }
  index_ = 0;
  while (index_ < seqs_.size() && position() < from) ++index_;
  if (index_ < seqs_.size()) {
    valid_ = true;
  } else {
    it_->Next();
    valid_ = load_block();
    index_ = 0;
  }
}

void IndexCursor::next() {
  if (!backward_) {
    if (++index_ < seqs_.size()) return;
    it_->Next();
    valid_ = load_block();
    index_ = 0;
    return;
  }
  if (index_ > 0) {
    --index_;
    return;
  }
  it_->Prev();
  valid_ = load_block();
  if (valid_) index_ = seqs_.size() - 1;
}

}  // namespace cs
