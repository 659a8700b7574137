// Durable append and full scan of the event log, each beside a raw RocksDB
// baseline doing the same I/O without the log's work:
//   BM_LogAppend/N    append N events per call, fsync per group commit
//   BM_RawAppend/N    one WriteBatch of the same N stored values, sync=true
//   BM_LogScan        read the whole log, decoding every event
//   BM_RawScan        iterate the same column family, touching every byte
//   BM_LogAppendConcurrent / BM_RawAppendConcurrent: 1-event appends from
//                     several threads (group commit vs RocksDB's own)
// benchmarks/compare.py turns a JSON run into medians and ratios.
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>

#include "bench_support.h"
#include "cs/event_log.h"
#include "cs/storage_codec.h"

namespace cs::bench {
namespace {

std::unique_ptr<EventLog> open_log(const ScratchDir& dir) {
  auto log = EventLog::open(dir.path());
  if (!log.ok()) std::abort();
  return std::move(log).value();
}

// The stored bytes the log writes for event n (canonical + hash), so the raw
// baseline writes the very same bytes.
std::string stored_bytes(std::uint64_t n) {
  NewEvent e = token_used_event(n);
  RecordedEvent r;
  r.seq = Sequence(n + 1);
  r.id = e.id;
  r.stream = payload_stream(e.payload);
  r.version = StreamVersion(n / 64 + 1);
  r.timestamp = e.timestamp;
  r.recorded_at = e.timestamp;
  r.meta = e.meta;
  r.stored_schema_version = 1;
  r.payload = e.payload;
  std::string out;
  encode_canonical(r, out);
  Hash h = chain_hash(Hash{}, out);
  out.append(reinterpret_cast<const char*>(h.data()), h.size());
  return out;
}

void BM_LogAppend(benchmark::State& state) {
  const auto group = static_cast<std::uint64_t>(state.range(0));
  ScratchDir dir("log-append");
  auto log = open_log(dir);
  std::uint64_t n = 0;
  std::vector<NewEvent> events(group);
  std::int64_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& e : events) e = token_used_event(n++);
    state.ResumeTiming();
    auto r = log->append(events);
    if (!r.ok()) state.SkipWithError(r.error().to_string().c_str());
  }
  for (std::uint64_t i = 0; i < group; ++i) bytes += static_cast<std::int64_t>(stored_bytes(i).size());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(group));
  state.counters["event_bytes"] = static_cast<double>(bytes) / static_cast<double>(group);
}

void BM_RawAppend(benchmark::State& state) {
  const auto group = static_cast<std::uint64_t>(state.range(0));
  ScratchDir dir("raw-append");
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, dir.str(), &raw).ok()) std::abort();
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  std::uint64_t n = 0;
  std::vector<std::string> values(group);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& v : values) v = stored_bytes(n++);
    state.ResumeTiming();
    rocksdb::WriteBatch batch;
    std::uint64_t seq = n - group;
    for (const auto& v : values) {
      char key[8];
      for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(++seq >> (56 - 8 * i));
      batch.Put(rocksdb::Slice(key, 8), v);
    }
    auto s = db->Write(sync, &batch);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(group));
}

constexpr std::uint64_t scan_events = 200'000;

void BM_LogScan(benchmark::State& state) {
  static ScratchDir dir("log-scan");
  static std::unique_ptr<EventLog> log = [] {
    auto l = open_log(dir);
    std::vector<NewEvent> batch;
    for (std::uint64_t n = 0; n < scan_events; ++n) {
      batch.push_back(token_used_event(n));
      if (batch.size() == 1000) {
        if (!l->append(batch).ok()) std::abort();
        batch.clear();
      }
    }
    return l;
  }();
  for (auto _ : state) {
    std::uint64_t count = 0;
    auto s = log->read({}, [&](const RecordedEvent& e) {
      benchmark::DoNotOptimize(e.seq);
      ++count;
      return true;
    });
    if (!s.ok() || count != scan_events) state.SkipWithError("scan failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(scan_events));
}

void BM_RawScan(benchmark::State& state) {
  static ScratchDir dir("raw-scan");
  static std::unique_ptr<rocksdb::DB> db = [] {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, dir.str(), &raw).ok()) std::abort();
    rocksdb::WriteBatch batch;
    for (std::uint64_t n = 0; n < scan_events; ++n) {
      char key[8];
      for (int i = 0; i < 8; ++i) key[i] = static_cast<char>((n + 1) >> (56 - 8 * i));
      batch.Put(rocksdb::Slice(key, 8), stored_bytes(n));
    }
    if (!raw->Write({}, &batch).ok()) std::abort();
    return std::unique_ptr<rocksdb::DB>(raw);
  }();
  for (auto _ : state) {
    std::uint64_t count = 0, sum = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto v = it->value();
      sum += static_cast<unsigned char>(v.data()[v.size() - 1]) + v.size();
      ++count;
    }
    benchmark::DoNotOptimize(sum);
    if (count != scan_events) state.SkipWithError("scan failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(scan_events));
}

// Concurrent single-event appends: the log's leader-based group commit
// against RocksDB's own write grouping for concurrent syncing writers.
std::unique_ptr<EventLog> shared_log;
std::unique_ptr<ScratchDir> shared_log_dir;
std::atomic<std::uint64_t> shared_n{0};

void BM_LogAppendConcurrent(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_log_dir = std::make_unique<ScratchDir>("log-conc");
    shared_log = open_log(*shared_log_dir);
  }
  for (auto _ : state) {
    state.PauseTiming();
    NewEvent e = token_used_event(shared_n++);
    state.ResumeTiming();
    auto r = shared_log->append(std::span(&e, 1));
    if (!r.ok()) state.SkipWithError(r.error().to_string().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    // Threads meet at the end of the loop before thread 0 gets here.
    shared_log.reset();
    shared_log_dir.reset();
  }
}

std::unique_ptr<rocksdb::DB> shared_raw;
std::unique_ptr<ScratchDir> shared_raw_dir;

void BM_RawAppendConcurrent(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_raw_dir = std::make_unique<ScratchDir>("raw-conc");
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, shared_raw_dir->str(), &raw).ok()) std::abort();
    shared_raw.reset(raw);
  }
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (auto _ : state) {
    state.PauseTiming();
    std::uint64_t n = shared_n++;
    std::string v = stored_bytes(n);
    state.ResumeTiming();
    char key[8];
    for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(n >> (56 - 8 * i));
    rocksdb::WriteBatch batch;
    batch.Put(rocksdb::Slice(key, 8), v);
    auto s = shared_raw->Write(sync, &batch);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    shared_raw.reset();
    shared_raw_dir.reset();
  }
}

BENCHMARK(BM_LogAppend)->Arg(1)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_RawAppend)->Arg(1)->Arg(16)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_LogScan)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RawScan)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LogAppendConcurrent)->Threads(8)->UseRealTime();
BENCHMARK(BM_RawAppendConcurrent)->Threads(8)->UseRealTime();

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
