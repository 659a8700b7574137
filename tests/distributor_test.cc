// Proves the distributor against a real Apache Kafka broker (tools/test.sh
// starts one and sets CS_KAFKA_BROKERS): routing gives each service exactly
// its events, without personal data; a publisher killed with SIGKILL 20
// times at random moments and restarted still leaves every routed record
// exactly once for read_committed consumers, in order per customer; and a
// second distributor with the same transactional.id fences the first.
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "cs/distributor.h"
#include "cs/json_codec.h"
#include "cs/outbox.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

std::string brokers() {
  const char* b = std::getenv("CS_KAFKA_BROKERS");
  return b ? b : "";
}

struct Record {
  std::string topic;
  int partition;
  std::string key, value;
  std::uint64_t seq;
};

// Every committed record of `topics` (3 partitions each), read_committed.
std::vector<Record> consume_all(const std::vector<std::string>& topics, int partitions,
                                const std::string& bootstrap = brokers()) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", ("test-reader-" + std::to_string(getpid())).c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()) * partitions);
  for (const auto& t : topics) {
    for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, t.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(consumer, list);
  std::size_t eofs = 0, expected_eofs = topics.size() * static_cast<std::size_t>(partitions);
  std::set<std::pair<std::string, int>> at_end;
  std::vector<Record> out;
  for (int idle = 0; at_end.size() < expected_eofs && idle < 300;) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (!m) {
      ++idle;
      continue;
    }
    std::string topic = rd_kafka_topic_name(m->rkt);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert({topic, m->partition});
      ++eofs;
    } else if (!m->err) {
      Record r{topic, m->partition, std::string(static_cast<char*>(m->key), m->key_len),
               std::string(static_cast<char*>(m->payload), m->len), 0};
      rd_kafka_headers_t* headers = nullptr;
      const void* v = nullptr;
      std::size_t size = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "seq", &v, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r.seq = std::stoull(std::string(static_cast<const char*>(v), size));
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(at_end.size(), expected_eofs) << "did not reach the end of every partition";
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

// A broker of the test's own, on its own port and data dir, for tests that
// stop and restart it (restarting the shared one would disturb the tests
// beside them). Stopped at scope exit.
class OwnBroker {
 public:
  explicit OwnBroker(const std::filesystem::path& dir)
      : port_(19500 + static_cast<int>(getpid() % 400) * 2),
        args_(" --port " + std::to_string(port_) + " --data-dir " + (dir / "kafka").string() + " > " +
              (dir / "broker.out").string() + " 2>&1") {}
  ~OwnBroker() { stop(); }
  bool start() { return std::system((script() + " start" + args_).c_str()) == 0; }
  bool stop() { return std::system((script() + " stop" + args_).c_str()) == 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  static std::string script() { return std::string(CS_SOURCE_DIR) + "/tools/kafka/broker.sh"; }
  int port_;
  std::string args_;
};

class DistributorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(brokers().empty()) << "set CS_KAFKA_BROKERS to a running broker (tools/test.sh starts one)";
  }
  test::TempDir dir_;
  std::string run_ = "t" + std::to_string(getpid()) + "-" + std::to_string(std::random_device{}() % 100000);

  DistributorOptions options(std::size_t transaction_events = 100) {
    DistributorOptions o;
    o.brokers = brokers();
    o.transactional_id = run_ + "-distributor";
    o.topic_template = run_ + ".{service}.{event}";
    o.full_log_topic = run_ + ".events";
    o.checkpoint_topic = run_ + ".checkpoints";
    o.transaction_events_max = transaction_events;
    return o;
  }
  static std::string topic(const DistributorOptions& o, const std::string& service, EventType t) {
    std::string name = o.topic_template;
    name.replace(name.find("{service}"), 9, service);
    name.replace(name.find("{event}"), 7, event_type_name(t));
    return name;
  }
  // topic -> service, from the template
  static std::map<std::string, std::string> services_by_topic(const DistributorOptions& o) {
    std::map<std::string, std::string> out;
    for (const auto& rule : o.routing.rules()) {
      for (EventType t : rule.events) out[topic(o, rule.service, t)] = rule.service;
    }
    return out;
  }
  std::vector<std::string> all_topics(const DistributorOptions& o) {
    std::set<std::string> topics;
    for (const auto& rule : o.routing.rules()) {
      for (EventType t : rule.events) topics.insert(topic(o, rule.service, t));
    }
    topics.insert(o.full_log_topic);
    return {topics.begin(), topics.end()};
  }
  std::unique_ptr<EventLog> generated_log(std::uint64_t customers) {
    auto log = test::open_log(dir_ / "log");
    test::append_generated(*log, customers, 17, 500);
    return log;
  }
  // Every routed (service, seq) exactly once, the full log exactly once, and
  // seqs growing within each partition (per-customer order).
  void expect_exactly_once(const EventLog& log, const DistributorOptions& o) {
    std::map<std::pair<std::string, std::uint64_t>, int> expected;
    auto events = log.read_all({}).value();
    std::map<Uuid, CustomerType> types;
    for (const auto& e : events) {
      if (const auto* c = std::get_if<CustomerCreated>(&e.payload)) types[c->customer_id] = c->customer_type;
      auto type = types.count(payload_customer_id(e.payload)) ? std::optional(types[payload_customer_id(e.payload)]) : std::nullopt;
      for (const auto& service : o.routing.targets(e.type(), type)) expected[{service, e.seq.value}] = 0;
    }
    auto records = consume_all(all_topics(o), o.topic_partitions, o.brokers);
    auto service_of = services_by_topic(o);
    std::map<std::pair<std::string, std::uint64_t>, int> seen;
    std::map<std::uint64_t, int> full_log;
    std::map<std::pair<std::string, int>, std::uint64_t> last_seq;
    for (const auto& r : records) {
      auto& last = last_seq[{r.topic, r.partition}];
      EXPECT_GT(r.seq, last) << r.topic << "/" << r.partition << ": out of order or duplicate";
      last = r.seq;
      if (r.topic == o.full_log_topic) {
        ++full_log[r.seq];
        continue;
      }
      std::string service = service_of.at(r.topic);
      ++seen[{service, r.seq}];
      auto value = nlohmann::json::parse(r.value);
      EXPECT_EQ(value["targetService"], service);
      EXPECT_FALSE(value.contains("email") || value.contains("name") || value.contains("changes")) << r.value;
      EXPECT_EQ(r.key, value["customerId"]);
    }
    for (auto& [key, count] : seen) {
      EXPECT_EQ(count, 1) << key.first << " got seq " << key.second << " " << count << " times";
      EXPECT_TRUE(expected.count(key)) << key.first << " got seq " << key.second << " it should not get";
    }
    EXPECT_EQ(seen.size(), expected.size()) << "routed records missing";
    EXPECT_EQ(full_log.size(), events.size());
    for (auto& [seq, count] : full_log) EXPECT_EQ(count, 1) << "full log seq " << seq;
  }
};

TEST(RoutingTest, DefaultRoutingFollowsTheDesign) {
  Routing r = Routing::defaults();
  for (EventType t : all_event_types) {
    auto sme = r.targets(t, CustomerType::sme);
    EXPECT_NE(std::find(sme.begin(), sme.end(), "admin-service"), sme.end()) << event_type_name(t);
  }
  auto targets = [&](EventType t, CustomerType c) {
    auto v = r.targets(t, c);
    return std::set<std::string>(v.begin(), v.end());
  };
  EXPECT_EQ(targets(EventType::customer_created, CustomerType::sme),
            (std::set<std::string>{"admin-service", "accounting-service", "portfolio-sme-service"}));
  EXPECT_EQ(targets(EventType::customer_updated, CustomerType::institution),
            (std::set<std::string>{"admin-service", "portfolio-institution-service"}));
  EXPECT_EQ(targets(EventType::token_used, CustomerType::sme), (std::set<std::string>{"admin-service", "accounting-service"}));
  EXPECT_EQ(targets(EventType::user_password_reset, CustomerType::sme),
            (std::set<std::string>{"admin-service", "app-mobile-service"}));
  EXPECT_EQ(targets(EventType::customer_suspended, CustomerType::institution),
            (std::set<std::string>{"admin-service", "accounting-service", "portfolio-institution-service",
                                   "app-mobile-service"}));
  auto bad = Routing::from_json(nlohmann::json::parse(R"({"services":{"x":{"events":["token.stolen"]}}})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("services.x.events has \"token.stolen\""), std::string::npos);
}

TEST(RoutingTest, PublishedRecordsAreTheSeedsFormatWithoutPersonalData) {
  RecordedEvent e;
  e.payload = CustomerCreated{test::uuid(1), CustomerType::sme, "Atlas", "a@atlas.example"};
  e.stored_schema_version = 1;
  e.timestamp = *parse_timestamp("2026-03-01T10:15:00Z");
  auto j = nlohmann::json::parse(published_value(e, "accounting-service"));
  EXPECT_EQ(j, nlohmann::json::parse(R"({"customerId":")" + test::uuid(1).to_string() +
                                     R"(","customerType":"sme","timestamp":"2026-03-01T10:15:00Z","targetService":"accounting-service"})"));
}

// The published value as nlohmann builds it: the reference for the text writer.
std::string reference_published_value(const RecordedEvent& e, const std::string& target) {
  nlohmann::ordered_json value = payload_to_json(e.payload, e.stored_schema_version);
  value.erase("name");
  value.erase("email");
  value.erase("changes");
  value["timestamp"] = format_timestamp(e.timestamp);
  value["targetService"] = target;
  return value.dump();
}

TEST(RoutingTest, PublishedValuesAreByteIdenticalToNlohmannsDump) {
  std::vector<RecordedEvent> events;
  auto add = [&](const Payload& p, std::uint32_t schema_version) {
    RecordedEvent e;
    e.payload = p;
    e.stored_schema_version = schema_version;
    e.timestamp = Timestamp{1'767'225'600'000'000 + static_cast<std::int64_t>(events.size()) * 1'500};
    events.push_back(std::move(e));
  };
  for (const auto& p : test::one_of_each_type()) {
    add(p, current_schema_version(payload_type(p)));
    add(p, 1);
  }
  add(CustomerSuspended{test::uuid(2), test::uuid(3), "unpaid \"invoices\"\n\x02 caf\xc3\xa9"}, 1);
  HistoryGenerator generator({.customers = 30, .seed = 5});
  while (auto e = generator.next()) add(e->payload, current_schema_version(payload_type(e->payload)));
  const std::vector<std::string> targets = {"admin-service", "svc \"quoted\""};
  for (const auto& e : events) {
    EXPECT_EQ(published_value(e, targets[0]), reference_published_value(e, targets[0]));
    EXPECT_EQ(published_value(e, targets[1]), reference_published_value(e, targets[1]));
  }
}

TEST_F(DistributorTest, KilledAndRestartedPublisherStillPublishesExactlyOnce) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto log = generated_log(60);
  auto o = options(/*transaction_events=*/40);
  log.reset();
  for (int round = 0; round < 20; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto child_log = EventLog::open(dir_ / "log");
      if (!child_log.ok()) _exit(3);
      auto d = Distributor::open(**child_log, o);
      if (!d.ok()) {
        std::fprintf(stderr, "child: %s\n", d.error().to_string().c_str());
        _exit(4);
      }
      auto n = (*d)->publish_to_head();
      if (!n.ok()) std::fprintf(stderr, "child: %s\n", n.error().to_string().c_str());
      _exit(n.ok() ? 0 : 5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 1500));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) || WEXITSTATUS(status) == 0) << "round " << round << ": exit " << WEXITSTATUS(status);
  }
  log = test::open_log(dir_ / "log");
  auto d = Distributor::open(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  ASSERT_TRUE((*d)->publish_to_head().ok());
  EXPECT_EQ((*d)->checkpoint(), log->head());
  expect_exactly_once(*log, o);
}

// The broker goes away in the middle of publishing and comes back: `csctl
// publish --once` rides it out (aborting, re-opening, resuming from the
// checkpoint) and the result is still exactly once. This test runs its own
// broker: restarting the shared one would disturb the tests beside it.
TEST_F(DistributorTest, BrokerRestartMidPublishStillExactlyOnce) {
  OwnBroker broker(dir_.path());
  ASSERT_TRUE(broker.start()) << "could not start a broker";

  auto log = generated_log(120);
  log.reset();
  DistributorOptions o;  // the CLI's defaults, on this test's own broker
  o.brokers = broker.address();
  o.topic_template = "{service}.{event}";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string command = std::string(CS_BIN_DIR) + "/csctl publish --once --data-dir " + (dir_ / "log").string() +
                          " --brokers " + o.brokers + " --topic-template '{service}.{event}' --transaction-events 10" +
                          " --operation-timeout-ms 10000 > " + (dir_ / "publish.out").string() + " 2>&1";
    _exit(WEXITSTATUS(std::system(command.c_str())));
  }
  // Stop the broker once transactions are flowing (the publisher has opened
  // and resumed), so the outage lands in the middle of publishing.
  auto output = [&] {
    std::ifstream in(dir_ / "publish.out");
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  for (int i = 0; i < 600 && output().find("publish: resuming after seq") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(output().find("publish: resuming after seq"), std::string::npos) << output();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(broker.stop());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(broker.start()) << "could not restart the broker";
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  std::string publish_output = output();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << publish_output;
  log = test::open_log(dir_ / "log");
  EXPECT_NE(publish_output.find("checkpoint at seq " + std::to_string(log->head().value)), std::string::npos)
      << publish_output;
  // The outage must have hit the publisher mid-way, or this proves nothing:
  // after it started publishing it lost the broker — seen as an error it
  // handled, or as librdkafka's own disconnect when its retries rode it out.
  auto started = publish_output.find("publish: resuming after seq");
  bool hit = publish_output.find("csctl publish: ", started) != std::string::npos ||
             publish_output.find("Disconnected", started) != std::string::npos ||
             publish_output.find("Connection refused", started) != std::string::npos;
  EXPECT_TRUE(hit) << "the broker outage did not reach the publisher:\n" << publish_output;
  expect_exactly_once(*log, o);
}

// With the broker gone a transaction can neither commit nor abort. A
// producer left half-way through an abort would fail every later
// begin_transaction, so the distributor reports that as fatal (it once
// returned "retriable" forever); a new distributor then resumes from the
// checkpoint once the broker is back, still exactly once.
TEST_F(DistributorTest, AnAbortThatCannotCompleteIsFatalAndANewDistributorResumes) {
  OwnBroker broker(dir_.path());
  ASSERT_TRUE(broker.start()) << "could not start a broker";
  auto log = generated_log(20);
  auto o = options();
  o.brokers = broker.address();
  o.message_timeout_ms = 1'500;
  o.operation_timeout_ms = 2'000;
  o.commit_retries_max = 2;
  // A broker just started may still be loading its transaction coordinator,
  // longer than these short timeouts.
  auto open = [&]() -> std::unique_ptr<Distributor> {
    for (int attempt = 0; attempt < 30; ++attempt) {
      auto opened = Distributor::open(*log, o);
      if (opened.ok()) return std::move(*opened);
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    return nullptr;
  };
  Sequence published;
  {
    auto d = open();
    ASSERT_TRUE(d) << "could not open a distributor";
    Result<std::uint64_t> first = retriable_error("not yet published");
    for (int attempt = 0; attempt < 10 && !first.ok(); ++attempt) first = d->publish_to_head();
    ASSERT_TRUE(first.ok()) << first.error().to_string();
    published = d->checkpoint();
    test::append_generated(*log, 5, 99);
    ASSERT_TRUE(broker.stop());
    bool fatal = false;
    for (int call = 0; call < 4 && !fatal; ++call) {
      auto n = d->publish_to_head();
      ASSERT_FALSE(n.ok()) << "published without a broker";
      fatal = n.error().code() == ErrorCode::fatal;
      if (fatal) {
        EXPECT_NE(n.error().message().find("abort did not complete"), std::string::npos) << n.error().message();
      }
    }
    EXPECT_TRUE(fatal) << "a producer stuck in an abort must be reported as fatal";
    EXPECT_EQ(d->checkpoint(), published) << "nothing was committed";
  }
  ASSERT_TRUE(broker.start()) << "could not restart the broker";
  auto d = open();
  ASSERT_TRUE(d) << "could not reopen after the broker came back";
  EXPECT_EQ(d->checkpoint(), published);
  Result<std::uint64_t> n = retriable_error("not yet published");
  for (int attempt = 0; attempt < 10 && !n.ok(); ++attempt) n = d->publish_to_head();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ(d->checkpoint(), log->head());
  expect_exactly_once(*log, o);
}

TEST_F(DistributorTest, ASecondDistributorWithTheSameIdFencesTheFirst) {
  auto log = generated_log(10);
  auto o = options();
  auto first = Distributor::open(*log, o);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  ASSERT_TRUE((*first)->publish_to_head().ok());
  Sequence published = log->head();
  ASSERT_TRUE(log->append(std::vector{test::make_event(test::token_purchased(900, 5), 77)}).ok());

  auto second = Distributor::open(*log, o);
  ASSERT_TRUE(second.ok()) << second.error().to_string();
  EXPECT_EQ((*second)->checkpoint(), published) << "the checkpoint is read back";
  auto zombie = (*first)->publish_to_head();
  ASSERT_FALSE(zombie.ok()) << "the fenced distributor must not publish";
  EXPECT_EQ(zombie.error().code(), ErrorCode::fatal);
  EXPECT_NE(zombie.error().message().find("fenced"), std::string::npos) << zombie.error().message();
  ASSERT_TRUE((*second)->publish_to_head().ok());
  expect_exactly_once(*log, o);
}

// One checkpoint record per transaction until the topic is compacted: a
// restart must read them all, however many (it once gave up after 300).
TEST_F(DistributorTest, TransactionsHoldAtMostTheirLimitAndAReopenReadsEveryCheckpoint) {
  auto log = generated_log(14);
  ASSERT_GT(log->head().value, 320u);
  auto o = options(/*transaction_events=*/1);
  {
    auto d = Distributor::open(*log, o);
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    auto n = (*d)->publish_to_head();
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, log->head().value);
  }
  auto checkpoints = consume_all({o.checkpoint_topic}, 1);
  ASSERT_EQ(checkpoints.size(), log->head().value) << "one transaction, hence one checkpoint, per event";
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    EXPECT_EQ(checkpoints[i].key, o.transactional_id);
    EXPECT_EQ(checkpoints[i].value, std::to_string(i + 1));
  }
  auto reopened = Distributor::open(*log, o);
  ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
  EXPECT_EQ((*reopened)->checkpoint(), log->head());
  expect_exactly_once(*log, o);
}

// The time limit, with a clock that finds 10 ms gone at every look: a
// transaction begins, then after its third chunk it is 30 ms old, over the
// 25 ms limit, and is committed, however far below the count limit it is.
TEST_F(DistributorTest, ATransactionIsCommittedOnceItReachesItsTimeLimit) {
  auto log = generated_log(140);
  const std::uint64_t per_transaction = 3 * distributor_chunk_events;
  ASSERT_GT(log->head().value, 2 * per_transaction);
  auto o = options(/*transaction_events=*/1'000'000);
  o.transaction_time_max_ms = 25;
  auto now = std::make_shared<std::chrono::steady_clock::time_point>();
  o.clock = [now] { return *now += std::chrono::milliseconds(10); };
  auto d = Distributor::open(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto n = (*d)->publish_to_head();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  std::vector<std::string> expected, got;
  for (std::uint64_t seq = per_transaction; seq < log->head().value; seq += per_transaction) {
    expected.push_back(std::to_string(seq));
  }
  expected.push_back(std::to_string(log->head().value));
  for (const auto& r : consume_all({o.checkpoint_topic}, 1)) got.push_back(r.value);
  EXPECT_EQ(got, expected) << "one checkpoint per transaction, each three chunks long";
  expect_exactly_once(*log, o);
}

TEST_F(DistributorTest, RepublishSendsARangeAgainToOneServiceWithoutMovingTheCheckpoint) {
  auto log = generated_log(8);
  auto o = options();
  {
    auto d = Distributor::open(*log, o);
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    ASSERT_TRUE((*d)->publish_to_head().ok());
  }
  std::string command = std::string(CS_BIN_DIR) + "/csctl republish --data-dir " + (dir_ / "log").string() +
                        " --brokers " + brokers() + " --transactional-id " + o.transactional_id +
                        " --topic-template '" + o.topic_template + "' --from-seq 1 --to-seq 10" +
                        " --service admin-service > /dev/null 2>&1";
  log.reset();
  ASSERT_EQ(WEXITSTATUS(std::system(command.c_str())), 0);
  log = test::open_log(dir_ / "log");
  auto service_of = services_by_topic(o);
  std::map<std::pair<std::string, std::uint64_t>, int> count;
  for (const auto& r : consume_all(all_topics(o), o.topic_partitions)) {
    if (r.topic != o.full_log_topic) ++count[{service_of.at(r.topic), r.seq}];
    else ++count[{"full-log", r.seq}];
  }
  for (const auto& [key, n] : count) {
    bool replayed = key.first == "admin-service" && key.second <= 10;
    EXPECT_EQ(n, replayed ? 2 : 1) << key.first << " seq " << key.second;
  }
  // The running distributor's checkpoint did not move, and it was not fenced.
  auto d = Distributor::open(*log, o);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->checkpoint(), log->head());
}

// --- hardening (issue 13): every case below failed on the code before it ---

namespace {

// Creates `name` with `partitions` and topic configs, through the admin API.
void create_topic(const std::string& name, int partitions, const std::vector<std::pair<std::string, std::string>>& configs) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers().c_str(), err, sizeof err);
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(name.c_str(), partitions, 1, err, sizeof err);
  for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(topic, k.c_str(), v.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
  rd_kafka_CreateTopics(admin, &topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30'000);
  ASSERT_NE(event, nullptr);
  std::size_t n = 0;
  const auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(rd_kafka_topic_result_error(results[0]), RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_topic_result_error_string(results[0]);
  rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(topic);
  rd_kafka_destroy(admin);
}

// A transactional producer of the test's own (another "distributor" on the cluster).
struct OtherProducer {
  rd_kafka_t* p = nullptr;
  explicit OtherProducer(const std::string& transactional_id) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers().c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "transactional.id", transactional_id.c_str(), err, sizeof err);
    p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_error_t* e = nullptr;
    for (int attempt = 0; attempt < 10 && (e = rd_kafka_init_transactions(p, 10'000)); ++attempt) rd_kafka_error_destroy(e);
    EXPECT_EQ(e, nullptr);
  }
  ~OtherProducer() { rd_kafka_destroy(p); }
  void begin() { EXPECT_EQ(rd_kafka_begin_transaction(p), nullptr); }
  void produce(const std::string& topic, const std::string& key, const std::optional<std::string>& value) {
    void* bytes = value ? const_cast<char*>(value->data()) : nullptr;
    std::size_t size = value ? value->size() : 0;
    EXPECT_EQ(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(bytes, size),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_flush(p, 10'000);
  }
  void commit() { EXPECT_EQ(rd_kafka_commit_transaction(p, 30'000), nullptr); }
  void abort() { EXPECT_EQ(rd_kafka_abort_transaction(p, 30'000), nullptr); }
};

Result<std::unique_ptr<Distributor>> open_retrying(const EventLog& log, const DistributorOptions& o) {
  for (int attempt = 0;; ++attempt) {
    auto d = Distributor::open(log, o);
    if (d.ok() || d.error().code() != ErrorCode::retriable || attempt >= 10) return d;
  }
}

}  // namespace

TEST_F(DistributorTest, TheLargestEventsTheLogAcceptsArePublished) {
  auto log = test::open_log(dir_ / "log");
  // A 1,000,000-byte name, and one of control bytes that JSON writes 6x larger.
  std::vector<NewEvent> events{test::make_event(CustomerCreated{test::uuid(1), CustomerType::sme, std::string(1'000'000, 'n'), "a@b.c"}, 1),
                               test::make_event(CustomerCreated{test::uuid(2), CustomerType::sme, std::string(170'000, '\x01'), "a@b.c"}, 2)};
  ASSERT_TRUE(log->append(events).ok());
  auto o = options();
  auto d = open_retrying(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto n = (*d)->publish_to_head();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ(*n, 2u);
  auto records = consume_all({o.full_log_topic}, o.topic_partitions, o.brokers);
  ASSERT_EQ(records.size(), 2u);
  for (const auto& r : records) EXPECT_GT(r.value.size(), 1'000'000u) << "seq " << r.seq;
}

// The outbox travels with the log: each record published once, in order,
// with its key, headers and partition; the checkpoint holds both positions,
// and a distributor without an outbox (csctl publish) keeps the outbox part.
TEST_F(DistributorTest, OutboxRecordsArePublishedOnceInOrderBesideTheEvents) {
  auto log = test::open_log(dir_ / "log");
  const std::string answers = run_ + ".answers", dlq = run_ + ".dlq";
  auto outbox_record = [&](int i) {
    OutboxRecord r{.topic = i % 5 == 0 ? dlq : answers, .key = "k" + std::to_string(i % 7),
                   .value = "answer " + std::to_string(i)};
    if (i % 5 == 0) r.headers = {{"reason", "invalid: " + std::to_string(i)}, {"offset", std::to_string(i)}};
    if (i % 11 == 0) r.partition = 2;
    return r;
  };
  int next = 1;
  auto store_outbox = [&](int n) {
    for (int i = 0; i < n; ++i, ++next) ASSERT_TRUE(log->append({}, std::vector{outbox_write(outbox_record(next))}).ok());
  };
  test::append_generated(*log, 10, 3, 100);
  store_outbox(120);
  auto o = options(/*transaction_events=*/50);
  o.outbox_family = outbox_family;
  o.outbox_topics = {answers, dlq};
  {
    auto d = open_retrying(*log, o);
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    ASSERT_TRUE((*d)->publish_to_head().ok());
    EXPECT_EQ((*d)->checkpoint(), log->head());
    EXPECT_EQ((*d)->outbox_checkpoint(), 120u);
    EXPECT_EQ(*(*d)->publish_to_head(), 0u) << "nothing new";
  }
  // Events published without the outbox (csctl publish) keep its position.
  test::append_generated(*log, 3, 4, 100);
  store_outbox(30);
  {
    auto plain = options(50);
    auto d = open_retrying(*log, plain);
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    EXPECT_EQ((*d)->outbox_checkpoint(), 120u);
    ASSERT_TRUE((*d)->publish_to_head().ok());
  }
  {
    auto d = open_retrying(*log, o);
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    EXPECT_EQ((*d)->outbox_checkpoint(), 120u);
    ASSERT_TRUE((*d)->publish_to_head().ok());
    EXPECT_EQ((*d)->outbox_checkpoint(), 150u);
  }
  expect_exactly_once(*log, o);
  auto records = consume_all({answers, dlq}, o.topic_partitions, o.brokers);
  ASSERT_EQ(records.size(), 150u);
  std::map<std::pair<std::string, int>, int> last;  // per partition, values in outbox order
  std::set<std::string> values;
  for (const auto& r : records) {
    const int i = std::stoi(r.value.substr(7));
    EXPECT_TRUE(values.insert(r.value).second) << r.value << " twice";
    EXPECT_EQ(r.topic, i % 5 == 0 ? dlq : answers);
    EXPECT_EQ(r.key, "k" + std::to_string(i % 7));
    if (i % 11 == 0) {
      EXPECT_EQ(r.partition, 2);
    }
    int& previous = last[{r.topic, r.partition}];
    EXPECT_GT(i, previous) << "outbox order within a partition";
    previous = i;
  }
}

TEST_F(DistributorTest, ARecordKafkaRefusesForGoodEndsPublishWithAClearError) {
  auto log = test::open_log(dir_ / "log");
  ASSERT_TRUE(log->append(std::vector{test::make_event(CustomerCreated{test::uuid(1), CustomerType::sme, std::string(50'000, 'n'), "a@b.c"}, 1)}).ok());
  auto o = options();
  create_topic(o.full_log_topic, o.topic_partitions, {{"max.message.bytes", "10000"}});  // an operator's old topic
  auto d = open_retrying(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  auto n = (*d)->publish_to_head();
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code(), ErrorCode::invalid_argument) << n.error().to_string();
  EXPECT_NE(n.error().message().find("seq 1"), std::string::npos) << n.error().message();
  EXPECT_NE(n.error().message().find(o.full_log_topic), std::string::npos) << n.error().message();
  d->reset();

  // csctl publish --once ends too, exit 2, instead of retrying for ever.
  log.reset();
  std::string command = std::string(CS_BIN_DIR) + "/csctl publish --once --data-dir " + (dir_ / "log").string() +
                        " --brokers " + o.brokers + " --transactional-id " + o.transactional_id + " --topic-template '" +
                        o.topic_template + "' --full-log-topic " + o.full_log_topic + " --checkpoint-topic " +
                        o.checkpoint_topic + " > " + (dir_ / "out").string() + " 2>&1";
  int status = std::system(("timeout 120 " + command).c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(dir_ / "out");
  std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(out.find("refused the record of seq 1"), std::string::npos) << out;
}

TEST_F(DistributorTest, SigtermAndSigintStopALongCatchUpWithTheTransactionAborted) {
  {
    auto log = test::open_log(dir_ / "log");
    test::append_generated(*log, 600, 5);
  }
  auto o = options();
  for (int signal_number : {SIGTERM, SIGINT}) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      std::string out = (dir_ / ("publish-" + std::to_string(signal_number))).string();
      freopen(out.c_str(), "w", stderr);
      execl((std::string(CS_BIN_DIR) + "/csctl").c_str(), "csctl", "publish", "--once", "--data-dir",
            (dir_ / "log").string().c_str(), "--brokers", o.brokers.c_str(), "--transactional-id",
            o.transactional_id.c_str(), "--topic-template", o.topic_template.c_str(), "--full-log-topic",
            o.full_log_topic.c_str(), "--checkpoint-topic", o.checkpoint_topic.c_str(), "--transaction-events", "20",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));  // into the catch-up (not an assertion on time)
    kill(child, signal_number);
    int status = 0;
    pid_t done = 0;
    for (int waited_ms = 0; waited_ms < 60'000 && (done = waitpid(child, &status, WNOHANG)) == 0; waited_ms += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (done == 0) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      FAIL() << "csctl publish ignored signal " << signal_number;
    }
    ASSERT_TRUE(WIFEXITED(status)) << "ended by a signal";
    EXPECT_EQ(WEXITSTATUS(status), 2) << "signal " << signal_number;
  }
  // What was committed is exactly the prefix up to the checkpoint.
  auto log = test::open_log(dir_ / "log", {.read_only = true});
  auto d = open_retrying(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  Sequence checkpoint = (*d)->checkpoint();
  EXPECT_LT(checkpoint, log->head()) << "the catch-up was not interrupted: make the log longer";
  auto records = consume_all({o.full_log_topic}, o.topic_partitions, o.brokers);
  std::set<std::uint64_t> seqs;
  for (const auto& r : records) EXPECT_TRUE(seqs.insert(r.seq).second) << "seq " << r.seq << " twice";
  EXPECT_EQ(seqs.size(), checkpoint.value);
  if (!seqs.empty()) {
    EXPECT_EQ(*seqs.rbegin(), checkpoint.value);
  }
}

TEST_F(DistributorTest, ACheckpointTopicThatCannotKeepTheCheckpointIsRefused) {
  auto log = generated_log(2);
  auto o = options();
  o.checkpoint_topic = run_ + ".checkpoints-3";
  create_topic(o.checkpoint_topic, 3, {{"cleanup.policy", "compact"}});
  auto three = open_retrying(*log, o);
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.error().message().find("has 3 partitions"), std::string::npos) << three.error().message();

  o.checkpoint_topic = run_ + ".checkpoints-delete";
  create_topic(o.checkpoint_topic, 1, {{"cleanup.policy", "delete"}});
  auto deleting = open_retrying(*log, o);
  ASSERT_FALSE(deleting.ok());
  EXPECT_NE(deleting.error().message().find("cleanup.policy=delete"), std::string::npos) << deleting.error().message();
}

TEST_F(DistributorTest, AMalformedOrDeletedCheckpointIsAClearErrorNotACrash) {
  auto log = generated_log(2);
  for (std::optional<std::string> value : {std::optional<std::string>("not-a-number"), std::optional<std::string>("")}) {
    auto o = options();
    o.checkpoint_topic = run_ + ".checkpoints-" + std::to_string(value->size());
    create_topic(o.checkpoint_topic, 1, {{"cleanup.policy", "compact"}});
    OtherProducer writer(run_ + "-writer-" + std::to_string(value->size()));
    writer.begin();
    writer.produce(o.checkpoint_topic, o.transactional_id, value);
    writer.commit();
    auto d = open_retrying(*log, o);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code(), ErrorCode::corruption) << d.error().to_string();
    EXPECT_NE(d.error().message().find("is not a sequence number"), std::string::npos) << d.error().message();
  }
  auto o = options();
  o.checkpoint_topic = run_ + ".checkpoints-tombstone";
  create_topic(o.checkpoint_topic, 1, {{"cleanup.policy", "compact"}});
  OtherProducer writer(run_ + "-writer-tombstone");
  writer.begin();
  writer.produce(o.checkpoint_topic, o.transactional_id, std::nullopt);
  writer.commit();
  auto d = open_retrying(*log, o);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("tombstone"), std::string::npos) << d.error().message();
}

TEST_F(DistributorTest, AnotherProducersOpenTransactionNeverMakesARestartResumeFromAStaleCheckpoint) {
  auto log = test::open_log(dir_ / "log");
  test::append_generated(*log, 3, 21);
  auto o = options(50);
  o.operation_timeout_ms = 4'000;
  o.message_timeout_ms = 4'000;
  Sequence first_head = log->head();
  auto d = open_retrying(*log, o);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  ASSERT_TRUE((*d)->publish_to_head().ok());
  OtherProducer other(run_ + "-other");
  other.begin();
  other.produce(o.checkpoint_topic, "someone-else", std::string("1"));  // left open
  test::append_generated(*log, 2, 22);
  // The running distributor commits a newer checkpoint, behind the open transaction.
  auto n = (*d)->publish_to_head();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ((*d)->checkpoint(), log->head());
  d->reset();
  ASSERT_GT(log->head(), first_head);
  auto stale = Distributor::open(*log, o);
  ASSERT_FALSE(stale.ok()) << "resumed from seq " << (*stale)->checkpoint().value << " while the newest is "
                           << log->head().value;
  EXPECT_EQ(stale.error().code(), ErrorCode::retriable);
  EXPECT_NE(stale.error().message().find("another producer"), std::string::npos) << stale.error().message();
  other.abort();
  auto fresh = open_retrying(*log, o);
  ASSERT_TRUE(fresh.ok()) << fresh.error().to_string();
  EXPECT_EQ((*fresh)->checkpoint(), log->head());
  expect_exactly_once(*log, o);
}

}  // namespace
}  // namespace cs
