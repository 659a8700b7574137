// The distributor against a raw librdkafka producer, same broker, same run.
// Needs a broker: CS_KAFKA_BROKERS=host:port (tools/kafka/broker.sh start).
//   BM_LogPublish/N  Distributor::publish_to_head of a 100,000-event log in
//                    transactions of N events (routing, full-log topic,
//                    checkpoint in each transaction)
//   BM_RawPublish    an idempotent (not transactional) producer with the same
//                    settings sending the same records (topics, keys, values,
//                    headers), then flush; compare.py pairs every
//                    BM_LogPublish/N with it
//   BM_AppendToPublishDelay/S  append 1 event durably, publish it in its own
//                    transaction, again and again; counters p50_ms / p99_ms of
//                    that delay; S: transaction_settle_ms (0: none, 1: the
//                    default), to show what the wait between back-to-back
//                    transactions saves
// Both report events/s (log events, not records); compare.py pairs them.
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

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

// Deletes the topics whose names start with `prefix`, so that benchmark runs
// do not pile up partitions on a development broker.
void delete_topics(const std::string& prefix) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers().c_str(), err, sizeof err);
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  const rd_kafka_metadata_t* metadata = nullptr;
  std::vector<rd_kafka_DeleteTopic_t*> doomed;
  if (rd_kafka_metadata(admin, 1, nullptr, &metadata, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      std::string_view name = metadata->topics[i].topic;
      if (name.starts_with(prefix)) doomed.push_back(rd_kafka_DeleteTopic_new(metadata->topics[i].topic));
    }
    rd_kafka_metadata_destroy(metadata);
  }
  if (!doomed.empty()) {
    rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
    rd_kafka_DeleteTopics(admin, doomed.data(), doomed.size(), nullptr, queue);
    if (rd_kafka_event_t* done = rd_kafka_queue_poll(queue, 30'000)) rd_kafka_event_destroy(done);
    rd_kafka_queue_destroy(queue);
    rd_kafka_DeleteTopic_destroy_array(doomed.data(), doomed.size());
  }
  rd_kafka_destroy(admin);
}

// One set of topics for the whole run (created by the first distributor);
// each measured publish gets its own transactional.id, hence its own
// checkpoint, and publishes the whole log again.
struct Fixture {
  ScratchDir dir{"publish"};
  std::unique_ptr<EventLog> log;
  int run = 0;
  Fixture() {
    delete_topics("bench");  // left by runs that were killed
    log = std::move(EventLog::open(dir.path(), {.sync_each_group = false}).value());
    append_generated(*log, customers, 3);
  }
  ~Fixture() { delete_topics(prefix()); }
  std::string prefix() const { return "bench" + std::to_string(::getpid()) + "."; }
  DistributorOptions options(std::size_t transaction_events) {
    DistributorOptions o;
    o.brokers = brokers();
    o.transactional_id = prefix() + "distributor-" + std::to_string(++run);
    o.topic_template = prefix() + "{event}";  // the default layout: the seed's topics
    o.full_log_topic = prefix() + "events";
    o.checkpoint_topic = prefix() + "checkpoints";
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
    std::string topic, key, value, id, seq, type, schema, correlation;
  };
  std::vector<Out> records;
  auto o = f.options(1'000);
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
    Out headers{"", key, "", e.id.to_string(), std::to_string(e.seq.value), std::string(event_type_name(e.type())),
                std::to_string(e.stored_schema_version),
                e.meta.correlation_id ? e.meta.correlation_id->to_string() : ""};
    for (const auto& service : o.routing.targets(e.type(), type)) {
      records.push_back(headers);
      records.back().topic = (*d)->topic_for(service, e.type());
      records.back().value = published_value(e, service);
    }
    records.push_back(headers);
    records.back().topic = o.full_log_topic;
    records.back().value = format_event_line(e);
    return true;
  });
  if (!s.ok()) std::abort();
  d->reset();
  for (auto _ : state) {
    // Connecting, the producer id and topic handles come before the clock, as
    // Distributor::open does for ours.
    state.PauseTiming();
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    // The distributor's producer settings, so that only transactions and our own work differ.
    rd_kafka_conf_set(conf, "linger.ms", std::to_string(o.linger_ms).c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "retry.backoff.ms", std::to_string(o.retry_backoff_ms).c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    std::map<std::string, rd_kafka_topic_t*> topics;
    for (const auto& r : records) {
      if (!topics.count(r.topic)) topics[r.topic] = rd_kafka_topic_new(p, r.topic.c_str(), nullptr);
    }
    rd_kafka_producev(p, RD_KAFKA_V_RKT(topics[o.full_log_topic]), RD_KAFKA_V_VALUE(const_cast<char*>("warm-up"), 7),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (rd_kafka_flush(p, 30'000) != RD_KAFKA_RESP_ERR_NO_ERROR) state.SkipWithError("warm-up flush failed");
    state.ResumeTiming();
    for (const auto& r : records) {
      rd_kafka_topic_t* topic = topics[r.topic];
      for (;;) {
        rd_kafka_headers_t* h = rd_kafka_headers_new(5);
        rd_kafka_header_add(h, "eventId", -1, r.id.data(), static_cast<ssize_t>(r.id.size()));
        rd_kafka_header_add(h, "seq", -1, r.seq.data(), static_cast<ssize_t>(r.seq.size()));
        rd_kafka_header_add(h, "type", -1, r.type.data(), static_cast<ssize_t>(r.type.size()));
        rd_kafka_header_add(h, "schemaVersion", -1, r.schema.data(), static_cast<ssize_t>(r.schema.size()));
        if (!r.correlation.empty()) {
          rd_kafka_header_add(h, "correlationId", -1, r.correlation.data(), static_cast<ssize_t>(r.correlation.size()));
        }
        auto e = rd_kafka_producev(p, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
                                   RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        rd_kafka_headers_destroy(h);
        rd_kafka_poll(p, 50);
      }
    }
    if (rd_kafka_flush(p, 120'000) != RD_KAFKA_RESP_ERR_NO_ERROR) state.SkipWithError("flush failed");
    for (auto& [name, topic] : topics) rd_kafka_topic_destroy(topic);
    rd_kafka_destroy(p);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(f.log->head().value));
}

void BM_AppendToPublishDelay(benchmark::State& state) {
  ScratchDir dir("delay");
  auto log = std::move(EventLog::open(dir.path()).value());
  auto o = shared().options(1000);
  o.transaction_settle_ms = static_cast<int>(state.range(0));
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
BENCHMARK(BM_RawPublish)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_AppendToPublishDelay)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(300);

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
