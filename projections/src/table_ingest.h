// Fold batches for families known to be empty (a rebuild's next generation,
// verify's scratch copy, a replay store) go to RocksDB as sorted table files
// that are ingested, instead of through the write-ahead log, the memtable and
// a flush: a rebuild wrote every state three times, and the memtable inserts
// alone were a seventh of its time.
//
// Thread safety: one caller per staging directory (the engine's fold lock).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <filesystem>
#include <vector>

#include "cs/error.h"

namespace cs {

struct FamilyBatch {
  rocksdb::ColumnFamilyHandle* family = nullptr;
  const rocksdb::WriteBatch* batch = nullptr;  // puts only, into `family`
};

// Writes each batch as one table file in `staging_dir` (created; on the
// database's filesystem, so ingestion moves the files instead of copying)
// and ingests them all in one atomic step. Within a batch a key put twice
// keeps its last value, as a written batch would. Empty batches are skipped.
// Ownership: the batches are borrowed for the call. Returns fatal on I/O
// errors, with the staged files removed; the families are then unchanged.
Status ingest_batches(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                      const std::vector<FamilyBatch>& batches);

// Removes what an interrupted ingest left in `staging_dir` (nothing when
// absent). Returns fatal when it cannot.
Status clear_ingest_staging(const std::filesystem::path& staging_dir);

}  // namespace cs
