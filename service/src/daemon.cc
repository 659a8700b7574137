#include "cs/daemon.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cs/authorization.h"
#include "cs/command_handler.h"
#include "cs/distributor.h"
#include "cs/http_api.h"
#include "cs/metrics.h"
#include "cs/event_log.h"
#include "cs/outbox.h"
#include "cs/personal_data.h"
#include "cs/projection_engine.h"
#include "cs/request.h"
#include "cs/request_consumer.h"
#include "cs/request_processor.h"
#include "cs/service_credentials.h"
#include "kafka_log.h"

namespace cs {
namespace {

constexpr int reopen_pause_ms = 1'000;
// /readyz says not ready while a projection is more events than this behind the log.
constexpr std::uint64_t readiness_projection_lag_max = 10'000;

// The distributor's thread: publishes whenever woken, and at least every
// publish_interval_ms; reopens the distributor after a failure.
class PublishLoop {
 public:
  PublishLoop(EventLog& log, DistributorOptions options, const DaemonOptions& daemon, Metrics& metrics)
      : log_(log), options_(std::move(options)), daemon_(daemon), metrics_(metrics) {
    options_.stop_requested = &abort_;
    options_.on_transaction = [this](bool committed, double open_seconds, double commit_seconds) {
      metrics_.count_transaction(committed, open_seconds, commit_seconds);
    };
    thread_ = std::thread([this] { run(); });
  }
  ~PublishLoop() { stop(); }

  void wake() {
    {
      std::lock_guard lock(mu_);
      woken_ = true;
    }
    cv_.notify_one();
  }
  // Publishes what is stored for at most drain_time_max_ms, then aborts and
  // joins; aborts at once when no distributor was ever opened.
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      draining_ = true;
    }
    // Never opened (no broker yet): nothing to drain, and the open under way
    // would only be waited out.
    if (!opened_) abort_ = true;
    cv_.notify_one();
    std::unique_lock lock(mu_);
    if (!cv_done_.wait_for(lock, std::chrono::milliseconds(daemon_.drain_time_max_ms), [&] { return finished_; })) {
      abort_ = true;  // the open transaction is aborted; it goes out on the next start
    }
    lock.unlock();
    thread_.join();
  }
  // True once a distributor was opened (its topics, the answers' included, exist).
  bool opened() const { return opened_; }
  // Set when the loop ended on an error that restarting cannot mend here.
  std::optional<Error> failure() {
    std::lock_guard lock(mu_);
    return failure_;
  }

 private:
  void log(std::string_view level, std::string_view event, nlohmann::json fields) {
    if (daemon_.log) daemon_.log(level, event, fields);
  }
  void run() {
    std::unique_ptr<Distributor> distributor;
    Sequence logged_checkpoint;
    for (;;) {
      bool draining;
      {
        std::lock_guard lock(mu_);
        draining = draining_;
      }
      if (!distributor) {
        auto opened = Distributor::open(log_, options_);
        if (opened.ok()) {
          distributor = std::move(*opened);
          opened_ = true;
          log("info", "distributor_open", {{"checkpoint", distributor->checkpoint().value},
                                           {"outboxCheckpoint", distributor->outbox_checkpoint()}});
        } else if (opened.error().cause() == ErrorCause::fenced ||
                   opened.error().code() == ErrorCode::invalid_argument) {
          fail(opened.error());
          return;
        } else if (opened.error().cause() == ErrorCause::stopped) {
          break;
        } else {
          log("warn", "distributor_unavailable", {{"error", opened.error().message()}});
          if (draining || pause(reopen_pause_ms)) break;
          continue;
        }
      }
      auto published = distributor->publish_to_head();
      if (!published.ok()) {
        if (published.error().cause() == ErrorCause::stopped) break;
        log("warn", "publish_failed", {{"error", published.error().message()}});
        if (published.error().cause() == ErrorCause::fenced) {
          fail(published.error());
          return;
        }
        if (published.error().code() != ErrorCode::retriable) distributor.reset();
        if (draining || pause(reopen_pause_ms)) break;
        continue;
      }
      report(*distributor);
      sweep(*distributor);
      if (draining) break;
      pause(daemon_.publish_interval_ms);
    }
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_done_.notify_all();
  }
  void report(const Distributor& d) {
    const Sequence checkpoint = d.checkpoint(), head = log_.head();
    double lag_seconds = 0;
    if (head > checkpoint) {
      if (auto oldest = log_.read_event(checkpoint.next()); oldest.ok()) {
        lag_seconds = std::max(0.0, static_cast<double>(Timestamp::now().micros - oldest->recorded_at.micros) / 1e6);
      }
    }
    metrics_.set_publish(checkpoint.value, head.value - std::min(head.value, checkpoint.value), lag_seconds);
  }
  // Published outbox records are deleted, all but the last (whose key tells
  // the next record's sequence): answers and data responses, sealed, stay
  // at rest only until they are out. Best effort: a failure is logged, and
  // the next sweep covers the range again.
  void sweep(const Distributor& d) {
    const std::uint64_t published = d.outbox_checkpoint();
    if (published <= swept_below_) return;
    auto s = log_.delete_side_range(options_.outbox_family, EventLog::sequenced_key(swept_below_),
                                    EventLog::sequenced_key(published));
    if (!s.ok()) {
      log("warn", "outbox_sweep_failed", {{"error", s.error().message()}});
      return;
    }
    swept_below_ = published;
  }
  // Waits until woken or `ms` passed; true when draining began.
  bool pause(int ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return woken_ || draining_; });
    woken_ = false;
    return draining_;
  }
  void fail(const Error& e) {
    log("error", "distributor_failed", {{"error", e.message()}});
    std::lock_guard lock(mu_);
    failure_ = e;
    finished_ = true;
    cv_done_.notify_all();
  }

  EventLog& log_;
  DistributorOptions options_;
  const DaemonOptions& daemon_;
  std::uint64_t swept_below_ = 1;  // outbox records below this sequence are deleted
  Metrics& metrics_;
  std::atomic<bool> abort_{false};
  std::atomic<bool> opened_{false};
  std::mutex mu_;
  std::condition_variable cv_, cv_done_;
  bool woken_ = false, draining_ = false, finished_ = false;
  std::optional<Error> failure_;
  std::thread thread_;
};

}  // namespace

Status run_daemon(const DaemonOptions& o) {
  auto log = [&](std::string_view level, std::string_view event, nlohmann::json fields) {
    if (o.log) o.log(level, event, fields);
  };
  // Declared before every Kafka client of this function, so that it outlives them.
  std::optional<ScopedKafkaLogSink> kafka_log_sink;
  if (o.log) {
    kafka_log_sink.emplace([&](int syslog_level, std::string_view client, std::string_view facility,
                               std::string_view message) {
      const char* level = syslog_level <= 3 ? "error" : syslog_level == 4 ? "warn" : syslog_level <= 6 ? "info" : "debug";
      o.log(level, "kafka", {{"client", client}, {"facility", facility}, {"message", message}});
    });
  }
  auto stopping = [&] { return o.stop_requested && o.stop_requested->load(); };
  if (o.brokers.empty()) return invalid_argument("--brokers is required");
  if (!o.services_file && !o.insecure) {
    return invalid_argument("no --services file: requests could not be authenticated. Give one, or --insecure to "
                            "trust each request's sourceService (development only)");
  }
  std::optional<ServiceCredentials> credentials;
  if (o.services_file) {
    auto c = ServiceCredentials::from_file(*o.services_file);
    if (!c.ok()) return Error(c.error().code(), "--services " + *o.services_file + ": " + c.error().message());
    credentials = std::move(*c);
  } else {
    log("warn", "insecure", {{"message", "no --services file: every request's sourceService is trusted, unsigned"}});
  }
  AuthorizationMatrix matrix = AuthorizationMatrix::defaults();
  if (o.authz_file) {
    auto m = AuthorizationMatrix::from_file(*o.authz_file);
    if (!m.ok()) return Error(m.error().code(), "--authz " + *o.authz_file + ": " + m.error().message());
    matrix = std::move(*m);
  }
  DistributorOptions d;
  if (o.routing_file) {
    auto r = Routing::from_file(*o.routing_file);
    if (!r.ok()) return Error(r.error().code(), "--routing " + *o.routing_file + ": " + r.error().message());
    d.routing = std::move(*r);
  }
  const std::string& prefix = o.topic_prefix;
  d.brokers = o.brokers;
  d.transactional_id = o.transactional_id;
  d.topic_template = prefix + o.topic_template;
  d.full_log_topic = prefix + d.full_log_topic;
  d.keys_topic = prefix + d.keys_topic;
  d.checkpoint_topic = prefix + d.checkpoint_topic;
  d.topic_partitions = o.topic_partitions;
  d.replication_factor = o.replication_factor;
  d.transaction_time_max_ms = o.transaction_time_max_ms;
  d.transaction_settle_ms = o.transaction_settle_ms;
  d.operation_timeout_ms = o.operation_timeout_ms;
  d.message_timeout_ms = std::min(d.message_timeout_ms, o.operation_timeout_ms);
  d.outbox_family = outbox_family;
  d.outbox_topics = {prefix + request_result_topic, prefix + data_response_topic, prefix + dead_letter_topic};
  for (const auto& t : request_topics()) d.outbox_topics.push_back(prefix + t + ".reply");  // NestJS replies

  const std::filesystem::path key_file =
      o.master_key_file.empty() ? default_master_key_file(o.data_dir) : o.master_key_file;
  std::error_code key_ec;
  const bool key_existed = std::filesystem::exists(key_file, key_ec);
  auto opened = EventLog::open(o.data_dir, {.master_key_file = key_file});
  if (!opened.ok()) {
    const std::string& m = opened.error().message();
    if (m.find("lock") != std::string::npos || m.find("LOCK") != std::string::npos) {
      return Error(opened.error().code(), "the data dir " + o.data_dir.string() +
                                              " is in use by another process (" + m + ")");
    }
    return opened.error();
  }
  std::unique_ptr<EventLog> event_log = std::move(*opened);
  if (!key_existed) log("warn", "master_key_created", {{"file", key_file.string()}});
  auto engine = ProjectionEngine::open(*event_log);
  if (!engine.ok()) return engine.error();
  if (auto caught = (*engine)->catch_up(); !caught.ok()) return caught.error();
  log("info", "store_open", {{"dataDir", o.data_dir.string()}, {"head", event_log->head().value}});

  Metrics metrics;
  std::mutex decisions;  // the consumer's and the HTTP API's decisions, one at a time
  CommandHandler handler(*event_log, **engine, matrix);
  RequestProcessor processor(*event_log, handler, credentials ? &*credentials : nullptr, prefix);
  processor.set_decisions_mutex(&decisions);
  processor.set_append_observer([&](double seconds) { metrics.observe_append(seconds); });
  PublishLoop publisher(*event_log, d, o, metrics);
  std::atomic<bool> assigned{false};

  std::unique_ptr<HttpApi> http;
  if (!o.http_address.empty()) {
    HttpApiOptions h;
    h.address = o.http_address;
    h.topic_prefix = prefix;
    h.readiness = [&]() {
      std::uint64_t behind = 0;
      const auto head = event_log->head();
      for (const auto& p : (*engine)->status()) behind = std::max(behind, head.value - std::min(head.value, p.checkpoint.value));
      const bool ready = assigned && publisher.opened() && behind <= readiness_projection_lag_max;
      return nlohmann::json{{"ready", ready},
                            {"log", {{"open", true}, {"head", head.value}}},
                            {"projections", {{"caughtUp", behind <= readiness_projection_lag_max}, {"behind", behind}}},
                            {"kafka", {{"consumerAssigned", assigned.load()}, {"distributorOpen", publisher.opened()}}}};
    };
    http = std::make_unique<HttpApi>(*event_log, **engine, handler, decisions, credentials ? &*credentials : nullptr,
                                     matrix, metrics, std::move(h));
    if (auto s = http->start(); !s.ok()) return s.error();
    log("info", "http", {{"address", o.http_address}, {"port", http->port()}});
  }

  RequestConsumerOptions c;
  c.brokers = o.brokers;
  c.group_id = o.group_id;
  for (const auto& t : request_topics()) c.topics.push_back(prefix + t);
  c.topic_partitions = o.topic_partitions;
  c.replication_factor = o.replication_factor;
  c.operation_timeout_ms = o.operation_timeout_ms;
  c.stop_requested = o.stop_requested;
  // Static membership: a restarted daemon takes its partitions back at once
  // instead of waiting for the dead member's session to time out.
  c.kafka_settings.emplace_back("group.instance.id", o.transactional_id);
  // Ready: the consumer has its partitions and the distributor its topics.
  c.on_assigned = [&](std::size_t partitions) {
    log("info", "assigned", {{"partitions", partitions}});
    assigned = true;
  };
  c.on_lag = [&](const std::string& topic, std::int32_t partition, std::int64_t lag) {
    metrics.set_consumer_lag(topic, partition, lag);
  };
  c.on_processed = [&](const ConsumedRecord& r, const ProcessedRecord& p, double seconds) {
    if (p.outcome != RecordOutcome::skipped) {
      metrics.count_request(r.topic, p.action, answer_code_name(p.code), seconds);
    }
    if (p.events_appended > 0 && p.event_type) metrics.count_events(event_type_name(*p.event_type), p.events_appended);
    if (p.events_appended > 0 && p.event_type == EventType::customer_erased && p.customer_id) {
      // The destroyed key's bytes leave the disk now, not at some compaction.
      if (auto s = event_log->purge_erased_key(*p.customer_id); !s.ok()) {
        log("error", "purge", {{"error", s.error().message()}});
      }
    }
    if (p.outcome == RecordOutcome::dead_lettered) {
      metrics.count_dead_letter(r.topic, std::string_view(p.reason).substr(0, p.reason.find(':')));
    }
    log(p.outcome == RecordOutcome::dead_lettered ? "warn" : "info", "request",
        {{"topic", r.topic},
         {"partition", r.partition},
         {"offset", r.offset},
         {"action", p.action},
         {"outcome", record_outcome_name(p.outcome)},
         {"code", answer_code_name(p.code)},
         {"events", p.events_appended},
         {"seconds", seconds}});
    publisher.wake();
  };
  c.on_kafka_error = [&](const std::string& message) { log("warn", "kafka", {{"error", message}}); };

  // The consumer stops on a signal, and on the distributor's failure (fenced).
  std::atomic<bool> stop_consumer{false};
  c.stop_requested = &stop_consumer;
  std::thread watcher([&] {
    bool ready = false;
    std::uint64_t ticks = 0;
    while (!stop_consumer) {
      if (stopping() || publisher.failure()) stop_consumer = true;
      if (!ready && assigned && publisher.opened()) {
        ready = true;
        log("info", "ready", {});
        if (o.on_ready) o.on_ready(http ? http->port() : 0);
      }
      if (++ticks % 25 == 0) {  // about every half second
        metrics.set_head(event_log->head().value);
        for (const auto& p : (*engine)->status()) metrics.set_projection_seq(p.name, p.checkpoint.value);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Status result;
  std::unique_ptr<RequestConsumer> consumer;
  while (!consumer && !stop_consumer) {
    auto opened_consumer = RequestConsumer::open(processor, c);
    if (opened_consumer.ok()) {
      consumer = std::move(*opened_consumer);
    } else if (opened_consumer.error().cause() == ErrorCause::stopped) {
      break;
    } else if (opened_consumer.error().code() == ErrorCode::retriable) {
      log("warn", "consumer_unavailable", {{"error", opened_consumer.error().message()}});
      std::this_thread::sleep_for(std::chrono::milliseconds(reopen_pause_ms));
    } else {
      result = opened_consumer.error();
      break;
    }
  }
  if (consumer) result = consumer->run();
  stop_consumer = true;
  watcher.join();
  consumer.reset();
  if (http) http->stop();
  publisher.stop();
  if (auto f = publisher.failure(); f && result.ok()) result = *f;
  log(result.ok() ? "info" : "error", "stopped", result.ok() ? nlohmann::json{{"ok", true}}
                                                             : nlohmann::json{{"error", result.error().message()}});
  return result;
}

}  // namespace cs
