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

// The same for one batch whose puts go to several families: each family's
// puts become its table file, `families` naming the handles the batch's
// puts use. The batch must hold puts only, each to one of `families`.
// Puts already in key order (a log's events, by sequence) are not sorted
// again. The batch must stay unchanged until the call returns.
Status ingest_batch(rocksdb::DB& db, const std::filesystem::path& staging_dir, const rocksdb::WriteBatch& batch,
                    const std::vector<rocksdb::ColumnFamilyHandle*>& families);

// Removes what an interrupted ingest left in `staging_dir` (nothing when
// absent). Returns fatal when it cannot.
Status clear_ingest_staging(const std::filesystem::path& staging_dir);

}  // namespace cs
