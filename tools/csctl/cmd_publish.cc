// csctl publish and republish: the log to Kafka, exactly once.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "command.h"
#include "cs/distributor.h"
#include "cs/restore.h"

namespace cs::csctl {
namespace {

std::atomic<bool> stop_requested{false};
void request_stop(int) { stop_requested = true; }

constexpr int retry_pause_ms = 1'000;
constexpr int reopen_attempts_max = 60;

void add_kafka_options(po::options_description& options) {
  options.add_options()("brokers", po::value<std::string>()->required(), "Kafka bootstrap servers (host:port)")(
      "transactional-id", po::value<std::string>()->default_value("customer-service-distributor"),
      "stable id: a second distributor with it fences the first")(
      "routing", po::value<std::string>(), "routing file (JSON); default: design.md's table")(
      "topic-template", po::value<std::string>()->default_value("{event}"), "{event} or {service}.{event}")(
      "full-log-topic", po::value<std::string>()->default_value(DistributorOptions{}.full_log_topic),
      "the topic that carries every event line")(
      "keys-topic", po::value<std::string>()->default_value(DistributorOptions{}.keys_topic),
      "compacted topic of the customers' wrapped data keys ('' for none)")(
      "checkpoint-topic", po::value<std::string>()->default_value(DistributorOptions{}.checkpoint_topic),
      "compacted one-partition topic of the \"published up to\" checkpoints")(
      "transaction-events", po::value<std::size_t>()->default_value(DistributorOptions{}.transaction_events_max),
      "events per transaction at most")(
      "transaction-ms", po::value<int>()->default_value(DistributorOptions{}.transaction_time_max_ms),
      "a transaction is committed once this old (ms), however few its events")(
      "operation-timeout-ms", po::value<int>()->default_value(30'000), "timeout of each Kafka operation");
}

std::optional<DistributorOptions> distributor_options(const std::string& command, const po::variables_map& vm) {
  DistributorOptions o;
  o.brokers = vm["brokers"].as<std::string>();
  o.transactional_id = vm["transactional-id"].as<std::string>();
  o.topic_template = vm["topic-template"].as<std::string>();
  o.full_log_topic = vm["full-log-topic"].as<std::string>();
  o.keys_topic = vm["keys-topic"].as<std::string>();
  o.checkpoint_topic = vm["checkpoint-topic"].as<std::string>();
  o.transaction_events_max = vm["transaction-events"].as<std::size_t>();
  o.transaction_time_max_ms = vm["transaction-ms"].as<int>();
  o.operation_timeout_ms = vm["operation-timeout-ms"].as<int>();
  o.message_timeout_ms = std::min(o.message_timeout_ms, o.operation_timeout_ms);
  if (o.transaction_events_max == 0) {
    std::cerr << "csctl " << command << ": --transaction-events must be at least 1\n";
    return std::nullopt;
  }
  if (o.transaction_time_max_ms <= 0 || o.transaction_time_max_ms >= o.transaction_timeout_ms) {
    std::cerr << "csctl " << command << ": --transaction-ms must be between 1 and "
              << o.transaction_timeout_ms - 1 << " (below the transaction timeout)\n";
    return std::nullopt;
  }
  if (vm.count("routing")) {
    auto routing = Routing::from_file(vm["routing"].as<std::string>());
    if (!routing.ok()) {
      std::cerr << "csctl " << command << ": " << routing.error().message() << "\n";
      return std::nullopt;
    }
    o.routing = std::move(*routing);
  }
  return o;
}

}  // namespace

int run_publish(const Args& args) {
  po::options_description options("publish options");
  add_data_dir_option(options);
  add_kafka_options(options);
  options.add_options()("once", "publish up to the head, then exit")(
      "poll-interval-ms", po::value<int>()->default_value(200), "how often to look for new events");
  po::variables_map vm;
  if (auto code = parse_options("publish", "--data-dir D --brokers B [--once]", options, args, vm)) return *code;
  auto config = distributor_options("publish", vm);
  if (!config) return exit_error;
  config->stop_requested = &stop_requested;
  auto log = open_log_or_report("publish", vm, /*create_if_missing=*/false);
  if (!log) return exit_error;
  signal(SIGINT, request_stop);
  signal(SIGTERM, request_stop);

  // Opens a distributor, retrying while the broker is unreachable.
  auto open = [&]() -> std::unique_ptr<Distributor> {
    for (int attempt = 0;; ++attempt) {
      auto opened = Distributor::open(*log, *config);
      if (opened.ok()) return std::move(*opened);
      std::cerr << "csctl publish: " << opened.error().to_string() << "\n";
      if (opened.error().code() != ErrorCode::retriable || attempt >= reopen_attempts_max || stop_requested) {
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(retry_pause_ms));
    }
  };
  std::unique_ptr<Distributor> distributor = open();
  if (!distributor) return exit_error;
  std::cerr << "publish: resuming after seq " << distributor->checkpoint().value << "\n";
  std::uint64_t total = 0;
  while (!stop_requested) {
    auto n = distributor->publish_to_head();
    if (n.ok()) {
      total += *n;
      if (vm.count("once")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(vm["poll-interval-ms"].as<int>()));
      continue;
    }
    std::cerr << "csctl publish: " << n.error().to_string() << "\n";
    if (n.error().cause() == ErrorCause::stopped) break;
    if (n.error().code() == ErrorCode::invalid_argument) {
      std::cerr << "csctl publish: this record cannot be published as the topics are set up; stopping\n";
      return exit_error;
    }
    if (n.error().cause() == ErrorCause::fenced) {
      std::cerr << "csctl publish: another distributor with this transactional.id took over; stopping\n";
      return exit_error;
    }
    if (n.error().code() == ErrorCode::fatal) {
      // A new producer re-runs init_transactions and reads the checkpoint back.
      distributor.reset();
      distributor = open();
      if (!distributor) return exit_error;
      std::cerr << "publish: reopened, resuming after seq " << distributor->checkpoint().value << "\n";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(retry_pause_ms));
  }
  std::cerr << "published " << total << " events; checkpoint at seq " << distributor->checkpoint().value << "\n";
  if (stop_requested && distributor->checkpoint() < log->head()) {
    // Stopped in the middle of a catch-up: the open transaction was aborted.
    std::cerr << "csctl publish: stopped by a signal before the head (seq " << log->head().value << ")\n";
    return exit_error;
  }
  return exit_ok;
}

int run_republish(const Args& args) {
  po::options_description options("republish options");
  add_data_dir_option(options);
  add_kafka_options(options);
  options.add_options()("from-seq", po::value<std::uint64_t>()->required(), "first sequence")(
      "to-seq", po::value<std::uint64_t>()->required(), "last sequence")(
      "service", po::value<std::string>(), "only to this service (and not to the full-log topic)");
  po::variables_map vm;
  if (auto code = parse_options("republish", "--data-dir D --brokers B --from-seq A --to-seq B [--service S]",
                                options, args, vm)) {
    return *code;
  }
  auto config = distributor_options("republish", vm);
  if (!config) return exit_error;
  // Its own transactional.id, so it never fences the running distributor.
  config->transactional_id += ".republish";
  auto log = open_log_or_report("republish", vm, /*create_if_missing=*/false);
  if (!log) return exit_error;
  auto distributor = Distributor::open(*log, *config);
  if (!distributor.ok()) {
    std::cerr << "csctl republish: " << distributor.error().to_string() << "\n";
    return exit_error;
  }
  std::optional<std::string> service;
  if (vm.count("service")) service = vm["service"].as<std::string>();
  auto n = (*distributor)->republish(Sequence(vm["from-seq"].as<std::uint64_t>()),
                                     Sequence(vm["to-seq"].as<std::uint64_t>()), service);
  if (!n.ok()) {
    std::cerr << "csctl republish: " << n.error().to_string() << "\n";
    return exit_error;
  }
  std::cerr << "republished " << *n << " events (consumers de-duplicate by the seq header)\n";
  return exit_ok;
}

}  // namespace cs::csctl

namespace cs::csctl {

// csctl restore --from-kafka: a log rebuilt from what the distributor
// published (the keys topic, then the full log), on a fresh machine.
int run_restore(const Args& args) {
  po::options_description options("restore options");
  add_data_dir_option(options);
  options.add_options()("from-kafka", "read the published log back from Kafka (the only source for now)")(
      "brokers", po::value<std::string>()->required(), "Kafka bootstrap servers (host:port)")(
      "full-log-topic", po::value<std::string>()->default_value(RestoreOptions{}.full_log_topic),
      "the topic that carries every event line")(
      "keys-topic", po::value<std::string>()->default_value(RestoreOptions{}.keys_topic),
      "compacted topic of the customers' wrapped data keys")(
      "operation-timeout-ms", po::value<int>()->default_value(30'000), "timeout of each Kafka operation");
  po::variables_map vm;
  if (auto code = parse_options("restore", "--from-kafka --brokers B --data-dir D [--master-key FILE]", options, args,
                                vm)) {
    return *code;
  }
  if (!vm.count("from-kafka")) {
    std::cerr << "csctl restore: give --from-kafka (or use csctl import for an export)\n";
    return exit_error;
  }
  RestoreOptions o;
  o.brokers = vm["brokers"].as<std::string>();
  o.full_log_topic = vm["full-log-topic"].as<std::string>();
  o.keys_topic = vm["keys-topic"].as<std::string>();
  o.operation_timeout_ms = vm["operation-timeout-ms"].as<int>();
  o.stop_requested = &stop_requested;
  // The keys are wrapped by the original master key: it must be given, never made.
  auto log = open_log_or_report("restore", vm, /*create_if_missing=*/true, /*sync=*/true, /*read_only=*/false,
                                /*create_master_key=*/false);
  if (!log) return exit_error;
  signal(SIGINT, request_stop);
  signal(SIGTERM, request_stop);
  auto report = restore_from_kafka(*log, o);
  if (!report.ok()) {
    std::cerr << "csctl restore: " << report.error().to_string() << "\n";
    return report.error().code() == ErrorCode::corruption ? exit_findings : exit_error;
  }
  std::cerr << "restored " << report->events << " events and " << report->data_keys << " data keys";
  if (report->duplicates > 0) std::cerr << " (" << report->duplicates << " records seen twice, skipped)";
  std::cerr << "; head seq " << report->head.value << ", head hash " << hash_to_hex(report->head_hash) << "\n";
  return exit_ok;
}

}  // namespace cs::csctl
