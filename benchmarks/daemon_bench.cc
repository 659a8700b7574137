// The daemon end to end against a raw Kafka round trip, same broker, same run.
// Needs a broker: CS_KAFKA_BROKERS=host:port (tools/kafka/broker.sh start).
//   BM_LogDaemonRequests/R  signed allocate_tokens requests produced to the
//                    real daemon process (build/bin/customer-service) at R
//                    requests/s (0: as fast as the producer goes); measured
//                    from a request's produce to its token.allocated event
//                    visible to a read_committed consumer (matched by the
//                    correlationId header). items/s = requests / (last event
//                    seen - first request sent); p50_ms / p99_ms of the delay.
//   BM_RawRoundTrip/R  the same count of records of the same size produced to
//                    a topic, consumed and produced to a second topic by a
//                    relay thread with no work in between (an idempotent,
//                    not transactional producer), seen by a consumer of the
//                    second topic: the broker's own round trip.
// compare.py pairs each BM_LogDaemonRequests/R with BM_RawRoundTrip/R.
#include <benchmark/benchmark.h>
#include <httplib.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include <unordered_map>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_support.h"
#include "cs/service_credentials.h"
#include "kafka_admin.h"

namespace cs::bench {
namespace {

using clock = std::chrono::steady_clock;
constexpr int requests_full_speed = 20'000;
constexpr int requests_paced = 4'000;
constexpr int customer_count = 64;
constexpr int warm_up_requests = 200;
// A broker just started commits transactions slowly until its JVM has
// compiled the paths they take: on this machine, at 500 requests/s, the
// daemon's commits took 45 ms on average in the first run on a fresh broker
// and 7 ms from the fifth on, and its p99 fell from 250-340 ms to 50-60 ms
// (docs/performance.md, "A warm broker"); a restarted broker was slow again.
// Production brokers are warm, so the first daemon run of a process first
// sends this many requests at broker_warm_up_rate, not measured
// (CS_BENCH_BROKER_WARM_UP_REQUESTS overrides; 0: none).
constexpr int broker_warm_up_requests = 15'000;
constexpr int broker_warm_up_rate = 500;

std::string brokers() {
  const char* b = std::getenv("CS_KAFKA_BROKERS");
  if (!b) {
    std::fprintf(stderr, "daemon_bench: set CS_KAFKA_BROKERS (tools/kafka/broker.sh start)\n");
    std::exit(2);
  }
  return b;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
}

rd_kafka_t* make(rd_kafka_type_t type, std::vector<std::pair<std::string, std::string>> settings) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  settings.emplace_back("bootstrap.servers", brokers());
  for (const auto& [k, v] : settings) rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
  return rk;
}

void assign_all(rd_kafka_t* consumer, const std::string& topic, int partitions, std::int64_t offset) {
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = offset;
  rd_kafka_assign(consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
}

void produce(rd_kafka_t* p, const std::string& topic, const std::string& key, const std::string& value,
             std::vector<std::pair<std::string, std::string>> headers = {}) {
  rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size() + 1);
  for (const auto& [n, v] : headers) rd_kafka_header_add(h, n.data(), -1, v.data(), static_cast<ssize_t>(v.size()));
  while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
                           RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                           RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    rd_kafka_poll(p, 10);
  }
}

std::string header(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* h = nullptr;
  const void* v = nullptr;
  std::size_t size = 0;
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      rd_kafka_header_get_last(h, name, &v, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
    return std::string(static_cast<const char*>(v), size);
  }
  return "";
}

// Sends `count` records through `send(i)` at `rate` per second (0: at once)
// while `watch` (a consumer) reports ids seen; returns the delays in ms and
// sets `seconds` to first send → last seen.
template <typename Send, typename IdOf>
std::vector<double> measure(rd_kafka_t* watch, int count, int rate, Send send, IdOf id_of, double& seconds) {
  std::vector<std::int64_t> sent_at(count, 0), seen_at(count, 0);
  std::atomic<int> seen{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    const auto deadline = clock::now() + std::chrono::seconds(180);
    while (seen < count && clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(watch, 50);
      if (!m) continue;
      if (!m->err) {
        int i = id_of(m);
        if (i >= 0 && i < count && seen_at[i] == 0) {
          seen_at[i] = now_ns();
          ++seen;
        }
      }
      rd_kafka_message_destroy(m);
    }
    done = true;
  });
  const auto start = clock::now();
  for (int i = 0; i < count; ++i) {
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::microseconds(1'000'000LL * i / rate));
    sent_at[i] = now_ns();
    send(i);
  }
  watcher.join();
  std::vector<double> delays;
  std::int64_t last = 0;
  for (int i = 0; i < count; ++i) {
    if (seen_at[i] == 0) continue;
    delays.push_back((seen_at[i] - sent_at[i]) / 1e6);
    last = std::max(last, seen_at[i]);
  }
  seconds = (last - sent_at[0]) / 1e9;
  std::sort(delays.begin(), delays.end());
  return delays;
}

void report(benchmark::State& state, const std::vector<double>& delays, double seconds, int count) {
  if (static_cast<int>(delays.size()) != count) {
    state.SkipWithError(("only " + std::to_string(delays.size()) + " of " + std::to_string(count) + " seen").c_str());
    return;
  }
  state.SetIterationTime(seconds);
  state.counters["p50_ms"] = delays[delays.size() / 2];
  state.counters["p99_ms"] = delays[delays.size() * 99 / 100];
}

// Starts build/bin/customer-service for a run: stdout to `out`, stderr
// dropped, its own topics under `run`, HTTP on a free port.
pid_t spawn_daemon(const ScratchDir& dir, const std::string& run, const std::filesystem::path& out) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(null, 2);
    const std::string bin = std::string(CS_BIN_DIR) + "/customer-service";
    std::vector<std::string> args = {bin,        "--data-dir",     (dir.path() / "data").string(),
                                     "--brokers", brokers(),        "--services",
                                     (dir.path() / "services.json").string(), "--topic-prefix", run,
                                     "--group",   run + "group",    "--transactional-id",
                                     run + "tx",  "--partitions",   "3",
                                     "--http",    "127.0.0.1:0"};
    // CS_BENCH_DAEMON_FLAGS: more flags for the daemon, space-separated (A/B of its settings).
    if (const char* extra = std::getenv("CS_BENCH_DAEMON_FLAGS")) {
      std::istringstream words(extra);
      for (std::string w; words >> w;) args.push_back(w);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::string request_id(int i) { return Uuid::from_words(0xbe11'0000ULL, static_cast<std::uint64_t>(i) + 1).to_string(); }

std::string request_value(int i, const std::string& customer) {
  return nlohmann::json{{"requestId", request_id(i)},
                        {"sourceService", "admin-service"},
                        {"action", "allocate_tokens"},
                        {"customerId", customer},
                        {"amount", 1 + i % 9},
                        {"adminId", Uuid::from_words(5, 5).to_string()},
                        {"reason", "benchmark"}}
      .dump();
}

void BM_RawRoundTrip(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  const int requests = rate > 0 ? requests_paced : requests_full_speed;
  for (auto _ : state) {
    const std::string run = "rawrt" + std::to_string(::getpid()) + "x" + std::to_string(now_ns() % 1'000'000);
    const std::string in = run + ".in", out = run + ".out";
    rd_kafka_t* producer = make(RD_KAFKA_PRODUCER, {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
    rd_kafka_t* relay_in = make(RD_KAFKA_CONSUMER, {{"group.id", run + "relay"}, {"isolation.level", "read_committed"}});
    rd_kafka_t* relay_out = make(RD_KAFKA_PRODUCER, {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
    rd_kafka_t* watch = make(RD_KAFKA_CONSUMER, {{"group.id", run + "watch"}, {"isolation.level", "read_committed"}});
    // Topics exist before anyone reads: one record each, then read from the end.
    if (auto made = create_topics(producer, {{.name = in, .partitions = 1}, {.name = out, .partitions = 1}}, 30'000,
                                  brokers(), /*stop_requested=*/nullptr);
        !made.ok()) {
      state.SkipWithError(made.error().message().c_str());
      return;
    }
    produce(producer, in, "warm", "warm");
    produce(relay_out, out, "warm", "warm");
    rd_kafka_flush(producer, 30'000);
    rd_kafka_flush(relay_out, 30'000);
    assign_all(relay_in, in, 1, RD_KAFKA_OFFSET_END);
    assign_all(watch, out, 1, RD_KAFKA_OFFSET_END);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::atomic<bool> stop{false};
    std::thread relay([&] {
      while (!stop) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(relay_in, 20);
        if (!m) continue;
        if (!m->err) {
          produce(relay_out, out, std::string(static_cast<char*>(m->key), m->key_len),
                  std::string(static_cast<char*>(m->payload), m->len), {{"id", header(m, "id")}});
        }
        rd_kafka_message_destroy(m);
        rd_kafka_poll(relay_out, 0);
      }
    });
    const std::string customer = Uuid::from_words(9, 9).to_string();
    double seconds = 0;
    auto delays = measure(
        watch, requests, rate,
        [&](int i) {
          produce(producer, in, customer, request_value(i, customer), {{"id", std::to_string(i)}});
          rd_kafka_poll(producer, 0);
        },
        [](rd_kafka_message_t* m) { return std::atoi(header(m, "id").c_str()); }, seconds);
    stop = true;
    relay.join();
    for (auto* c : {relay_in, watch}) rd_kafka_consumer_close(c);
    for (auto* k : {producer, relay_in, relay_out, watch}) rd_kafka_destroy(k);
    report(state, delays, seconds, requests);
  }
  state.SetItemsProcessed(state.iterations() * requests);
}

void BM_LogDaemonRequests(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  const int requests = rate > 0 ? requests_paced : requests_full_speed;
  const std::string secret = "bench-admin-secret-0123456789";
  for (auto _ : state) {
    ScratchDir dir("daemon");
    const std::string run = "dbench" + std::to_string(::getpid()) + "x" + std::to_string(now_ns() % 1'000'000) + ".";
    std::ofstream(dir.path() / "services.json") << R"({"services":{"admin-service":{"secret":")" << secret << "\"}}}";
    const auto out = dir.path() / "out";
    pid_t pid = spawn_daemon(dir, run, out);
    for (int i = 0; i < 900; ++i) {
      std::ifstream in(out);
      std::string line;
      if (std::getline(in, line) && line == "ready") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    rd_kafka_t* producer = make(RD_KAFKA_PRODUCER, {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
    auto send = [&](const std::string& topic, const std::string& key, const std::string& value) {
      produce(producer, run + topic, key, value,
              {{"x-service", "admin-service"}, {"x-signature", hmac_sha256_hex(secret, value)}});
      rd_kafka_poll(producer, 0);
    };
    // Customers first (their own requests), then the measured token requests.
    std::vector<std::string> customers;
    for (int c = 0; c < customer_count; ++c) {
      const Uuid request = Uuid::from_words(0xc0de'0000ULL, static_cast<std::uint64_t>(c) + 1);
      send("customer.update.request", request.to_string(),
           nlohmann::json{{"requestId", request.to_string()}, {"sourceService", "admin-service"},
                          {"action", "create"}, {"customerType", "sme"}, {"name", "Bench " + std::to_string(c)},
                          {"email", "bench@example.com"}}
               .dump());
    }
    rd_kafka_flush(producer, 30'000);
    rd_kafka_t* watch = make(RD_KAFKA_CONSUMER, {{"group.id", run + "watch"}, {"isolation.level", "read_committed"}});
    // customer.created is routed: wait until every customer is visible, then watch token.allocated.
    assign_all(watch, run + "customer.created", 3, RD_KAFKA_OFFSET_BEGINNING);
    std::map<std::string, int> created;
    const auto deadline = clock::now() + std::chrono::seconds(120);
    while (static_cast<int>(created.size()) < customer_count && clock::now() < deadline) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(watch, 50)) {
        if (!m->err) {
          auto v = nlohmann::json::parse(std::string(static_cast<char*>(m->payload), m->len), nullptr, false);
          if (v.is_object() && v.contains("customerId")) created[v["customerId"]] = 1;
        }
        rd_kafka_message_destroy(m);
      }
    }
    for (const auto& [id, _] : created) customers.push_back(id);
    if (static_cast<int>(customers.size()) < customer_count) {
      state.SkipWithError("the daemon did not create the customers");
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return;
    }
    assign_all(watch, run + "token.allocated", 3, RD_KAFKA_OFFSET_BEGINNING);
    // Warm-up, not measured: the first records to each topic wait for its
    // metadata; the first run of the process also warms the broker.
    static bool broker_warm = false;
    int warm_up = warm_up_requests, warm_up_rate = 0;
    if (!broker_warm) {
      const char* env = std::getenv("CS_BENCH_BROKER_WARM_UP_REQUESTS");
      warm_up = std::max(warm_up_requests, env ? std::atoi(env) : broker_warm_up_requests);
      warm_up_rate = broker_warm_up_rate;
      broker_warm = true;
    }
    std::unordered_map<std::string, int> index_of;
    for (int i = 0; i < requests + warm_up; ++i) index_of[request_id(i)] = i;
    double unused = 0;
    measure(
        watch, warm_up, warm_up_rate,
        [&](int i) {
          const std::string& customer = customers[static_cast<std::size_t>(i) % customers.size()];
          send("admin.customer.action", customer, request_value(requests + i, customer));
        },
        [&](rd_kafka_message_t* m) {
          auto it = index_of.find(header(m, "correlationId"));
          return it == index_of.end() ? -1 : it->second - requests;
        },
        unused);
    double seconds = 0;
    auto delays = measure(
        watch, requests, rate,
        [&](int i) {
          const std::string& customer = customers[static_cast<std::size_t>(i) % customers.size()];
          send("admin.customer.action", customer, request_value(i, customer));
        },
        [&](rd_kafka_message_t* m) {
          auto it = index_of.find(header(m, "correlationId"));  // the requestId
          return it == index_of.end() ? -1 : it->second;
        },
        seconds);
    rd_kafka_consumer_close(watch);
    rd_kafka_destroy(watch);
    rd_kafka_destroy(producer);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    report(state, delays, seconds, requests);
  }
  state.SetItemsProcessed(state.iterations() * requests);
}

BENCHMARK(BM_RawRoundTrip)->Arg(0)->Arg(500)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LogDaemonRequests)->Arg(0)->Arg(500)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);


// --- HTTP ------------------------------------------------------------------
//   BM_LogHttpCommands  POST /v1/customers/{id}/tokens/allocate from one
//                    keep-alive loopback client, one after the other (each
//                    answered once its event is stored and synced);
//                    p50_ms / p99_ms per command
//   BM_RawHttpCommands  the same count of direct EventLog::append calls of
//                    one token.allocated event each, durable, one after the
//                    other: the store's own cost of those commands
constexpr int http_commands = 2'000;

void BM_LogHttpCommands(benchmark::State& state) {
  const std::string token = "bench-admin-token-0123456789";
  for (auto _ : state) {
    ScratchDir dir("http");
    const std::string run = "hbench" + std::to_string(::getpid()) + "x" + std::to_string(now_ns() % 1'000'000) + ".";
    std::ofstream(dir.path() / "services.json")
        << R"({"services":{"admin-service":{"secret":"bench-admin-secret-0123456789","token":")" << token << "\"}}}";
    const auto out = dir.path() / "out";
    pid_t pid = spawn_daemon(dir, run, out);
    int port = 0;
    for (int i = 0; i < 900 && port == 0; ++i) {
      std::ifstream in(out);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("http ", 0) == 0) port = std::atoi(line.c_str() + 5);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    httplib::Client client("127.0.0.1", port);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // as curl and Node do
    const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
    auto created = client.Post("/v1/customers", auth, R"({"customerType":"sme","name":"B","email":"b@b.example"})",
                               "application/json");
    if (!created || created->status != 201) {
      state.SkipWithError("the daemon did not create the customer");
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return;
    }
    const std::string path =
        "/v1/customers/" + nlohmann::json::parse(created->body)["customerId"].get<std::string>() + "/tokens/allocate";
    const std::string body = R"({"amount":5,"reason":"bench","adminId":"00000000-0000-4000-8000-000000000001"})";
    std::vector<double> delays;
    const auto start = clock::now();
    for (int i = 0; i < http_commands; ++i) {
      const auto t = clock::now();
      auto r = client.Post(path, auth, body, "application/json");
      if (!r || r->status != 200) {
        state.SkipWithError("a command failed");
        break;
      }
      delays.push_back(std::chrono::duration<double, std::milli>(clock::now() - t).count());
    }
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    std::sort(delays.begin(), delays.end());
    if (static_cast<int>(delays.size()) != http_commands) return;
    state.SetIterationTime(seconds);
    state.counters["p50_ms"] = delays[delays.size() / 2];
    state.counters["p99_ms"] = delays[delays.size() * 99 / 100];
  }
  state.SetItemsProcessed(state.iterations() * http_commands);
}

void BM_RawHttpCommands(benchmark::State& state) {
  for (auto _ : state) {
    ScratchDir dir("rawhttp");
    auto log = std::move(EventLog::open(dir.path()).value());
    const auto start = clock::now();
    for (int i = 0; i < http_commands; ++i) {
      NewEvent e;
      e.id = Uuid::from_words(0xa110'0000ULL, static_cast<std::uint64_t>(i) + 1);
      e.timestamp = Timestamp::now();
      e.meta.source_service = "admin-service";
      e.payload = TokenAllocated{Uuid::from_words(3, 3), 5, Uuid::from_words(4, 4), "bench"};
      if (!log->append(std::span(&e, 1)).ok()) {
        state.SkipWithError("append failed");
        return;
      }
    }
    state.SetIterationTime(std::chrono::duration<double>(clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations() * http_commands);
}

BENCHMARK(BM_RawHttpCommands)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LogHttpCommands)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cs::bench

BENCHMARK_MAIN();
