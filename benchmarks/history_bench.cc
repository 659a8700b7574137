// Whole-history work over a generated log of 1,000,000+ events, each beside
// the raw floor for anything that reads the whole log: iterate the same log
// and decode every event, applying nothing (BM_Raw*).
//   BM_LogRebuild  ProjectionEngine::rebuild() of customers, users,
//                  subscriptions and tokens (one pass, shadow + swap)
//   BM_LogAudit    audit_tokens() of every customer, chain verified, with
//                  the stored projections compared
// All report events/s over the whole log; compare.py pairs BM_LogX with BM_RawX.
#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "cs/event_log.h"
#include "cs/projection_engine.h"
#include "cs/token_audit.h"
#include "history_generator.h"

namespace cs::bench {
namespace {

constexpr std::uint64_t customers = 40'000;  // about 1.05 million events

struct GeneratedLog {
  ScratchDir dir{"rebuild"};
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ProjectionEngine> engine;

  GeneratedLog() {
    log = std::move(EventLog::open(dir.path(), {.sync_each_group = false}).value());
    append_generated(*log, customers, 1);
    engine = std::move(ProjectionEngine::open(*log).value());
    if (!engine->catch_up().ok()) std::abort();
  }
};

GeneratedLog& shared() {
  static GeneratedLog g;
  return g;
}

void BM_LogRebuild(benchmark::State& state) {
  auto& g = shared();
  for (auto _ : state) {
    if (!g.engine->rebuild().ok()) state.SkipWithError("rebuild failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(g.log->head().value));
  state.counters["events"] = static_cast<double>(g.log->head().value);
}

void scan_and_decode(benchmark::State& state) {
  auto& g = shared();
  for (auto _ : state) {
    std::uint64_t n = 0;
    auto s = g.log->read({}, [&](const RecordedEvent& e) {
      benchmark::DoNotOptimize(e.payload.index());
      ++n;
      return true;
    });
    if (!s.ok() || n != g.log->head().value) state.SkipWithError("scan failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(g.log->head().value));
}

void BM_RawRebuild(benchmark::State& state) { scan_and_decode(state); }
void BM_RawAudit(benchmark::State& state) { scan_and_decode(state); }

void BM_LogAudit(benchmark::State& state) {
  auto& g = shared();
  std::size_t findings = 0;
  for (auto _ : state) {
    auto report = audit_tokens(*g.log, g.engine.get(), {});
    if (!report.ok()) state.SkipWithError("audit failed");
    findings = report->findings.size();
  }
  if (findings != 0) state.SkipWithError("a generated history must audit clean");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(g.log->head().value));
}

BENCHMARK(BM_LogRebuild)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RawRebuild)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_LogAudit)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RawAudit)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
