// What sealing personal data costs: the same work on a generated history
// (2,000 customers, about 52,000 events of all types), once with a master key
// (personal fields sealed, BM_Log*) and once without (plaintext, BM_Raw*),
// in the same run. compare.py pairs them; the ratio is the price of sealing.
//   BM_{Log,Raw}SealedAppend/256/S  appends of 256 events into a fresh log each
//                                 iteration; S=1 durable (fsync per group), S=0
//                                 without the fsync, whose noise hides CPU costs
//   BM_{Log,Raw}SealedRebuild     ProjectionEngine::rebuild() of the four projections
//   BM_{Log,Raw}SealedView        one customer's view (customer, tokens,
//                                 subscriptions, users), its values opened
#include <benchmark/benchmark.h>

#include <map>

#include "bench_support.h"
#include "cs/personal_data.h"
#include "cs/projection_engine.h"

namespace cs::bench {
namespace {

constexpr std::uint64_t customers = 2'000;

const std::vector<NewEvent>& history() {
  static const std::vector<NewEvent> events = [] {
    std::vector<NewEvent> out;
    HistoryGenerator generator({.customers = customers, .seed = 8});
    while (auto e = generator.next()) out.push_back(std::move(*e));
    return out;
  }();
  return events;
}

std::unique_ptr<EventLog> open_log(const ScratchDir& dir, bool sealed, bool sync = true) {
  EventLogOptions options{.sync_each_group = sync};
  if (sealed) options.master_key_file = dir.path() / "master.key";
  auto log = EventLog::open(dir.path() / "data", options);
  if (!log.ok()) std::abort();
  return std::move(log).value();
}

void append_all(benchmark::State& state, bool sealed) {
  const auto group = static_cast<std::size_t>(state.range(0));
  const auto& events = history();
  for (auto _ : state) {
    state.PauseTiming();
    auto dir = std::make_unique<ScratchDir>("sealed-append");
    auto log = open_log(*dir, sealed, state.range(1) != 0);
    state.ResumeTiming();
    for (std::size_t at = 0; at < events.size(); at += group) {
      auto r = log->append(std::span(events).subspan(at, std::min(group, events.size() - at)));
      if (!r.ok()) state.SkipWithError(r.error().to_string().c_str());
    }
    state.PauseTiming();
    log.reset();
    dir.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(events.size()));
}

void BM_LogSealedAppend(benchmark::State& state) { append_all(state, true); }
void BM_RawSealedAppend(benchmark::State& state) { append_all(state, false); }

// One filled log of each kind for the read benchmarks.
struct Filled {
  ScratchDir dir{"sealed-read"};
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ProjectionEngine> engine;
  std::vector<Uuid> customer_ids;
  explicit Filled(bool sealed) {
    log = open_log(dir, sealed, /*sync=*/false);
    const auto& events = history();
    for (std::size_t at = 0; at < events.size(); at += 1'000) {
      if (!log->append(std::span(events).subspan(at, std::min<std::size_t>(1'000, events.size() - at))).ok()) {
        std::abort();
      }
    }
    for (const auto& e : events) {
      if (const auto* c = std::get_if<CustomerCreated>(&e.payload)) customer_ids.push_back(c->customer_id);
    }
    engine = std::move(ProjectionEngine::open(*log).value());
    if (!engine->catch_up().ok()) std::abort();
  }
};

std::map<bool, std::unique_ptr<Filled>> filled;  // closed by main() before exit

Filled& shared(bool sealed) {
  auto& f = filled[sealed];
  if (!f) f = std::make_unique<Filled>(sealed);
  return *f;
}

void rebuild(benchmark::State& state, bool sealed) {
  auto& f = shared(sealed);
  for (auto _ : state) {
    if (!f.engine->rebuild().ok()) state.SkipWithError("rebuild failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(f.log->head().value));
}

void BM_LogSealedRebuild(benchmark::State& state) { rebuild(state, true); }
void BM_RawSealedRebuild(benchmark::State& state) { rebuild(state, false); }

void view(benchmark::State& state, bool sealed) {
  auto& f = shared(sealed);
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = f.engine->view(f.customer_ids[(i++ * 7919) % f.customer_ids.size()]);
    if (!v.ok() || !v->customer || v->customer->name.sealed()) state.SkipWithError("the view is not opened");
    benchmark::DoNotOptimize(v->users.size());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LogSealedView(benchmark::State& state) { view(state, true); }
void BM_RawSealedView(benchmark::State& state) { view(state, false); }

BENCHMARK(BM_LogSealedAppend)->Args({256, 1})->Args({256, 0})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_RawSealedAppend)->Args({256, 1})->Args({256, 0})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_LogSealedRebuild)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_RawSealedRebuild)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_LogSealedView)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_RawSealedView)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

void close_logs() { filled.clear(); }

}  // namespace cs::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  cs::bench::close_logs();
  benchmark::Shutdown();
  return 0;
}
