// Writes go to RocksDB as sorted table files that are ingested, instead of
// through the write-ahead log, the memtable and a flush, which write every
// value three times: the projections' fold batches for families known to be
// empty (a rebuild's next generation, verify's scratch copy, a replay store),
// and the log's bulk chunks (EventLog::BulkWriter: csctl append and import).
//
// One ingest is one atomic step for all of its families: after a crash
// either every file is in the database or none is.
//
// Thread safety: one caller per staging directory at a time.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cs/error.h"

namespace cs {

// Writer threads for one ingest, at most: a rebuild has four families, and
// each table is built (sorted, encoded, compressed) on its own.
inline constexpr std::size_t table_writer_threads_max = 4;

struct FamilyTable {
  rocksdb::ColumnFamilyHandle* family = nullptr;
  // Puts the family's entries into the batch (puts only, into `family`).
  // The fills of one call run concurrently, each once, on writer threads:
  // each may touch only what belongs to its own family.
  std::function<void(rocksdb::WriteBatch&)> fill;
};

// Fills and writes each family's table file in `staging_dir` (created; on
// the database's filesystem, so ingestion moves the files instead of copying)
// on up to table_writer_threads_max threads, then ingests them all in one
// atomic step. Within a batch a key put twice keeps its last value, as a
// written batch would. Families whose fill puts nothing are skipped.
// Ingested keys replace the families' older values of the same keys.
// Returns fatal on I/O errors (retriable when RocksDB says busy), with the
// staged files removed; the families are then unchanged.
Status ingest_tables(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                     const std::vector<FamilyTable>& tables);

// One family's table files written on a thread of their own while the
// caller goes on: for puts that come in key order within each first key byte
// and are most of the bytes of an ingest (a log's events, by sequence within
// each category), so that building, compressing and writing them overlaps
// the caller's work instead of following it. Keys of each first byte go to
// a file of their own (non-overlapping ranges, ingested together). Puts are
// held in memory until start() (an ingest that turns out too small takes
// them back with take_held), then handed to the writer thread in blocks of
// table_stream_block_bytes, at most table_stream_blocks_queued_max waiting
// (put blocks while they are all full).
// One thread calls it; its writer thread is its own.
class TableStream {
 public:
  // The file goes to `staging_dir` (created at start()), named after the family.
  TableStream(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, std::filesystem::path staging_dir);
  // Stops the writer thread and removes the file, unless an ingest took it.
  ~TableStream();
  TableStream(const TableStream&) = delete;
  TableStream& operator=(const TableStream&) = delete;

  // (key, value), copied; a key not empty, and strictly after the ones put
  // before with the same first byte (a key out of order fails the ingest
  // with invalid_argument).
  void put(std::string_view key, std::string_view value);
  // Bytes of keys and values put since the last take_held or ingest.
  std::size_t bytes() const { return bytes_; }
  bool started() const { return writer_.joinable(); }
  const std::filesystem::path& staging_dir() const { return staging_dir_; }
  // Starts the writer thread with what is held.
  void start();
  // Not started: gives every put held so far to `put`, in order, and holds
  // none after.
  void take_held(const std::function<void(std::string_view key, std::string_view value)>& put);

 private:
  friend Status ingest_batch(rocksdb::DB&, const std::filesystem::path&, const rocksdb::WriteBatch&,
                             const std::vector<rocksdb::ColumnFamilyHandle*>&, TableStream*);
  struct Shared;
  // Waits for the file: the status of writing it (the file is named either way).
  Status finish();
  void write_blocks();

  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle* family_;
  std::filesystem::path staging_dir_;
  std::vector<std::string> files_;  // written by the writer thread; read after it is joined
  std::string held_;  // encoded puts not handed over yet
  std::size_t bytes_ = 0;
  std::unique_ptr<Shared> shared_;
  std::thread writer_;
};

// Bytes of puts the caller hands to a TableStream's writer thread at once,
// and blocks of them waiting for it.
inline constexpr std::size_t table_stream_block_bytes = 1 << 20;
inline constexpr std::size_t table_stream_blocks_queued_max = 8;

// The same for one batch whose puts go to several families: each family's
// puts become its table file, `families` naming the handles the batch's
// puts use. The batch must hold puts only, each to one of `families`.
// Puts already in key order are not sorted again. With `streamed` (started
// or not), its table goes in the same atomic step: its family must have no
// puts in the batch. The batch must stay unchanged until the call returns;
// the stream is spent after it, whatever it returns.
Status ingest_batch(rocksdb::DB& db, const std::filesystem::path& staging_dir, const rocksdb::WriteBatch& batch,
                    const std::vector<rocksdb::ColumnFamilyHandle*>& families, TableStream* streamed = nullptr);

// Removes what an interrupted ingest left in `staging_dir` (nothing when
// absent). Returns fatal when it cannot.
Status clear_ingest_staging(const std::filesystem::path& staging_dir);

}  // namespace cs
