#include "table_ingest.h"

#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <system_error>
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

}  // namespace

Status ingest_batches(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                      const std::vector<FamilyBatch>& batches) {
  std::error_code ec;
  std::filesystem::create_directories(staging_dir, ec);
  if (ec) return fatal_error("projections: create " + staging_dir.string() + ": " + ec.message());
  std::vector<rocksdb::IngestExternalFileArg> args;
  std::vector<std::string> staged;
  for (const FamilyBatch& fb : batches) {
    CS_ASSERT(fb.family != nullptr && fb.batch != nullptr, "a family and its batch");
    if (fb.batch->Count() == 0) continue;
    const std::vector<Entry> entries = sorted_puts(*fb.batch);
    const std::string file = (staging_dir / (fb.family->GetName() + ".sst")).string();
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(),
                                  rocksdb::Options(db.GetDBOptions(), db.GetOptions(fb.family)), fb.family);
    auto s = writer.Open(file);
    staged.push_back(file);
    for (std::size_t i = 0; s.ok() && i < entries.size(); ++i) s = writer.Put(entries[i].first, entries[i].second);
    if (s.ok()) s = writer.Finish();
    if (!s.ok()) {
      remove_quietly(staged);
      return projection_store_error(s, "projections: write table file " + file);
    }
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = fb.family;
    arg.external_files = {file};
    arg.options.move_files = true;
    // The files are ours and just written: no need to keep them readable by
    // RocksDB versions older than 5.16, which is what writing the global
    // sequence number into them is for.
    arg.options.write_global_seqno = false;
    args.push_back(std::move(arg));
  }
  if (args.empty()) return {};
  auto s = db.IngestExternalFiles(args);
  // Moved files were linked into the database and their staging names
  // removed; after a failure they are still here.
  remove_quietly(staged);
  std::error_code ignored;
  std::filesystem::remove(staging_dir, ignored);  // only when empty
  if (!s.ok()) return projection_store_error(s, "projections: ingest table files");
  return {};
}

Status clear_ingest_staging(const std::filesystem::path& staging_dir) {
  std::error_code ec;
  std::filesystem::remove_all(staging_dir, ec);
  if (ec) return fatal_error("projections: remove " + staging_dir.string() + ": " + ec.message());
  return {};
}

}  // namespace cs
