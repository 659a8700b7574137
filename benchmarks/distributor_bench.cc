// The distributor against a raw librdkafka producer, same broker, same run.
// Needs a broker: CS_KAFKA_BROKERS=host:port (tools/kafka/broker.sh start).
//   BM_LogPublish/N  Distributor::publish_to_head of a 100,000-event log in
//                    transactions of N events (routing, full-log topic,
//                    checkpoint in each transaction)
//   BM_RawPublish/N  an idempotent (not transactional) producer sending the
//                    same records (topics, keys, values, headers), then flush
//   BM_AppendToPublishDelay  append 1 event durably, publish it in its own
//                    transaction; counters p50_ms / p99_ms of that delay
// Both report events/s (log events, not records); compare.py pairs them.
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "bench_support.h"
#include "cs/distributor.h"
#include "cs/json_codec.h"
#include "history_generator.h"

namespace cs::bench {
namespace {

constexpr std::uint64_t customers = 4'000;  // about 100,000 events

std::string brokers() {
  const char* b = std::getenv("CS_KAFKA_BROKERS");
  if (!b) {
    std::fprintf(stderr, "distributor_bench: set CS_KAFKA_BROKERS (tools/kafka/broker.sh start)\n");
    std::exit(2);
  }
  return b;
}

struct Fixture {
  ScratchDir dir{"publish"};
  std::unique_ptr<EventLog> log;
  int run = 0;
  Fixture() {
    log = std::move(EventLog::open(dir.path(), {.sync_each_group = false}).value());
    append_generated(*log, customers, 3);
  }
  DistributorOptions options(std::size_t transaction_events) {
    DistributorOptions o;
    o.brokers = brokers();
    std::string id = "bench" + std::to_string(::getpid()) + "-" + std::to_string(++run);
    o.transactional_id = id;
    o.topic_template = id + ".{event}";  // the default layout: the seed's topics
    o.full_log_topic = id + ".events";
    o.checkpoint_topic = id + ".checkpoints";
    o.transaction_events_max = transaction_events;
    return o;
  }
};

Fixture& shared() {
  static Fixture f;
  return f;
}

void BM_LogPublish(benchmark::State& state) {
  auto& f = shared();
  for (auto _ : state) {
    state.PauseTiming();
    auto d = Distributor::open(*f.log, f.options(static_cast<std::size_t>(state.range(0))));
    if (!d.ok()) {
      state.SkipWithError(d.error().to_string().c_str());
      return;
    }
    state.ResumeTiming();
    auto n = (*d)->publish_to_head();
    if (!n.ok() || *n != f.log->head().value) state.SkipWithError("publish failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(f.log->head().value));
}

// The records the distributor would send, sent by a plain idempotent producer.
void BM_RawPublish(benchmark::State& state) {
  auto& f = shared();
  struct Out {
    std::string topic, key, value, id, seq, type;
  };
  std::vector<Out> records;
  auto o = f.options(static_cast<std::size_t>(state.range(0)));
  // Same topics as a distributor run: opening one creates them.
  auto d = Distributor::open(*f.log, o);
  if (!d.ok()) {
    state.SkipWithError(d.error().to_string().c_str());
    return;
  }
  std::map<Uuid, CustomerType> types;
  auto s = f.log->read({}, [&](const RecordedEvent& e) {
    if (const auto* c = std::get_if<CustomerCreated>(&e.payload)) types[c->customer_id] = c->customer_type;
    auto it = types.find(payload_customer_id(e.payload));
    std::optional<CustomerType> type = it == types.end() ? std::nullopt : std::optional(it->second);
    std::string key = payload_customer_id(e.payload).to_string();
    for (const auto& service : o.routing.targets(e.type(), type)) {
      records.push_back({(*d)->topic_for(service, e.type()), key, published_value(e, service), e.id.to_string(),
                         std::to_string(e.seq.value), std::string(event_type_name(e.type()))});
    }
    records.push_back({o.full_log_topic, key, format_event_line(e), e.id.to_string(), std::to_string(e.seq.value),
                       std::string(event_type_name(e.type()))});
    return true;
  });
  if (!s.ok()) std::abort();
  for (auto _ : state) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    for (const auto& r : records) {
      for (;;) {
        rd_kafka_headers_t* h = rd_kafka_headers_new(3);
        rd_kafka_header_add(h, "eventId", -1, r.id.data(), static_cast<ssize_t>(r.id.size()));
        rd_kafka_header_add(h, "seq", -1, r.seq.data(), static_cast<ssize_t>(r.seq.size()));
        rd_kafka_header_add(h, "type", -1, r.type.data(), static_cast<ssize_t>(r.type.size()));
        auto e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
                                   RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        rd_kafka_headers_destroy(h);
        rd_kafka_poll(p, 50);
      }
    }
    if (rd_kafka_flush(p, 120'000) != RD_KAFKA_RESP_ERR_NO_ERROR) state.SkipWithError("flush failed");
    rd_kafka_destroy(p);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(f.log->head().value));
}

void BM_AppendToPublishDelay(benchmark::State& state) {
  ScratchDir dir("delay");
  auto log = std::move(EventLog::open(dir.path()).value());
  auto o = shared().options(1000);
  auto d = Distributor::open(*log, o);
  if (!d.ok()) {
    state.SkipWithError(d.error().to_string().c_str());
    return;
  }
  std::vector<double> delays_ms;
  std::uint64_t n = 0;
  for (auto _ : state) {
    NewEvent e = token_used_event(n++);
    auto start = std::chrono::steady_clock::now();
    if (!log->append(std::span(&e, 1)).ok() || !(*d)->publish_to_head().ok()) state.SkipWithError("failed");
    delays_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(delays_ms.begin(), delays_ms.end());
  if (!delays_ms.empty()) {
    state.counters["p50_ms"] = delays_ms[delays_ms.size() / 2];
    state.counters["p99_ms"] = delays_ms[std::min(delays_ms.size() - 1, delays_ms.size() * 99 / 100)];
  }
}

BENCHMARK(BM_LogPublish)->Arg(1000)->Arg(10000)->Arg(50000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_RawPublish)->Arg(1000)->Arg(10000)->Arg(50000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_AppendToPublishDelay)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(300);

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
