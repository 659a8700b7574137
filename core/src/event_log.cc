// EventLog: opening, group commit and append. Reads live in
// event_log_read.cc, verification and stats in event_log_verify.cc.
#include "cs/event_log.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <unordered_map>
#include <unordered_set>

#include "cs/json_codec.h"
#include "cs/storage_codec.h"
#include "keys.h"
#include "rocks_status.h"

namespace cs {

inline constexpr const char* events_family = "events";
inline constexpr const char* streams_family = "streams";
inline constexpr const char* stream_index_family = "stream_index";
inline constexpr const char* type_index_family = "type_index";
inline constexpr const char* event_ids_family = "event_ids";

struct EventLog::Writer {
  std::span<const NewEvent> events;
  Result<AppendResult> result{fatal_error("append was not run")};
  bool done = false;
  std::condition_variable cv;
};

// What one group commit has staged so far, on top of what is in the database.
struct EventLog::GroupState {
  Sequence last_seq;
  Hash last_hash{};
  Timestamp recorded_at;
  std::unordered_map<std::string, std::uint64_t> stream_versions;  // staged heads
  std::unordered_set<std::string> new_streams;
  struct StagedId {
    Sequence seq;
    StreamVersion version;
    std::string stream;
    EventType type;
  };
  std::unordered_map<Uuid, StagedId> ids;
  std::string scratch;  // reused encode buffer
};

namespace {

rocksdb::ColumnFamilyOptions family_options(std::string_view name) {
  rocksdb::ColumnFamilyOptions cf;
  // Point lookups by key that usually miss (is this id known? does this
  // stream exist?) are what bloom filters are for.
  if (name == event_ids_family || name == streams_family) {
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf.memtable_whole_key_filtering = true;
    cf.memtable_prefix_bloom_size_ratio = 0.02;
  }
  return cf;
}

bool is_log_family(const std::string& name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == events_family ||
         name == streams_family || name == stream_index_family || name == type_index_family ||
         name == event_ids_family;
}

}  // namespace

Result<std::unique_ptr<EventLog>> EventLog::open(const std::filesystem::path& dir,
                                                 EventLogOptions options) {
  std::unique_ptr<EventLog> log(new EventLog());
  log->dir_ = dir;
  log->options_ = std::move(options);

  rocksdb::Options db_options;
  db_options.create_if_missing = log->options_.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_open_files = 512;

  // Every family on disk must be opened, the projections' ones too.
  std::vector<std::string> names;
  auto listed = rocksdb::DB::ListColumnFamilies(db_options, dir.string(), &names);
  if (!listed.ok()) names = {rocksdb::kDefaultColumnFamilyName};
  for (const char* required : {events_family, streams_family, stream_index_family,
                               type_index_family, event_ids_family}) {
    if (std::find(names.begin(), names.end(), required) == names.end()) names.push_back(required);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, family_options(name));

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, dir.string(), descriptors, &handles, &raw);
  if (!s.ok()) return from_rocks(s, "open " + dir.string());
  log->db_.reset(raw);
  for (std::size_t i = 0; i < names.size(); ++i) log->families_[names[i]] = handles[i];
  log->events_cf_ = log->families_[events_family];
  log->streams_cf_ = log->families_[streams_family];
  log->stream_index_cf_ = log->families_[stream_index_family];
  log->type_index_cf_ = log->families_[type_index_family];
  log->event_ids_cf_ = log->families_[event_ids_family];

  // Format marker: refuse a directory written by an incompatible layout.
  std::string format;
  s = raw->Get({}, std::string(keys::meta_log_format), &format);
  if (s.IsNotFound()) {
    std::string v;
    keys::put_u64(v, keys::log_format_version);
    s = raw->Put(rocksdb::WriteOptions{}, std::string(keys::meta_log_format), v);
    if (!s.ok()) return from_rocks(s, "open: write format marker");
  } else if (!s.ok()) {
    return from_rocks(s, "open: read format marker");
  } else if (format.size() != 8 || keys::get_u64(format) != keys::log_format_version) {
    return invalid_argument(dir.string() + " holds a log of another format");
  }

  std::string count;
  s = raw->Get({}, std::string(keys::meta_stream_count), &count);
  if (s.ok() && count.size() == 8) log->stream_count_ = keys::get_u64(count);

  // Recovery: the head is the last event. Everything of a group is in one
  // write batch, so there is nothing to repair after a crash.
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator({}, log->events_cf_));
  it->SeekToLast();
  if (!it->status().ok()) return from_rocks(it->status(), "open: find head");
  if (it->Valid()) {
    auto head = decode_stored(it->value().ToStringView());
    if (!head.ok()) return corruption_error("open: last event does not decode: " + head.error().message());
    CS_ASSERT(head->seq.value == keys::get_u64(it->key().ToStringView()), "head key and seq differ");
    log->head_seq_ = head->seq.value;
    log->head_hash_ = head->hash;
  }
  return log;
}

EventLog::~EventLog() {
  if (!db_) return;
  for (auto& [name, handle] : families_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

Sequence EventLog::head() const { return Sequence(head_seq_.load()); }

Hash EventLog::head_hash() const {
  std::lock_guard lock(mu_);
  return head_hash_;
}

Result<rocksdb::ColumnFamilyHandle*> EventLog::column_family(const std::string& name) {
  std::lock_guard lock(families_mu_);
  if (auto it = families_.find(name); it != families_.end()) return it->second;
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  auto s = db_->CreateColumnFamily(family_options(name), name, &handle);
  if (!s.ok()) return from_rocks(s, "create column family " + name);
  families_[name] = handle;
  return handle;
}

Status EventLog::drop_column_family(const std::string& name) {
  CS_ASSERT(!is_log_family(name), "the log's own column families are never dropped");
  std::lock_guard lock(families_mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return {};
  auto s = db_->DropColumnFamily(it->second);
  if (!s.ok()) return from_rocks(s, "drop column family " + name);
  db_->DestroyColumnFamilyHandle(it->second);
  families_.erase(it);
  return {};
}

Result<StreamVersion> EventLog::stream_version(std::string_view stream) const {
  std::string value;
  auto s = db_->Get({}, streams_cf_, rocksdb::Slice(stream.data(), stream.size()), &value);
  if (s.IsNotFound()) return StreamVersion(0);
  if (!s.ok()) return from_rocks(s, "read stream head " + std::string(stream));
  if (value.size() != 8) return corruption_error("stream head of " + std::string(stream) + " is malformed");
  return StreamVersion(keys::get_u64(value));
}

// ---------------------------------------------------------------- append

namespace {

Status check_event(const NewEvent& e, std::size_t index) {
  auto where = [&] { return "event " + std::to_string(index) + " (" + e.id.to_string() + "): "; };
  if (e.id.is_nil()) return invalid_argument("event " + std::to_string(index) + ": id must not be the nil UUID");
  if (auto s = validate_payload(e.payload, current_schema_version(payload_type(e.payload))); !s.ok()) {
    return invalid_argument(where() + s.error().message());
  }
  if (e.expected.kind == ExpectedVersion::Kind::exact && e.expected.version.value == 0) {
    return invalid_argument(where() + "expected version 0: use no-stream");
  }
  return {};
}

}  // namespace

Result<AppendResult> EventLog::append(std::span<const NewEvent> events) {
  if (events.empty()) return invalid_argument("append: no events");
  if (events.size() > options_.append_events_max) {
    return invalid_argument("append: " + std::to_string(events.size()) + " events, at most " +
                            std::to_string(options_.append_events_max) + " in one append");
  }
  // Checks that need no log state run before queueing, outside the lock.
  std::unordered_set<Uuid> ids;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (auto s = check_event(events[i], i); !s.ok()) return s.error();
    if (!ids.insert(events[i].id).second) {
      return invalid_argument("append: event id " + events[i].id.to_string() + " appears twice");
    }
  }

  Writer w;
  w.events = events;
  std::unique_lock lock(mu_);
  if (failure_) return fatal_error("log refuses appends after a failed write: " + failure_->message());
  if (writers_.size() >= options_.append_queue_depth_max) {
    return retriable_error("append: " + std::to_string(writers_.size()) +
                           " appends already queued (limit " +
                           std::to_string(options_.append_queue_depth_max) + ")");
  }
  writers_.push_back(&w);
  w.cv.wait(lock, [&] { return w.done || writers_.front() == &w; });
  if (w.done) return std::move(w.result);

  // This thread leads: take a group from the front of the queue.
  std::vector<Writer*> group;
  std::size_t group_events = 0;
  for (Writer* candidate : writers_) {
    if (!group.empty() && group_events + candidate->events.size() > options_.group_commit_events_max) break;
    group.push_back(candidate);
    group_events += candidate->events.size();
  }
  lock.unlock();
  commit_group(group);
  lock.lock();
  for (Writer* member : group) {
    CS_ASSERT(writers_.front() == member, "group commit queue out of order");
    writers_.pop_front();
    if (member != &w) {
      member->done = true;
      member->cv.notify_one();
    }
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();
  return std::move(w.result);
}

void EventLog::commit_group(std::span<Writer*> group) {
  GroupState state;
  state.last_seq = Sequence(head_seq_.load());
  {
    std::lock_guard lock(mu_);
    state.last_hash = head_hash_;
  }
  // recordedAt in whole milliseconds: the wire form shows milliseconds, and
  // an exported log must re-import to the same bytes.
  state.recorded_at = Timestamp{options_.clock().micros / 1000 * 1000};

  rocksdb::WriteBatch batch;
  std::vector<Writer*> staged;
  for (Writer* w : group) {
    w->result = stage_writer(*w, state, batch);
    if (w->result.ok() && !w->result->duplicate) staged.push_back(w);
  }
  if (staged.empty()) return;

  for (const auto& [stream, version] : state.stream_versions) {
    std::string v;
    keys::put_u64(v, version);
    batch.Put(streams_cf_, stream, v);
  }
  std::uint64_t stream_count = stream_count_ + state.new_streams.size();
  if (!state.new_streams.empty()) {
    std::string v;
    keys::put_u64(v, stream_count);
    batch.Put(std::string(keys::meta_stream_count), v);
  }

  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync_each_group;
  auto s = db_->Write(write_options, &batch);
  if (!s.ok()) {
    Error e = from_rocks(s, "append: write batch");
    std::lock_guard lock(mu_);
    failure_ = e;
    for (Writer* w : staged) w->result = e;
    return;
  }
  CS_ASSERT(state.last_seq.value > head_seq_.load(), "sequences only grow");
  stream_count_ = stream_count;
  std::lock_guard lock(mu_);
  head_hash_ = state.last_hash;
  head_seq_ = state.last_seq.value;
}

// Validates one writer's events against the log and what the group staged,
// then adds its writes to `batch`. On error nothing of this writer is staged.
Result<AppendResult> EventLog::stage_writer(const Writer& w, GroupState& group,
                                            rocksdb::WriteBatch& batch) {
  const auto events = w.events;
  AppendResult result;

  // 1. Idempotency: which ids are known already?
  std::size_t known = 0;
  std::optional<std::size_t> first_unknown;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    std::optional<GroupState::StagedId> found;
    if (auto it = group.ids.find(e.id); it != group.ids.end()) {
      found = it->second;
    } else {
      std::string seq_bytes;
      auto id_key = rocksdb::Slice(reinterpret_cast<const char*>(e.id.bytes().data()), 16);
      auto s = db_->Get({}, event_ids_cf_, id_key, &seq_bytes);
      if (s.ok()) {
        auto original = read_event(Sequence(keys::get_u64(seq_bytes)));
        if (!original.ok()) return original.error();
        found = GroupState::StagedId{original->seq, original->version, original->stream, original->type()};
      } else if (!s.IsNotFound()) {
        return from_rocks(s, "append: look up event id");
      }
    }
    if (!found) {
      if (!first_unknown) first_unknown = i;
      continue;
    }
    ++known;
    if (found->stream != payload_stream(e.payload) || found->type != payload_type(e.payload)) {
      return conflict_error("event id " + e.id.to_string() + " is already in the log at seq " +
                            std::to_string(found->seq.value) + " as " +
                            std::string(event_type_name(found->type)) + " in " + found->stream +
                            ", not as " + std::string(event_type_name(payload_type(e.payload))) +
                            " in " + payload_stream(e.payload));
    }
    result.positions.push_back({found->seq, found->version});
  }
  if (known == events.size()) {
    result.duplicate = true;
    return result;
  }
  if (known > 0) {
    return invalid_argument("append: " + std::to_string(known) + " of " + std::to_string(events.size()) +
                            " event ids are already in the log but event " +
                            events[*first_unknown].id.to_string() +
                            " is not: an append is idempotent only as a whole");
  }
  result.positions.clear();

  // 2. Expected versions, against staged heads first, then the database.
  std::unordered_map<std::string, std::uint64_t> versions;  // this writer's view
  std::vector<std::string> streams(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    streams[i] = payload_stream(events[i].payload);
    const std::string& stream = streams[i];
    auto it = versions.find(stream);
    if (it == versions.end()) {
      std::uint64_t current = 0;
      if (auto g = group.stream_versions.find(stream); g != group.stream_versions.end()) {
        current = g->second;
      } else {
        auto v = stream_version(stream);
        if (!v.ok()) return v.error();
        current = v->value;
      }
      it = versions.emplace(stream, current).first;
    }
    const auto& expected = events[i].expected;
    bool matches = expected.kind == ExpectedVersion::Kind::any ||
                   (expected.kind == ExpectedVersion::Kind::no_stream && it->second == 0) ||
                   (expected.kind == ExpectedVersion::Kind::exact && it->second == expected.version.value);
    if (!matches) {
      return conflict_error("stream " + stream + ": expected version " + to_string(expected) +
                            ", actual version " + std::to_string(it->second) + " (event " +
                            std::to_string(i) + ", id " + events[i].id.to_string() + ")");
    }
    ++it->second;
    result.positions.push_back({Sequence(group.last_seq.value + 1 + i), StreamVersion(it->second)});
  }

  // 3. Encode and chain. Kept in locals until every event passed.
  std::vector<std::string> values(events.size());
  Hash hash = group.last_hash;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    RecordedEvent r;
    r.seq = result.positions[i].seq;
    r.id = e.id;
    r.stream = streams[i];
    r.version = result.positions[i].version;
    r.timestamp = e.timestamp;
    r.recorded_at = group.recorded_at;
    r.meta = e.meta;
    r.stored_schema_version = current_schema_version(payload_type(e.payload));
    r.payload = e.payload;
    std::string& value = values[i];
    encode_canonical(r, value);
    if (value.size() > options_.event_size_bytes_max) {
      return invalid_argument("event " + std::to_string(i) + " (" + e.id.to_string() + ") is " +
                              std::to_string(value.size()) + " bytes stored, over the limit of " +
                              std::to_string(options_.event_size_bytes_max));
    }
    hash = chain_hash(hash, value);
    value.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  }

  // 4. Stage.
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& pos = result.positions[i];
    std::string seq_key = keys::seq_key(pos.seq);
    batch.Put(events_cf_, seq_key, values[i]);
    batch.Put(stream_index_cf_, keys::stream_index_key(streams[i], pos.version), seq_key);
    batch.Put(type_index_cf_, keys::type_index_key(payload_type(events[i].payload), pos.seq), {});
    batch.Put(event_ids_cf_, rocksdb::Slice(reinterpret_cast<const char*>(events[i].id.bytes().data()), 16),
              seq_key);
    group.ids[events[i].id] = {pos.seq, pos.version, streams[i], payload_type(events[i].payload)};
  }
  for (const auto& [stream, version] : versions) group.stream_versions[stream] = version;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (result.positions[i].version.value == 1) group.new_streams.insert(streams[i]);
  }
  group.last_seq = Sequence(group.last_seq.value + events.size());
  group.last_hash = hash;
  return result;
}

}  // namespace cs
