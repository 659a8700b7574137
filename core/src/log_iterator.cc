#include "log_iterator.h"

#include "cs/assert.h"
#include "cs/event.h"
#include "rocks_status.h"

namespace cs {
LogIterator::LogIterator(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* events, const rocksdb::ReadOptions& options,
                         std::span<const Category> categories) {
  CS_ASSERT(categories.size() <= runs_.size(), "at most the four categories");
  for (Category category : categories) {
    Run& run = runs_[runs_count_++];
    run.category = category;
    run.lower = keys::category_begin_key(category);
    run.upper = keys::category_end_key(category);
    run.lower_bound = rocksdb::Slice(run.lower);
    run.upper_bound = rocksdb::Slice(run.upper);
    rocksdb::ReadOptions bounded = options;
    bounded.iterate_lower_bound = &run.lower_bound;
    bounded.iterate_upper_bound = &run.upper_bound;
    run.it.reset(db.NewIterator(bounded, events));
  }
  current_ = runs_count_;
}

void LogIterator::load(Run& run) {
  run.valid = false;
  if (!malformed_.empty() || !run.it->Valid()) return;
  auto seq = keys::event_key_seq(run.it->key().ToStringView(), run.category);
  if (!seq) {
    malformed_ = bytes_to_hex(run.it->key().ToStringView());
    return;
  }
  run.seq = *seq;
  run.valid = true;
}

void LogIterator::pick() {
  current_ = runs_count_;
  if (!malformed_.empty()) return;
  for (std::size_t i = 0; i < runs_count_; ++i) {
    const Run& run = runs_[i];
    if (!run.valid) continue;
    if (current_ == runs_count_ || (backward_ ? run.seq > runs_[current_].seq : run.seq < runs_[current_].seq)) {
      current_ = i;
    }
  }
}

void LogIterator::position(Sequence at, bool backward) {
  backward_ = backward;
  for (std::size_t i = 0; i < runs_count_; ++i) {
    Run& run = runs_[i];
    const std::string key = keys::event_key(run.category, at);
    backward ? run.it->SeekForPrev(key) : run.it->Seek(key);
    load(run);
  }
  pick();
}

void LogIterator::step() {
  CS_ASSERT(valid(), "a step from a valid position");
  Run& run = runs_[current_];
  backward_ ? run.it->Prev() : run.it->Next();
  load(run);
  pick();
}

Status LogIterator::status(std::string_view context) const {
  for (std::size_t i = 0; i < runs_count_; ++i) {
    if (!runs_[i].it->status().ok()) return from_rocks(runs_[i].it->status(), context);
  }
  if (!malformed_.empty()) return corruption_error(std::string(context) + ": malformed event key " + malformed_);
  return {};
}

}  // namespace cs
