// EventLog: opening, group commit and append. Reads live in
// event_log_read.cc, verification and stats in event_log_verify.cc.
#include "cs/event_log.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <unordered_map>

#include "cs/json_codec.h"
#include "cs/personal_data.h"
#include "cs/storage_codec.h"
#include "cs/table_ingest.h"
#include "data_keys.h"
#include "event_log_state.h"
#include "index_cursor.h"
#include "keys.h"
#include "log_iterator.h"
#include "rocks_status.h"
#include "stream_rules.h"

namespace cs {

namespace {

// The event_ids memtable. Its hashed buckets make inserts O(1), but a flush
// sorts it whole into a skiplist, on the flush thread, with a cache miss per
// entry: a 64 MiB memtable of a few hundred thousand ids took most of a
// second to sort at the close of a large append, on the critical path. At
// 8 MiB (about 95,000 ids) it is flushed in the background while appending
// goes on, each sort small enough to stay in cache, and the close sorts the
// rest. The bucket array is part of the memtable's size: 65,536 buckets (512
// KiB, zeroed at every writable open) keep each bucket's list one or two
// entries long.
constexpr std::size_t event_ids_write_buffer_bytes = 8 << 20;
constexpr std::size_t hash_buckets = 1 << 16;

// The stream a stream-index key belongs to: its bytes up to and including
// the 0x00 after the stream's name. Every new stream an append meets is a
// lookup that finds nothing; a bloom filter over this prefix answers it
// without searching the memtable's skiplist or the files' indexes.
class StreamPrefixTransform : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "cs.StreamPrefix.1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const auto* end = static_cast<const char*>(std::memchr(key.data(), '\0', key.size()));
    CS_ASSERT(end != nullptr, "RocksDB transforms only keys in the domain");
    return rocksdb::Slice(key.data(), static_cast<std::size_t>(end - key.data()) + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::memchr(key.data(), '\0', key.size()) != nullptr;
  }
};

// LZ4 where RocksDB has it, else RocksDB's default (Snappy when it has it).
// On a 259k-event history LZ4 made the same files 1.5% larger and their
// reads cheaper: a sparse category read 15% less CPU, the token audit 8%
// less wall time (docs/performance.md). Files of either kind stay readable:
// a block names its compression.
rocksdb::CompressionType block_compression() {
  static const rocksdb::CompressionType chosen = [] {
    const auto supported = rocksdb::GetSupportedCompressions();
    return std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end()
               ? rocksdb::kLZ4Compression
               : rocksdb::ColumnFamilyOptions().compression;
  }();
  return chosen;
}

// `appends`: the open serves appends (memtable structures that only they
// use); false for read-only opens and writable ones that do not append.
rocksdb::ColumnFamilyOptions family_options(std::string_view name, bool appends = true) {
  rocksdb::ColumnFamilyOptions cf;
  cf.compression = block_compression();
  if (name == stream_index_family) {
    // Read only by stream (IndexCursor), except two whole scans that ask for
    // total order (the customer index's build, verify).
    cf.prefix_extractor = std::make_shared<StreamPrefixTransform>();
    // A stream's blocks arrive in position order, each group appending one
    // per stream it touches, scattered over the key space: the memtable keeps
    // a hint per stream (its last insert) so the next block of that stream
    // goes in beside it instead of by a skiplist search from the top.
    if (appends) cf.memtable_insert_with_hint_prefix_extractor = cf.prefix_extractor;
    cf.memtable_prefix_bloom_size_ratio = 0.02;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.whole_key_filtering = false;  // no point reads of whole keys here
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }
  if (name.starts_with("proj.")) {
    // Projection state: point reads by entity, many of them for entities not
    // stored yet.
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    // No memtable bloom: it would answer only lookups of entities not seen
    // yet that miss the fold's own entity cache, one per new entity, while
    // it is zeroed (640 KiB at 1%) for every memtable made, at every open
    // for every family and for every family a rebuild makes.
  }
  if (name == event_ids_family) {
    // Random 16-byte keys, point lookups only ("is this id known?", which
    // usually misses): a hashed memtable makes the insert O(1) instead of a
    // skiplist search, and bloom filters answer the misses on disk.
    cf.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(16));
    // An open that never inserts ids: the buckets would only cost page
    // faults (a third of a read command's open time).
    if (appends) cf.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(hash_buckets));
    cf.write_buffer_size = event_ids_write_buffer_bytes;
    // 2% of the write buffer (164 KiB): about 13 bits per id of a full
    // memtable.
    cf.memtable_prefix_bloom_size_ratio = 0.02;
    // Random keys do not compress: RocksDB tried each block and kept it
    // as it was (the family's files had the same size either way), after
    // spending the time to try.
    cf.compression = rocksdb::kNoCompression;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }
  if (!appends) {
    // Memtable blooms are zeroed at open (megabytes each) and serve inserts.
    cf.memtable_prefix_bloom_size_ratio = 0;
    cf.memtable_whole_key_filtering = false;
  }
  return cf;
}

// Made by every log's first open, whatever its version.
constexpr const char* required_families[] = {events_family, stream_index_family, type_index_family,
                                             event_ids_family};

bool is_log_family(const std::string& name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == events_family ||
         name == stream_index_family || name == type_index_family || name == event_ids_family ||
         name == customer_streams_family || name == data_keys_family;
}

std::string interrupted_creation(const std::filesystem::path& dir) {
  return "no log in " + dir.string() +
         ": its creation was interrupted before anything was written (a writing command, such as csctl append, "
         "completes it)";
}

// A database that a log's first open made and was killed in, before the
// log's format marker: only families of a log (RocksDB creates them one by
// one), every one of them empty. Anything else is not ours to write into.
Result<bool> unfinished_log(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  if (!std::all_of(names.begin(), names.end(), is_log_family)) return false;
  rocksdb::Options options;
  options.max_file_opening_threads = 1;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(options, dir.string(), descriptors, &handles, &raw);
  if (!s.ok()) return from_rocks(s, "open " + dir.string());
  std::unique_ptr<rocksdb::DB> db(raw);
  bool empty = true;
  for (auto* handle : handles) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handle));
    it->SeekToFirst();
    if (!it->status().ok()) s = it->status();
    empty = empty && !it->Valid();
  }
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  if (!s.ok()) return from_rocks(s, "read " + dir.string());
  return empty;
}

}  // namespace

// Format 1 kept the events under 8-byte seq keys, which sort before every
// category's first byte. Each is put again under its category's key into a
// table file per category (each run written in seq order, no sort), the
// files ingested in one step; then the old keys go and the marker says 2,
// in one synced batch. Killed on the way, the next writable open does it
// again from the old keys, still there until that batch: ingesting the same
// keys twice replaces them with the same bytes.
Status EventLog::rekey_events_by_category() {
  if (auto cleared = clear_ingest_staging(dir_ / bulk_ingest_staging); !cleared.ok()) return cleared;
  TableStream table(*db_, events_cf_, dir_ / bulk_ingest_staging / "rekey");
  table.start();
  const std::string old_keys_end = keys::category_begin_key(keys::all_categories.front());
  rocksdb::Slice upper(old_keys_end);
  rocksdb::ReadOptions scan;
  scan.fill_cache = false;
  scan.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan, events_cf_));
  std::uint64_t rekeyed = 0;
  std::string key;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto old_key = it->key().ToStringView();
    if (old_key.size() != keys::format1_event_key_bytes) {
      return corruption_error("open: converting the log's layout: malformed event key of " +
                              std::to_string(old_key.size()) + " bytes");
    }
    const Sequence seq(keys::get_u64(old_key));
    auto e = decode_stored(it->value().ToStringView());
    if (!e.ok()) return corruption_error("open: converting the log's layout: seq " + std::to_string(seq.value) + ": " +
                                         e.error().message());
    key.clear();
    keys::put_event_key(key, category_of(e->type()), seq);
    table.put(key, it->value().ToStringView());
    ++rekeyed;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "open: converting the log's layout: read events");
  std::vector<rocksdb::ColumnFamilyHandle*> families = {events_cf_};
  if (rekeyed > 0) {
    rocksdb::WriteBatch none;
    if (auto s = ingest_batch(*db_, table.staging_dir(), none, families, &table); !s.ok()) {
      return Error(s.error().code(), "open: converting the log's layout: " + s.error().message());
    }
  }
  rocksdb::WriteBatch batch;
  batch.DeleteRange(events_cf_, rocksdb::Slice(), upper);
  std::string version;
  keys::put_u64(version, keys::log_format_version);
  batch.Put(std::string(keys::meta_log_format), version);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  if (auto s = db_->Write(synced, &batch); !s.ok()) return from_rocks(s, "open: converting the log's layout");
  // The old keys' files hold nothing else: compacting their range drops
  // them now rather than at some later compaction. The log is complete
  // without it, so a failure only leaves the space taken.
  rocksdb::CompactRangeOptions drop;
  drop.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  db_->CompactRange(drop, events_cf_, nullptr, &upper).PermitUncheckedError();
  return {};
}

Result<std::unique_ptr<EventLog>> EventLog::open(const std::filesystem::path& dir,
                                                 EventLogOptions options) {
  std::unique_ptr<EventLog> log(new EventLog());
  log->leader_ = std::make_unique<LeaderState>();
  log->dir_ = dir;
  log->options_ = std::move(options);

  rocksdb::Options db_options;
  db_options.create_if_missing = log->options_.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_open_files = 512;
  // Every writable open starts a new info LOG and keeps the last one as
  // LOG.old.<time>; RocksDB keeps 1,000 of them by default, so a data
  // directory that csctl commands open gathered hundreds of files.
  db_options.keep_log_file_num = info_log_files_kept;
  // The hashed memtable of event_ids does not take concurrent inserts; the
  // group commit leader is the only writer anyway.
  db_options.allow_concurrent_memtable_write = false;

  // Every family on disk must be opened, the projections' ones too.
  const bool read_only = log->options_.read_only;
  if (read_only) {
    // A read command opens, reads and exits: no statistics to refresh, no
    // file sizes to check against the manifest, and no threads to start —
    // flush and compaction never run, the few table files open on this
    // thread faster than 16 opener threads start, and there is nothing to
    // dump statistics about.
    db_options.skip_stats_update_on_db_open = true;
    db_options.skip_checking_sst_file_sizes_on_db_open = true;
    db_options.max_file_opening_threads = 1;
    db_options.stats_dump_period_sec = 0;
    db_options.stats_persist_period_sec = 0;
  } else {
    db_options.IncreaseParallelism(2);
    // RocksDB starts max_file_opening_threads - 1 threads to open table
    // files for every column family it opens or creates, files or not: with
    // the default of 16 a writable open of a dozen families started and
    // joined about 170 threads, most of a short command's time (a rebuild of
    // a 43-event log took 0.3 s). The files are few; one thread opens them.
    db_options.max_file_opening_threads = 1;
  }
  std::vector<std::string> names;
  auto listed = rocksdb::DB::ListColumnFamilies(db_options, dir.string(), &names);
  if (listed.ok()) {
    // A database without the log's families was not made by EventLog::open
    // (which creates every family on first open), unless that open was
    // killed on the way: never write into it, unless it is that and empty.
    const bool complete = std::all_of(std::begin(required_families), std::end(required_families),
                                      [&](const char* f) { return std::find(names.begin(), names.end(), f) != names.end(); });
    if (!complete) {
      auto unfinished = unfinished_log(dir, names);
      if (!unfinished.ok()) return unfinished.error();
      if (!*unfinished) {
        return invalid_argument(dir.string() + " holds a RocksDB database that is not a customer-service log");
      }
      if (read_only || !log->options_.create_if_missing) return not_found_error(interrupted_creation(dir));
    }
  } else {
    if (read_only || !log->options_.create_if_missing) return not_found_error("no log in " + dir.string());
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  // The families on disk are opened, those missing created after, all in
  // one call: RocksDB's open creates a missing family one at a time, each
  // rewriting and syncing its OPTIONS file (25 of the 35 ms of a first
  // append of one event).
  std::vector<std::string> missing;
  for (const char* required : required_families) {
    if (std::find(names.begin(), names.end(), required) == names.end()) missing.push_back(required);
  }
  // A log older than the customer index has no such family; a read-only open
  // cannot create it (and reads it as absent).
  for (const char* added_later : {customer_streams_family, data_keys_family}) {
    if (std::find(names.begin(), names.end(), added_later) == names.end() && !read_only) missing.push_back(added_later);
  }
  if (read_only) {
    // A read-only open may leave families closed, and reading never needs
    // the projections' (their readers open the log writable): each family
    // opened costs its memtable, its statistics and its first table files.
    std::erase_if(names, [](const std::string& name) { return name.starts_with("proj."); });
    for (const auto& name : missing) names.push_back(name);  // a required family missing: RocksDB says which
    missing.clear();
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  const bool appends = !read_only && log->options_.appends;
  for (const auto& name : names) descriptors.emplace_back(name, family_options(name, appends));

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir.string(), descriptors, &handles, &raw)
                     : rocksdb::DB::Open(db_options, dir.string(), descriptors, &handles, &raw);
  if (!s.ok()) return from_rocks(s, "open " + dir.string());
  log->db_.reset(raw);
  for (std::size_t i = 0; i < names.size(); ++i) log->families_[names[i]] = handles[i];
  if (!missing.empty()) {
    std::vector<rocksdb::ColumnFamilyDescriptor> to_create;
    for (const auto& name : missing) to_create.emplace_back(name, family_options(name, appends));
    std::vector<rocksdb::ColumnFamilyHandle*> created;
    s = raw->CreateColumnFamilies(to_create, &created);
    // Those created before a failure are the log's to close (RocksDB returns them too).
    for (std::size_t i = 0; i < created.size(); ++i) log->families_[missing[i]] = created[i];
    if (!s.ok()) return from_rocks(s, "open " + dir.string() + ": create its families");
    names.insert(names.end(), missing.begin(), missing.end());
  }
  log->events_cf_ = log->families_[events_family];
  log->stream_index_cf_ = log->families_[stream_index_family];
  log->type_index_cf_ = log->families_[type_index_family];
  log->event_ids_cf_ = log->families_[event_ids_family];
  if (auto it = log->families_.find(customer_streams_family); it != log->families_.end()) {
    log->customer_streams_cf_ = it->second;
  }
  if (auto it = log->families_.find(data_keys_family); it != log->families_.end()) log->data_keys_cf_ = it->second;

  // Format marker: refuse a directory written by an incompatible layout.
  std::string format;
  s = raw->Get({}, std::string(keys::meta_log_format), &format);
  if (s.IsNotFound() && read_only) {
    auto unfinished = unfinished_log(dir, names);
    if (unfinished.ok() && *unfinished) return not_found_error(interrupted_creation(dir));
    return invalid_argument(dir.string() + " has no log format marker: not a customer-service log");
  } else if (s.IsNotFound()) {
    std::string v;
    keys::put_u64(v, keys::log_format_version);
    s = raw->Put(rocksdb::WriteOptions{}, std::string(keys::meta_log_format), v);
    if (!s.ok()) return from_rocks(s, "open: write format marker");
  } else if (!s.ok()) {
    return from_rocks(s, "open: read format marker");
  } else if (format.size() == 8 && keys::get_u64(format) == keys::log_format_seq_keyed) {
    if (read_only) {
      return invalid_argument(dir.string() + " holds a log of the first layout (events by sequence alone), which "
                              "a writable open converts once: run a writing command on it first (csctl rebuild "
                              "--data-dir " + dir.string() + ")");
    }
    if (auto rekeyed = log->rekey_events_by_category(); !rekeyed.ok()) return rekeyed.error();
  } else if (format.size() != 8 || keys::get_u64(format) != keys::log_format_version) {
    return invalid_argument(dir.string() + " holds a log of another format");
  }

  if (auto keyed = log->open_master_key(); !keyed.ok()) return keyed.error();

  std::string count;
  s = raw->Get({}, std::string(keys::meta_stream_count), &count);
  if (s.ok() && count.size() == 8) log->stream_count_ = keys::get_u64(count);

  // Recovery: the head is the last event. Everything of a group is in one
  // write batch, so there is nothing to repair after a crash.
  LogIterator last(*raw, log->events_cf_, {});
  last.seek_for_prev(Sequence(UINT64_MAX));
  if (auto found = last.status("open: find head"); !found.ok()) return found.error();
  if (last.valid()) {
    auto head = decode_stored(last.value());
    if (!head.ok()) return corruption_error("open: last event does not decode: " + head.error().message());
    if (head->seq != last.seq()) {
      return corruption_error("open: the last event, at key seq " + std::to_string(last.seq().value) +
                              ", is stamped seq " + std::to_string(head->seq.value));
    }
    log->head_seq_ = head->seq.value;
    log->head_hash_ = head->hash;
  }

  if (!read_only) {
    // What a bulk writer staged and did not ingest before the process died.
    if (auto cleared = clear_ingest_staging(dir / bulk_ingest_staging); !cleared.ok()) return cleared.error();
  }

  std::string indexed;
  s = raw->Get({}, std::string(keys::meta_customer_index), &indexed);
  if (!s.ok() && !s.IsNotFound()) return from_rocks(s, "open: read customer index marker");
  log->customer_index_complete_ = s.ok();
  if (!log->customer_index_complete_ && !read_only) {
    if (auto built = log->build_customer_index(); !built.ok()) return built.error();
    log->customer_index_complete_ = true;
  }
  return log;
}

// The master key: read (or created for a log that has sealed nothing yet)
// and checked against the log's stored check before anything is written.
Status EventLog::open_master_key() {
  const bool read_only = options_.read_only;
  std::string check;
  auto s = db_->Get({}, std::string(keys::meta_master_key_check), &check);
  if (!s.ok() && !s.IsNotFound()) return from_rocks(s, "open: read the master key check");
  sealed_log_ = s.ok();
  const auto& file = options_.master_key_file;
  std::optional<MasterKey> master;
  if (!file.empty()) {
    auto key = read_master_key(file);
    if (key.ok()) {
      master = *key;
    } else if (key.error().code() != ErrorCode::not_found) {
      return key.error();
    } else if (sealed_log_ && !read_only) {
      return invalid_argument("the master key file " + file.string() +
                              " does not exist, and this log holds personal data sealed under a master key: "
                              "without that key nothing can be written (restore the file; docs/storage.md)");
    } else if (!sealed_log_ && !read_only && options_.create_master_key) {
      auto created = create_master_key(file);
      if (!created.ok()) return created.error();
      master = *created;
    }
  } else if (sealed_log_ && !read_only) {
    return invalid_argument(dir_.string() + " holds personal data sealed under a master key: open it with that key");
  }
  if (master) {
    const auto expected = master_key_check(*master);
    const std::string_view expected_bytes(reinterpret_cast<const char*>(expected.data()), expected.size());
    if (sealed_log_ && check != expected_bytes) {
      return invalid_argument("the master key in " + file.string() +
                              " is not the key this log's personal data was sealed with");
    }
    if (!sealed_log_ && !read_only) {
      s = db_->Put(rocksdb::WriteOptions{}, std::string(keys::meta_master_key_check),
                   rocksdb::Slice(expected_bytes.data(), expected_bytes.size()));
      if (!s.ok()) return from_rocks(s, "open: store the master key check");
      sealed_log_ = true;
    }
  }
  data_keys_ = std::make_unique<DataKeys>(*db_, data_keys_cf_, master);
  if (master) side_key_ = side_data_key(*master);
  return {};
}

// A log written before the customer index: every user and subscription
// stream's first event names its owner. Written in bounded batches, the
// marker last, so an interrupted build is simply done again at the next open.
Status EventLog::build_customer_index() {
  constexpr std::size_t entries_per_batch = 10'000;
  rocksdb::WriteBatch batch;
  std::size_t in_batch = 0;
  auto write = [&]() -> Status {
    auto s = db_->Write(rocksdb::WriteOptions{}, &batch);
    if (!s.ok()) return from_rocks(s, "open: write customer index");
    batch.Clear();
    in_batch = 0;
    return {};
  };
  for (Category category : {Category::user, Category::subscription}) {
    const std::string prefix(stream_prefix(category));
    rocksdb::ReadOptions whole;
    whole.total_order_seek = true;  // across streams: past the prefix bloom
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(whole, stream_index_cf_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto key = it->key().ToStringView();
      if (key.size() < 10 || key[key.size() - 9] != '\0') return corruption_error("stream index: malformed key");
      if (keys::get_u64(key.substr(key.size() - 8)) != 1) continue;  // not the stream's first block
      auto block = keys::decode_block(it->value().ToStringView());
      if (!block) return corruption_error("stream index of " + std::string(key.substr(0, key.size() - 9)) +
                                          ": malformed block");
      auto first = read_event(Sequence(block->front()), category);
      if (!first.ok()) return first.error();
      const StreamKey stream = payload_stream_key(first->payload);
      batch.Put(customer_streams_cf_,
                keys::customer_stream_key(payload_customer_id(first->payload), stream.category, stream.id), {});
      if (++in_batch == entries_per_batch) {
        if (auto s = write(); !s.ok()) return s;
      }
    }
    if (!it->status().ok()) return from_rocks(it->status(), "open: scan stream index");
  }
  std::string marker;
  keys::put_u64(marker, 1);
  batch.Put(std::string(keys::meta_customer_index), marker);
  return write();
}

EventLog::~EventLog() {
  if (!db_) return;
  if (options_.read_only) {
    for (auto& [name, handle] : families_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close().PermitUncheckedError();
    return;
  }
  // Deferred appends become durable before the close, whatever the flush
  // below does (it is best effort).
  (void)sync_wal();
  // Flush memtables so that the next open (every csctl command opens the
  // store) does not replay a long WAL. Best effort: the WAL has it all anyway.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  for (auto& [name, handle] : families_) handles.push_back(handle);
  db_->Flush(rocksdb::FlushOptions{}, handles).PermitUncheckedError();
  for (auto& [name, handle] : families_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

Sequence EventLog::head() const { return Sequence(head_seq_.load()); }

Status EventLog::sync_wal() const {
  if (options_.read_only || !options_.sync_each_group) return {};
  {
    std::lock_guard lock(mu_);
    if (failure_) return fatal_error("log refuses appends after a failed write: " + failure_->message());
  }
  // RocksDB syncs only the WAL files with unsynced bytes: nothing to do costs no fsync.
  auto s = db_->SyncWAL();
  if (s.ok()) return {};
  Error e = from_rocks(s, "sync the write-ahead log");
  std::lock_guard lock(mu_);
  if (!failure_) failure_ = e;
  return e;
}

std::size_t EventLog::queued_appends() const {
  std::lock_guard lock(mu_);
  return writers_.size();
}

Hash EventLog::head_hash() const {
  std::lock_guard lock(mu_);
  return head_hash_;
}

Result<rocksdb::ColumnFamilyHandle*> EventLog::column_family(const std::string& name) {
  auto handles = column_families({name});
  if (!handles.ok()) return handles.error();
  return handles->front();
}

Result<std::vector<rocksdb::ColumnFamilyHandle*>> EventLog::column_families(const std::vector<std::string>& names) {
  std::lock_guard lock(families_mu_);
  std::vector<rocksdb::ColumnFamilyDescriptor> missing;
  for (const auto& name : names) {
    const bool listed = std::any_of(missing.begin(), missing.end(), [&](const auto& d) { return d.name == name; });
    if (!families_.contains(name) && !listed) missing.emplace_back(name, family_options(name));
  }
  if (!missing.empty()) {
    if (options_.read_only) {
      return invalid_argument("the log is open read-only: cannot create family " + missing.front().name);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> created;
    auto s = db_->CreateColumnFamilies(missing, &created);
    // Families created before a failure are kept (RocksDB returns them too).
    for (std::size_t i = 0; i < created.size(); ++i) families_[missing[i].name] = created[i];
    if (!s.ok()) {
      const auto& failed = missing[std::min(created.size(), missing.size() - 1)];
      return from_rocks(s, "create column family " + failed.name);
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  for (const auto& name : names) handles.push_back(families_.at(name));
  return handles;
}

Status EventLog::drop_column_family(const std::string& name) { return drop_column_families({name}); }

Status EventLog::drop_column_families(const std::vector<std::string>& names) {
  std::lock_guard lock(families_mu_);
  std::vector<rocksdb::ColumnFamilyHandle*> present;
  std::vector<std::string> present_names;
  for (const auto& name : names) {
    CS_ASSERT(!is_log_family(name), "the log's own column families are never dropped");
    auto it = families_.find(name);
    if (it == families_.end()) continue;
    if (std::find(present.begin(), present.end(), it->second) != present.end()) continue;
    present.push_back(it->second);
    present_names.push_back(name);
  }
  if (present.empty()) return {};
  // On a failure (a manifest write) the handles stay: RocksDB stops writing
  // after such an error, and the next open drops the leftovers.
  auto s = db_->DropColumnFamilies(present);
  if (!s.ok()) return from_rocks(s, "drop column family " + present_names.front());
  for (std::size_t i = 0; i < present.size(); ++i) {
    db_->DestroyColumnFamilyHandle(present[i]);
    families_.erase(present_names[i]);
  }
  return {};
}

// A stream's head is the last entry of its last index block.
std::vector<std::string> EventLog::column_family_names() const {
  std::lock_guard lock(families_mu_);
  std::vector<std::string> names;
  for (const auto& [name, handle] : families_) names.push_back(name);
  return names;
}

Result<StreamVersion> EventLog::stream_version(std::string_view stream) const {
  IndexCursor cursor(*db_, stream_index_cf_, keys::stream_prefix_key(stream), IndexCursor::Kind::stream);
  cursor.seek(UINT64_MAX, /*backward=*/true);
  if (!cursor.status().ok()) return cursor.status().error();
  return StreamVersion(cursor.valid() ? cursor.position() : 0);
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

// An id already in the log (or staged) names one event: the same stream,
// type and data, or a conflict that says which part differs.
template <class Staged>
Status check_same_event(const NewEvent& e, const StreamKey& stream, const Staged& found) {
  EventType type = payload_type(e.payload);
  EventType found_type = payload_type(*found.payload);
  if (found.stream != stream || found_type != type) {
    return conflict_error("event id " + e.id.to_string() + " is already in the log at seq " +
                          std::to_string(found.seq.value) + " as " + std::string(event_type_name(found_type)) +
                          " in " + found.stream.name() + ", not as " + std::string(event_type_name(type)) + " in " +
                          stream.name());
  }
  if (*found.payload != e.payload) {
    return conflict_error("event id " + e.id.to_string() + " is already in the log at seq " +
                          std::to_string(found.seq.value) + " with other data: an id names one event");
  }
  return {};
}

Result<AppendResult> EventLog::append(std::span<const NewEvent> events) { return append(events, {}); }

Result<AppendResult> EventLog::append(std::span<const NewEvent> events, std::span<const SideWrite> side_writes,
                                      Durability durability) {
  if (events.empty() && side_writes.empty()) return invalid_argument("append: no events");
  if (side_writes.size() > limits::side_writes_max) {
    return invalid_argument("append: " + std::to_string(side_writes.size()) + " side writes, at most " +
                            std::to_string(limits::side_writes_max));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> side_families;
  std::size_t side_bytes = 0;
  for (const auto& w : side_writes) {
    if (is_log_family(w.family) || w.family.empty() || w.family.starts_with("proj.")) {  // the log's, the projections'
      return invalid_argument("append: a side write cannot go to family \"" + w.family + "\"");
    }
    if (w.key.empty() && !w.sequenced) {
      return invalid_argument("append: a side write to " + w.family + " has an empty key");
    }
    side_bytes += w.key.size() + (w.value ? w.value->size() : 0);
    if (side_bytes > limits::side_write_bytes_max) {
      return invalid_argument("append: side writes over " + std::to_string(limits::side_write_bytes_max) + " bytes");
    }
    auto family = column_family(w.family);
    if (!family.ok()) return family.error();
    side_families.push_back(*family);
  }
  // Checks that need no log state run before queueing, outside the lock.
  if (auto checked = check_new_events(events); !checked.ok()) return checked.error();

  Writer w;
  w.events = events;
  w.side_writes = side_writes;
  w.durability = durability;
  w.side_families = std::move(side_families);
  if (auto s = seal_personal_fields(w); !s.ok()) return s.error();
  return enqueue(w);
}

Result<std::vector<Uuid>> EventLog::check_new_events(std::span<const NewEvent> events) const {
  if (events.size() > options_.append_events_max) {
    return invalid_argument("append: " + std::to_string(events.size()) + " events, at most " +
                            std::to_string(options_.append_events_max) + " in one append");
  }
  std::vector<Uuid> ids;
  ids.reserve(events.size());
  FlatSet<Uuid> seen;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (auto s = check_event(events[i], i); !s.ok()) return s.error();
    if (!seen.insert(events[i].id).second) {
      return invalid_argument("append: event id " + events[i].id.to_string() + " appears twice");
    }
    ids.push_back(events[i].id);
  }
  return ids;
}

Status EventLog::check_imported_events(std::span<const RecordedEvent> events) const {
  if (events.empty()) return invalid_argument("import: no events");
  if (events.size() > options_.append_events_max) {
    return invalid_argument("import: " + std::to_string(events.size()) + " events, at most " +
                            std::to_string(options_.append_events_max) + " at once");
  }
  for (const auto& e : events) {
    if (auto s = validate_payload(e.payload, e.stored_schema_version, e.sealed); !s.ok()) {
      return invalid_argument("import: seq " + std::to_string(e.seq.value) + ": " + s.error().message());
    }
  }
  return {};
}

// Seals the personal fields of the writer's events with their customers'
// data keys (created on first use), on the appending thread.
Status EventLog::seal_personal_fields(Writer& w) {
  for (std::size_t i = 0; i < w.events.size(); ++i) {
    const NewEvent& e = w.events[i];
    if (!has_personal_fields(e.payload)) continue;
    if (!data_keys_->has_master_key()) {
      if (!sealed_log_) continue;  // a log without a master key keeps plaintext
      return invalid_argument("this log seals personal data: open it with its master key");
    }
    const Uuid& customer = payload_customer_id(e.payload);
    auto key = data_keys_->for_writing(customer);
    if (!key.ok()) {
      return Error(key.error().code(), "event " + std::to_string(i) + " (" + e.id.to_string() + "): " +
                                           key.error().message());
    }
    if (key->unstored && std::none_of(w.unstored_keys.begin(), w.unstored_keys.end(),
                                      [&](const auto& k) { return k.first == customer; })) {
      w.unstored_keys.emplace_back(customer, *key->unstored);
    }
    if (w.sealed_at.empty()) w.sealed_at.assign(w.events.size(), Writer::not_sealed);
    w.sealed_at[i] = static_cast<std::uint32_t>(w.sealed.size());
    Payload& sealed = w.sealed.emplace_back(e.payload);
    for_each_personal_field(sealed, [&](std::string_view path, std::string& value) {
      value = seal_field(key->key, e.id, path, value);
    });
  }
  return {};
}

Result<AppendResult> EventLog::import(std::span<const RecordedEvent> events) {
  if (auto s = check_imported_events(events); !s.ok()) return s.error();
  Writer w;
  w.imported = events;
  return enqueue(w);
}

// Queues `w`; the writer at the front leads a group commit for the queue.
Result<AppendResult> EventLog::enqueue(Writer& w) {
  if (options_.read_only) return invalid_argument("the log is open read-only");
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
    if (!group.empty() && group_events + candidate->size() > options_.group_commit_events_max) break;
    group.push_back(candidate);
    group_events += candidate->size();
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
  {
    // Appends queued behind a failed group must not commit: that group's
    // WAL record may have reached disk, so its sequences may be taken.
    std::lock_guard lock(mu_);
    if (failure_) {
      for (Writer* w : group) w->result = fatal_error("log refuses appends after a failed write: " + failure_->message());
      return;
    }
  }
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
    w->result = w->imported.empty() ? stage_writer(*w, state, batch) : stage_import(*w, state, batch);
    if (!w->result.ok()) continue;
    if (auto s = stage_side_writes(*w, batch); !s.ok()) {
      w->result = s.error();
      continue;
    }
    if (!w->result->duplicate || !w->side_writes.empty()) staged.push_back(w);
  }
  if (staged.empty()) return;

  const std::uint64_t stream_count = finish_group(state, batch);
  rocksdb::WriteOptions write_options;
  // One synced member syncs the whole group (and every deferred write before it).
  write_options.sync = options_.sync_each_group &&
                       std::any_of(staged.begin(), staged.end(), [](const Writer* w) { return w->durability == Durability::synced; });
  Status written = options_.write_failure_probe ? options_.write_failure_probe() : Status{};
  if (written.ok()) {
    auto s = db_->Write(write_options, &batch);
    if (!s.ok()) written = from_rocks(s, "append: write batch");
  }
  if (!written.ok()) {
    // Every writer of the group gets the failure, duplicates too: their ids
    // may have been staged by another writer of this very group.
    Error failure = fail_writes(written.error());
    for (Writer* w : group) {
      if (w->result.ok()) w->result = failure;
    }
    return;
  }
  apply_committed(state, stream_count);
}

namespace {

// `seqs` as index blocks of at most limits::index_block_entries_max
// positions each, given to `put` as (key, value) built in `key` and `value`
// (reused from call to call). A block's key is `prefix` and its first
// position: for a type its first seq (`positions_are_seqs`), for a stream
// its first version, `first_position` plus the versions before it.
template <class Put>
void put_blocks(std::string_view prefix, std::uint64_t first_position, const std::vector<std::uint64_t>& seqs,
                bool positions_are_seqs, std::string& key, std::string& value, const Put& put) {
  for (std::size_t begin = 0; begin < seqs.size(); begin += limits::index_block_entries_max) {
    const std::size_t end = std::min(seqs.size(), begin + limits::index_block_entries_max);
    const std::span<const std::uint64_t> part(seqs.data() + begin, end - begin);
    key.assign(prefix);
    keys::put_u64(key, positions_are_seqs ? part.front() : first_position + begin);
    value.clear();
    keys::append_block(part, value);
    put(key, value);
  }
}

// Where each category's streams fall in the stream index: the order of
// "<prefix><uuid>\0" keys is that of the prefixes, then of the ids (hex
// digits in lowercase sort as the bytes they spell).
std::array<std::uint8_t, 256> category_ranks() {
  std::vector<Category> categories = {Category::customer, Category::user, Category::subscription, Category::token};
  std::sort(categories.begin(), categories.end(),
            [](Category a, Category b) { return stream_prefix(a) < stream_prefix(b); });
  std::array<std::uint8_t, 256> rank{};
  for (std::size_t i = 0; i < categories.size(); ++i) {
    rank[static_cast<std::uint8_t>(categories[i])] = static_cast<std::uint8_t>(i);
  }
  return rank;
}

const std::array<std::uint8_t, 256> stream_category_rank = category_ranks();

}  // namespace

std::uint64_t EventLog::finish_group(const GroupState& state, rocksdb::WriteBatch& batch) const {
  // In key order: the memtable's skiplist then finds each insert from the
  // one before (its "splice") instead of from the top, which halves the
  // cost of these random-keyed inserts; an ingested chunk's table needs
  // them sorted anyway. Sorted by (category, id), which is the keys' order,
  // without making the keys first: the streams' keys are copied beside their
  // blocks' places, so they sort and are named without a cache miss each,
  // and the blocks, reached in key order, are asked for a few streams ahead.
  std::vector<std::pair<StreamKey, const GroupState::StreamBlock*>> stream_blocks;
  stream_blocks.reserve(state.stream_blocks.size());
  for (const auto& [stream, block] : state.stream_blocks) stream_blocks.emplace_back(stream, &block);
  std::sort(stream_blocks.begin(), stream_blocks.end(), [](const auto& a, const auto& b) {
    const auto ra = stream_category_rank[static_cast<std::uint8_t>(a.first.category)];
    const auto rb = stream_category_rank[static_cast<std::uint8_t>(b.first.category)];
    return ra != rb ? ra < rb : a.first.id.bytes() < b.first.id.bytes();
  });
  constexpr std::size_t block_prefetch_distance = 8;
  std::string prefix, key, value;
  for (std::size_t i = 0; i < stream_blocks.size(); ++i) {
    if (i + block_prefetch_distance < stream_blocks.size()) {
      __builtin_prefetch(stream_blocks[i + block_prefetch_distance].second);
    }
    if (i + block_prefetch_distance / 2 < stream_blocks.size()) {
      __builtin_prefetch(stream_blocks[i + block_prefetch_distance / 2].second->seqs.data());
    }
    const auto& [stream, block] = stream_blocks[i];
    char id_text[37];
    stream.id.to_chars(id_text);
    prefix.assign(stream_prefix(stream.category));
    prefix.append(id_text, 36);
    prefix.push_back('\0');
    put_blocks(prefix, block->first_version, block->seqs, /*positions_are_seqs=*/false, key, value,
               [&](const std::string& k, const std::string& v) { batch.Put(stream_index_cf_, k, v); });
  }
  for (const auto& [type, seqs] : state.type_blocks) {
    put_blocks(keys::type_prefix_key(type), seqs.front(), seqs, /*positions_are_seqs=*/true, key, value,
               [&](const std::string& k, const std::string& v) { batch.Put(type_index_cf_, k, v); });
  }
  const std::uint64_t stream_count = stream_count_ + state.new_streams;
  if (state.new_streams > 0) {
    std::string v;
    keys::put_u64(v, stream_count);
    batch.Put(std::string(keys::meta_stream_count), v);
  }
  return stream_count;
}

void EventLog::apply_committed(const GroupState& state, std::uint64_t stream_count) {
  CS_ASSERT(state.last_seq.value >= head_seq_.load(), "sequences never go back");
  stream_count_ = stream_count;
  auto& cache = leader_->streams;
  if (cache.size() + state.streams.size() > limits::stream_head_cache_entries_max) cache.clear();
  for (const auto& [stream, facts] : state.streams) cache[stream] = facts;
  for (const Uuid& customer : state.stored_keys) data_keys_->mark_stored(customer);
  for (const Uuid& customer : state.erased) data_keys_->mark_erased(customer);
  std::lock_guard lock(mu_);
  head_hash_ = state.last_hash;
  head_seq_ = state.last_seq.value;
}

Error EventLog::fail_writes(const Error& written) {
  std::lock_guard lock(mu_);
  failure_ = written;
  return written;
}

Status EventLog::stage_side_writes(const Writer& w, rocksdb::WriteBatch& batch) {
  if (w.side_writes.empty()) return {};
  std::vector<std::optional<std::string>> made(w.side_writes.size());
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < w.side_writes.size(); ++i) {
    const SideWrite& side = w.side_writes[i];
    if (side.value_after) made[i] = side.value_after(*w.result);
    const auto& value = side.value_after ? made[i] : side.value;
    bytes += (side.sequenced ? 8 : side.key.size()) + (value ? value->size() : 0);
  }
  if (bytes > limits::side_write_bytes_max) {
    // Events staged by this writer cannot be taken back out of the batch.
    CS_ASSERT(w.events.empty(), "side write values made for an append with events stay within the limit");
    return invalid_argument("append: side writes over " + std::to_string(limits::side_write_bytes_max) + " bytes");
  }
  for (std::size_t i = 0; i < w.side_writes.size(); ++i) {
    const SideWrite& side = w.side_writes[i];
    rocksdb::ColumnFamilyHandle* family = w.side_families[i];
    std::string key = side.key;
    if (side.sequenced) {
      auto [it, fresh] = leader_->side_sequences.try_emplace(family, 0);
      if (fresh) {
        std::unique_ptr<rocksdb::Iterator> last(db_->NewIterator({}, family));
        last->SeekToLast();
        if (!last->status().ok()) {
          leader_->side_sequences.erase(it);
          return from_rocks(last->status(), "append: last key of a sequenced side family");
        }
        if (last->Valid()) {
          if (last->key().size() != 8) return corruption_error("append: a sequenced side family holds a key of " +
                                                               std::to_string(last->key().size()) + " bytes");
          it->second = keys::get_u64(std::string_view(last->key().data(), 8));
        }
      }
      key = sequenced_key(++it->second);
    }
    const auto& value = side.value_after ? made[i] : side.value;
    if (value && side.seal && side_key_) {
      // Marked by its first byte: no plain side value starts with it.
      std::string sealed(1, sealed_side_tag);
      sealed += seal_field(*side_key_, Uuid(), side.family + "/" + key, *value);
      batch.Put(family, key, sealed);
    } else if (value) {
      batch.Put(family, key, *value);
    } else {
      batch.Delete(family, key);
    }
  }
  return {};
}

std::string EventLog::event_key(Category category, Sequence seq) { return keys::event_key(category, seq); }

std::string EventLog::sequenced_key(std::uint64_t seq) {
  std::string key;
  keys::put_u64(key, seq);
  return key;
}

rocksdb::ColumnFamilyHandle* EventLog::existing_family(const std::string& name) const {
  std::lock_guard lock(families_mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second;
}

Result<std::string> EventLog::open_side_value(const std::string& family, std::string_view key,
                                             std::string_view value) const {
  if (value.empty() || value[0] != sealed_side_tag) return std::string(value);
  if (!side_key_) return invalid_argument(family + " holds sealed values: open the log with its master key");
  auto opened = open_field(*side_key_, Uuid(), family + "/" + std::string(key), value.substr(1));
  if (!opened.ok()) return corruption_error(family + ": a sealed value does not open with this master key");
  return std::move(*opened);
}

Result<std::optional<std::string>> EventLog::read_side(const std::string& family, std::string_view key) const {
  rocksdb::ColumnFamilyHandle* handle = existing_family(family);
  if (!handle) return std::optional<std::string>{};
  std::string value;
  auto s = db_->Get({}, handle, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return from_rocks(s, "read " + family);
  auto opened = open_side_value(family, key, value);
  if (!opened.ok()) return opened.error();
  return std::optional<std::string>(std::move(*opened));
}

Status EventLog::delete_side_range(const std::string& family, std::string_view from_key, std::string_view to_key) {
  if (is_log_family(family) || family.starts_with("proj.")) {
    return invalid_argument("delete_side_range: not a side family: " + family);
  }
  rocksdb::ColumnFamilyHandle* handle = existing_family(family);
  if (!handle) return {};
  auto s = db_->DeleteRange(rocksdb::WriteOptions{}, handle, rocksdb::Slice(from_key.data(), from_key.size()),
                            rocksdb::Slice(to_key.data(), to_key.size()));
  if (!s.ok()) return from_rocks(s, "sweep " + family);
  return {};
}

Status EventLog::scan_side(const std::string& family, std::string_view from_key, std::size_t limit,
                           const SideVisitor& visit) const {
  rocksdb::ColumnFamilyHandle* handle = existing_family(family);
  if (!handle) return {};
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, handle));
  std::size_t seen = 0;
  for (it->Seek(rocksdb::Slice(from_key.data(), from_key.size())); it->Valid() && seen < limit; it->Next(), ++seen) {
    const std::string_view key(it->key().data(), it->key().size());
    auto value = open_side_value(family, key, std::string_view(it->value().data(), it->value().size()));
    if (!value.ok()) return value.error();
    if (!visit(key, *value)) break;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "scan " + family);
  return {};
}

Result<std::uint64_t> EventLog::side_sequence_head(const std::string& family) const {
  rocksdb::ColumnFamilyHandle* handle = existing_family(family);
  if (!handle) return std::uint64_t{0};
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, handle));
  it->SeekToLast();
  if (!it->status().ok()) return from_rocks(it->status(), "last key of " + family);
  if (!it->Valid()) return std::uint64_t{0};
  if (it->key().size() != 8) {
    return corruption_error(family + " is not a sequenced family (a key of " + std::to_string(it->key().size()) +
                            " bytes)");
  }
  return keys::get_u64(std::string_view(it->key().data(), 8));
}

namespace {

// The id index's answer for each event's id, in one batched lookup: found
// (the value is its seq), not found, or the lookup's error.
struct IdLookup {
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> statuses;
};

// Room made for an event's stored bytes before they are encoded: most
// events of a generated history take 250 to 450 bytes, and a string grown
// past its room is copied again.
constexpr std::size_t encoded_event_bytes_reserved = 512;

// `nothing_stored`: the group knows the database holds no id (every one is
// not found, without asking).
template <class Event>
IdLookup look_up_ids(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* event_ids, std::span<const Event> events,
                     bool nothing_stored) {
  IdLookup found{std::vector<rocksdb::PinnableSlice>(events.size()), std::vector<rocksdb::Status>(events.size())};
  if (nothing_stored) {
    std::fill(found.statuses.begin(), found.statuses.end(), rocksdb::Status::NotFound());
    return found;
  }
  std::vector<rocksdb::Slice> keys;
  keys.reserve(events.size());
  for (const auto& e : events) keys.emplace_back(reinterpret_cast<const char*>(e.id.bytes().data()), 16);
  db.MultiGet({}, event_ids, events.size(), keys.data(), found.values.data(), found.statuses.data());
  return found;
}

}  // namespace

// Validates one writer's events against the log and what the group staged,
// then adds its writes to `batch`. On error nothing of this writer is staged.
Result<AppendResult> EventLog::stage_writer(const Writer& w, GroupState& group,
                                            rocksdb::WriteBatch& batch) {
  const auto events = w.events;
  AppendResult result;
  if (events.empty()) return result;  // side writes only
  std::vector<StreamKey> streams(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) streams[i] = payload_stream_key(events[i].payload);

  // 1. Idempotency: which ids are known already? One batched lookup.
  const IdLookup known_ids = look_up_ids(*db_, event_ids_cf_, events, group.nothing_stored);
  const auto& id_values = known_ids.values;
  const auto& id_statuses = known_ids.statuses;

  std::size_t known = 0;
  std::optional<std::size_t> first_unknown;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    std::optional<GroupState::StagedId> found;
    std::optional<RecordedEvent> original;
    if (auto it = group.ids.find(e.id); it != group.ids.end()) {
      found = it->second;
    } else if (id_statuses[i].ok()) {
      auto read = read_event(Sequence(keys::get_u64(id_values[i].ToStringView())));
      if (!read.ok()) return read.error();
      original = std::move(read).value();
      // Sealed with another nonce: compare what it says, not its bytes.
      if (auto s = unseal(*original); !s.ok()) return s.error();
      if (original->erased) {
        return conflict_error("event id " + e.id.to_string() + " is already in the log, for customer " +
                              payload_customer_id(e.payload).to_string() + ", who was erased");
      }
      found = GroupState::StagedId{original->seq, original->version, payload_stream_key(original->payload),
                                   &original->payload};
    } else if (!id_statuses[i].IsNotFound()) {
      return from_rocks(id_statuses[i], "append: look up event id");
    }
    if (!found) {
      if (!first_unknown) first_unknown = i;
      continue;
    }
    ++known;
    if (auto s = check_same_event(e, streams[i], *found); !s.ok()) return s.error();
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

  // 2. Expected versions and stream rules: staged facts first, then
  // committed ones, then the index.
  FlatMap<StreamKey, StreamFacts> facts;  // this writer's view
  for (std::size_t i = 0; i < events.size(); ++i) {
    const StreamKey& stream = streams[i];
    auto it = facts.find(stream);
    if (it == facts.end()) {
      auto current = staged_stream_facts(stream, group);
      if (!current.ok()) return current.error();
      it = facts.emplace(stream, *current).first;
    }
    const auto& expected = events[i].expected;
    const std::uint64_t version = it->second.version;
    bool matches = expected.kind == ExpectedVersion::Kind::any ||
                   (expected.kind == ExpectedVersion::Kind::no_stream && version == 0) ||
                   (expected.kind == ExpectedVersion::Kind::exact && version == expected.version.value);
    if (!matches) {
      return conflict_error("stream " + stream.name() + ": expected version " + to_string(expected) +
                            ", actual version " + std::to_string(version) + " (event " +
                            std::to_string(i) + ", id " + events[i].id.to_string() + ")");
    }
    if (stream.category == Category::customer || w.is_sealed(i)) {
      const Uuid& customer = payload_customer_id(events[i].payload);
      auto erased = group.erased.contains(customer) || (group.before && group.before->erased.contains(customer))
                        ? Result<bool>(true)
                        : data_keys_->erased(customer);
      if (!erased.ok()) return erased.error();
      if (*erased) {
        return conflict_error("event " + std::to_string(i) + " (" + events[i].id.to_string() + "): customer " +
                              customer.to_string() + " was erased: nothing more is written for it");
      }
    }
    if (auto s = check_stream_rules(it->second, stream, events[i].payload); !s.ok()) {
      return Error(s.error().code(), "event " + std::to_string(i) + " (" + events[i].id.to_string() + "): " +
                                         s.error().message());
    }
    if (auto s = advance_stream_facts(it->second, events[i].payload); !s.ok()) return s.error();
    result.positions.push_back({Sequence(group.last_seq.value + 1 + i), StreamVersion(it->second.version)});
  }

  // 3. Encode and chain. Kept in locals until every event passed.
  std::vector<std::string> values(events.size());
  Hash hash = group.last_hash;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    StreamKey::NameBuffer name_buffer;
    const std::string_view stream_name = streams[i].name_into(name_buffer);
    std::string& value = values[i];
    value.reserve(encoded_event_bytes_reserved);
    encode_canonical(CanonicalFields{result.positions[i].seq, e.id, stream_name, result.positions[i].version,
                                     e.timestamp, group.recorded_at, e.meta,
                                     current_schema_version(payload_type(e.payload)), w.stored(i), w.is_sealed(i)},
                     value);
    if (value.size() > options_.event_size_bytes_max) {
      return invalid_argument("event " + std::to_string(i) + " (" + e.id.to_string() + ") is " +
                              std::to_string(value.size()) + " bytes stored, over the limit of " +
                              std::to_string(options_.event_size_bytes_max));
    }
    hash = chain_hash(hash, value);
    value.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  }

  // 4. Stage: the new data keys first, then the events sealed with them.
  for (const auto& [customer, value] : w.unstored_keys) {
    batch.Put(data_keys_cf_, rocksdb::Slice(reinterpret_cast<const char*>(customer.bytes().data()), 16), value);
    group.stored_keys.push_back(customer);
  }
  for (std::size_t i = 0; i < events.size(); ++i) {
    stage_event(events[i].id, streams[i], events[i].payload, result.positions[i], values[i], group, batch);
  }
  for (auto& [stream, f] : facts) group.streams[stream] = f;
  group.last_seq = Sequence(group.last_seq.value + events.size());
  group.last_hash = hash;
  return result;
}

// A stream's facts as the group sees them: staged, else committed, else read.
Result<StreamFacts> EventLog::staged_stream_facts(const StreamKey& stream, const GroupState& group) const {
  if (auto g = group.streams.find(stream); g != group.streams.end()) return g->second;
  if (group.before != nullptr) {
    if (auto b = group.before->streams.find(stream); b != group.before->streams.end()) return b->second;
  }
  if (auto c = leader_->streams.find(stream); c != leader_->streams.end()) return c->second;
  if (group.nothing_stored) return StreamFacts{};  // what load_stream_facts says of a stream with no event
  return load_stream_facts(stream);
}

// Reads what the rules need: the head always; the owner (first event) of user
// and subscription streams; the totals of token streams (one pass over the
// stream, once per cache miss).
Result<StreamFacts> EventLog::load_stream_facts(const StreamKey& stream) const {
  StreamFacts facts;
  auto head = stream_version(stream.name());
  if (!head.ok()) return head.error();
  if (head->value == 0) return facts;
  if (stream.category == Category::customer) {
    facts.version = head->value;
    facts.owner = stream.id;
    return facts;
  }
  if (stream.category != Category::token) {
    IndexCursor cursor(*db_, stream_index_cf_, keys::stream_prefix_key(stream.name()), IndexCursor::Kind::stream);
    cursor.seek(1, /*backward=*/false);
    if (!cursor.status().ok()) return cursor.status().error();
    if (!cursor.valid()) return corruption_error("stream " + stream.name() + " has a head but no first event");
    auto first = read_event(Sequence(cursor.seq()), stream.category);
    if (!first.ok()) return first.error();
    facts.version = head->value;
    facts.owner = payload_customer_id(first->payload);
    return facts;
  }
  Status folded;
  ReadQuery query;
  query.stream = stream.name();
  auto s = read(query, [&](const RecordedEvent& e) {
    folded = advance_stream_facts(facts, e.payload);
    return folded.ok();
  });
  if (!s.ok()) return s.error();
  if (!folded.ok()) return corruption_error("stream " + stream.name() + ": " + folded.error().message());
  return facts;
}

void EventLog::stage_event(const Uuid& id, const StreamKey& stream, const Payload& payload, const EventPosition& pos,
                           const std::string& value, GroupState& group, rocksdb::WriteBatch& batch) {
  const EventType type = payload_type(payload);
  CS_ASSERT(category_of(type) == stream.category, "an event's stream is of its type's category");
  char event_key[keys::event_key_bytes];
  keys::write_event_key(stream.category, pos.seq, event_key);
  const rocksdb::Slice key(event_key, sizeof event_key), seq_bytes(event_key + 1, 8);
  if (group.events_table != nullptr) {
    group.events_table->put(std::string_view(event_key, sizeof event_key), value);
  } else {
    batch.Put(events_cf_, key, value);
  }
  batch.Put(event_ids_cf_, rocksdb::Slice(reinterpret_cast<const char*>(id.bytes().data()), 16), seq_bytes);
  group.ids[id] = {pos.seq, pos.version, stream, &payload};
  auto& block = group.stream_blocks[stream];
  if (block.seqs.empty()) block.first_version = pos.version.value;
  block.seqs.push_back(pos.seq.value);
  group.type_blocks[type].push_back(pos.seq.value);
  if (const auto* erasure = std::get_if<CustomerErased>(&payload); erasure && data_keys_cf_ != nullptr) {
    // The key goes with the event that says so, in the same batch.
    batch.Put(data_keys_cf_, rocksdb::Slice(reinterpret_cast<const char*>(erasure->customer_id.bytes().data()), 16),
              DataKeys::erased_value());
    group.erased.insert(erasure->customer_id);
  }
  if (pos.version.value == 1) {
    ++group.new_streams;
    if (keys::owned_through_first_event(stream.category)) {
      batch.Put(customer_streams_cf_, keys::customer_stream_key(payload_customer_id(payload), stream.category, stream.id),
                {});
    }
  }
}

// Imported events keep their positions; everything is checked before any is staged.
Result<AppendResult> EventLog::stage_import(const Writer& w, GroupState& group, rocksdb::WriteBatch& batch) {
  const auto events = w.imported;
  auto where = [](const RecordedEvent& e) { return "import: seq " + std::to_string(e.seq.value) + ": "; };
  AppendResult result;
  std::vector<StreamKey> streams(events.size());
  FlatMap<StreamKey, StreamFacts> facts;
  std::vector<std::string> values(events.size());
  Hash hash = group.last_hash;
  // Is any id in the log already? One batched lookup.
  const std::vector<rocksdb::Status> id_statuses =
      look_up_ids(*db_, event_ids_cf_, events, group.nothing_stored).statuses;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (e.seq.value != group.last_seq.value + 1 + i) {
      return invalid_argument(where(e) + "the log continues at seq " + std::to_string(group.last_seq.value + 1 + i));
    }
    streams[i] = payload_stream_key(e.payload);
    StreamKey::NameBuffer name_buffer;
    if (e.stream != streams[i].name_into(name_buffer)) {
      return invalid_argument(where(e) + "stream " + e.stream + " does not match the event's data");
    }
    auto it = facts.find(streams[i]);
    if (it == facts.end()) {
      auto current = staged_stream_facts(streams[i], group);
      if (!current.ok()) return current.error();
      it = facts.emplace(streams[i], *current).first;
    }
    if (e.version.value != it->second.version + 1) {
      return invalid_argument(where(e) + "stream " + e.stream + " is at version " +
                              std::to_string(it->second.version) + ", the event says " +
                              std::to_string(e.version.value));
    }
    if (auto s = advance_stream_facts(it->second, e.payload); !s.ok()) {
      return invalid_argument(where(e) + s.error().message());
    }
    if (!id_statuses[i].ok() && !id_statuses[i].IsNotFound()) {
      return from_rocks(id_statuses[i], where(e) + "look up event id");
    }
    if (id_statuses[i].ok() || group.ids.contains(e.id) || (group.before && group.before->ids.contains(e.id))) {
      return conflict_error(where(e) + "event id " + e.id.to_string() + " is already in the log");
    }
    encode_canonical(e, values[i]);
    if (values[i].size() > options_.event_size_bytes_max) {
      return invalid_argument(where(e) + "over the event size limit");
    }
    hash = chain_hash(hash, values[i]);
    if (hash != e.hash) {
      const bool opened = !e.sealed && has_personal_fields(e.payload) && sealed_log_;
      return corruption_error(where(e) + "hash " + hash_to_hex(e.hash) + " does not match the recomputed " +
                              hash_to_hex(hash) + ": the event was altered or does not continue this log" +
                              (opened ? " (a line of export --decrypt cannot be imported: import the stored form)"
                                      : ""));
    }
    values[i].append(reinterpret_cast<const char*>(hash.data()), hash.size());
    result.positions.push_back({e.seq, e.version});
  }
  for (std::size_t i = 0; i < events.size(); ++i) {
    stage_event(events[i].id, streams[i], events[i].payload, result.positions[i], values[i], group, batch);
  }
  for (auto& [stream, f] : facts) group.streams[stream] = f;
  group.last_seq = Sequence(group.last_seq.value + events.size());
  group.last_hash = hash;
  return result;
}

}  // namespace cs
