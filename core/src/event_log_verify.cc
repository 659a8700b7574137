// EventLog verification (hash chain and indexes) and statistics.
#include <rocksdb/db.h>

#include <unordered_map>

#include "cs/event_log.h"
#include "cs/storage_codec.h"
#include "keys.h"
#include "rocks_status.h"

namespace cs {
namespace {

std::string at(Sequence seq) { return "seq " + std::to_string(seq.value); }

std::uint64_t directory_size_bytes(const std::filesystem::path& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace

Result<VerifyReport> EventLog::verify(const VerifyOptions& options) const {
  const Sequence head = this->head();
  const Sequence to = options.to_seq ? std::min(*options.to_seq, head) : head;
  if (options.from_seq.value == 0) return invalid_argument("verify: sequences start at 1");
  VerifyReport report;
  report.last_checked = options.from_seq.prev();

  // The chain is anchored on the hash stored just before the range.
  Hash previous{};
  if (options.from_seq.value > 1) {
    auto before = read_event(options.from_seq.prev());
    if (!before.ok()) return before.error();
    previous = before->hash;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, events_cf_));
  Sequence expected = options.from_seq;
  for (it->Seek(keys::seq_key(expected)); it->Valid() && expected <= to; it->Next(), expected = expected.next()) {
    Sequence key_seq(keys::get_u64(it->key().ToStringView()));
    if (key_seq != expected) {
      return corruption_error(at(expected) + " is missing: the next stored event is " + at(key_seq));
    }
    auto value = it->value().ToStringView();
    auto e = decode_stored(value);
    if (!e.ok()) return corruption_error(at(expected) + ": " + e.error().message());
    if (e->seq != expected) {
      return corruption_error(at(expected) + " holds an event stamped " + at(e->seq));
    }
    Hash recomputed = chain_hash(previous, value.substr(0, value.size() - sizeof(Hash)));
    if (recomputed != e->hash) {
      return corruption_error(at(expected) + ": hash chain broken (stored " + hash_to_hex(e->hash) +
                              ", recomputed " + hash_to_hex(recomputed) + ")");
    }
    previous = e->hash;
    report.last_checked = expected;
    ++report.events_checked;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "verify: scan");
  if (expected <= to) return corruption_error(at(expected) + " is missing: the log ends before its head");
  report.last_hash = previous;
  if (to == head && previous != head_hash() && head.value > 0) {
    return corruption_error("the head hash in memory differs from the stored chain at " + at(head));
  }
  if (options.check_indexes && options.from_seq.value == 1 && !options.to_seq) {
    if (auto s = verify_indexes(head); !s.ok()) return s.error();
  }
  return report;
}

// Each event is in its stream's index at its version, in the type index and in
// the id index; stream versions run 1..n with no gap; stream heads match.
Status EventLog::verify_indexes(Sequence head) const {
  std::unordered_map<std::string, std::uint64_t> versions;
  std::uint64_t type_entries_expected = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, events_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto e = decode_stored(it->value().ToStringView());
    if (!e.ok()) return corruption_error(at(Sequence(keys::get_u64(it->key().ToStringView()))) + ": " +
                                         e.error().message());
    auto& version = versions[e->stream];
    if (e->version.value != version + 1) {
      return corruption_error(at(e->seq) + ": stream " + e->stream + " jumps from version " +
                              std::to_string(version) + " to " + std::to_string(e->version.value));
    }
    version = e->version.value;
    std::string value;
    auto s = db_->Get({}, stream_index_cf_, keys::stream_index_key(e->stream, e->version), &value);
    if (!s.ok() || keys::get_u64(value) != e->seq.value) {
      return corruption_error(at(e->seq) + ": missing from the index of stream " + e->stream);
    }
    s = db_->Get({}, type_index_cf_, keys::type_index_key(e->type(), e->seq), &value);
    if (!s.ok()) return corruption_error(at(e->seq) + ": missing from the type index");
    s = db_->Get({}, event_ids_cf_, rocksdb::Slice(reinterpret_cast<const char*>(e->id.bytes().data()), 16), &value);
    if (!s.ok() || keys::get_u64(value) != e->seq.value) {
      return corruption_error(at(e->seq) + ": event id " + e->id.to_string() + " missing from the id index");
    }
    ++type_entries_expected;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "verify: scan");
  CS_ASSERT(type_entries_expected == head.value, "verify_indexes after a gap-free chain");

  std::uint64_t heads = 0;
  std::unique_ptr<rocksdb::Iterator> sit(db_->NewIterator({}, streams_cf_));
  for (sit->SeekToFirst(); sit->Valid(); sit->Next()) {
    std::string stream = sit->key().ToString();
    auto found = versions.find(stream);
    std::uint64_t stored = keys::get_u64(sit->value().ToStringView());
    if (found == versions.end() || found->second != stored) {
      return corruption_error("stream " + stream + ": stored head version " + std::to_string(stored) +
                              " but its events end at version " +
                              std::to_string(found == versions.end() ? 0 : found->second));
    }
    ++heads;
  }
  if (heads != versions.size()) {
    return corruption_error(std::to_string(versions.size() - heads) + " streams have events but no stored head");
  }
  if (heads != stream_count_) {
    return corruption_error("stream count says " + std::to_string(stream_count_) + " but " +
                            std::to_string(heads) + " streams exist");
  }
  return {};
}

Result<LogStats> EventLog::stats() const {
  LogStats stats;
  stats.head = head();
  stats.events = stats.head.value;
  stats.head_hash = head_hash();
  stats.streams = stream_count_;
  stats.size_on_disk_bytes = directory_size_bytes(dir_);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, type_index_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto key = it->key().ToStringView();
    auto code = static_cast<std::uint16_t>(static_cast<unsigned char>(key[0]) << 8 | static_cast<unsigned char>(key[1]));
    ++stats.events_by_type[static_cast<EventType>(code)];
  }
  if (!it->status().ok()) return from_rocks(it->status(), "stats: scan type index");
  return stats;
}

}  // namespace cs
