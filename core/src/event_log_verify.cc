// EventLog verification (hash chain and indexes) and statistics.
#include <rocksdb/db.h>

#include <unordered_map>
#include <unordered_set>

#include "cs/event_log.h"
#include "cs/storage_codec.h"
#include "keys.h"
#include "log_iterator.h"
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

// A snapshot released at scope exit.
class SnapshotGuard {
 public:
  explicit SnapshotGuard(rocksdb::DB& db) : db_(db), snapshot_(db.GetSnapshot()) { options_.snapshot = snapshot_; }
  ~SnapshotGuard() { db_.ReleaseSnapshot(snapshot_); }
  SnapshotGuard(const SnapshotGuard&) = delete;
  SnapshotGuard& operator=(const SnapshotGuard&) = delete;
  const rocksdb::ReadOptions& read_options() const { return options_; }

 private:
  rocksdb::DB& db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions options_;
};

}  // namespace

Result<VerifyReport> EventLog::verify(const VerifyOptions& options) const {
  if (options.from_seq.value == 0) return invalid_argument("verify: sequences start at 1");
  SnapshotGuard snapshot(*db_);
  const auto& at_snapshot = snapshot.read_options();
  // The head as of the snapshot: appends after it are not verified.
  Sequence head;
  {
    LogIterator last(*db_, events_cf_, at_snapshot);
    last.seek_for_prev(Sequence(UINT64_MAX));
    if (auto s = last.status("verify: find head"); !s.ok()) return s.error();
    if (last.valid()) head = last.seq();
  }
  if (options.from_seq > head && options.from_seq.value > 1) {  // an empty log verifies from 1
    return invalid_argument("verify: --from-seq " + std::to_string(options.from_seq.value) +
                            " is past the head of the log (seq " + std::to_string(head.value) + ")");
  }
  const Sequence to = options.to_seq ? std::min(*options.to_seq, head) : head;
  VerifyReport report;
  report.last_checked = options.from_seq.prev();

  // The chain is checked by the verifying read; this adds the decode and the
  // seq each event carries.
  Status failure;
  RecordedEvent e;
  auto read = read_stored_at({.from_seq = options.from_seq, .to_seq = to, .verify_chain = true},
                          [&](Sequence seq, std::string_view value) {
                            if (failure = decode_stored_at(seq, value, e); !failure.ok()) return false;
                            report.last_checked = seq;
                            report.last_hash = e.hash;
                            ++report.events_checked;
                            return true;
                          },
                          at_snapshot);
  if (!read.ok()) return read.error();
  if (!failure.ok()) return failure.error();
  if (report.last_checked < to) {
    return corruption_error(at(report.last_checked.next()) + " is missing: the log ends before its head");
  }
  const Hash previous = report.last_hash;
  if (to == head && head == this->head() && previous != head_hash() && head.value > 0) {
    return corruption_error("the head hash in memory differs from the stored chain at " + at(head));
  }
  if (options.check_indexes && options.from_seq.value == 1 && !options.to_seq) {
    if (auto s = verify_indexes(head, at_snapshot); !s.ok()) return s.error();
  }
  return report;
}

// Each event is in the id index, in its stream's index at its version and in
// its type's index; stream versions run 1..n with no gap; the stream count
// matches. Memory: 18 bytes per event.
Status EventLog::verify_indexes(Sequence head, const rocksdb::ReadOptions& snapshot_read) const {
  struct Expected {
    std::uint64_t stream_hash;
    std::uint64_t version;
    EventType type;
  };
  std::vector<Expected> by_seq(head.value + 1);
  std::unordered_map<std::string, std::uint64_t> versions;
  std::unordered_set<std::string> customer_entries;  // what customer_streams must hold
  std::hash<std::string_view> hash;
  // Category by category (each in seq order, so each stream's versions
  // come in order): the family's key order.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snapshot_read, events_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    const auto category = static_cast<Category>(key.empty() ? 0 : static_cast<std::uint8_t>(key[0]));
    const auto key_seq = keys::event_key_seq(key, category);
    if (!key_seq || std::find(keys::all_categories.begin(), keys::all_categories.end(), category) ==
                        keys::all_categories.end()) {
      return corruption_error("the events family holds a malformed key of " + std::to_string(key.size()) + " bytes");
    }
    auto e = decode_stored(it->value().ToStringView());
    if (!e.ok()) return corruption_error(at(Sequence(*key_seq)) + ": " + e.error().message());
    if (e->seq.value != *key_seq) {
      return corruption_error(at(Sequence(*key_seq)) + " holds an event stamped " + at(e->seq));
    }
    if (e->seq.value == 0 || e->seq.value > head.value) {
      return corruption_error(at(Sequence(*key_seq)) + " holds an event stamped " + at(e->seq) + ", outside 1.." +
                              std::to_string(head.value));
    }
    if (category_of(e->type()) != category) {
      return corruption_error(at(e->seq) + " is stored among the " + std::string(category_name(category)) +
                              " events but is a " + std::string(event_type_name(e->type())));
    }
    auto& version = versions[e->stream];
    if (e->version.value != version + 1) {
      return corruption_error(at(e->seq) + ": stream " + e->stream + " jumps from version " +
                              std::to_string(version) + " to " + std::to_string(e->version.value));
    }
    version = e->version.value;
    by_seq[e->seq.value] = {hash(e->stream), e->version.value, e->type()};
    if (const StreamKey stream = payload_stream_key(e->payload);
        e->version.value == 1 && keys::owned_through_first_event(stream.category)) {
      customer_entries.insert(keys::customer_stream_key(payload_customer_id(e->payload), stream.category, stream.id));
    }
    std::string value;
    auto s = db_->Get(snapshot_read, event_ids_cf_, rocksdb::Slice(reinterpret_cast<const char*>(e->id.bytes().data()), 16), &value);
    if (!s.ok() || keys::get_u64(value) != e->seq.value) {
      return corruption_error(at(e->seq) + ": event id " + e->id.to_string() + " missing from the id index");
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), "verify: scan");

  // Stream index: blocks of one stream run on from version 1 without a gap.
  std::uint64_t entries = 0, streams = 0;
  std::string current;
  std::uint64_t next_version = 0;
  rocksdb::ReadOptions whole_index = snapshot_read;
  whole_index.total_order_seek = true;  // across streams: past the prefix bloom
  std::unique_ptr<rocksdb::Iterator> sit(db_->NewIterator(whole_index, stream_index_cf_));
  for (sit->SeekToFirst(); sit->Valid(); sit->Next()) {
    auto key = sit->key().ToStringView();
    if (key.size() < 10 || key[key.size() - 9] != '\0') return corruption_error("stream index: malformed key");
    std::string stream(key.substr(0, key.size() - 9));
    std::uint64_t first = keys::get_u64(key.substr(key.size() - 8));
    auto block = keys::decode_block(sit->value().ToStringView());
    if (!block) return corruption_error("stream index of " + stream + ": malformed block at version " + std::to_string(first));
    if (stream != current) {
      current = stream;
      next_version = 1;
      ++streams;
    }
    if (first != next_version) {
      return corruption_error("stream index of " + stream + ": expected a block at version " +
                              std::to_string(next_version) + ", found one at " + std::to_string(first));
    }
    for (std::size_t i = 0; i < block->size(); ++i) {
      std::uint64_t seq = (*block)[i];
      if (seq == 0 || seq > head.value || by_seq[seq].stream_hash != hash(stream) || by_seq[seq].version != first + i) {
        return corruption_error("stream index of " + stream + ": version " + std::to_string(first + i) +
                                " points to " + at(Sequence(seq)) + ", which is not that event");
      }
    }
    next_version = first + block->size();
    entries += block->size();
  }
  if (!sit->status().ok()) return from_rocks(sit->status(), "verify: scan stream index");
  if (entries != head.value || streams != versions.size()) {
    return corruption_error("stream index holds " + std::to_string(entries) + " entries in " +
                            std::to_string(streams) + " streams; the log has " + std::to_string(head.value) +
                            " events in " + std::to_string(versions.size()) + " streams");
  }
  std::string count_value;
  auto count_status = db_->Get(snapshot_read, std::string(keys::meta_stream_count), &count_value);
  std::uint64_t stream_count = count_status.ok() && count_value.size() == 8 ? keys::get_u64(count_value) : 0;
  if (streams != stream_count) {
    return corruption_error("stream count says " + std::to_string(stream_count) + " but " +
                            std::to_string(streams) + " streams exist");
  }

  // Type index: every entry names an event of that type, each event once.
  entries = 0;
  std::unique_ptr<rocksdb::Iterator> tit(db_->NewIterator(snapshot_read, type_index_cf_));
  for (tit->SeekToFirst(); tit->Valid(); tit->Next()) {
    auto key = tit->key().ToStringView();
    auto block = keys::decode_block(tit->value().ToStringView());
    if (key.size() != 10 || !block) return corruption_error("type index: malformed entry");
    auto type = static_cast<EventType>(static_cast<unsigned char>(key[0]) << 8 | static_cast<unsigned char>(key[1]));
    if (block->front() != keys::get_u64(key.substr(2))) return corruption_error("type index: block key and content differ");
    for (std::uint64_t seq : *block) {
      if (seq == 0 || seq > head.value || by_seq[seq].type != type) {
        return corruption_error("type index: " + at(Sequence(seq)) + " is listed under a type it does not have");
      }
    }
    entries += block->size();
  }
  if (!tit->status().ok()) return from_rocks(tit->status(), "verify: scan type index");
  if (entries != head.value) {
    return corruption_error("type index holds " + std::to_string(entries) + " entries for " +
                            std::to_string(head.value) + " events");
  }

  // Customer index: one entry per user and subscription stream, naming the
  // customer of its first event.
  if (!customer_index_complete_ || customer_streams_cf_ == nullptr) return {};
  entries = 0;
  std::unique_ptr<rocksdb::Iterator> cit(db_->NewIterator(snapshot_read, customer_streams_cf_));
  for (cit->SeekToFirst(); cit->Valid(); cit->Next()) {
    if (!customer_entries.contains(std::string(cit->key().ToStringView()))) {
      return corruption_error("customer index: an entry names a stream its customer does not own");
    }
    ++entries;
  }
  if (!cit->status().ok()) return from_rocks(cit->status(), "verify: scan customer index");
  if (entries != customer_entries.size()) {
    return corruption_error("customer index holds " + std::to_string(entries) + " entries; the log has " +
                            std::to_string(customer_entries.size()) + " user and subscription streams");
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
    std::string_view block = it->value().ToStringView();
    std::uint64_t count = 0;
    if (!keys::get_varint(block, count)) return corruption_error("stats: malformed type index block");
    stats.events_by_type[static_cast<EventType>(code)] += count;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "stats: scan type index");
  return stats;
}

}  // namespace cs
