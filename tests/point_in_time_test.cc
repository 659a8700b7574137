// One customer as of a moment, read through the customer index: equal to a
// replay of the whole log for every customer at every cut; an old log without
// the index gets it at its first writable open; verify checks the index.
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <sstream>

#include "cs/replay.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

std::vector<Uuid> customers_of(const EventLog& log) {
  std::vector<Uuid> out;
  auto s = log.read({.type = EventType::customer_created}, [&](const RecordedEvent& e) {
    out.push_back(payload_customer_id(e.payload));
    return true;
  });
  EXPECT_TRUE(s.ok());
  return out;
}

// The timestamp of the event at `seq`.
Timestamp time_at(const EventLog& log, Sequence seq) { return log.read_event(seq).value().timestamp; }

// Every customer's view from a whole-log replay into a store, beside the one
// read through the index.
void expect_every_customer_equal(const EventLog& log, const std::vector<Uuid>& customers, const FoldRange& range,
                                 const std::filesystem::path& store_dir, const std::string& cut) {
  auto store = replay_into(log, store_dir, range);
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  for (const auto& c : customers) {
    auto expected = customer_view(*store->engine, c);
    ASSERT_TRUE(expected.ok());
    auto fast = customer_view_at(log, c, range);
    ASSERT_TRUE(fast.ok()) << fast.error().to_string();
    ASSERT_TRUE(fast->has_value()) << "a log created with the index has it";
    ASSERT_EQ(to_json(**fast).dump(), expected->dump()) << cut << ", customer " << c.to_string();
  }
}

TEST(PointInTimeTest, OneCustomerThroughTheIndexEqualsAWholeLogReplayAtEveryCut) {
  test::TempDir dir;
  auto log = test::open_log(dir / "log");
  test::append_generated(*log, 40, 21, 300);
  const auto customers = customers_of(*log);
  ASSERT_EQ(customers.size(), 40u);
  const Sequence head = log->head();
  ASSERT_GT(head.value, 1'000u);

  int n = 0;
  auto store = [&] { return dir / ("store" + std::to_string(n++)); };
  for (std::uint64_t quarter = 1; quarter <= 4; ++quarter) {
    const Sequence cut(head.value * quarter / 4);
    expect_every_customer_equal(*log, customers, {.to_seq = cut}, store(), "to_seq " + std::to_string(cut.value));
    FoldRange as_of{.as_of = time_at(*log, cut)};
    expect_every_customer_equal(*log, customers, as_of, store(), "as_of the time of seq " + std::to_string(cut.value));
  }
  // A window, and both bounds at once.
  expect_every_customer_equal(*log, customers, {.from_seq = Sequence(head.value / 3), .to_seq = Sequence(head.value / 2)},
                              store(), "window");
  expect_every_customer_equal(*log, customers,
                              {.to_seq = Sequence(head.value / 2), .as_of = time_at(*log, Sequence(head.value / 3))},
                              store(), "to_seq and as_of");
  // Before the customer existed: nothing; an unknown customer: nothing.
  auto early = customer_view_at(*log, customers.back(), {.to_seq = Sequence(1)});
  ASSERT_TRUE(early.ok() && early->has_value());
  EXPECT_FALSE((*early)->customer.has_value());
  EXPECT_TRUE((*early)->users.empty());
  auto unknown = customer_view_at(*log, test::uuid(77), {});
  ASSERT_TRUE(unknown.ok() && unknown->has_value());
  EXPECT_EQ(to_json(**unknown).dump(), R"({"customer":null,"tokens":null,"subscriptions":[],"users":[]})");
}

TEST(PointInTimeTest, TheIndexListsTheUsersAndSubscriptionsACustomerOwns) {
  test::TempDir dir;
  auto log = test::open_log(dir / "log");
  ASSERT_TRUE(log->append(std::vector{test::make_event(test::customer_created(1), 1),
                                      test::make_event(test::customer_created(2), 2)})
                  .ok());
  const Uuid u1 = test::uuid(101), u2 = test::uuid(102), s1 = test::uuid(201);
  ASSERT_TRUE(log->append(std::vector{test::make_event(UserCreated{u2, test::uuid(1), "b@x.example", "member"}, 3),
                                      test::make_event(UserCreated{u1, test::uuid(1), "a@x.example", "owner"}, 4),
                                      test::make_event(SubscriptionCreated{s1, test::uuid(1), "pro", test::at_seconds(9)}, 5),
                                      test::make_event(UserCreated{test::uuid(103), test::uuid(2), "c@x.example", "owner"}, 6)})
                  .ok());
  // A later event of an owned stream adds no entry.
  ASSERT_TRUE(log->append(std::vector{test::make_event(UserDeleted{u2, test::uuid(1)}, 7)}).ok());
  auto streams = log->customer_streams(test::uuid(1));
  ASSERT_TRUE(streams.ok() && streams->has_value());
  const std::vector<StreamKey> expected = {{Category::user, u1}, {Category::user, u2}, {Category::subscription, s1}};
  EXPECT_EQ(**streams, expected);
  auto none = log->customer_streams(test::uuid(3));
  ASSERT_TRUE(none.ok() && none->has_value());
  EXPECT_TRUE((*none)->empty());
  EXPECT_TRUE(log->verify().ok());
}

TEST(PointInTimeTest, AnOldLogWithoutTheIndexIsIndexedAtItsFirstWritableOpen) {
  test::TempDir dir;
  std::vector<std::string> before;
  std::vector<Uuid> customers;
  {
    auto log = test::open_log(dir / "log");
    test::append_generated(*log, 25, 8, 500);
    customers = customers_of(*log);
    for (const auto& c : customers) before.push_back(to_json(*customer_view_at(*log, c, {}).value()).dump());
  }
  test::remove_customer_index(dir / "log");
  {
    auto read_only = test::open_log(dir / "log", {.read_only = true});
    auto streams = read_only->customer_streams(customers.front());
    ASSERT_TRUE(streams.ok());
    EXPECT_FALSE(streams->has_value()) << "no index to read: the caller folds the whole log";
    auto view = customer_view_at(*read_only, customers.front(), {});
    ASSERT_TRUE(view.ok());
    EXPECT_FALSE(view->has_value());
    EXPECT_TRUE(read_only->verify().ok()) << "an old log without the index still verifies";
  }
  auto log = test::open_log(dir / "log");
  for (std::size_t i = 0; i < customers.size(); ++i) {
    auto view = customer_view_at(*log, customers[i], {});
    ASSERT_TRUE(view.ok() && view->has_value());
    EXPECT_EQ(to_json(**view).dump(), before[i]);
  }
  auto verified = log->verify();
  EXPECT_TRUE(verified.ok()) << verified.error().to_string();
}

TEST(PointInTimeTest, VerifyFindsAMissingOrAForeignCustomerIndexEntry) {
  test::TempDir dir;
  Uuid owner;
  {
    auto log = test::open_log(dir / "log");
    test::append_generated(*log, 10, 3, 500);
    owner = customers_of(*log).front();
    ASSERT_FALSE(log->customer_streams(owner).value()->empty());
  }
  for (bool foreign : {false, true}) {
    test::TempDir copy_dir;
    std::filesystem::copy(dir / "log", copy_dir / "log", std::filesystem::copy_options::recursive);
    {
      auto log = test::open_log(copy_dir / "log");
      auto* family = log->column_family("customer_streams").value();
      auto streams = log->customer_streams(owner).value().value();
      std::string key(reinterpret_cast<const char*>(owner.bytes().data()), 16);
      key.push_back(static_cast<char>(streams.front().category));
      key.append(reinterpret_cast<const char*>(streams.front().id.bytes().data()), 16);
      if (foreign) key[0] = static_cast<char>(key[0] ^ 0x55);  // the same stream under another customer
      auto s = foreign ? log->db().Put({}, family, key, "") : log->db().Delete({}, family, key);
      ASSERT_TRUE(s.ok());
      auto verified = log->verify();
      ASSERT_FALSE(verified.ok()) << (foreign ? "foreign entry" : "missing entry");
      EXPECT_EQ(verified.error().code(), ErrorCode::corruption);
      EXPECT_NE(verified.error().message().find("customer index"), std::string::npos) << verified.error().message();
    }
  }
}

TEST(PointInTimeTest, CsctlReplayOfOneCustomerPrintsWhatAWholeStoreHolds) {
  test::TempDir dir;
  const std::string csctl = std::string(CS_BIN_DIR) + "/csctl";
  const std::string data = (dir / "data").string();
  auto run = [](const std::string& command) { return WEXITSTATUS(std::system(command.c_str())); };
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  ASSERT_EQ(run(csctl + " generate --customers 15 --seed 4 | " + csctl + " append --data-dir " + data + " 2>/dev/null"), 0);
  std::string customer, as_of;
  {
    auto log = test::open_log(data, {.read_only = true});
    customer = customers_of(*log)[7].to_string();
    as_of = format_timestamp(time_at(*log, Sequence(log->head().value / 2)));
  }
  for (const std::string& cut : {std::string("--to-seq 150"), "--as-of " + as_of}) {
    const std::string store = (dir / ("store" + std::to_string(cut.size()))).string();
    ASSERT_EQ(run(csctl + " replay --data-dir " + data + " " + cut + " --customer " + customer + " > " +
                  (dir / "one").string() + " 2>/dev/null"),
              0);
    ASSERT_EQ(run(csctl + " replay --data-dir " + data + " " + cut + " --out " + store + " 2>/dev/null"), 0);
    ASSERT_EQ(run(csctl + " state view " + customer + " --data-dir " + store + " > " + (dir / "whole").string() +
                  " 2>/dev/null"),
              0);
    const std::string one = slurp(dir / "one");
    EXPECT_NE(one.find("\"customer\": {"), std::string::npos) << one;
    EXPECT_EQ(one, slurp(dir / "whole")) << cut;
  }
}

}  // namespace
}  // namespace cs
