// csctl request: sends one request to the daemon as a platform service does
// (signed with the service's secret from the --services file) and prints the
// answer: the customer.request.result record, or customer.data.response for
// reads. Exit 0 accepted, 1 rejected, 2 usage error or no answer in time.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>

#include <nlohmann/json.hpp>

#include "command.h"
#include "cs/json_codec.h"
#include "cs/outbox.h"
#include "cs/request.h"
#include "cs/service_credentials.h"

namespace cs::csctl {
namespace {

constexpr int watermark_timeout_ms = 10'000;

// The secret of `service` in a services file; nullopt (and a message) when absent.
std::optional<std::string> secret_of(const std::string& path, const std::string& service) {
  auto doc = read_json_file(path);
  if (!doc.ok()) {
    std::cerr << "csctl request: --services " << path << ": " << doc.error().message() << "\n";
    return std::nullopt;
  }
  if (!ServiceCredentials::from_json(*doc).ok()) {
    std::cerr << "csctl request: --services " << path << " is not a services file\n";
    return std::nullopt;
  }
  const auto& services = (*doc)["services"];
  if (!services.contains(service) || !services[service].contains("secret")) {
    std::cerr << "csctl request: " << path << " has no secret for " << service << "\n";
    return std::nullopt;
  }
  return services[service]["secret"].get<std::string>();
}

rd_kafka_t* client(rd_kafka_type_t type, const std::string& brokers, std::string& error) {
  char buf[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {{"bootstrap.servers", brokers}};
  if (type == RD_KAFKA_PRODUCER) settings.emplace_back("enable.idempotence", "true");
  if (type == RD_KAFKA_CONSUMER) {
    settings.emplace_back("group.id", "csctl-request");
    settings.emplace_back("isolation.level", "read_committed");
    settings.emplace_back("enable.auto.commit", "false");
  }
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), buf, sizeof buf) != RD_KAFKA_CONF_OK) {
      error = buf;
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, buf, sizeof buf);
  if (!rk) error = buf;
  return rk;
}

}  // namespace

int run_request(const Args& args) {
  po::options_description options("request options");
  options.add_options()("brokers", po::value<std::string>()->required(), "Kafka bootstrap servers (host:port)")(
      "topic", po::value<std::string>()->required(), "a request topic (admin.customer.action, ...)")(
      "service", po::value<std::string>()->required(), "the sending service (admin-service, ...)")(
      "services", po::value<std::string>(), "the daemon's services file: the request is signed with the secret")(
      "topic-prefix", po::value<std::string>()->default_value(""), "as given to the daemon")(
      "timeout-ms", po::value<int>()->default_value(30'000), "how long to wait for the answer")(
      "request", po::value<std::string>(), "the request JSON (default: stdin)");
  po::positional_options_description positional;
  positional.add("request", 1);
  po::variables_map vm;
  if (auto code = parse_options("request",
                                "--brokers B --topic T --service S [--services FILE] ['{\"action\":...}']",
                                options, args, vm, &positional)) {
    return *code;
  }
  std::string text;
  if (vm.count("request")) {
    text = vm["request"].as<std::string>();
  } else {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  auto doc = parse_json_document(text);
  if (!doc.ok() || !doc->is_object()) {
    std::cerr << "csctl request: the request must be a JSON object"
              << (doc.ok() ? std::string() : ": " + doc.error().message()) << "\n";
    return exit_error;
  }
  nlohmann::json request = *doc;
  const std::string service = vm["service"].as<std::string>();
  const std::string prefix = vm["topic-prefix"].as<std::string>();
  const std::string topic = vm["topic"].as<std::string>();
  if (!request.contains("requestId")) {
    std::random_device rd;
    request["requestId"] = Uuid::from_words((std::uint64_t{rd()} << 32) | rd(), (std::uint64_t{rd()} << 32) | rd())
                               .to_string();
  }
  if (!request.contains("sourceService")) request["sourceService"] = service;
  const std::string value = request.dump();
  std::vector<std::pair<std::string, std::string>> headers = {{"x-service", service}};
  if (vm.count("services")) {
    auto secret = secret_of(vm["services"].as<std::string>(), service);
    if (!secret) return exit_error;
    headers.emplace_back("x-signature", hmac_sha256_hex(*secret, value));
  }
  const bool read = topic == "customer.data.request" ||
                    (topic == "accounting.customer.request" && request.value("action", "") == "billing_info");
  const std::string answer_topic = prefix + (read ? data_response_topic : request_result_topic);

  std::string error;
  rd_kafka_t* consumer = client(RD_KAFKA_CONSUMER, vm["brokers"].as<std::string>(), error);
  rd_kafka_t* producer = consumer ? client(RD_KAFKA_PRODUCER, vm["brokers"].as<std::string>(), error) : nullptr;
  if (!producer) {
    std::cerr << "csctl request: " << error << "\n";
    if (consumer) rd_kafka_destroy(consumer);
    return exit_error;
  }
  // Read the answer topic from its current end, fixed before the request leaves.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(8);
  if (rd_kafka_metadata(consumer, 1, nullptr, &md, watermark_timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (answer_topic != md->topics[i].topic) continue;
      for (int p = 0; p < md->topics[i].partition_cnt; ++p) {
        std::int64_t low = 0, high = 0;
        const int partition = md->topics[i].partitions[p].id;
        rd_kafka_query_watermark_offsets(consumer, answer_topic.c_str(), partition, &low, &high, watermark_timeout_ms);
        rd_kafka_topic_partition_list_add(parts, answer_topic.c_str(), partition)->offset = high;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  int code = exit_error;
  if (parts->cnt == 0) {
    std::cerr << "csctl request: no topic " << answer_topic << " (is the daemon running with this --topic-prefix?)\n";
  } else {
    rd_kafka_assign(consumer, parts);
    rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
    for (const auto& [n, v] : headers) rd_kafka_header_add(h, n.data(), -1, v.data(), static_cast<ssize_t>(v.size()));
    const std::string key = request.value("customerId", request["requestId"].get<std::string>());
    const std::string full_topic = prefix + topic;
    rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(full_topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
                      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (rd_kafka_flush(producer, vm["timeout-ms"].as<int>()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "csctl request: the request was not delivered to " << full_topic << "\n";
    } else {
      std::cerr << "sent " << value << " to " << full_topic << "\n";
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(vm["timeout-ms"].as<int>());
      while (code == exit_error && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
        if (!m) continue;
        if (!m->err && m->payload) {
          std::string answer(static_cast<const char*>(m->payload), m->len);
          auto parsed = nlohmann::json::parse(answer, nullptr, false);
          if (parsed.is_object() && parsed.value("requestId", nlohmann::json()) == request["requestId"]) {
            std::cout << answer << "\n";
            code = parsed.value("status", "") == "accepted" ? exit_ok : exit_findings;
          }
        }
        rd_kafka_message_destroy(m);
      }
      if (code == exit_error) std::cerr << "csctl request: no answer on " << answer_topic << " in time\n";
    }
  }
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_destroy(producer);
  return code;
}

}  // namespace cs::csctl
