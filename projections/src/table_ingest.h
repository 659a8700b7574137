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
// Returns fatal on I/O errors, with the staged files removed; the families
// are then unchanged.
Status ingest_tables(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                     const std::vector<FamilyTable>& tables);

// Removes what an interrupted ingest left in `staging_dir` (nothing when
// absent). Returns fatal when it cannot.
Status clear_ingest_staging(const std::filesystem::path& staging_dir);

}  // namespace cs
