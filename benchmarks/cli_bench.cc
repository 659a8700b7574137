// The command-line paths users run, each beside a raw RocksDB baseline of the
// same count and value size measured in the same run (what db_bench's
// fillseq with batches of 256 and sync=1, and readseq, would do):
//
//   BM_LogCliAppend   csctl append of a generated history (durable)
//   BM_LogCliImport   csctl import of that history's export (durable)
//   BM_RawCliFill     raw WriteBatch of 256 values, sync, same count and mean stored size
//   BM_LogCliRebuild  csctl rebuild of all four projections
//   BM_LogCliAudit    csctl audit tokens --format json
//   BM_RawCliReadSeq  raw forward iteration over the same values
//   BM_LogCliRead/<category>/<stored>   csctl read --category [--stored] (printed lines)
//   BM_LogCliOpenRead  csctl read --limit 1: start, read-only open, one event
//   BM_LogCliExport   csctl export (the per-event reference for reads)
//
// Each csctl run is a process of its own, opening the store as a user would.
// CS_BENCH_CUSTOMERS sets the history's size (default 4,000 customers, about
// 100k events); CS_BENCH_CSCTL another csctl to run (the history is made
// and exported by that one too).
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdlib>
#include <functional>
#include <fstream>

#include "bench_support.h"

namespace cs::bench {
namespace {

struct History {
  ScratchDir dir{"cli"};
  std::filesystem::path input = dir.path() / "history.jsonl";
  std::filesystem::path exported = dir.path() / "export.jsonl";
  std::filesystem::path log = dir.path() / "log";
  std::uint64_t events = 0;
  std::uint64_t stored_bytes = 0;  // sum of stored values, for the raw baselines

  History() {
    const char* customers = std::getenv("CS_BENCH_CUSTOMERS");
    run("generate --customers " + std::string(customers ? customers : "4000") + " --seed 5 > " + input.string());
    run("append -d " + log.string() + " < " + input.string());
    run("export -d " + log.string() + " > " + exported.string());
    auto opened = EventLog::open(log, {.read_only = true});
    events = (*opened)->head().value;
    auto s = (*opened)->read_stored({}, [&](Sequence, std::string_view v) {
      stored_bytes += v.size();
      return true;
    });
    (void)s;
  }
  // CS_BENCH_CSCTL: another csctl binary to measure (an earlier build, for a
  // before/after table) with the same history and baselines.
  static void run(const std::string& args) {
    const char* other = std::getenv("CS_BENCH_CSCTL");
    std::string command = (other ? std::string(other) : std::string(CS_BIN_DIR) + "/csctl") + " " + args + " 2>/dev/null";
    if (std::system(command.c_str()) != 0) std::abort();
  }
  std::size_t value_size() const { return static_cast<std::size_t>(stored_bytes / std::max<std::uint64_t>(1, events)); }
};

History& history() {
  static History h;
  return h;
}

// `count` values keyed by big-endian seq from 1, in WriteBatches of 256.
void write_values(rocksdb::DB& db, std::uint64_t count, const std::string& value, const rocksdb::WriteOptions& options) {
  for (std::uint64_t seq = 1; seq <= count;) {
    rocksdb::WriteBatch batch;
    for (int i = 0; i < 256 && seq <= count; ++i, ++seq) {
      std::string key;
      for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(seq >> shift));
      batch.Put(key, value);
    }
    if (!db.Write(options, &batch).ok()) std::abort();
  }
}

void timed_csctl(benchmark::State& state, const std::string& args, const std::function<void()>& before = {}) {
  auto& h = history();
  for (auto _ : state) {
    state.PauseTiming();
    if (before) before();
    state.ResumeTiming();
    History::run(args);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * h.events));
}

void BM_LogCliAppend(benchmark::State& state) {
  auto& h = history();
  auto target = h.dir.path() / "append";
  timed_csctl(state, "append -d " + target.string() + " < " + h.input.string(),
              [&] { std::filesystem::remove_all(target); });
}

void BM_LogCliImport(benchmark::State& state) {
  auto& h = history();
  auto target = h.dir.path() / "import";
  timed_csctl(state, "import -d " + target.string() + " < " + h.exported.string(),
              [&] { std::filesystem::remove_all(target); });
}

void BM_RawCliFill(benchmark::State& state) {
  auto& h = history();
  auto target = h.dir.path() / "raw";
  const std::string value(h.value_size(), 'v');
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(target);
    state.ResumeTiming();
    rocksdb::Options options;
    options.create_if_missing = true;
    options.IncreaseParallelism(2);
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::Open(options, target.string(), &db).ok()) std::abort();
    rocksdb::WriteOptions sync;
    sync.sync = true;
    write_values(*db, h.events, value, sync);
    delete db;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * h.events));
}

void BM_LogCliRebuild(benchmark::State& state) {
  timed_csctl(state, "rebuild -d " + history().log.string() + " --projection all");
}

void BM_LogCliAudit(benchmark::State& state) {
  timed_csctl(state, "audit tokens -d " + history().log.string() + " --format json > /dev/null");
}

// The same count of values of the same size, written once, read back in
// order by a raw iterator as db_bench's readseq does.
void BM_RawCliReadSeq(benchmark::State& state) {
  auto& h = history();
  static ScratchDir raw("cli-readseq");
  static bool filled = false;
  const std::string value(h.value_size(), 'v');
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(options, raw.str(), &db).ok()) std::abort();
  if (!filled) {
    write_values(*db, h.events, value, {});
    if (!db->Flush({}).ok()) std::abort();
    filled = true;
  }
  for (auto _ : state) {
    std::uint64_t bytes = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
    for (it->SeekToFirst(); it->Valid(); it->Next()) bytes += it->value().size();
    benchmark::DoNotOptimize(bytes);
  }
  delete db;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * h.events));
}

void BM_LogCliExport(benchmark::State& state) {
  timed_csctl(state, "export -d " + history().log.string() + " > /dev/null");
}

// A category's events as printed lines; items are that category's events.
void BM_LogCliRead(benchmark::State& state) {
  auto& h = history();
  const auto category = static_cast<Category>(state.range(0));
  // 1: --stored, personal fields as stored (sealed), the form export prints.
  const bool stored = state.range(1) != 0;
  std::uint64_t count = 0;
  {
    auto log = EventLog::open(h.log, {.read_only = true});
    ReadQuery query;
    query.category = category;
    auto s = (*log)->read(query, [&](const RecordedEvent&) {
      ++count;
      return true;
    });
    (void)s;
  }
  const std::string args = "read -d " + h.log.string() + " --category " + std::string(category_name(category)) +
                           (stored ? " --stored" : "") + " > /dev/null";
  for (auto _ : state) History::run(args);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * count));
  state.SetLabel(std::string(category_name(category)) + (stored ? " --stored" : ""));
}

// A read command's whole cost on a small answer: process start, read-only
// open, one event opened and printed.
void BM_LogCliOpenRead(benchmark::State& state) {
  const std::string args = "read -d " + history().log.string() + " --limit 1 > /dev/null";
  for (auto _ : state) History::run(args);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// Opening the store for a read command: `csctl stats` on the history, per run
// (it also counts the type index).
void BM_LogCliOpenStats(benchmark::State& state) {
  const std::string args = "stats -d " + history().log.string() + " > /dev/null";
  for (auto _ : state) History::run(args);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_LogCliAppend)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogCliImport)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RawCliFill)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogCliRebuild)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogCliAudit)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RawCliReadSeq)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_LogCliExport)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogCliRead)
    ->Args({static_cast<int>(Category::token), 0})
    ->Args({static_cast<int>(Category::customer), 0})
    ->Args({static_cast<int>(Category::customer), 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogCliOpenStats)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK(BM_LogCliOpenRead)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(15);

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
