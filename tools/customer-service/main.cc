// customer-service: the daemon (service/include/cs/daemon.h). Flags, or the
// same keys in a --config file ("key = value" lines; flags win); structured
// JSON log lines on stderr, one line "ready" on stdout once it consumes.
// Exit: 0 after SIGTERM/SIGINT, 1 when it fails, 2 on a usage error.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cs/daemon.h"
#include "cs/time.h"

namespace po = boost::program_options;

namespace {

std::atomic<bool> stop_requested{false};
void request_stop(int) { stop_requested = true; }

std::mutex log_mu;
void log_line(std::string_view level, std::string_view event, const nlohmann::json& fields) {
  nlohmann::ordered_json line;
  line["ts"] = cs::format_timestamp_millis(cs::Timestamp::now());
  line["level"] = level;
  line["event"] = event;
  for (const auto& [key, value] : fields.items()) line[key] = value;
  // Replace bad UTF-8 rather than throw: a Kafka error string is not ours.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(log_mu);
  std::cerr << text << '\n' << std::flush;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  po::options_description options("customer-service options");
  options.add_options()("help", "this help")(
      "config", po::value<std::string>(), "a file of the same keys as the flags (key = value); flags win")(
      "data-dir", po::value<std::string>(), "the store's directory (created when absent)")(
      "master-key", po::value<std::string>(),
      "the master key file sealing personal data (default: <data-dir>.master-key, created 0600 for a new store)")(
      "brokers", po::value<std::string>(), "Kafka bootstrap servers (host:port,...)")(
      "services", po::value<std::string>(), "services file: each service's secret (and HTTP token)")(
      "insecure", po::bool_switch(), "without --services: trust each request's sourceService (development only)")(
      "authz", po::value<std::string>(), "authorization matrix file (JSON); default: design.md's table")(
      "routing", po::value<std::string>(), "routing file (JSON); default: design.md's table")(
      "group", po::value<std::string>()->default_value("customer-service"), "the request consumer's group id")(
      "transactional-id", po::value<std::string>()->default_value("customer-service"),
      "the distributor's stable transactional id")(
      "topic-prefix", po::value<std::string>()->default_value(""),
      "prepended to every topic read or written (several environments on one cluster)")(
      "topic-template", po::value<std::string>()->default_value("{event}"), "{event} or {service}.{event}")(
      "partitions", po::value<int>()->default_value(3), "partitions of the topics the daemon creates")(
      "http", po::value<std::string>()->default_value("127.0.0.1:8080"),
      "HTTP API, /healthz, /readyz, /metrics (host:port; port 0: any free one; 'off': none)")(
      "publish-interval-ms", po::value<int>()->default_value(100), "the distributor looks for new work this often")(
      "transaction-ms", po::value<int>()->default_value(100), "a transaction is committed once this old (ms)")(
      "transaction-settle-ms", po::value<int>()->default_value(1),
      "least time between a commit and the next transaction (ms; spares librdkafka's 20 ms retry of a partition "
      "added while the broker still writes the last commit's markers)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) {
        std::cerr << "customer-service: --config " << path << ": cannot read it\n";
        return 2;
      }
      po::store(po::parse_config_file(in, options), vm);
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "customer-service: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << "usage: customer-service --data-dir DIR --brokers HOST:PORT (--services FILE | --insecure) "
                 "[--master-key FILE] [options]\n\n"
              << options;
    return 0;
  }
  for (const char* required : {"data-dir", "brokers"}) {
    if (!vm.count(required)) {
      std::cerr << "customer-service: --" << required << " is required (customer-service --help)\n";
      return 2;
    }
  }
  cs::DaemonOptions o;
  o.data_dir = vm["data-dir"].as<std::string>();
  if (vm.count("master-key")) o.master_key_file = vm["master-key"].as<std::string>();
  o.brokers = vm["brokers"].as<std::string>();
  if (vm.count("services")) o.services_file = vm["services"].as<std::string>();
  o.insecure = vm["insecure"].as<bool>();
  if (vm.count("authz")) o.authz_file = vm["authz"].as<std::string>();
  if (vm.count("routing")) o.routing_file = vm["routing"].as<std::string>();
  o.group_id = vm["group"].as<std::string>();
  o.transactional_id = vm["transactional-id"].as<std::string>();
  o.topic_prefix = vm["topic-prefix"].as<std::string>();
  o.topic_template = vm["topic-template"].as<std::string>();
  o.topic_partitions = vm["partitions"].as<int>();
  o.http_address = vm["http"].as<std::string>() == "off" ? "" : vm["http"].as<std::string>();
  o.publish_interval_ms = vm["publish-interval-ms"].as<int>();
  o.transaction_time_max_ms = vm["transaction-ms"].as<int>();
  o.transaction_settle_ms = vm["transaction-settle-ms"].as<int>();
  if (o.transaction_settle_ms < 0 || o.transaction_settle_ms > 1'000) {
    std::cerr << "customer-service: --transaction-settle-ms must be between 0 and 1000\n";
    return 2;
  }
  if (o.topic_partitions < 1 || o.publish_interval_ms < 1 || o.transaction_time_max_ms < 1 ||
      o.transaction_time_max_ms >= 60'000) {
    std::cerr << "customer-service: --partitions, --publish-interval-ms and --transaction-ms must be positive "
                 "(--transaction-ms below 60000)\n";
    return 2;
  }
  if (o.services_file && o.insecure) {
    std::cerr << "customer-service: --services and --insecure exclude each other\n";
    return 2;
  }
  o.stop_requested = &stop_requested;
  o.on_ready = [](int http_port) {
    if (http_port > 0) std::cout << "http " << http_port << "\n";
    std::cout << "ready" << std::endl;
  };
  o.log = log_line;
  struct sigaction stop {};
  stop.sa_handler = request_stop;
  sigaction(SIGTERM, &stop, nullptr);
  sigaction(SIGINT, &stop, nullptr);

  cs::Status result;
  try {
    result = cs::run_daemon(o);
  } catch (const std::exception& e) {
    log_line("error", "crashed", {{"error", e.what()}});
    return 1;
  }
  if (!result.ok()) {
    std::cerr << "customer-service: " << result.error().message() << "\n";
    return result.error().code() == cs::ErrorCode::invalid_argument ? 2 : 1;
  }
  return 0;
}
