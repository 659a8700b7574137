// One customer as of a moment (csctl replay --customer, GET
// /v1/customers/{id}?asOf=) on generated logs of about 100k and 1M events:
// the time must not grow with the log.
//   BM_LogCustomerAsOf/N     customer_view_at(): the customer index, each of
//                            its streams through the stream index, decoded
//                            and folded in memory
//   BM_RawCustomerAsOf/N     the floor: the same customer's stored events read
//                            by key with one RocksDB MultiGet, not decoded
//   BM_WholeLogReplay/N      what the same read cost before the index: a
//                            replay of the whole log into a scratch store,
//                            keeping that customer's events (one iteration)
// N is the log's size in thousands of events (customers: N / 26). Items/s are
// customer reads per second; compare.py pairs BM_Log with BM_Raw.
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>

#include <map>

#include "bench_support.h"
#include "cs/replay.h"

namespace cs::bench {
namespace {

// Customers read in turn, chosen once from the log.
constexpr std::size_t sampled_customers = 256;

struct Sample {
  Uuid customer;
  std::vector<std::string> seq_keys;  // the customer's events at the cut, as keys of the events family
};

struct GeneratedLog {
  ScratchDir dir{"as-of"};
  std::unique_ptr<EventLog> log;
  Timestamp as_of;  // the middle of the history
  std::vector<Sample> samples;

  explicit GeneratedLog(std::uint64_t customers) {
    log = std::move(EventLog::open(dir.path(), {.sync_each_group = false}).value());
    append_generated(*log, customers, 3);
    as_of = log->read_event(Sequence(log->head().value / 2)).value().timestamp;
    std::vector<Uuid> all;  // the customers that exist at the cut
    if (!log->read({.type = EventType::customer_created}, [&](const RecordedEvent& e) {
               if (e.timestamp <= as_of) all.push_back(payload_customer_id(e.payload));
               return true;
             }).ok()) {
      std::abort();
    }
    for (std::size_t i = 0; i < sampled_customers; ++i) {
      Sample s{all[(i * 7919) % all.size()], {}};
      auto streams = log->customer_streams(s.customer).value().value();
      streams.push_back({Category::customer, s.customer});
      streams.push_back({Category::token, s.customer});
      for (const auto& stream : streams) {
        ReadQuery q;
        q.stream = stream.name();
        if (!log->read(q, [&](const RecordedEvent& e) {
                   if (e.timestamp <= as_of) {
                     s.seq_keys.push_back(EventLog::event_key(stream.category, e.seq));
                   }
                   return true;
                 }).ok()) {
          std::abort();
        }
      }
      samples.push_back(std::move(s));
    }
  }
};

// Closed by main() before exit: RocksDB must not be torn down by static
// destructors, after its own statics.
std::map<std::int64_t, std::unique_ptr<GeneratedLog>> logs;

GeneratedLog& shared(std::int64_t thousands) {
  auto& g = logs[thousands];
  if (!g) g = std::make_unique<GeneratedLog>(static_cast<std::uint64_t>(thousands) * 1000 / 26);
  return *g;
}

void counters(benchmark::State& state, const GeneratedLog& g, std::size_t events_read) {
  state.SetItemsProcessed(state.iterations());
  state.counters["log_events"] = static_cast<double>(g.log->head().value);
  state.counters["events_per_read"] =
      state.iterations() ? static_cast<double>(events_read) / static_cast<double>(state.iterations()) : 0;
}

void BM_LogCustomerAsOf(benchmark::State& state) {
  auto& g = shared(state.range(0));
  std::size_t i = 0, events = 0;
  for (auto _ : state) {
    const Sample& s = g.samples[i++ % g.samples.size()];
    auto view = customer_view_at(*g.log, s.customer, {.as_of = g.as_of});
    if (!view.ok() || !*view || !(*view)->customer) {
      state.SkipWithError("the customer has no view");
      break;
    }
    benchmark::DoNotOptimize((*view)->users.size());
    events += s.seq_keys.size();
  }
  counters(state, g, events);
}

void BM_RawCustomerAsOf(benchmark::State& state) {
  auto& g = shared(state.range(0));
  auto* events_family = g.log->column_family("events").value();
  std::size_t i = 0, events = 0;
  for (auto _ : state) {
    const Sample& s = g.samples[i++ % g.samples.size()];
    std::vector<rocksdb::Slice> keys(s.seq_keys.begin(), s.seq_keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    g.log->db().MultiGet({}, events_family, keys.size(), keys.data(), values.data(), statuses.data());
    std::size_t bytes = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) bytes += statuses[k].ok() ? values[k].size() : 0;
    benchmark::DoNotOptimize(bytes);
    events += keys.size();
  }
  counters(state, g, events);
}

void BM_WholeLogReplay(benchmark::State& state) {
  auto& g = shared(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    const Sample& s = g.samples[i++ % g.samples.size()];
    ScratchDir scratch("as-of-store");
    auto store = replay_into(*g.log, scratch.path() / "store", {.as_of = g.as_of, .customer = s.customer});
    if (!store.ok()) state.SkipWithError("replay failed");
  }
  counters(state, g, 0);
}

BENCHMARK(BM_LogCustomerAsOf)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_RawCustomerAsOf)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_WholeLogReplay)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

void close_logs() { logs.clear(); }

}  // namespace cs::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  cs::bench::close_logs();
  benchmark::Shutdown();
  return 0;
}
