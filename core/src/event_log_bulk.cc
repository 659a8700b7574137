// EventLog::BulkWriter: long runs of appends and imports, committed in
// chunks, large ones as ingested table files.
//
// Why: a group commit writes each event three times (the write-ahead log,
// the memtable, then a flush to a table file) and inserts three keys per
// event into skiplists (the event, its id, its stream's index block); on
// csctl append those inserts and the flush were most of the time. A chunk
// staged whole is written once, as sorted table files that RocksDB takes in
// one atomic step (IngestExternalFiles).
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "cs/event_log.h"
#include "cs/table_ingest.h"
#include "data_keys.h"
#include "event_log_state.h"
#include "rocks_status.h"

#include <system_error>
#include <thread>

namespace cs {
namespace {

// What a chunk's batch may grow past its bytes limit before it
// is committed: the last call's entries and the chunk's index blocks.
constexpr std::size_t bulk_chunk_slack_bytes = 16 << 20;

}  // namespace

struct EventLog::BulkWriter::Chunk {
  std::unique_ptr<GroupState> state;
  std::unique_ptr<rocksdb::WriteBatch> batch;
  std::unique_ptr<TableStream> events_table;
  Result<std::uint64_t> written{fatal_error("the chunk was not written")};
  std::thread committer;
};

EventLog::BulkWriter::BulkWriter(EventLog& log)
    : log_(log),
      role_(std::make_unique<Writer>()),
      chunk_(std::make_unique<GroupState>()),
      // Room for a whole chunk's index entries up front: grown by
      // doubling, the batch's bytes were copied again and again. Untouched
      // pages cost nothing, so a short run pays nothing for it.
      batch_(std::make_unique<rocksdb::WriteBatch>(log.options_.bulk_chunk_bytes_max + bulk_chunk_slack_bytes)),
      events_table_() {
  events_table_ = new_events_table();
  chunk_->events_table = events_table_.get();
}

Result<std::unique_ptr<EventLog::BulkWriter>> EventLog::bulk_writer() {
  if (options_.read_only) return invalid_argument("the log is open read-only");
  if (auto s = writes_refused(); !s.ok()) return s.error();
  std::unique_ptr<BulkWriter> bulk(new BulkWriter(*this));
  std::unique_lock lock(mu_);
  // The writer takes its turn in the group-commit queue and keeps the front
  // until it is destroyed: appends queued meanwhile wait behind it.
  Writer* role = bulk->role_.get();
  writers_.push_back(role);
  role->cv.wait(lock, [&] { return writers_.front() == role; });
  bulk->chunk_->last_seq = Sequence(head_seq_.load());
  bulk->chunk_->last_hash = head_hash_;
  // Every earlier append is committed (the writer is at the front of the
  // queue) and later ones wait behind it.
  bulk->chunk_->nothing_stored = head_seq_.load() == 0;
  return bulk;
}

EventLog::BulkWriter::~BulkWriter() {
  // A chunk handed over is committed (a failure is the log's to report).
  (void)finish_background_commit();
  events_table_.reset();  // an abandoned chunk's file goes
  std::error_code ignored;
  std::filesystem::remove(log_.dir_ / bulk_ingest_staging, ignored);  // only when empty
  std::lock_guard lock(log_.mu_);
  CS_ASSERT(!log_.writers_.empty() && log_.writers_.front() == role_.get(),
            "a bulk writer holds the front of the writer queue while it lives");
  log_.writers_.pop_front();
  if (!log_.writers_.empty()) log_.writers_.front()->cv.notify_one();
}

Status EventLog::writes_refused() const {
  std::lock_guard lock(mu_);
  if (failure_) return fatal_error("log refuses appends after a failed write: " + failure_->message());
  return {};
}

EventLog::Prepared::Prepared() : writer_(std::make_unique<Writer>()) {}
EventLog::Prepared::Prepared(Prepared&&) noexcept = default;
EventLog::Prepared& EventLog::Prepared::operator=(Prepared&&) noexcept = default;
EventLog::Prepared::~Prepared() = default;
std::size_t EventLog::Prepared::size() const { return writer_->size(); }

Result<EventLog::Prepared> EventLog::prepare(std::span<const NewEvent> events) {
  if (events.empty()) return invalid_argument("append: no events");
  auto ids = check_new_events(events);
  if (!ids.ok()) return ids.error();
  Prepared prepared;
  prepared.ids_ = std::move(*ids);
  prepared.writer_->events = events;
  if (auto s = seal_personal_fields(*prepared.writer_); !s.ok()) return s.error();
  return prepared;
}

Result<EventLog::Prepared> EventLog::prepare_import(std::span<const RecordedEvent> events) const {
  if (auto s = check_imported_events(events); !s.ok()) return s.error();
  Prepared prepared;
  prepared.writer_->imported = events;
  return prepared;
}

Result<AppendResult> EventLog::BulkWriter::append(std::span<const NewEvent> events) {
  auto prepared = log_.prepare(events);
  if (!prepared.ok()) return prepared.error();
  return append(*prepared);
}

Result<AppendResult> EventLog::BulkWriter::append(const Prepared& prepared) {
  CS_ASSERT(prepared.writer_->imported.empty(), "events prepared for an import are imported");
  if (auto s = log_.writes_refused(); !s.ok()) return s.error();
  // The chunk's staged ids point at the payloads of earlier calls, which the
  // caller has freed: an id seen again is checked against the log instead.
  if (auto s = commit_if_staged(prepared.ids_); !s.ok()) return s.error();
  // recordedAt in whole milliseconds, as a group commit stamps it.
  chunk_->recorded_at = Timestamp{log_.options_.clock().micros / 1000 * 1000};
  return staged(log_.stage_writer(*prepared.writer_, *chunk_, *batch_), prepared.size());
}

Result<AppendResult> EventLog::BulkWriter::import(std::span<const RecordedEvent> events) {
  auto prepared = log_.prepare_import(events);
  if (!prepared.ok()) return prepared.error();
  return import(*prepared);
}

Result<AppendResult> EventLog::BulkWriter::import(const Prepared& prepared) {
  CS_ASSERT(prepared.writer_->events.empty(), "events prepared for an append are appended");
  if (auto s = log_.writes_refused(); !s.ok()) return s.error();
  // An id the chunk holds is refused by stage_import itself (it is already
  // in the log, or about to be), without reading the earlier payload.
  return staged(log_.stage_import(*prepared.writer_, *chunk_, *batch_), prepared.writer_->imported.size());
}

Status EventLog::BulkWriter::commit_if_staged(const std::vector<Uuid>& ids) {
  bool committing = false;
  for (const Uuid& id : ids) {
    if (chunk_->ids.contains(id)) return commit();
    committing = committing || (committing_ && committing_->state->ids.contains(id));
  }
  return committing ? finish_background_commit() : Status{};
}

Result<AppendResult> EventLog::BulkWriter::staged(Result<AppendResult> result, std::size_t events) {
  if (!result.ok() || result->duplicate) return result;
  staged_events_ += events;
  // A chunk this large is ingested: its events table is built from now on,
  // beside the staging, instead of after it (and its events are no longer
  // held in memory).
  if (!events_table_->started() && (staged_events_ >= limits::bulk_ingest_events_min ||
                                    events_table_->bytes() >= limits::bulk_ingest_bytes_min)) {
    events_table_->start();
  }
  if (batch_->GetDataSize() + events_table_->bytes() >= log_.options_.bulk_chunk_bytes_max) {
    if (auto s = commit_in_background(); !s.ok()) return s.error();
  }
  return result;
}

std::unique_ptr<EventLog::BulkWriter::Chunk> EventLog::BulkWriter::take_chunk() {
  auto taken = std::make_unique<Chunk>();
  taken->state = std::move(chunk_);
  taken->batch = std::move(batch_);
  taken->events_table = std::move(events_table_);
  chunk_ = std::make_unique<GroupState>();
  chunk_->last_seq = taken->state->last_seq;
  chunk_->last_hash = taken->state->last_hash;
  batch_ = spare_batch_ ? std::move(spare_batch_)
                        : std::make_unique<rocksdb::WriteBatch>(log_.options_.bulk_chunk_bytes_max +
                                                                             bulk_chunk_slack_bytes);
  events_table_ = new_events_table();
  chunk_->events_table = events_table_.get();
  staged_events_ = 0;
  return taken;
}

std::unique_ptr<TableStream> EventLog::BulkWriter::new_events_table() {
  return std::make_unique<TableStream>(*log_.db_, log_.events_cf_,
                                       log_.dir_ / bulk_ingest_staging / ("chunk-" + std::to_string(++chunks_)));
}

Status EventLog::BulkWriter::apply(Chunk& chunk) {
  if (!chunk.written.ok()) return chunk.written.error();
  log_.apply_committed(*chunk.state, *chunk.written);
  chunk.batch->Clear();  // its room is kept for a next chunk
  spare_batch_ = std::move(chunk.batch);
  return {};
}

Status EventLog::BulkWriter::commit() {
  if (auto s = finish_background_commit(); !s.ok()) return s;
  if (batch_->Count() == 0 && staged_events_ == 0) return {};
  auto taken = take_chunk();
  taken->written = log_.write_chunk(*taken->state, *taken->batch, *taken->events_table);
  return apply(*taken);
}

Status EventLog::BulkWriter::commit_in_background() {
  if (auto s = finish_background_commit(); !s.ok()) return s;
  committing_ = take_chunk();
  // The chunk staged next sees what this one staged until it is applied.
  chunk_->before = committing_->state.get();
  Chunk* job = committing_.get();
  try {
    job->committer = std::thread([this, job] {
      job->written = log_.write_chunk(*job->state, *job->batch, *job->events_table);
    });
  } catch (const std::system_error&) {
    // No thread to be had: the same work, here.
    job->written = log_.write_chunk(*job->state, *job->batch, *job->events_table);
  }
  return {};
}

Status EventLog::BulkWriter::finish_background_commit() {
  if (!committing_) return {};
  if (committing_->committer.joinable()) committing_->committer.join();
  auto done = std::move(committing_);
  chunk_->before = nullptr;
  return apply(*done);
}

Result<std::uint64_t> EventLog::write_chunk(const GroupState& chunk, rocksdb::WriteBatch& batch,
                                            TableStream& events_table) {
  if (auto s = writes_refused(); !s.ok()) return s.error();
  const std::uint64_t stream_count = finish_group(chunk, batch);
  Status written = options_.write_failure_probe ? options_.write_failure_probe() : Status{};
  // A large chunk's events table was started when it became large.
  if (written.ok() && events_table.started()) {
    // What was written before the chunk (deferred appends, data keys of an
    // import) becomes durable first: a crash must never keep a chunk and
    // lose what it follows. The ingest itself syncs its files and manifest.
    if (auto s = db_->SyncWAL(); !s.ok()) written = from_rocks(s, "append: sync the write-ahead log");
    std::vector<rocksdb::ColumnFamilyHandle*> families = {db_->DefaultColumnFamily(), events_cf_, stream_index_cf_,
                                                          type_index_cf_, event_ids_cf_};
    if (customer_streams_cf_ != nullptr) families.push_back(customer_streams_cf_);
    if (data_keys_cf_ != nullptr) families.push_back(data_keys_cf_);
    if (written.ok()) {
      if (auto s = ingest_batch(*db_, events_table.staging_dir(), batch, families, &events_table); !s.ok()) {
        written = Error(s.error().code(), "append: " + s.error().message());
      }
    }
  } else if (written.ok()) {
    events_table.take_held([&](std::string_view key, std::string_view value) {
      batch.Put(events_cf_, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
    });
    rocksdb::WriteOptions write_options;
    write_options.sync = options_.sync_each_group;
    if (auto s = db_->Write(write_options, &batch); !s.ok()) written = from_rocks(s, "append: write batch");
  }
  if (!written.ok()) return fail_writes(written.error());
  return stream_count;
}

}  // namespace cs
