// The event log: an append-only, hash-chained sequence of events in RocksDB.
//
// Every event gets a global sequence (1, 2, 3, … with no gaps) and a version
// in its stream (1, 2, 3, … per stream). One append is atomic: all of its
// events, across any number of streams, are stored or none is.
//
// Idempotency rule: an event's id is its idempotency key. If every event of
// an append is already in the log (same id, stream, type and data), the
// append is a no-op that returns the original positions with `duplicate =
// true`, whatever the expected versions say: a retry after a lost reply is
// safe. If only some ids are known the append fails (invalid_argument); a
// known id that comes with another stream, type or data is a conflict. Either
// way nothing is written.
//
// Stream rules (every append, not import): a creation event (customer.created,
// user.created, subscription.created) opens its stream and is refused on a
// stream that exists; a user or subscription belongs for life to the customer
// of its stream's first event; a token account's purchased + allocated, and
// its used, never pass limits::token_total_max.
//
// Group commit: appends from concurrent threads are merged by a leader into
// one RocksDB write batch and one WAL sync. Each append in the group still
// succeeds or fails on its own.
//
// Thread safety: every method may be called from any thread at any time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <string>
#include <vector>

#include "cs/error.h"
#include "cs/event.h"
#include "cs/limits.h"
#include "cs/personal_data.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
struct ReadOptions;
class Status;
}  // namespace rocksdb

namespace cs {

struct StreamFacts;  // core/src/stream_rules.h
class TableStream;   // cs/table_ingest.h
class DataKeys;      // core/src/data_keys.h
struct PersonalText;

// RocksDB's info logs kept in the log's directory (LOG and its predecessors,
// LOG.old.<time>): one more each writable open, the oldest removed.
inline constexpr std::size_t info_log_files_kept = 10;

struct EventLogOptions {
  // true: each group commit waits for its WAL fsync (survives power loss).
  // false: the WAL is written but not synced (survives a process crash only).
  bool sync_each_group = true;
  bool create_if_missing = true;
  // Opens without writing anything: no recovery flush, no format marker, no
  // family created; append, import and column_family fail. The projections'
  // families ("proj.*") are left closed: column_family_names() does not list
  // them and ProjectionEngine::open fails. Runs beside a writer (it sees
  // what was committed when it opened).
  bool read_only = false;
  // false: a writable open for work that does not append (a rebuild, an
  // audit): the log's families are opened without what serves only appends
  // (the stream index's memtable bloom, the id family's hashed buckets),
  // megabytes zeroed at every open. Appending still works, only slower.
  bool appends = true;
  std::size_t event_size_bytes_max = limits::event_size_bytes_max;
  std::size_t append_events_max = limits::append_events_max;
  std::size_t group_commit_events_max = limits::group_commit_events_max;
  std::size_t append_queue_depth_max = limits::append_queue_depth_max;
  // A bulk writer's chunk (BulkWriter): bytes staged before it is committed.
  std::size_t bulk_chunk_bytes_max = limits::bulk_chunk_bytes_max;
  // Personal data (cs/personal_data.h): with a master key file the log seals
  // the personal fields of every event it appends with their customer's
  // data key, and opens them for readers. The file holds 64 hex digits.
  // A writable open creates it (mode 0600) when it is absent and the log has
  // sealed nothing yet, if `create_master_key`; a log that has is refused
  // without its key (a read-only open goes on without, and reads only the
  // stored form). A key that is not the log's is refused by every open.
  // Empty: no master key (a log that never sealed stays in plaintext).
  std::filesystem::path master_key_file;
  bool create_master_key = true;
  // Source of `recordedAt`; tests pin it. Must be thread-safe.
  std::function<Timestamp()> clock = Timestamp::now;
  // Failure point for tests: when set, called by the group-commit leader
  // before each group's write; an error it returns is taken as that write's
  // own failure (the log then refuses appends until reopened).
  std::function<Status()> write_failure_probe;
};

struct EventPosition {
  Sequence seq;
  StreamVersion version;
  bool operator==(const EventPosition&) const = default;
};

// A write to another column family committed in the same atomic batch as an
// append's events: a consumed offset, an answer waiting in an outbox. The
// family is created on first use; the log's own families and the
// projections' ("proj.*") are refused.
struct AppendResult;
struct SideWrite {
  std::string family;
  std::string key;
  std::optional<std::string> value;  // nullopt: delete the key
  // When set, the value is made by the group-commit leader once the append's
  // positions are known (the original positions for a duplicate) and
  // replaces `value`: an answer that names the sequences its events got. Runs
  // on the leader's thread, under the log's commit; must not call the log.
  std::function<std::string(const AppendResult&)> value_after;
  // When true, `key` is ignored and the leader assigns the family's next
  // sequence (8 bytes big-endian, 1, 2, 3, … in commit order): an outbox
  // that a reader follows in order without missing a write committed late.
  bool sequenced = false;
  // A value that may hold personal data (an answer with a customer's name, a
  // refused request's bytes): stored sealed under a key derived from the
  // master key (AES-256-GCM, family and key as associated data), opened by
  // read_side and scan_side. Stored as given in a log without a master key.
  bool seal = false;
};

// When an append returns. `synced`: after its WAL fsync (with
// EventLogOptions::sync_each_group), so it survives a power loss. `deferred`:
// once it is written and visible to readers, before any fsync: it survives a
// crash of this process (the WAL is in the kernel's cache) but not a power
// loss until the next EventLog::sync_wal, or a synced append, makes it durable.
// For a writer whose results leave the process only through a reader that
// calls sync_wal first (the daemon's requests: their answers are published by
// the distributor), so the writer's thread never waits for the disk.
enum class Durability { synced, deferred };

struct AppendResult {
  std::vector<EventPosition> positions;  // one per event, in the order given
  bool duplicate = false;                // true: nothing written, positions are the originals
};

// Which events to read. Exactly one scope: the whole log, one stream, one
// type or one category. Forward reads start at the first position >= from;
// backward reads at the last position <= from (no `from`: the head).
struct ReadQuery {
  std::optional<std::string> stream;
  std::optional<EventType> type;
  std::optional<Category> category;
  std::optional<Sequence> from_seq;          // all, type, category
  std::optional<StreamVersion> from_version;  // stream
  std::optional<Sequence> to_seq;             // forward reads stop after it (all/type/category)
  std::size_t limit = SIZE_MAX;
  bool backward = false;
  // Whole-log forward reads only: check the hash chain and gap-free
  // sequences while reading (anchored on the event before from_seq); the
  // read stops with corruption naming the first sequence that fails.
  bool verify_chain = false;
  // Visit events unsealed (EventLog::unseal): personal fields in plaintext,
  // or emptied and `erased` for an erased customer. Default: as stored.
  bool decrypt = false;
};

struct LogStats {
  std::uint64_t events = 0;
  std::uint64_t streams = 0;
  Sequence head;
  Hash head_hash{};
  std::uint64_t size_on_disk_bytes = 0;
  std::map<EventType, std::uint64_t> events_by_type;
};

struct VerifyOptions {
  Sequence from_seq{1};
  std::optional<Sequence> to_seq;  // default: the head
  bool check_indexes = true;       // stream heads, stream/type/id indexes (whole log only)
};

struct VerifyReport {
  std::uint64_t events_checked = 0;
  Sequence last_checked;
  Hash last_hash{};
};

class EventLog {
  struct Writer;      // an append waiting in the group-commit queue
  struct GroupState;  // what a group commit (or a bulk chunk) staged

 public:
  // Opens (creating when allowed) the log in `dir`. Fails with not_found when
  // there is no log and none may be created, invalid_argument when `dir`
  // holds something else (another RocksDB database, another log format),
  // fatal on I/O errors. The caller owns the
  // returned log; destroying it closes the database.
  static Result<std::unique_ptr<EventLog>> open(const std::filesystem::path& dir,
                                                EventLogOptions options = {});
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Appends `events` atomically. Returns one position per event. Errors:
  // invalid_argument (empty, too many, too large, invalid payload, partial
  // duplicate), conflict (expected version, id reused for another event),
  // retriable (queue full), fatal (I/O: the log refuses appends until reopened).
  Result<AppendResult> append(std::span<const NewEvent> events);
  // The same, with `side_writes` committed in the same batch as the events:
  // all of them or none. They are written when the events are appended and
  // also when every event is already in the log (a redelivered request still
  // moves its offset); not when the append is refused or the write fails.
  // `events` may be empty when `side_writes` is not (an answer and an offset
  // without events). invalid_argument for a log family, an empty key, more
  // than limits::side_writes_max writes or limits::side_write_bytes_max bytes.
  Result<AppendResult> append(std::span<const NewEvent> events, std::span<const SideWrite> side_writes,
                              Durability durability = Durability::synced);

  // Makes every append visible when it is called durable: one fsync of the
  // write-ahead log (none when nothing is waiting for one, or when the log
  // was opened without sync_each_group). A reader that sends what it read
  // out of the process reads first, then calls this. Errors: fatal on I/O
  // (the log then refuses appends until reopened: what the failed fsync
  // covered may be lost). Any thread; it changes nothing a reader sees.
  Status sync_wal() const;

  // A long run of appends (or imports) by one caller: csctl append and
  // import. Each call is checked and staged as append() and import() check
  // them, on top of what the run staged before, and the run is committed in
  // chunks, each one atomic and durable step: as table files that RocksDB
  // ingests when the chunk is large (limits::bulk_ingest_events_min events or
  // bulk_ingest_bytes_min bytes:
  // no write-ahead log, no memtable, no flush, which were most of an
  // append's cost), as one write batch when it is small. A chunk is
  // committed by commit(), and by append/import themselves once it holds
  // EventLogOptions::bulk_chunk_bytes_max (then on a thread of the writer's
  // own, while the next chunk is staged), or before staging an event id a
  // chunk not yet committed holds (so that the id is checked against the
  // log).
  // Nothing staged is visible to readers before its chunk is committed; a
  // crash, or a writer destroyed without commit(), loses the staged chunk,
  // never part of a committed one, so the log always ends with a whole
  // chunk. Errors are those of append/import; a failed commit is fatal and
  // the log then refuses appends until reopened.
  // While a bulk writer lives it is the log's only writer: append() and
  // import() from other threads wait for it to be destroyed. Not thread-safe:
  // one thread uses it, and that thread must not append to the log directly.
  // What append() does before it needs the log's state — each event
  // checked on its own, personal fields sealed — done ahead by prepare(),
  // for a bulk writer to stage: a thread that parses input prepares the next
  // batch while the writer's thread stages the one before. It borrows the
  // events, which must outlive it.
  class Prepared {
   public:
    Prepared(Prepared&&) noexcept;
    Prepared& operator=(Prepared&&) noexcept;
    ~Prepared();
    std::size_t size() const;

   private:
    friend class EventLog;
    Prepared();
    std::unique_ptr<Writer> writer_;
    std::vector<Uuid> ids_;
  };
  // Errors: those of append() that need no log state (invalid_argument:
  // empty, too many, an invalid event, an id twice, a sealed log opened
  // without its master key; conflict: an erased customer's personal data).
  // Thread-safe: any thread, beside appends and a bulk writer.
  Result<Prepared> prepare(std::span<const NewEvent> events);
  // The same for an import: the checks of import() that need no log state.
  Result<Prepared> prepare_import(std::span<const RecordedEvent> events) const;

  class BulkWriter {
   public:
    ~BulkWriter();
    BulkWriter(const BulkWriter&) = delete;
    BulkWriter& operator=(const BulkWriter&) = delete;
    // As EventLog::append; the positions are final once the chunk commits.
    Result<AppendResult> append(std::span<const NewEvent> events);
    // The same for events prepared ahead (by this writer's log).
    Result<AppendResult> append(const Prepared& prepared);
    // As EventLog::import.
    Result<AppendResult> import(std::span<const RecordedEvent> events);
    // The same for events prepared ahead (prepare_import, by this writer's log).
    Result<AppendResult> import(const Prepared& prepared);
    // Commits the staged chunk (nothing to do when there is none).
    Status commit();
    // Events staged and not committed yet.
    std::size_t staged_events() const { return staged_events_; }

   private:
    friend class EventLog;
    struct Chunk;  // a chunk handed over to be committed
    explicit BulkWriter(EventLog& log);
    // Commits first what `ids` would repeat: the staged chunk when it holds
    // one of them, else waits for the chunk being committed when it does.
    Status commit_if_staged(const std::vector<Uuid>& ids);
    Result<AppendResult> staged(Result<AppendResult> result, std::size_t events);
    // The staged chunk, handed over; a new one is started after it.
    std::unique_ptr<Chunk> take_chunk();
    // A full chunk is committed on a thread of its own while the next one
    // is staged (its tables' sorting, writing and ingest were a fifth of a
    // long append, with one core idle).
    Status commit_in_background();
    // Waits for the chunk being committed (none: ok) and applies it.
    Status finish_background_commit();
    Status apply(Chunk& chunk);
    // A table stream for the next chunk's events, in a staging directory of
    // that chunk's own (a chunk's files are written while the one before is
    // ingested from its directory).
    std::unique_ptr<TableStream> new_events_table();

    EventLog& log_;
    std::unique_ptr<Writer> role_;  // holds the front of the log's writer queue
    std::unique_ptr<GroupState> chunk_;
    std::unique_ptr<rocksdb::WriteBatch> batch_;   // the chunk's writes but its events
    std::unique_ptr<TableStream> events_table_;    // the chunk's events
    std::size_t staged_events_ = 0;
    std::unique_ptr<Chunk> committing_;            // at most one chunk at a time
    std::unique_ptr<rocksdb::WriteBatch> spare_batch_;  // a committed chunk's, reused
    std::uint64_t chunks_ = 0;                          // chunks started
  };
  // Starts a bulk writer, once the appends queued before it are done. The
  // log must outlive it. Errors: invalid_argument on a read-only log, fatal
  // when the log refuses appends after a failed write.
  Result<std::unique_ptr<BulkWriter>> bulk_writer();

  // Appends events exported from a log (`csctl export`) with their original
  // positions, recordedAt and schema version: the first must continue this
  // log's head (seq = head + 1, version = stream head + 1), and each event's
  // recomputed chain hash must equal its `hash`, so an imported log ends with
  // the original's head hash. Atomic like append. Errors: invalid_argument
  // (positions do not continue the log), conflict (an id already present),
  // corruption (a hash does not match: the event was altered).
  Result<AppendResult> import(std::span<const RecordedEvent> events);

  // Calls `visit` for each event the query selects, in order, until it
  // returns false or `limit` events were visited. Errors: invalid_argument
  // for a malformed query, corruption when a stored event does not decode.
  using Visitor = std::function<bool(const RecordedEvent&)>;
  Status read(const ReadQuery& query, const Visitor& visit) const;
  // The same selection as stored bytes: `visit` gets each event's sequence
  // and stored value (canonical bytes and hash, personal fields as stored),
  // valid during the call only. For readers that decode on their own terms;
  // `decrypt` is theirs to apply. An index entry whose event is missing is
  // corruption naming its sequence.
  using StoredVisitor = std::function<bool(Sequence, std::string_view)>;
  Status read_stored(const ReadQuery& query, const StoredVisitor& visit) const;
  // The same, collected (mind `limit` on big logs).
  Result<std::vector<RecordedEvent>> read_all(const ReadQuery& query) const;
  // The event at `seq`; not_found past the head. With its category known
  // (its stream's or type's), one lookup instead of one per category.
  Result<RecordedEvent> read_event(Sequence seq) const;
  Result<RecordedEvent> read_event(Sequence seq, Category category) const;
  // The chain hash stored with the event at `seq`, its bytes not decoded:
  // what a chain check from seq + 1 is anchored on. not_found past the head.
  Result<Hash> stored_hash(Sequence seq) const;
  // The event whose id is `id`, if the log holds it (one point lookup).
  Result<std::optional<RecordedEvent>> find_event(const Uuid& id) const;

  // The user and subscription streams that belong to `customer` (their first
  // event names it), users first, each category in id order: with the
  // customer's own streams (customer-<id>, tokens-<id>), everything the
  // customer is, without reading any other customer's events. nullopt when
  // the log has no complete customer index (one written before the index
  // existed, opened read-only since: a writable open builds it). Errors:
  // fatal / corruption from RocksDB.
  Result<std::optional<std::vector<StreamKey>>> customer_streams(const Uuid& customer) const;

  // Personal data. `unseal` opens a stored event's sealed fields in place
  // (e.sealed becomes false); for an erased customer it empties its personal
  // fields and sets e.erased instead, for a sealed event and for one stored
  // in plaintext before sealing alike. Errors: invalid_argument without the
  // master key, corruption when a field does not open or the customer has no
  // key. Any thread.
  Status unseal(RecordedEvent& event) const;
  // Before `query` is read and unsealed: on a read-only log, when it opens
  // personal data over much of the log (the whole log, a type or a category,
  // with no small limit), reads the customers' data keys in one pass instead
  // of a point read per customer met later. A no-op otherwise. Errors: those
  // of reading the keys. Call before the read starts, not during one.
  Status prepare_unseal(const ReadQuery& query) const;
  // The same for one personal value of a read model owned by `customer`:
  // opened in place; true when the customer is erased (the value emptied).
  Result<bool> open_personal(const Uuid& customer, PersonalText& text) const;
  // Erased or not (a customer.erased event is in the log).
  Result<bool> customer_erased(const Uuid& customer) const;
  // Does this log have a master key, so that it seals and opens?
  bool seals_personal_data() const;
  // The data keys as stored (wrapped, or the erased marker), for export and
  // the keys topic: each customer's, in customer id order; one customer's
  // (nullopt: none). `import_data_key` stores one read back (an export, the
  // keys topic): see DataKeys::put_stored for the rules.
  using DataKeyVisitor = std::function<bool(const Uuid& customer, std::string_view stored)>;
  Status scan_data_keys(const DataKeyVisitor& visit) const;
  Result<std::optional<std::string>> stored_data_key(const Uuid& customer) const;
  Status import_data_key(const Uuid& customer, std::string_view stored);
  static bool is_erased_marker(std::string_view stored);
  // The fingerprint of the master key the log seals under (nullopt: it
  // seals nothing): what an export carries so an import can check its key.
  Result<std::optional<std::string>> stored_master_key_check() const;
  // An import opened without a master key takes the export's: stores the
  // check when the log has none (from then on only that key opens it), ok
  // when it has the same; invalid_argument when it has another.
  Status adopt_master_key_check(std::string_view check);
  // After an erasure: flushes every family (so no write-ahead log file still
  // holds the destroyed key) and compacts the customer's range of the data
  // keys to the bottom, so its bytes leave the disk. fatal on I/O errors.
  Status purge_erased_key(const Uuid& customer);

  // The stream's current version; 0 when it has no event.
  Result<StreamVersion> stream_version(std::string_view stream) const;
  Sequence head() const;
  // Appends waiting in the group-commit queue, the leader's included.
  std::size_t queued_appends() const;
  Hash head_hash() const;

  Result<LogStats> stats() const;
  // Recomputes the hash chain over the range (and the indexes when asked),
  // all of it on one snapshot, so appends running beside it are not seen.
  // Returns corruption naming the first sequence that does not match,
  // invalid_argument when the range starts past the head.
  Result<VerifyReport> verify(const VerifyOptions& options = {}) const;

  // Side families, read back: the value at `key` (nullopt when absent, also
  // when the family was never written); each (key, value) from `from_key` on
  // in key order until `visit` returns false or `limit` entries were seen;
  // and the last sequence a `sequenced` side write took in `family` (0: none).
  // Errors: corruption / fatal from RocksDB. Any thread.
  // Values stored with SideWrite::seal are opened (invalid_argument without
  // the master key, corruption when one does not open). `delete_side_range`
  // removes [from_key, to_key) (a swept outbox).
  Result<std::optional<std::string>> read_side(const std::string& family, std::string_view key) const;
  Status delete_side_range(const std::string& family, std::string_view from_key, std::string_view to_key);
  using SideVisitor = std::function<bool(std::string_view key, std::string_view value)>;
  Status scan_side(const std::string& family, std::string_view from_key, std::size_t limit,
                   const SideVisitor& visit) const;
  Result<std::uint64_t> side_sequence_head(const std::string& family) const;
  // The key of sequence `seq` in a sequenced family (8 bytes big-endian).
  static std::string sequenced_key(std::uint64_t seq);
  // The key of the event at `seq` of `category` in the "events" family
  // (docs/storage.md): for tools and tests that look at the database itself.
  static std::string event_key(Category category, Sequence seq);

  const std::filesystem::path& dir() const { return dir_; }
  // The master key file this log was opened with (empty: none).
  const std::filesystem::path& master_key_file() const { return options_.master_key_file; }

  // For the layers above (projections): the database and its column families,
  // so that their state commits in the same engine. Borrowed, valid while the
  // log lives. `column_family` creates the family when it does not exist.
  rocksdb::DB& db() const { return *db_; }
  Result<rocksdb::ColumnFamilyHandle*> column_family(const std::string& name);
  // The same for several, in the order of `names`, the missing ones created
  // together: RocksDB rewrites and re-reads its OPTIONS file after each
  // create or drop call, which made one family cost milliseconds.
  Result<std::vector<rocksdb::ColumnFamilyHandle*>> column_families(const std::vector<std::string>& names);
  // Drops the families that exist (of the projections: the log's own are
  // never dropped), in one call; absent names are skipped.
  Status drop_column_family(const std::string& name);
  Status drop_column_families(const std::vector<std::string>& names);
  std::vector<std::string> column_family_names() const;

 private:
  EventLog() = default;

  Result<AppendResult> enqueue(Writer& writer);
  // The checks of append() that need no log state. Returns the events' ids.
  Result<std::vector<Uuid>> check_new_events(std::span<const NewEvent> events) const;
  Status check_imported_events(std::span<const RecordedEvent> events) const;
  // The index blocks and stream count of a staged group, added to its batch;
  // returns the stream count once it is committed.
  std::uint64_t finish_group(const GroupState& group, rocksdb::WriteBatch& batch) const;
  // After a group's batch is in: the leader's caches, the data keys' marks,
  // the head.
  void apply_committed(const GroupState& group, std::uint64_t stream_count);
  // fatal once a write failed: the log refuses appends until reopened.
  Status writes_refused() const;
  // Records a failed write: the log refuses appends from now on.
  Error fail_writes(const Error& written);
  // Writes a bulk chunk (ingested tables, or a write batch when small);
  // returns the stream count it makes, for apply_committed. Any thread, one
  // chunk at a time, each applied before the next is written.
  Result<std::uint64_t> write_chunk(const GroupState& chunk, rocksdb::WriteBatch& batch, TableStream& events_table);
  Result<AppendResult> stage_writer(const Writer& writer, GroupState& group, rocksdb::WriteBatch& batch);
  Result<AppendResult> stage_import(const Writer& writer, GroupState& group, rocksdb::WriteBatch& batch);
  struct LeaderState;
  Result<StreamFacts> staged_stream_facts(const StreamKey& stream, const GroupState& group) const;
  Result<StreamFacts> load_stream_facts(const StreamKey& stream) const;
  void stage_event(const Uuid& id, const StreamKey& stream, const Payload& payload, const EventPosition& pos,
                   const std::string& value, GroupState& group, rocksdb::WriteBatch& batch);
  void commit_group(std::span<Writer*> group);
  Status read_index(const ReadQuery& query, const StoredVisitor& visit) const;
  Status visit_seqs(Category category, const std::function<std::optional<std::uint64_t>()>& next_seq,
                    std::size_t limit, bool fill_cache, bool backward, const StoredVisitor& visit) const;
  // The stored bytes of the event at `seq` (of `category` when given, else
  // looked up in each); NotFound when there is none.
  rocksdb::Status get_stored(Sequence seq, std::optional<Category> category, std::string& value) const;
  Status read_category(const ReadQuery& query, const StoredVisitor& visit) const;
  Status read_stored_at(const ReadQuery& query, const StoredVisitor& visit, const rocksdb::ReadOptions& at) const;
  Status verify_indexes(Sequence head, const rocksdb::ReadOptions& at) const;
  Status build_customer_index();
  Status rekey_events_by_category();  // format 1 -> 2, at a writable open
  Status open_master_key();
  Status seal_personal_fields(Writer& writer);
  Result<std::string> open_side_value(const std::string& family, std::string_view key, std::string_view value) const;
  rocksdb::ColumnFamilyHandle* existing_family(const std::string& name) const;
  // Adds a staged writer's side writes to the batch (values made, sequences
  // taken); invalid_argument when a made value passes the bytes limit.
  Status stage_side_writes(const Writer& w, rocksdb::WriteBatch& batch);

  std::filesystem::path dir_;
  EventLogOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;  // guarded by families_mu_
  mutable std::mutex families_mu_;
  rocksdb::ColumnFamilyHandle* events_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* stream_index_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* type_index_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* event_ids_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* customer_streams_cf_ = nullptr;  // null: an old log opened read-only
  bool customer_index_complete_ = false;
  rocksdb::ColumnFamilyHandle* data_keys_cf_ = nullptr;  // null: an old log opened read-only
  std::unique_ptr<DataKeys> data_keys_;
  bool sealed_log_ = false;  // a master key check is stored: the log has sealed data
  std::optional<DataKey> side_key_;  // from the master key: seals side values

  mutable std::mutex mu_;                // guards writers_, head_hash_, failure_
  std::deque<Writer*> writers_;
  std::atomic<std::uint64_t> head_seq_{0};
  Hash head_hash_{};
  std::atomic<std::uint64_t> stream_count_{0};  // written by the group leader only
  // Committed stream facts (heads, owners, token totals); touched by the
  // group leader only.
  std::unique_ptr<LeaderState> leader_;
  mutable std::optional<Error> failure_;  // set after a failed write or WAL sync
};

}  // namespace cs
