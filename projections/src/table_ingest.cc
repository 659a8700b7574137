#include "table_ingest.h"

#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "cs/assert.h"
#include "rocks_error.h"

namespace cs {
namespace {

using Entry = std::pair<rocksdb::Slice, rocksdb::Slice>;

// The puts of a batch, as slices into its bytes.
class PutCollector : public rocksdb::WriteBatch::Handler {
 public:
  explicit PutCollector(std::vector<Entry>& out) : out_(out) {}
  rocksdb::Status PutCF(std::uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    out_.emplace_back(key, value);
    return rocksdb::Status::OK();
  }
  // Every other operation keeps the handler's default: an error status.

 private:
  std::vector<Entry>& out_;
};

// In key order, each key once with the value put last.
std::vector<Entry> sorted_puts(const rocksdb::WriteBatch& batch) {
  std::vector<Entry> entries;
  entries.reserve(static_cast<std::size_t>(batch.Count()));
  PutCollector collect(entries);
  auto s = batch.Iterate(&collect);
  CS_ASSERT(s.ok(), "a fold batch for an empty family holds only puts");
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.first.compare(b.first) < 0; });
  // Stable, so among equal keys the last put comes last and overwrites.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (kept > 0 && entries[kept - 1].first == entries[i].first) {
      entries[kept - 1].second = entries[i].second;
    } else {
      entries[kept++] = entries[i];
    }
  }
  entries.resize(kept);
  return entries;
}

void remove_quietly(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    std::error_code ignored;
    std::filesystem::remove(f, ignored);
  }
}

// One family's table file, written: what ingestion needs, or the error.
struct Staged {
  Status status;
  std::optional<rocksdb::IngestExternalFileArg> arg;  // empty when the family got nothing
};

Staged write_table(rocksdb::DB& db, const std::filesystem::path& staging_dir, const FamilyTable& table) {
  rocksdb::WriteBatch batch;
  table.fill(batch);
  if (batch.Count() == 0) return {};
  const std::vector<Entry> entries = sorted_puts(batch);
  const std::string file = (staging_dir / (table.family->GetName() + ".sst")).string();
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(),
                                rocksdb::Options(db.GetDBOptions(), db.GetOptions(table.family)), table.family);
  auto s = writer.Open(file);
  for (std::size_t i = 0; s.ok() && i < entries.size(); ++i) s = writer.Put(entries[i].first, entries[i].second);
  if (s.ok()) s = writer.Finish();
  Staged out;
  rocksdb::IngestExternalFileArg arg;
  arg.column_family = table.family;
  arg.external_files = {file};
  arg.options.move_files = true;
  // The files are ours and just written: no need to keep them readable by
  // RocksDB versions older than 5.16, which is what writing the global
  // sequence number into them is for.
  arg.options.write_global_seqno = false;
  out.arg = std::move(arg);  // named even on failure, so that it is removed
  if (!s.ok()) out.status = projection_store_error(s, "projections: write table file " + file);
  return out;
}

// Runs task(0) … task(count - 1), each once, on up to `threads_max` threads
// counting the caller's. Threads that cannot be started leave their share
// to the others.
void run_spread(std::size_t count, std::size_t threads_max, const std::function<void(std::size_t)>& task) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < count; i = next++) task(i);
  };
  std::vector<std::thread> helpers;
  const std::size_t cores = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  const std::size_t threads = std::min({count, threads_max, cores});
  for (std::size_t t = 1; t < threads; ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // out of threads: fewer hands, same work
    }
  }
  work();
  for (auto& h : helpers) h.join();
}

}  // namespace

Status ingest_tables(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                     const std::vector<FamilyTable>& tables) {
  std::error_code ec;
  std::filesystem::create_directories(staging_dir, ec);
  if (ec) return fatal_error("projections: create " + staging_dir.string() + ": " + ec.message());
  for (const FamilyTable& t : tables) CS_ASSERT(t.family != nullptr && t.fill, "a family and its fill");
  std::vector<Staged> staged(tables.size());
  run_spread(tables.size(), table_writer_threads_max,
             [&](std::size_t i) { staged[i] = write_table(db, staging_dir, tables[i]); });
  std::vector<rocksdb::IngestExternalFileArg> args;
  std::vector<std::string> files;
  Status failure;
  for (auto& st : staged) {
    if (!st.arg) continue;
    files.push_back(st.arg->external_files.front());
    if (!st.status.ok() && failure.ok()) failure = st.status;
    args.push_back(std::move(*st.arg));
  }
  if (failure.ok() && !args.empty()) {
    auto s = db.IngestExternalFiles(args);
    if (!s.ok()) failure = projection_store_error(s, "projections: ingest table files");
  }
  // Moved files were linked into the database and their staging names
  // removed; after a failure they are still here.
  remove_quietly(files);
  std::filesystem::remove(staging_dir, ec);  // only when empty
  return failure;
}

Status clear_ingest_staging(const std::filesystem::path& staging_dir) {
  std::error_code ec;
  std::filesystem::remove_all(staging_dir, ec);
  if (ec) return fatal_error("projections: remove " + staging_dir.string() + ": " + ec.message());
  return {};
}

}  // namespace cs
