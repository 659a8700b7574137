// The daemon's HTTP side, through the real process: every route served is
// in docs/openapi.yaml and back; bearer tokens and the matrix give 401/403;
// commands answer with the Kafka side's answer record and the codes of the
// Kafka answers as HTTP statuses; an Idempotency-Key replays; bad bodies
// name what is wrong; /metrics passes promtool when it is installed.
#include <httplib.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "cs/http_api.h"
#include "daemon_harness.h"
#include "test_support.h"

namespace cs {
namespace {

constexpr const char* admin_token = "admin-token-0123456789abcdef";
constexpr const char* mobile_token = "mobile-token-0123456789abcdef";
constexpr const char* sme_token = "sme-token-0123456789abcdefgh";

// (method, path) of every operation in docs/openapi.yaml.
std::set<std::pair<std::string, std::string>> documented_operations() {
  std::ifstream in(std::string(CS_SOURCE_DIR) + "/docs/openapi.yaml");
  std::set<std::pair<std::string, std::string>> out;
  std::string path;
  bool in_paths = false;
  const std::regex path_line(R"(^  (/[^:]*):\s*$)"), method_line(R"(^    (get|post|patch|delete|put):)");
  for (std::string line; std::getline(in, line);) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (in_paths && !line.empty() && line[0] != ' ' && line[0] != '#') in_paths = false;
    if (!in_paths) continue;
    std::smatch m;
    if (std::regex_match(line, m, path_line)) path = m[1];
    if (std::regex_search(line, m, method_line)) {
      std::string method = m[1];
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      out.emplace(method, path);
    }
  }
  return out;
}

TEST(HttpApiTest, EveryRouteServedIsDocumentedAndBack) {
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& r : HttpApi::routes()) served.insert(r);
  auto documented = documented_operations();
  ASSERT_GT(documented.size(), 20u);
  for (const auto& r : served) EXPECT_TRUE(documented.count(r)) << r.first << " " << r.second << " not in openapi.yaml";
  for (const auto& r : documented) EXPECT_TRUE(served.count(r)) << r.first << " " << r.second << " documented, not served";
}

class HttpDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(test::kafka_brokers().empty()) << "set CS_KAFKA_BROKERS";
    std::ofstream(dir_ / "services.json") << R"({"services":{
      "admin-service":{"secret":"admin-secret-0123456789abcdef","token":")" << admin_token << R"("},
      "app-mobile-service":{"secret":"mobile-secret-0123456789abcd","token":")" << mobile_token << R"("},
      "portfolio-sme-service":{"secret":"sme-secret-0123456789abcdef","token":")" << sme_token << R"("}}})";
    const std::string prefix = "h" + std::to_string(getpid()) + "x" + std::to_string(std::random_device{}() % 100000) + ".";
    daemon_ = std::make_unique<test::DaemonProcess>(
        dir_.path(), std::vector<std::string>{"--data-dir", (dir_ / "data").string(), "--brokers", test::kafka_brokers(),
                                              "--services", (dir_ / "services.json").string(), "--topic-prefix", prefix,
                                              "--group", prefix + "g", "--transactional-id", prefix + "tx",
                                              "--partitions", "1", "--http", "127.0.0.1:0"});
    ASSERT_TRUE(daemon_->start()) << daemon_->stderr_text();
    std::smatch m;
    const std::string out = daemon_->stdout_text();
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(http (\d+))"))) << out;
    port_ = std::stoi(m[1]);
  }
  httplib::Result call(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body = "", httplib::Headers headers = {}) {
    httplib::Client client("127.0.0.1", port_);
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    if (method == "GET") return client.Get(path, headers);
    if (method == "POST") return client.Post(path, headers, body, "application/json");
    if (method == "PATCH") return client.Patch(path, headers, body, "application/json");
    return client.Delete(path, headers);
  }
  test::TempDir dir_;
  std::unique_ptr<test::DaemonProcess> daemon_;
  int port_ = 0;
};

TEST_F(HttpDaemonTest, ACustomerReadsAsOfASequenceOrAMoment) {
  auto seq_of = [](const httplib::Result& r) -> std::uint64_t {
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_LT(r->status, 300) << r->body;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() && !j["events"].empty() ? j["events"][0]["seq"].get<std::uint64_t>() : 0;
  };
  const std::string admin_id = R"("adminId":"00000000-0000-4000-8000-000000000001")";
  auto created = call("POST", "/v1/customers", admin_token,
                      R"({"customerType":"sme","name":"Point Co","email":"p@point.example"})");
  ASSERT_TRUE(created);
  const std::string customer = nlohmann::json::parse(created->body)["customerId"];
  const std::uint64_t at_creation = seq_of(created);
  const std::uint64_t at_validation =
      seq_of(call("POST", "/v1/customers/" + customer + "/validate", admin_token, "{" + admin_id + "}"));
  const std::uint64_t at_allocation = seq_of(call("POST", "/v1/customers/" + customer + "/tokens/allocate",
                                                  admin_token, R"({"amount":10,"reason":"welcome",)" + admin_id + "}"));
  seq_of(call("PATCH", "/v1/customers/" + customer, admin_token, R"({"changes":{"name":"Renamed Point"}})"));
  ASSERT_TRUE(at_creation > 0 && at_creation < at_validation && at_validation < at_allocation);

  auto get = [&](const std::string& path) {
    auto r = call("GET", path, admin_token);
    EXPECT_TRUE(r);
    if (!r) return nlohmann::json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  const std::string base = "/v1/customers/" + customer;
  auto first = get(base + "?toSeq=" + std::to_string(at_creation));
  EXPECT_EQ(first["status"], "pending");
  EXPECT_EQ(first["name"], "Point Co");
  auto validated = get(base + "?toSeq=" + std::to_string(at_validation));
  EXPECT_EQ(validated["status"], "validated");
  EXPECT_EQ(validated["name"], "Point Co");
  EXPECT_TRUE(get(base + "/view?toSeq=" + std::to_string(at_validation))["tokens"].is_null());
  EXPECT_EQ(get(base + "/tokens?toSeq=" + std::to_string(at_validation))["balance"], 0);
  EXPECT_EQ(get(base + "/view?toSeq=" + std::to_string(at_allocation))["tokens"]["balance"], 10);
  EXPECT_EQ(get(base + "?toSeq=" + std::to_string(at_allocation))["name"], "Point Co");
  // Now, and as of a moment after everything: the same as the read models.
  auto now = get(base);
  EXPECT_EQ(now["name"], "Renamed Point");
  EXPECT_EQ(get(base + "?asOf=2100-01-01T00:00:00Z"), now);
  EXPECT_EQ(get(base + "/view?asOf=2100-01-01T00:00:00Z"), get(base + "/view"));
}

TEST_F(HttpDaemonTest, AnEraseLeavesTheCustomerErasedForEveryQuery) {
  auto created = call("POST", "/v1/customers", admin_token,
                      R"({"customerType":"sme","name":"Gone Co","email":"gone@gone.example"})");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string customer = nlohmann::json::parse(created->body)["customerId"];
  const std::string admin = R"({"adminId":"00000000-0000-4000-8000-000000000001"})";
  auto denied = call("POST", "/v1/customers/" + customer + "/erase", mobile_token, admin);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403) << denied->body;
  auto erased = call("POST", "/v1/customers/" + customer + "/erase", admin_token, admin);
  ASSERT_TRUE(erased);
  ASSERT_EQ(erased->status, 200) << erased->body;
  EXPECT_EQ(nlohmann::json::parse(erased->body)["events"][0]["type"], "customer.erased");
  for (const std::string path : {"", "?asOf=2100-01-01T00:00:00Z"}) {
    auto got = call("GET", "/v1/customers/" + customer + path, admin_token);
    ASSERT_TRUE(got);
    ASSERT_EQ(got->status, 200) << got->body;
    auto c = nlohmann::json::parse(got->body);
    EXPECT_TRUE(c["name"].is_null()) << path;
    EXPECT_TRUE(c["email"].is_null()) << path;
    EXPECT_EQ(c["erased"], true) << path;
    EXPECT_EQ(c["status"], "pending") << "everything else unchanged";
  }
  auto again = call("POST", "/v1/customers/" + customer + "/erase", admin_token, admin);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;
  auto update = call("PATCH", "/v1/customers/" + customer, admin_token, R"({"changes":{"name":"Back"}})");
  ASSERT_TRUE(update);
  EXPECT_EQ(update->status, 409) << update->body;
}

TEST_F(HttpDaemonTest, CommandsAndQueriesFollowTheRulesWithTheirStatusCodes) {
  const std::string key = "6f1c0d7e-1111-4a2b-9c3d-000000000001";
  auto created = call("POST", "/v1/customers", admin_token,
                      R"({"customerType":"sme","name":"Http Co","email":"h@http.example"})",
                      {{"Idempotency-Key", key}});
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  auto answer = nlohmann::json::parse(created->body);
  EXPECT_EQ(answer["status"], "accepted");
  EXPECT_EQ(answer["events"][0]["type"], "customer.created");
  const std::string customer = answer["customerId"];

  auto replay = call("POST", "/v1/customers", admin_token,
                     R"({"customerType":"sme","name":"Http Co","email":"h@http.example"})", {{"Idempotency-Key", key}});
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->status, 201);
  EXPECT_EQ(replay->body, created->body) << "the first answer again";
  EXPECT_EQ(replay->get_header_value("Idempotent-Replayed"), "true");

  struct Case {
    std::string method, path, token, body;
    int status;
    std::string code;
  };
  const std::string admin_id = R"("adminId":"00000000-0000-4000-8000-000000000001")";
  const std::vector<Case> cases = {
      {"GET", "/v1/customers/" + customer, "", "", 401, "unauthenticated"},
      {"GET", "/v1/customers/" + customer, "not-a-known-token-at-all", "", 401, "unauthenticated"},
      {"POST", "/v1/customers/" + customer + "/validate", mobile_token, "{" + admin_id + "}", 403, "forbidden"},
      {"POST", "/v1/customers/" + customer + "/validate", admin_token, "{" + admin_id, 400, "invalid"},
      {"POST", "/v1/customers/" + customer + "/validate", admin_token, "{}", 400, "invalid"},
      {"POST", "/v1/customers/not-a-uuid/validate", admin_token, "{" + admin_id + "}", 400, "invalid"},
      {"POST", "/v1/customers/00000000-0000-4000-8000-00000000abcd/validate", admin_token, "{" + admin_id + "}", 404,
       "not_found"},
      {"POST", "/v1/customers/" + customer + "/suspend", admin_token, "{" + admin_id + R"(,"reason":"r"})", 409,
       "conflict"},
      {"POST", "/v1/customers/" + customer + "/validate", admin_token, "{" + admin_id + "}", 200, ""},
      {"POST", "/v1/customers/" + customer + "/tokens/use", mobile_token,
       R"({"amount":5,"userId":"00000000-0000-4000-8000-000000000002","feature":"export"})", 422,
       "insufficient_tokens"},
      {"POST", "/v1/customers/" + customer + "/tokens/allocate", admin_token,
       R"({"amount":10,"reason":"welcome",)" + admin_id + "}", 200, ""},
      {"POST", "/v1/customers/" + customer + "/tokens/allocate", admin_token,
       R"({"amount":-10,"reason":"welcome",)" + admin_id + "}", 400, "invalid"},
      {"PATCH", "/v1/customers/" + customer, sme_token, R"({"changes":{"name":"Renamed"}})", 200, ""},
      {"GET", "/v1/customers/" + customer + "?asOf=2000-01-01T00:00:00Z", admin_token, "", 404, "not_found"},
      {"GET", "/v1/customers/" + customer + "?asOf=yesterday", admin_token, "", 400, "invalid"},
      {"GET", "/v1/customers/" + customer + "/view?toSeq=0", admin_token, "", 400, "invalid"},
      {"GET", "/v1/customers/" + customer + "/tokens?toSeq=12x", admin_token, "", 400, "invalid"},
      {"GET", "/v1/customers?status=nonsense", admin_token, "", 400, "invalid"},
      {"GET", "/v1/users/00000000-0000-4000-8000-000000000009", admin_token, "", 404, "not_found"},
      {"GET", "/v1/no/such/route", admin_token, "", 404, "not_found"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path + " " + c.body);
    auto r = call(c.method, c.path, c.token, c.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, c.status) << r->body;
    auto body = nlohmann::json::parse(r->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r->body;
    if (!c.code.empty()) {
      EXPECT_EQ(body["code"], c.code) << r->body;
      EXPECT_FALSE(body["message"].get<std::string>().empty());
    }
  }
  auto view = call("GET", "/v1/customers/" + customer + "/view", admin_token);
  ASSERT_TRUE(view);
  ASSERT_EQ(view->status, 200) << view->body;
  auto v = nlohmann::json::parse(view->body);
  EXPECT_EQ(v["customer"]["status"], "validated");
  EXPECT_EQ(v["customer"]["name"], "Renamed");
  EXPECT_EQ(v["tokens"]["balance"], 10);
  auto page = call("GET", "/v1/customers?status=validated&type=sme&limit=10", admin_token);
  ASSERT_TRUE(page);
  EXPECT_EQ(nlohmann::json::parse(page->body)["customers"].size(), 1u);

  // A body over the limit is refused before it is read.
  auto huge = call("POST", "/v1/customers", admin_token, std::string(http_body_bytes_max + 10, ' '));
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);

  auto health = call("GET", "/healthz", "");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = call("GET", "/readyz", "");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  auto metrics = call("GET", "/metrics", "");
  ASSERT_TRUE(metrics);
  for (const char* family : {"customer_service_events_appended_total", "customer_service_log_head_seq",
                             "customer_service_append_duration_seconds", "customer_service_requests_total",
                             "customer_service_request_duration_seconds",
                             "customer_service_publish_checkpoint_seq", "customer_service_publish_lag_events",
                             "customer_service_publish_lag_seconds", "customer_service_transactions_total",
                             "customer_service_transaction_duration_seconds",
                             "customer_service_transaction_commit_seconds",
                             "customer_service_projection_seq", "process_resident_memory_bytes"}) {
    // (customer_service_consumer_lag and _dlq_total show with their first series.)
    EXPECT_NE(metrics->body.find(std::string("# TYPE ") + family), std::string::npos) << family;
  }
  EXPECT_EQ(metrics->body.find("h@http.example"), std::string::npos) << "personal data in a label";
  EXPECT_EQ(metrics->body.find("Http Co"), std::string::npos) << "personal data in a label";
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::ofstream(dir_ / "metrics.txt") << metrics->body;
    const std::string check = "promtool check metrics < " + (dir_ / "metrics.txt").string() + " > " +
                              (dir_ / "promtool.out").string() + " 2>&1";
    EXPECT_EQ(std::system(check.c_str()), 0) << std::ifstream(dir_ / "promtool.out").rdbuf();
  }
  auto spec = call("GET", "/openapi.yaml", "");
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->body.rfind("openapi: 3", 0), 0u);
  auto status = daemon_->stop(SIGTERM, std::chrono::seconds(10));
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon_->stderr_text();
}

// A real Prometheus (Debian's package) scrapes the daemon; after a burst of
// requests every PromQL expression of the Grafana dashboard evaluates
// through Prometheus's HTTP API, and the throughput panels have series.
TEST_F(HttpDaemonTest, ARealPrometheusEvaluatesEveryDashboardExpression) {
  if (std::system("command -v prometheus >/dev/null 2>&1") != 0) {
    // Not a skip: the README's test command installs it, and a skipped
    // check would pass a machine where the dashboard was never evaluated.
    FAIL() << "prometheus is not installed (tools/setup.sh installs it)";
  }
  const int prom_port = 19600 + static_cast<int>(getpid() % 300);
  std::ofstream(dir_ / "prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n"
                                         << "  - job_name: customer-service\n    static_configs:\n"
                                         << "      - targets: ['127.0.0.1:" << port_ << "']\n";
  pid_t prom = fork();
  ASSERT_GE(prom, 0);
  if (prom == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string storage = "--storage.tsdb.path=" + (dir_ / "tsdb").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(prom_port);
    execlp("prometheus", "prometheus", config.c_str(), storage.c_str(), listen.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reaper{prom};
  // A burst: creations, validations, token use (some rejected), a bad body.
  for (int i = 0; i < 20; ++i) {
    auto r = call("POST", "/v1/customers", admin_token,
                  R"({"customerType":"sme","name":"P)" + std::to_string(i) + R"(","email":"p@p.example"})");
    ASSERT_TRUE(r && r->status == 201);
    const std::string id = nlohmann::json::parse(r->body)["customerId"];
    call("POST", "/v1/customers/" + id + "/tokens/use", mobile_token,
         R"({"amount":5,"userId":"00000000-0000-4000-8000-000000000002","feature":"x"})");
    call("POST", "/v1/customers/" + id + "/validate", admin_token, "{");
  }
  std::ifstream dashboard_file(std::string(CS_SOURCE_DIR) + "/docs/grafana/customer-service.json");
  auto dashboard = nlohmann::json::parse(dashboard_file);
  httplib::Client prometheus("127.0.0.1", prom_port);
  auto query = [&](const std::string& expr) -> nlohmann::json {
    auto r = prometheus.Get("/api/v1/query", httplib::Params{{"query", expr}}, httplib::Headers{});
    if (!r || r->status != 200) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  // Until the throughput panel has data (two scrapes at least), up to 60 s.
  const std::string throughput = "sum by (status) (rate(customer_service_requests_total[1m]))";
  for (int i = 0; i < 120; ++i) {
    auto r = query(throughput);
    if (r.is_object() && !r["data"]["result"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::size_t expressions = 0;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      const std::string expr = target["expr"];
      SCOPED_TRACE(panel["title"].get<std::string>() + ": " + expr);
      auto r = query(expr);
      ASSERT_TRUE(r.is_object()) << "Prometheus did not answer";
      EXPECT_EQ(r["status"], "success") << r.dump();
      ++expressions;
      if (panel["title"].get<std::string>().find("throughput") != std::string::npos) {
        EXPECT_FALSE(r["data"]["result"].empty()) << "a throughput panel without series";
      }
    }
  }
  EXPECT_GE(expressions, 12u);
}

}  // namespace
}  // namespace cs
