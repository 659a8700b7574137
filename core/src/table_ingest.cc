#include "cs/table_ingest.h"

#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <array>
#include <map>
#include <atomic>
#include <functional>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "cs/assert.h"
#include "cs/bounded_queue.h"

namespace cs {
namespace {

using Entry = std::pair<rocksdb::Slice, rocksdb::Slice>;

// How many puts ahead of the one written a table's writer asks for the
// next keys' and values' bytes.
constexpr std::size_t table_put_prefetch_distance = 8;

// Written back as it is written: the file's closing fsync then waits for
// its last megabyte, not for all of it (a chunk's events table is tens of
// megabytes; its fsync was most of a commit's wait for that table).
constexpr std::uint64_t table_bytes_per_sync = 1 << 20;

rocksdb::EnvOptions table_env_options() {
  rocksdb::EnvOptions options;
  options.bytes_per_sync = table_bytes_per_sync;
  return options;
}

// Nothing written here is the input's fault: a failure is the store's.
Error store_error(const rocksdb::Status& s, const std::string& context) {
  return s.IsBusy() || s.IsTryAgain() ? retriable_error(context + ": " + s.ToString())
                                      : fatal_error(context + ": " + s.ToString());
}

bool key_less(const Entry& a, const Entry& b) { return a.first.compare(b.first) < 0; }

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

// In key order, each key once with the value put last (puts in key order
// already, the common case for a log's events, are left as they are).
void sort_puts(std::vector<Entry>& entries) {
  if (!std::is_sorted(entries.begin(), entries.end(), key_less)) {
    // Sorted by the keys' first 8 bytes held beside each entry's place, the
    // bytes behind the slices read only on a tie: random ids (the log's id
    // family) then sort without a cache miss per comparison. The place
    // breaks ties between equal keys: among them the last put comes last
    // and overwrites.
    struct Sortable {
      std::uint64_t prefix;
      std::uint32_t place;
    };
    CS_ASSERT(entries.size() < UINT32_MAX, "a batch holds fewer than 2^32 puts");
    std::vector<Sortable> order(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      std::uint64_t prefix = 0;
      const rocksdb::Slice& key = entries[i].first;
      for (std::size_t b = 0; b < 8; ++b) {
        prefix = prefix << 8 | (b < key.size() ? static_cast<unsigned char>(key[b]) : 0);
      }
      order[i] = {prefix, static_cast<std::uint32_t>(i)};
    }
    std::sort(order.begin(), order.end(), [&](const Sortable& a, const Sortable& b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      const int c = entries[a.place].first.compare(entries[b.place].first);
      return c != 0 ? c < 0 : a.place < b.place;
    });
    // Equal keys are next to each other, and equal prefixes first: the
    // bytes behind the slices are read only then, not for every entry.
    std::vector<Entry> sorted;
    sorted.reserve(entries.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      const Entry& e = entries[order[i].place];
      if (i > 0 && order[i].prefix == order[i - 1].prefix && sorted.back().first == e.first) {
        sorted.back().second = e.second;
      } else {
        sorted.push_back(e);
      }
    }
    entries = std::move(sorted);
    return;
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (kept > 0 && entries[kept - 1].first == entries[i].first) {
      entries[kept - 1].second = entries[i].second;
    } else {
      entries[kept++] = entries[i];
    }
  }
  entries.resize(kept);
}

// The puts of a batch into one family, as slices into its bytes.
std::vector<Entry> sorted_puts(const rocksdb::WriteBatch& batch) {
  std::vector<Entry> entries;
  entries.reserve(static_cast<std::size_t>(batch.Count()));
  PutCollector collect(entries);
  auto s = batch.Iterate(&collect);
  CS_ASSERT(s.ok(), "a fold batch for an empty family holds only puts");
  sort_puts(entries);
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

rocksdb::IngestExternalFileArg ingest_arg(rocksdb::ColumnFamilyHandle* family, std::vector<std::string> files) {
  rocksdb::IngestExternalFileArg arg;
  arg.column_family = family;
  arg.external_files = std::move(files);
  arg.options.move_files = true;
  // The files are ours and just written: no need to keep them readable by
  // RocksDB versions older than 5.16, which is what writing the global
  // sequence number into them is for.
  arg.options.write_global_seqno = false;
  return arg;
}

std::string table_file(const std::filesystem::path& staging_dir, rocksdb::ColumnFamilyHandle* family) {
  return (staging_dir / (family->GetName() + ".sst")).string();
}
// A streamed family's file of the keys that begin with `first_byte`.
std::string table_file(const std::filesystem::path& staging_dir, rocksdb::ColumnFamilyHandle* family,
                       unsigned char first_byte) {
  return (staging_dir / (family->GetName() + "-" + std::to_string(first_byte) + ".sst")).string();
}

// Writes `entries` (sorted, each key once) as the family's table file.
Staged write_table(rocksdb::DB& db, const std::filesystem::path& staging_dir, rocksdb::ColumnFamilyHandle* family,
                   const std::vector<Entry>& entries) {
  if (entries.empty()) return {};
  const std::string file = table_file(staging_dir, family);
  // The page cache keeps what was written: the next command reads it.
  rocksdb::SstFileWriter writer(table_env_options(), rocksdb::Options(db.GetDBOptions(), db.GetOptions(family)),
                                family, /*invalidate_page_cache=*/false);
  auto s = writer.Open(file);
  for (std::size_t i = 0; s.ok() && i < entries.size(); ++i) {
    // Sorted random keys (the log's ids) are scattered over the batch's
    // bytes: each put would wait on a cache miss for its key and value.
    if (i + table_put_prefetch_distance < entries.size()) {
      const Entry& ahead = entries[i + table_put_prefetch_distance];
      __builtin_prefetch(ahead.first.data());
      __builtin_prefetch(ahead.second.data());
    }
    s = writer.Put(entries[i].first, entries[i].second);
  }
  if (s.ok()) s = writer.Finish();
  Staged out;
  out.arg = ingest_arg(family, {file});  // named even on failure, so that it is removed
  if (!s.ok()) out.status = store_error(s, "write table file " + file);
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

namespace {

Status make_staging(const std::filesystem::path& staging_dir) {
  std::error_code ec;
  std::filesystem::create_directories(staging_dir, ec);
  if (ec) return fatal_error("create " + staging_dir.string() + ": " + ec.message());
  return {};
}

// Ingests what was staged in one atomic step, then removes the staging.
Status ingest_staged(rocksdb::DB& db, const std::filesystem::path& staging_dir, std::vector<Staged>& staged) {
  std::vector<rocksdb::IngestExternalFileArg> args;
  std::vector<std::string> files;
  Status failure;
  for (auto& st : staged) {
    if (!st.arg) continue;
    files.insert(files.end(), st.arg->external_files.begin(), st.arg->external_files.end());
    if (!st.status.ok() && failure.ok()) failure = st.status;
    if (!st.arg->external_files.empty()) args.push_back(std::move(*st.arg));
  }
  if (failure.ok() && !args.empty()) {
    auto s = db.IngestExternalFiles(args);
    if (!s.ok()) failure = store_error(s, "ingest table files");
  }
  // Moved files were linked into the database and their staging names
  // removed; after a failure they are still here.
  remove_quietly(files);
  std::error_code ec;
  std::filesystem::remove(staging_dir, ec);  // only when empty
  return failure;
}

// The puts of a batch, by family id. A chunk's puts come in runs of one
// family (an event's id, its stream's facts...): the last family's list is
// kept at hand instead of a map lookup per put.
class FamilyPutCollector : public rocksdb::WriteBatch::Handler {
 public:
  explicit FamilyPutCollector(std::map<std::uint32_t, std::vector<Entry>>& out) : out_(out) {}
  rocksdb::Status PutCF(std::uint32_t family, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    if (last_ == nullptr || family != last_family_) {
      last_ = &out_[family];
      last_family_ = family;
    }
    last_->emplace_back(key, value);
    return rocksdb::Status::OK();
  }

 private:
  std::map<std::uint32_t, std::vector<Entry>>& out_;
  std::vector<Entry>* last_ = nullptr;  // std::map keeps its values in place
  std::uint32_t last_family_ = 0;
};

}  // namespace

Status ingest_tables(rocksdb::DB& db, const std::filesystem::path& staging_dir,
                     const std::vector<FamilyTable>& tables) {
  if (auto s = make_staging(staging_dir); !s.ok()) return s;
  for (const FamilyTable& t : tables) CS_ASSERT(t.family != nullptr && t.fill, "a family and its fill");
  std::vector<Staged> staged(tables.size());
  run_spread(tables.size(), table_writer_threads_max, [&](std::size_t i) {
    rocksdb::WriteBatch batch;
    tables[i].fill(batch);
    staged[i] = write_table(db, staging_dir, tables[i].family, sorted_puts(batch));
  });
  return ingest_staged(db, staging_dir, staged);
}

struct TableStream::Shared {
  BoundedQueue<std::string> blocks{table_stream_blocks_queued_max};
  Status status;  // the writer thread's, read after it is joined
};

namespace {

void put_length(std::string& out, std::size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

std::size_t get_length(std::string_view& in) {
  std::size_t n = 0;
  for (int shift = 0;; shift += 7) {
    CS_ASSERT(!in.empty() && shift < 64, "a table stream's block holds whole puts");
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    n |= static_cast<std::size_t>(byte & 0x7F) << shift;
    if (byte < 0x80) return n;
  }
}

// Calls `put` for each (key, value) of an encoded block.
template <class Put>
void for_each_put(std::string_view block, const Put& put) {
  while (!block.empty()) {
    const std::size_t key_size = get_length(block);
    const std::string_view key = block.substr(0, key_size);
    block.remove_prefix(key_size);
    const std::size_t value_size = get_length(block);
    put(key, block.substr(0, value_size));
    block.remove_prefix(value_size);
  }
}

}  // namespace

TableStream::TableStream(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, std::filesystem::path staging_dir)
    : db_(db), family_(family), staging_dir_(std::move(staging_dir)) {}

TableStream::~TableStream() {
  if (!writer_.joinable()) return;
  shared_->blocks.cancel();
  writer_.join();
  remove_quietly(files_);
}

void TableStream::put(std::string_view key, std::string_view value) {
  CS_ASSERT(!key.empty(), "a table stream's keys are not empty (their first byte names their file)");
  put_length(held_, key.size());
  held_.append(key);
  put_length(held_, value.size());
  held_.append(value);
  bytes_ += key.size() + value.size();
  if (started() && held_.size() >= table_stream_block_bytes) {
    shared_->blocks.push(std::move(held_));
    held_.clear();
    held_.reserve(table_stream_block_bytes + 64);
  }
}

void TableStream::start() {
  CS_ASSERT(!started(), "a table stream starts once");
  shared_ = std::make_unique<Shared>();
  std::error_code ec;
  std::filesystem::create_directories(staging_dir_, ec);
  if (ec) {
    // The writer thread reports it: an ingest needs its status anyway.
    shared_->status = fatal_error("create " + staging_dir_.string() + ": " + ec.message());
  }
  writer_ = std::thread([this] { write_blocks(); });
  if (!held_.empty()) shared_->blocks.push(std::move(held_));
  held_.clear();
}

void TableStream::take_held(const std::function<void(std::string_view key, std::string_view value)>& put) {
  CS_ASSERT(!started(), "puts are held only before the stream starts");
  for_each_put(held_, put);
  held_.clear();
  bytes_ = 0;
}

void TableStream::write_blocks() {
  // One writer per first key byte, opened with its first put.
  std::array<std::unique_ptr<rocksdb::SstFileWriter>, 256> writers;
  const rocksdb::Options options(db_.GetDBOptions(), db_.GetOptions(family_));
  rocksdb::Status s;
  unsigned char failed = 0;  // the first byte whose file failed
  auto put = [&](std::string_view key, std::string_view value) {
    if (!s.ok()) return;
    const auto first = static_cast<unsigned char>(key.front());
    auto& writer = writers[first];
    if (!writer) {
      // The page cache keeps what was written: the next command reads it.
      writer = std::make_unique<rocksdb::SstFileWriter>(table_env_options(), options, family_,
                                                        /*invalidate_page_cache=*/false);
      files_.push_back(table_file(staging_dir_, family_, first));  // named first: removed whatever happens
      s = writer->Open(files_.back());
    }
    if (s.ok()) s = writer->Put(rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
    if (!s.ok()) failed = first;
  };
  // After a failure the blocks are still taken, so that put never waits
  // for a writer that stopped.
  for (std::string block; shared_->blocks.pop(block);) {
    if (shared_->status.ok() && s.ok()) for_each_put(block, put);
  }
  for (std::size_t b = 0; b < writers.size() && shared_->status.ok() && s.ok(); ++b) {
    if (!writers[b]) continue;
    s = writers[b]->Finish();
    if (!s.ok()) failed = static_cast<unsigned char>(b);
  }
  if (shared_->status.ok() && !s.ok()) {
    const std::string file = table_file(staging_dir_, family_, failed);
    shared_->status = s.IsInvalidArgument() ? invalid_argument("write table file " + file + ": " + s.ToString())
                                            : store_error(s, "write table file " + file);
  }
}

Status TableStream::finish() {
  if (!started()) start();
  if (!held_.empty()) shared_->blocks.push(std::move(held_));
  held_.clear();
  shared_->blocks.close();
  writer_.join();
  bytes_ = 0;
  return shared_->status;
}

Status ingest_batch(rocksdb::DB& db, const std::filesystem::path& staging_dir, const rocksdb::WriteBatch& batch,
                    const std::vector<rocksdb::ColumnFamilyHandle*>& families, TableStream* streamed) {
  std::map<std::uint32_t, std::vector<Entry>> by_family;
  FamilyPutCollector collect(by_family);
  auto s = batch.Iterate(&collect);
  CS_ASSERT(s.ok(), "a batch to ingest holds only puts");
  std::vector<std::pair<rocksdb::ColumnFamilyHandle*, std::vector<Entry>*>> work;
  for (auto& [id, entries] : by_family) {
    auto family = std::find_if(families.begin(), families.end(),
                               [id = id](rocksdb::ColumnFamilyHandle* f) { return f->GetID() == id; });
    CS_ASSERT(family != families.end(), "every family a batch to ingest puts into is named");
    work.emplace_back(*family, &entries);
  }
  if (work.empty() && streamed == nullptr) return {};
  if (auto made = make_staging(staging_dir); !made.ok()) return made;
  // The largest table first: it is the longest to write.
  std::sort(work.begin(), work.end(), [](const auto& a, const auto& b) { return a.second->size() > b.second->size(); });
  std::vector<Staged> staged(work.size());
  run_spread(work.size(), table_writer_threads_max, [&](std::size_t i) {
    sort_puts(*work[i].second);
    staged[i] = write_table(db, staging_dir, work[i].first, *work[i].second);
  });
  if (streamed != nullptr) {
    CS_ASSERT(std::none_of(work.begin(), work.end(), [&](const auto& w) { return w.first == streamed->family_; }),
              "a streamed family has no puts in the batch");
    Staged st;
    st.status = streamed->finish();
    st.arg = ingest_arg(streamed->family_, std::move(streamed->files_));
    streamed->files_.clear();
    staged.push_back(std::move(st));  // the files are the ingest's now: moved in, or removed
  }
  return ingest_staged(db, staging_dir, staged);
}

Status clear_ingest_staging(const std::filesystem::path& staging_dir) {
  std::error_code ec;
  std::filesystem::remove_all(staging_dir, ec);
  if (ec) return fatal_error("remove " + staging_dir.string() + ": " + ec.message());
  return {};
}

}  // namespace cs
