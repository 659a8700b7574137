// The daemon as its users run it: the real process, a real broker. The
// seed's admin action becomes customer.validated on the routed topics and an
// answer; a stop is clean and quick; a second process on the same data dir is
// refused; a corpus of bad records is answered or dead-lettered while valid
// requests around them are applied.
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "cs/projection_engine.h"
#include "cs/request.h"
#include "cs/service_credentials.h"
#include "daemon_harness.h"
#include "design_matrix.h"
#include "test_support.h"

namespace cs {
namespace {

const std::map<std::string, std::string> secrets = {
    {"admin-service", "admin-secret-0123456789abcdef"},
    {"accounting-service", "accounting-secret-0123456789"},
    {"app-mobile-service", "mobile-secret-0123456789abcd"},
    {"portfolio-sme-service", "sme-secret-0123456789abcdef"},
    {"portfolio-institution-service", "institution-secret-012345678"},
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(test::kafka_brokers().empty()) << "set CS_KAFKA_BROKERS (tools/test.sh starts a broker)";
    nlohmann::json services;
    for (const auto& [name, secret] : secrets) services["services"][name]["secret"] = secret;
    std::ofstream(dir_ / "services.json") << services.dump();
  }
  test::TempDir dir_;
  std::string prefix_ = "d" + std::to_string(getpid()) + "x" + std::to_string(std::random_device{}() % 100000) + ".";
  std::uint64_t next_request_ = 1;

  std::vector<std::string> args(const std::string& data = "data") const {
    return {"--data-dir", (dir_ / data).string(), "--brokers", test::kafka_brokers(), "--services",
            (dir_ / "services.json").string(), "--topic-prefix", prefix_, "--group", prefix_ + "group",
            "--transactional-id", prefix_ + "distributor", "--partitions", "2", "--http", "127.0.0.1:0"};
  }
  std::string topic(const std::string& t) const { return prefix_ + t; }
  std::string new_request_id() { return test::uuid(800'000 + next_request_++).to_string(); }

  // Sends `request` (requestId and sourceService added when absent) signed by `service`.
  std::string send(test::TestProducer& p, const std::string& t, nlohmann::json request,
                   const std::string& service = "admin-service") {
    if (!request.contains("requestId")) request["requestId"] = new_request_id();
    if (!request.contains("sourceService")) request["sourceService"] = service;
    const std::string value = request.dump();
    EXPECT_TRUE(p.send(topic(t), std::nullopt, value,
                       {{"x-service", service}, {"x-signature", hmac_sha256_hex(secrets.at(service), value)}}));
    return request["requestId"];
  }
  std::vector<test::KafkaRecord> answers(std::size_t at_least) {
    return test::consume_until(test::kafka_brokers(), {topic("customer.request.result")},
                               [&](const auto& r) { return r.size() >= at_least; });
  }
  // Every line of `text` as JSON; a failure for each that is not one of the
  // daemon's structured lines (an object with "level" and "event").
  static std::vector<nlohmann::json> structured_lines(const std::string& text) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto v = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(v.is_object() && v.contains("level") && v.contains("event")) << "not a structured line: " << line;
      if (v.is_object()) lines.push_back(std::move(v));
    }
    return lines;
  }
  static std::optional<nlohmann::json> answer_to(const std::vector<test::KafkaRecord>& records, const std::string& id) {
    for (const auto& r : records) {
      auto v = nlohmann::json::parse(r.value, nullptr, false);
      if (v.is_object() && v.value("requestId", "") == id) return v;
    }
    return std::nullopt;
  }
};

TEST_F(DaemonTest, TheSeedsAdminActionBecomesCustomerValidatedForTheRoutedServices) {
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  test::TestProducer producer(test::kafka_brokers());
  const std::string create = send(producer, "customer.update.request",
                                  {{"action", "create"}, {"customerType", "sme"}, {"name", "Acme SME"},
                                   {"email", "ops@acme.example"}});
  ASSERT_TRUE(producer.flush());
  auto records = answers(1);
  auto created = answer_to(records, create);
  ASSERT_TRUE(created) << daemon.stderr_text();
  ASSERT_EQ((*created)["code"], "accepted") << created->dump();
  const std::string customer = (*created)["customerId"];

  // The seed's example, as written there.
  const std::string admin_id = test::uuid(77).to_string();
  const std::string validate = send(producer, "admin.customer.action",
                                    {{"requestId", new_request_id()}, {"sourceService", "admin-service"},
                                     {"customerId", customer}, {"adminId", admin_id}, {"action", "validate"},
                                     {"details", {{"notes", "KYC documents checked"}}}});
  ASSERT_TRUE(producer.flush());
  records = answers(2);
  auto validated = answer_to(records, validate);
  ASSERT_TRUE(validated) << daemon.stderr_text();
  EXPECT_EQ((*validated)["status"], "accepted");
  EXPECT_EQ((*validated)["sourceService"], "admin-service");
  EXPECT_EQ((*validated)["action"], "validate");
  EXPECT_EQ((*validated)["events"][0]["type"], "customer.validated");
  EXPECT_EQ((*validated)["events"][0]["seq"], 2);

  auto events = test::consume_until(test::kafka_brokers(), {topic("customer.validated")},
                                    [](const auto& r) { return r.size() >= 4; });
  std::set<std::string> targets;
  for (const auto& r : events) {
    auto v = nlohmann::json::parse(r.value);
    EXPECT_EQ(v["customerId"], customer);
    EXPECT_EQ(v["adminId"], admin_id);
    EXPECT_TRUE(v.contains("timestamp"));
    EXPECT_EQ(r.key, customer);
    targets.insert(v["targetService"]);
  }
  EXPECT_EQ(events.size(), 4u);
  EXPECT_EQ(targets, (std::set<std::string>{"admin-service", "accounting-service", "app-mobile-service",
                                            "portfolio-sme-service"}))
      << "the institution portfolio does not see an sme customer";

  // SIGTERM: a clean exit well within 10 s; the log line says so.
  const auto before = std::chrono::steady_clock::now();
  auto status = daemon.stop(SIGTERM, std::chrono::seconds(10));
  ASSERT_TRUE(status) << "did not stop within 10 s";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon.stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(10));
  for (const auto& v : structured_lines(daemon.stderr_text())) {
    const std::string line = v.dump();
    EXPECT_EQ(line.find("ops@acme.example"), std::string::npos) << "personal data in the log: " << line;
    EXPECT_EQ(line.find("Acme SME"), std::string::npos) << "personal data in the log: " << line;
  }
}

// librdkafka's own complaints (here: a broker that refuses connections)
// reach stderr as the daemon's structured lines, not in librdkafka's
// "%3|ts|FAIL|..." format that log collectors cannot parse. The dead broker
// is the only one: beside a live one, librdkafka's sparse connections may
// never try it. And while no broker answers, SIGTERM still stops the daemon
// within 10 s (it used to wait out a 35 s topic creation, twice).
TEST_F(DaemonTest, WhileNoBrokerAnswersKafkaLogsAreStructuredAndSigtermStillStopsIt) {
  auto dead_broker = args();
  dead_broker[3] = "127.0.0.1:1";  // --brokers: nothing listens on port 1
  test::DaemonProcess daemon(dir_.path(), dead_broker);
  ASSERT_TRUE(daemon.start(/*wait_ready=*/false));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (daemon.stderr_text().find("127.0.0.1:1") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Well into the first attempt to reach the broker.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto status = daemon.stop(SIGTERM, std::chrono::seconds(10));
  ASSERT_TRUE(status) << "did not stop within 10 s of SIGTERM\n" << daemon.stderr_text();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon.stderr_text();
  bool dead_broker_reported = false, stop_logged = false;
  for (const auto& v : structured_lines(daemon.stderr_text())) {
    if (v["event"] == "kafka" && v.dump().find("127.0.0.1:1") != std::string::npos) dead_broker_reported = true;
    if (v["event"] == "stopped") stop_logged = true;
  }
  EXPECT_TRUE(dead_broker_reported) << daemon.stderr_text();
  EXPECT_TRUE(stop_logged) << daemon.stderr_text();
}

TEST_F(DaemonTest, ASecondProcessOnTheDataDirAndAnUnauthenticatedSetupAreRefused) {
  test::DaemonProcess first(dir_.path(), args());
  ASSERT_TRUE(first.start()) << first.stderr_text();
  test::TempDir other;
  test::DaemonProcess second(other.path(), args());
  ASSERT_TRUE(second.start(/*wait_ready=*/false));
  auto status = second.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  EXPECT_NE(second.stderr_text().find("in use by another process"), std::string::npos) << second.stderr_text();
  EXPECT_TRUE(first.running());

  auto no_services = args("data2");
  no_services.erase(no_services.begin() + 4, no_services.begin() + 6);  // --services FILE
  test::DaemonProcess unsafe(other.path(), no_services);
  ASSERT_TRUE(unsafe.start(false));
  status = unsafe.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(unsafe.stderr_text().find("--insecure"), std::string::npos) << unsafe.stderr_text();

  auto long_settle = args("data3");
  long_settle.insert(long_settle.end(), {"--transaction-settle-ms", "5000"});
  test::DaemonProcess settling(other.path(), long_settle);
  ASSERT_TRUE(settling.start(false));
  status = settling.wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(settling.stderr_text().find("--transaction-settle-ms must be between 0 and 1000"), std::string::npos)
      << settling.stderr_text();
}

// At least 50 bad records across the seven topics, valid requests before and
// after: every bad one answered (when its requestId can be read) or
// dead-lettered with its bytes and position; the valid ones applied; the
// daemon serving to the end.
TEST_F(DaemonTest, ACorpusOfBadRequestsIsAnsweredOrDeadLetteredAndServingGoesOn) {
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  test::TestProducer producer(test::kafka_brokers());
  const std::string before = send(producer, "customer.update.request",
                                  {{"action", "create"}, {"customerType", "institution"}, {"name", "Bank"},
                                   {"email", "it@bank.example"}});
  ASSERT_TRUE(producer.flush());
  auto first = answer_to(answers(1), before);
  ASSERT_TRUE(first && (*first)["code"] == "accepted");
  const std::string customer = (*first)["customerId"];

  struct Bad {
    std::string topic;
    std::string value;
    std::vector<std::pair<std::string, std::string>> headers;  // none: signed by `signer` when given
    std::string signer;
    bool has_request_id;
  };
  std::vector<Bad> corpus;
  const std::vector<std::string> topics = request_topics();
  auto rid = [&] { return new_request_id(); };
  // Shape: not JSON, not an object, empty, deep nesting, oversized, binary, on every topic.
  for (const auto& t : topics) {
    corpus.push_back({t, "not json at all", {}, "admin-service", false});
    corpus.push_back({t, "[1,2,3]", {}, "admin-service", false});
    corpus.push_back({t, "", {}, "admin-service", false});
    corpus.push_back({t, std::string(100'000, '[') + std::string(100'000, ']'), {}, "admin-service", false});
    corpus.push_back({t, std::string("{\"requestId\":\"") + rid() + "\",\"x\":\"" + std::string(70'000, 'a') + "\"}",
                      {}, "admin-service", false});
    corpus.push_back({t, std::string("\xff\xfe\x00\x01{}", 6), {}, "admin-service", false});
  }
  auto json_bad = [&](const std::string& t, nlohmann::json request, const std::string& signer, bool has_id = true) {
    corpus.push_back({t, request.dump(), {}, signer, has_id});
  };
  // Fields: missing, ill-typed, bad UUIDs, bad amounts, unknown actions.
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "validate"}},
           "admin-service");
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "explode"},
                                     {"customerId", customer}}, "admin-service");
  json_bad("admin.customer.action", {{"requestId", "not-a-uuid"}, {"sourceService", "admin-service"},
                                     {"action", "validate"}, {"customerId", customer}}, "admin-service", false);
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "validate"},
                                     {"customerId", "1234"}}, "admin-service");
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"},
                                     {"action", "allocate_tokens"}, {"customerId", customer}, {"amount", -5},
                                     {"adminId", test::uuid(1).to_string()}, {"reason", "x"}}, "admin-service");
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"},
                                     {"action", "allocate_tokens"}, {"customerId", customer},
                                     {"amount", 1e30}, {"adminId", test::uuid(1).to_string()}, {"reason", "x"}},
           "admin-service");
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "admin-service"},
                                     {"action", "allocate_tokens"}, {"customerId", customer}, {"amount", "10"},
                                     {"adminId", test::uuid(1).to_string()}, {"reason", "x"}}, "admin-service");
  json_bad("customer.update.request", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "create"},
                                       {"customerType", "martian"}, {"name", "X"}, {"email", "x@y.example"}},
           "admin-service");
  json_bad("customer.update.request", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "create"},
                                       {"customerType", "sme"}, {"name", ""}, {"email", "nope"}}, "admin-service");
  json_bad("customer.update.request", {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "update"},
                                       {"customerId", customer}, {"changes", "not an object"}}, "admin-service");
  json_bad("customer.data.request", {{"requestId", rid()}, {"sourceService", "app-mobile-service"},
                                     {"customerId", customer}, {"include", {"secrets"}}}, "app-mobile-service");
  json_bad("accounting.customer.request", {{"requestId", rid()}, {"sourceService", "accounting-service"},
                                           {"action", "record_purchase"}, {"customerId", customer}, {"amount", 0},
                                           {"price", 1}, {"currency", "EUR"}, {"paymentReference", "p"}},
           "accounting-service");
  json_bad("accounting.customer.request", {{"requestId", rid()}, {"sourceService", "accounting-service"},
                                           {"action", "create_subscription"}, {"customerId", customer},
                                           {"planId", "gold"}, {"periodEnd", "yesterday"}}, "accounting-service");
  json_bad("mobile.user.action", {{"requestId", rid()}, {"sourceService", "app-mobile-service"},
                                  {"action", "create_user"}, {"customerId", customer}, {"email", 42},
                                  {"role", "admin"}}, "app-mobile-service");
  json_bad("mobile.user.action", {{"requestId", rid()}, {"sourceService", "app-mobile-service"},
                                  {"action", "use_tokens"}, {"customerId", customer}, {"amount", -1},
                                  {"userId", test::uuid(3).to_string()}, {"feature", "f"}}, "app-mobile-service");
  json_bad("portfolio-sme.customer.update", {{"requestId", rid()}, {"sourceService", "portfolio-sme-service"},
                                             {"customerId", "zzz"}, {"changes", {{"name", "N"}}}},
           "portfolio-sme-service");
  json_bad("portfolio-institution.customer.update", {{"requestId", rid()}, {"sourceService", 7},
                                                     {"customerId", customer}}, "portfolio-institution-service");
  // Forbidden: outside the matrix, or another type's portfolio.
  json_bad("admin.customer.action", {{"requestId", rid()}, {"sourceService", "app-mobile-service"},
                                     {"action", "suspend"}, {"customerId", customer},
                                     {"adminId", test::uuid(1).to_string()}, {"reason", "r"}}, "app-mobile-service");
  json_bad("portfolio-sme.customer.update", {{"requestId", rid()}, {"sourceService", "portfolio-sme-service"},
                                             {"customerId", customer}, {"changes", {{"name", "N"}}}},
           "portfolio-sme-service");
  json_bad("accounting.customer.request", {{"requestId", rid()}, {"sourceService", "portfolio-sme-service"},
                                           {"action", "record_purchase"}, {"customerId", customer}, {"amount", 5},
                                           {"price", 1}, {"currency", "EUR"}, {"paymentReference", "p"}},
           "portfolio-sme-service");
  // Authentication: unsigned, wrong signature, unknown service, another signer.
  for (const auto& t : {"admin.customer.action", "mobile.user.action", "customer.data.request"}) {
    nlohmann::json r = {{"requestId", rid()}, {"sourceService", "admin-service"}, {"action", "validate"},
                        {"customerId", customer}, {"adminId", test::uuid(1).to_string()}};
    if (std::string(t) == "customer.data.request") r = {{"requestId", rid()}, {"sourceService", "admin-service"},
                                                         {"customerId", customer}, {"include", {"customer"}}};
    if (std::string(t) == "mobile.user.action") r["action"] = "reset_password";
    const std::string v = r.dump();
    corpus.push_back({t, v, {{"x-service", "admin-service"}}, "", true});  // no signature
    corpus.push_back({t, v, {{"x-service", "admin-service"}, {"x-signature", std::string(64, '0')}}, "", true});
    corpus.push_back({t, v, {{"x-service", "ghost-service"}, {"x-signature", hmac_sha256_hex("ghost", v)}}, "", true});
    corpus.push_back({t, v, {{"x-service", "app-mobile-service"},
                             {"x-signature", hmac_sha256_hex(secrets.at("app-mobile-service"), v)}}, "", true});
  }
  ASSERT_GE(corpus.size(), 50u);
  for (const auto& bad : corpus) {
    auto headers = bad.headers;
    if (headers.empty() && !bad.signer.empty()) {
      headers = {{"x-service", bad.signer}, {"x-signature", hmac_sha256_hex(secrets.at(bad.signer), bad.value)}};
    }
    ASSERT_TRUE(producer.send(topic(bad.topic), std::nullopt, bad.value, headers));
  }
  const std::string after = send(producer, "admin.customer.action",
                                 {{"action", "validate"}, {"customerId", customer},
                                  {"adminId", test::uuid(1).to_string()}});
  ASSERT_TRUE(producer.flush());

  std::size_t with_id = 0;
  for (const auto& b : corpus) with_id += b.has_request_id;
  auto records = answers(2 + with_id);
  auto last = answer_to(records, after);
  ASSERT_TRUE(last) << daemon.stderr_text().substr(0, 4000);
  EXPECT_EQ((*last)["code"], "accepted") << "the valid request after the corpus is applied";
  std::size_t rejected = 0;
  for (const auto& r : records) {
    auto v = nlohmann::json::parse(r.value);
    if (v["status"] == "rejected") {
      ++rejected;
      EXPECT_TRUE(v["code"] == "invalid" || v["code"] == "unauthenticated" || v["code"] == "forbidden") << v.dump();
      EXPECT_FALSE(v["message"].get<std::string>().empty());
    }
  }
  EXPECT_EQ(rejected, with_id);
  auto dlq = test::consume_until(test::kafka_brokers(), {topic("customer-service.dlq")},
                                 [&](const auto& r) { return r.size() >= corpus.size(); });
  EXPECT_EQ(dlq.size(), corpus.size()) << "every bad record dead-lettered once";
  std::multiset<std::string> sent_values, dead_values;
  for (const auto& b : corpus) sent_values.insert(b.value);
  for (const auto& d : dlq) {
    dead_values.insert(d.value);
    EXPECT_FALSE(d.header("reason").empty());
    EXPECT_EQ(d.header("topic").rfind(prefix_, 0), 0u);
    EXPECT_FALSE(d.header("partition").empty());
    EXPECT_FALSE(d.header("offset").empty());
  }
  EXPECT_EQ(dead_values, sent_values) << "the original bytes";
  EXPECT_TRUE(daemon.running());
  auto status = daemon.stop(SIGTERM, std::chrono::seconds(10));
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// SIGKILL at 20 random moments while 1,000 requests stream in, a restart
// after each: every request applied once (one event each, balances exact),
// every answer and every event published once.
TEST_F(DaemonTest, KilledTwentyTimesDuringAThousandRequestsEachIsAppliedAndAnsweredOnce) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr int customers = 20, requests = 1'000;
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  test::TestProducer producer(test::kafka_brokers());
  std::vector<std::string> ids;
  for (int i = 0; i < customers; ++i) {
    send(producer, "customer.update.request",
         {{"action", "create"}, {"customerType", i % 2 ? "sme" : "institution"}, {"name", "C" + std::to_string(i)},
          {"email", "c" + std::to_string(i) + "@example.com"}});
  }
  ASSERT_TRUE(producer.flush());
  auto created = answers(customers);
  ASSERT_EQ(created.size(), static_cast<std::size_t>(customers)) << daemon.stderr_text().substr(0, 3000);
  for (const auto& r : created) ids.push_back(nlohmann::json::parse(r.value)["customerId"]);

  std::map<std::string, std::int64_t> expected_balance;
  std::vector<std::pair<std::string, nlohmann::json>> stream;
  for (int i = 0; i < requests; ++i) {
    const std::string& customer = ids[rng() % ids.size()];
    const std::int64_t amount = 1 + static_cast<std::int64_t>(rng() % 50);
    expected_balance[customer] += amount;
    stream.emplace_back("admin.customer.action",
                        nlohmann::json{{"action", "allocate_tokens"}, {"customerId", customer}, {"amount", amount},
                                       {"adminId", test::uuid(1).to_string()}, {"reason", "load"}});
  }
  std::atomic<bool> sent{false};
  std::thread feeder([&] {
    test::TestProducer p(test::kafka_brokers());
    for (std::size_t i = 0; i < stream.size(); ++i) {
      send(p, stream[i].first, stream[i].second);
      if (i % 25 == 24) {  // spread over the kills' window (about 11 s)
        p.flush();
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    }
    p.flush();
    sent = true;
  });
  for (int kill = 0; kill < 20; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 900));
    daemon.stop(SIGKILL, std::chrono::seconds(10));
    ASSERT_TRUE(daemon.start(/*wait_ready=*/kill % 4 == 3)) << daemon.stderr_text().substr(0, 3000);
  }
  feeder.join();
  ASSERT_TRUE(sent);
  if (!daemon.running()) {
    ASSERT_TRUE(daemon.start());
  }
  auto all = test::consume_until(test::kafka_brokers(), {topic("customer.request.result")},
                                 [&](const auto& r) { return r.size() >= customers + requests; },
                                 std::chrono::seconds(120));
  std::map<std::string, int> answered;
  for (const auto& r : all) {
    auto v = nlohmann::json::parse(r.value);
    ++answered[v["requestId"]];
    EXPECT_EQ(v["code"], "accepted") << v.dump();
  }
  EXPECT_EQ(answered.size(), static_cast<std::size_t>(customers + requests));
  for (const auto& [id, count] : answered) EXPECT_EQ(count, 1) << "request " << id << " answered " << count << " times";
  EXPECT_EQ(all.size(), static_cast<std::size_t>(customers + requests));

  auto status = daemon.stop(SIGTERM, std::chrono::seconds(10));
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  auto log = test::open_log(dir_ / "data");
  EXPECT_EQ(log->head(), Sequence(customers + requests)) << "one event per request";
  auto engine = std::move(ProjectionEngine::open(*log)).value();
  ASSERT_TRUE(engine->catch_up().ok());
  for (const auto& [customer, balance] : expected_balance) {
    auto account = engine->token_account(*Uuid::parse(customer));
    ASSERT_TRUE(account.ok() && account->has_value());
    EXPECT_EQ((*account)->balance, balance) << customer;
  }
  auto full_log = test::consume_all_of(test::kafka_brokers(), {topic("customer-service.events")});
  std::map<std::string, int> seqs;
  for (const auto& r : full_log) ++seqs[r.header("seq")];
  EXPECT_EQ(seqs.size(), static_cast<std::size_t>(customers + requests));
  for (const auto& [seq, count] : seqs) EXPECT_EQ(count, 1) << "seq " << seq << " published " << count << " times";
}

const auto& design_matrix = test::design_table;

// Every (service, request) pair through the daemon: denied ones answered
// `forbidden` (and dead-lettered), allowed ones never.
TEST_F(DaemonTest, EveryServiceAndActionOfTheMatrixIsAllowedOrDeniedAsDesigned) {
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  test::TestProducer producer(test::kafka_brokers());
  const std::string create = send(producer, "customer.update.request",
                                  {{"action", "create"}, {"customerType", "sme"}, {"name", "Matrix SME"},
                                   {"email", "m@sme.example"}});
  ASSERT_TRUE(producer.flush());
  auto created = answer_to(answers(1), create);
  ASSERT_TRUE(created && (*created)["code"] == "accepted");
  const std::string customer = (*created)["customerId"];
  const std::string some = test::uuid(4242).to_string();

  struct Probe {
    std::string topic;
    nlohmann::json fields;
    std::vector<std::pair<std::string, std::string>> needs;  // (resource, action)
  };
  const nlohmann::json admin_id = test::uuid(1).to_string();
  const std::vector<Probe> probes = {
      {"admin.customer.action", {{"action", "validate"}, {"adminId", admin_id}}, {{"customer", "validate"}}},
      {"admin.customer.action", {{"action", "suspend"}, {"adminId", admin_id}, {"reason", "r"}}, {{"customer", "suspend"}}},
      {"admin.customer.action", {{"action", "reactivate"}, {"adminId", admin_id}}, {{"customer", "reactivate"}}},
      {"admin.customer.action", {{"action", "delete"}, {"adminId", admin_id}, {"reason", "r"}}, {{"customer", "delete"}}},
      {"admin.customer.action", {{"action", "allocate_tokens"}, {"amount", 5}, {"adminId", admin_id}, {"reason", "r"}},
       {{"token", "allocate"}}},
      {"customer.data.request", {{"include", {"customer"}}}, {{"customer", "read"}}},
      {"customer.data.request", {{"include", {"users"}}}, {{"user", "read"}}},
      {"customer.data.request", {{"include", {"subscriptions"}}}, {{"subscription", "read"}}},
      {"customer.data.request", {{"include", {"tokens"}}}, {{"token", "read"}}},
      {"customer.update.request", {{"action", "create"}, {"customerType", "sme"}, {"name", "N"}, {"email", "n@x.example"}},
       {{"customer", "create"}}},
      {"customer.update.request", {{"action", "update"}, {"changes", {{"name", "New name"}}}}, {{"customer", "update"}}},
      {"accounting.customer.request", {{"action", "billing_info"}},
       {{"customer", "read"}, {"subscription", "read"}, {"token", "read"}}},
      {"accounting.customer.request", {{"action", "record_purchase"}, {"amount", 5}, {"price", 50}, {"currency", "EUR"},
                                       {"paymentReference", "p-1"}}, {{"token", "purchase"}}},
      {"accounting.customer.request", {{"action", "create_subscription"}, {"planId", "gold"},
                                       {"periodEnd", "2027-01-01T00:00:00Z"}}, {{"subscription", "create"}}},
      {"accounting.customer.request", {{"action", "renew_subscription"}, {"subscriptionId", some},
                                       {"periodEnd", "2027-01-01T00:00:00Z"}}, {{"subscription", "renew"}}},
      {"accounting.customer.request", {{"action", "cancel_subscription"}, {"subscriptionId", some}, {"reason", "r"}},
       {{"subscription", "cancel"}}},
      {"accounting.customer.request", {{"action", "expire_subscription"}, {"subscriptionId", some}},
       {{"subscription", "expire"}}},
      {"mobile.user.action", {{"action", "create_user"}, {"email", "u@x.example"}, {"role", "member"}},
       {{"user", "create"}}},
      {"mobile.user.action", {{"action", "update_user"}, {"userId", some}, {"changes", {{"role", "owner"}}}},
       {{"user", "update"}}},
      {"mobile.user.action", {{"action", "delete_user"}, {"userId", some}}, {{"user", "delete"}}},
      {"mobile.user.action", {{"action", "reset_password"}, {"userId", some}}, {{"user", "reset_password"}}},
      {"mobile.user.action", {{"action", "use_tokens"}, {"amount", 1}, {"userId", some}, {"feature", "f"}},
       {{"token", "use"}}},
      {"portfolio-sme.customer.update", {{"changes", {{"name", "N2"}}}}, {{"customer", "update"}}},
      {"portfolio-institution.customer.update", {{"changes", {{"name", "N3"}}}}, {{"customer", "update"}}},
  };
  std::map<std::string, bool> expect_forbidden;  // requestId → denied
  std::map<std::string, std::string> described;
  for (const auto& [service, rights] : design_matrix) {
    for (const auto& probe : probes) {
      bool allowed = true;
      for (const auto& [resource, action] : probe.needs) {
        allowed = allowed && rights.at(resource).count(action);
        // Portfolio services change only customers of their own type (this one is sme).
        if (service == "portfolio-institution-service" && resource == "customer" && action != "read") allowed = false;
      }
      nlohmann::json request = probe.fields;
      request["customerId"] = customer;
      const std::string id = send(producer, probe.topic, request, service);
      expect_forbidden[id] = !allowed;
      described[id] = service + " " + probe.topic + " " + probe.fields.value("action", "") +
                      probe.fields.value("include", nlohmann::json()).dump();
    }
  }
  ASSERT_TRUE(producer.flush());
  const std::vector<std::string> answer_topics = {topic("customer.request.result"), topic("customer.data.response")};
  auto records = test::consume_until(test::kafka_brokers(), answer_topics,
                                     [&](const auto& r) { return r.size() >= 1 + expect_forbidden.size(); });
  std::size_t denied = 0, seen = 0;
  for (const auto& r : records) {
    auto v = nlohmann::json::parse(r.value);
    auto it = expect_forbidden.find(v["requestId"]);
    if (it == expect_forbidden.end()) continue;
    ++seen;
    denied += it->second;
    if (it->second) {
      EXPECT_EQ(v["code"], "forbidden") << described[it->first] << ": " << v.dump();
    } else {
      EXPECT_NE(v["code"], "forbidden") << described[it->first] << ": " << v.dump();
      EXPECT_NE(v["code"], "invalid") << described[it->first] << ": " << v.dump();
    }
  }
  EXPECT_EQ(seen, expect_forbidden.size());
  EXPECT_GT(denied, 40u);
}

// csctl request: signs with the service's secret, prints the answer, and its
// exit status says accepted (0) or rejected (1).
TEST_F(DaemonTest, CsctlRequestSendsASignedRequestAndPrintsItsAnswer) {
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  auto run = [&](const std::string& topic, const std::string& service, const std::string& request) {
    const std::string out = (dir_ / "request.out").string();
    const std::string command = std::string(CS_BIN_DIR) + "/csctl request --brokers " + test::kafka_brokers() +
                                " --topic " + topic + " --service " + service + " --services " +
                                (dir_ / "services.json").string() + " --topic-prefix " + prefix_ + " '" + request +
                                "' > " + out + " 2>/dev/null";
    int status = std::system(command.c_str());
    std::ifstream in(out);
    std::string line;
    std::getline(in, line);
    return std::make_pair(WEXITSTATUS(status), nlohmann::json::parse(line, nullptr, false));
  };
  auto [code, created] = run("customer.update.request", "app-mobile-service",
                             R"({"action":"create","customerType":"sme","name":"Req","email":"req@example.com"})");
  ASSERT_EQ(code, 0) << created.dump();
  ASSERT_EQ(created["status"], "accepted");
  const std::string customer = created["customerId"];
  auto [read_code, read] = run("customer.data.request", "accounting-service",
                               R"({"customerId":")" + customer + R"(","include":["customer","tokens"]})");
  EXPECT_EQ(read_code, 0);
  EXPECT_EQ(read["customer"]["status"], "pending") << read.dump();
  auto [denied_code, denied] = run("admin.customer.action", "accounting-service",
                                   R"({"action":"validate","customerId":")" + customer +
                                       R"(","adminId":"00000000-0000-4000-8000-000000000001"})");
  EXPECT_EQ(denied_code, 1);
  EXPECT_EQ(denied["code"], "forbidden") << denied.dump();
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

TEST_F(DaemonTest, TheAdminActionEraseForgetsACustomerAndItsKeyLeavesDiskAndKafka) {
  test::DaemonProcess daemon(dir_.path(), args());
  ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
  test::TestProducer producer(test::kafka_brokers());
  const std::string name = "Erasable Holding " + prefix_, email = "dpo-" + std::to_string(getpid()) + "@erasable.example";
  const std::string user_email = "jane-" + std::to_string(getpid()) + "@erasable.example";
  const std::string create = send(producer, "customer.update.request",
                                  {{"action", "create"}, {"customerType", "sme"}, {"name", name}, {"email", email}});
  ASSERT_TRUE(producer.flush());
  auto created = answer_to(answers(1), create);
  ASSERT_TRUE(created && (*created)["code"] == "accepted") << daemon.stderr_text();
  const std::string customer = (*created)["customerId"];
  const std::string user = send(producer, "mobile.user.action",
                                {{"action", "create_user"}, {"customerId", customer}, {"email", user_email},
                                 {"role", "owner"}},
                                "app-mobile-service");
  ASSERT_TRUE(producer.flush());
  ASSERT_TRUE(answer_to(answers(2), user));
  // A read while it is live: its answer holds the name, and is stored (sealed) until published.
  const std::string early_read = send(producer, "customer.data.request",
                                      {{"customerId", customer}, {"include", {"customer", "users"}}});
  ASSERT_TRUE(producer.flush());
  auto early = test::consume_until(test::kafka_brokers(), {topic("customer.data.response")},
                                   [&](const auto& r) { return answer_to(r, early_read).has_value(); });
  ASSERT_EQ(answer_to(early, early_read).value_or(nlohmann::json::object())["customer"]["name"], name);
  const std::string admin_id = test::uuid(78).to_string();
  const std::string denied = send(producer, "admin.customer.action",
                                  {{"action", "erase"}, {"customerId", customer}, {"adminId", admin_id}},
                                  "app-mobile-service");
  const std::string erase = send(producer, "admin.customer.action",
                                 {{"action", "erase"}, {"customerId", customer}, {"adminId", admin_id}});
  ASSERT_TRUE(producer.flush());
  // Topics are not ordered among themselves: the erasure is answered first.
  ASSERT_TRUE(answer_to(answers(4), erase)) << daemon.stderr_text().substr(0, 3000);
  const std::string later = send(producer, "customer.update.request",
                                 {{"action", "update"}, {"customerId", customer}, {"changes", {{"name", "Back"}}}});
  const std::string read = send(producer, "customer.data.request",
                                {{"customerId", customer}, {"include", {"customer", "users"}}});
  ASSERT_TRUE(producer.flush());
  auto records = answers(5);
  auto answer = [&](const std::string& id) {
    auto a = answer_to(records, id);
    EXPECT_TRUE(a) << id << ": " << daemon.stderr_text().substr(0, 3000);
    return a.value_or(nlohmann::json::object());
  };
  EXPECT_EQ(answer(user)["code"], "accepted");
  EXPECT_EQ(answer(denied)["code"], "forbidden") << "erase is admin-service's alone";
  auto erased = answer(erase);
  EXPECT_EQ(erased["code"], "accepted") << erased.dump();
  EXPECT_EQ(erased["events"][0]["type"], "customer.erased");
  EXPECT_EQ(answer(later)["code"], "conflict") << "nothing is written after an erasure: " << answer(later).dump();

  auto responses = test::consume_until(test::kafka_brokers(), {topic("customer.data.response")},
                                       [&](const auto& r) { return answer_to(r, read).has_value(); });
  auto response = answer_to(responses, read).value_or(nlohmann::json::object());
  EXPECT_TRUE(response["customer"]["name"].is_null()) << response.dump();
  EXPECT_EQ(response["customer"]["erased"], true);
  ASSERT_EQ(response["users"].size(), 1u) << response.dump();
  EXPECT_TRUE(response["users"][0]["email"].is_null());

  // Every service that had the customer hears of its erasure.
  auto routed = test::consume_until(test::kafka_brokers(), {topic("customer.erased")},
                                    [](const auto& r) { return r.size() >= 4; });
  std::set<std::string> targets;
  for (const auto& r : routed) targets.insert(nlohmann::json::parse(r.value)["targetService"]);
  EXPECT_EQ(targets, (std::set<std::string>{"admin-service", "accounting-service", "app-mobile-service",
                                            "portfolio-sme-service"}));
  // The keys topic: the wrapped key, then its tombstone.
  auto keys = test::consume_until(test::kafka_brokers(), {topic("customer-service.keys")}, [&](const auto& r) {
    return std::any_of(r.begin(), r.end(), [&](const auto& k) { return k.key == customer && k.value.empty(); });
  });
  std::string wrapped;
  for (const auto& k : keys) {
    if (k.key == customer && !k.value.empty()) wrapped = nlohmann::json::parse(k.value)["wrapped"];
  }
  ASSERT_FALSE(wrapped.empty()) << "the key went out with the customer's first sealed event";
  // Nothing of it in plaintext on the full log.
  for (const auto& r : test::consume_all_of(test::kafka_brokers(), {topic("customer-service.events")})) {
    EXPECT_EQ(r.value.find(email), std::string::npos);
    EXPECT_EQ(r.value.find(name), std::string::npos);
  }
  ASSERT_TRUE(daemon.stop(SIGTERM, std::chrono::seconds(10)));
  // At rest: no plaintext, and the destroyed key's bytes are gone from every file.
  const auto wrapped_bytes = base64_decode(wrapped);
  ASSERT_TRUE(wrapped_bytes);
  for (const auto& needle : {name, email, user_email, *wrapped_bytes}) {
    EXPECT_EQ(test::stored_anywhere(dir_ / "data", needle), std::vector<std::string>{}) << needle.substr(0, 20);
  }
}

}  // namespace
}  // namespace cs
