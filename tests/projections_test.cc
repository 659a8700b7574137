// Proves the projections: a hand-written history whose state was worked out by
// hand, checked at several moments through as-of replay; folding in random
// chunk sizes gives the same bytes as one pass; a rebuild swaps atomically
// under concurrent readers; verification names a tampered entity; and a
// rebuild killed with SIGKILL midway leaves the old state serving.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <sstream>
#include <thread>

#include "cs/projection_engine.h"
#include "cs/replay.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

using test::uuid;

Timestamp hour(int h) { return test::at_seconds(h * 3600); }

NewEvent at(Payload p, int h, std::uint64_t id) {
  NewEvent e = test::make_event(std::move(p), id);
  e.timestamp = hour(h);
  return e;
}

const Uuid customer = uuid(1), admin = uuid(4), subscription = uuid(3), user = uuid(2);

// The story of one SME customer, an event an hour.
std::vector<NewEvent> hand_written_history() {
  return {
      at(CustomerCreated{customer, CustomerType::sme, "Atlas SARL", "contact@atlas.example"}, 0, 1),
      at(CustomerValidated{customer, admin}, 1, 2),
      at(TokenPurchased{customer, 100, 4900, "EUR", "pay-1"}, 2, 3),
      at(TokenUsed{customer, 30, uuid(50), user, "export"}, 3, 4),
      at(TokenAllocated{customer, 20, admin, "welcome"}, 4, 5),
      at(CustomerSuspended{customer, admin, "fraud check"}, 5, 6),
      at(CustomerReactivated{customer, admin}, 6, 7),
      at(SubscriptionCreated{subscription, customer, "pro-monthly", *parse_timestamp("2026-02-01T00:00:00Z")}, 7, 8),
      at(SubscriptionRenewed{subscription, customer, *parse_timestamp("2026-03-01T00:00:00Z")}, 8, 9),
      at(UserCreated{user, customer, "jane@atlas.example", "owner"}, 9, 10),
      at(UserPasswordReset{user, customer}, 10, 11),
      at(UserPasswordReset{user, customer}, 10, 12),
      at(UserUpdated{user, customer, {"email"}, {{"email", "\"j.doe@atlas.example\""}}}, 11, 13),
      at(SubscriptionCancelled{subscription, customer, "too expensive"}, 12, 14),
      at(CustomerUpdated{customer, {"name"}, {{"name", "\"Atlas Group SARL\""}}}, 13, 15),
      at(TokenUsed{customer, 50, uuid(51), user, "report"}, 14, 16),
  };
}

class ProjectionsTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_ / "log");

  std::unique_ptr<ProjectionEngine> engine() {
    auto e = ProjectionEngine::open(*log_);
    EXPECT_TRUE(e.ok()) << e.error().to_string();
    return std::move(e).value();
  }
  void append(const std::vector<NewEvent>& events) {
    auto r = log_->append(events);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
  // Every key and value of every live projection family, in order.
  static std::vector<std::pair<std::string, std::string>> dump(EventLog& log) {
    std::vector<std::pair<std::string, std::string>> out;
    auto names = log.column_family_names();
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (!name.starts_with("proj.")) continue;
      auto family = log.column_family(name);
      std::unique_ptr<rocksdb::Iterator> it(log.db().NewIterator({}, *family));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        out.emplace_back(name.substr(0, name.rfind('.')) + "/" + it->key().ToString(), it->value().ToString());
      }
    }
    return out;
  }
};

TEST_F(ProjectionsTest, HandWrittenHistoryGivesTheStateWorkedOutByHand) {
  append(hand_written_history());
  auto live = engine();
  ASSERT_TRUE(live->catch_up().ok());

  auto c = *live->customer(customer).value();
  EXPECT_EQ(c.status, CustomerStatus::validated);  // reactivated returns to validated
  EXPECT_EQ(c.name.value, "Atlas Group SARL");
  EXPECT_EQ(c.email.value, "contact@atlas.example");
  EXPECT_EQ(c.customer_type, CustomerType::sme);
  EXPECT_EQ(c.validated_by, admin);
  EXPECT_EQ(c.validated_at, hour(1));
  EXPECT_EQ(c.suspension_reason.value, "");
  EXPECT_EQ(c.last_updated_fields, std::vector<std::string>{"name"});
  EXPECT_EQ(c.created_at, hour(0));
  EXPECT_EQ(c.updated_at, hour(13));
  EXPECT_EQ(c.version, 5u);  // created, validated, suspended, reactivated, updated
  auto t = *live->token_account(customer).value();
  EXPECT_EQ(t.purchased, 100);
  EXPECT_EQ(t.allocated, 20);
  EXPECT_EQ(t.used, 80);
  EXPECT_EQ(t.balance, 40);
  EXPECT_EQ(t.last_activity_at, hour(14));
  auto s = *live->subscription(subscription).value();
  EXPECT_EQ(s.status, SubscriptionStatus::cancelled);
  EXPECT_EQ(s.renewals, 1u);
  EXPECT_EQ(s.plan_id, "pro-monthly");
  EXPECT_EQ(format_timestamp(s.period_end), "2026-03-01T00:00:00Z");
  auto u = *live->user(user).value();
  EXPECT_EQ(u.password_resets, 2u);
  EXPECT_EQ(u.email.value, "j.doe@atlas.example");
  EXPECT_EQ(u.status, UserStatus::active);
  EXPECT_EQ(live->users_of(customer)->size(), 1u);
  EXPECT_EQ(live->subscriptions_of(customer)->size(), 1u);
  EXPECT_EQ(live->customers(CustomerStatus::validated, CustomerType::sme)->size(), 1u);
  EXPECT_TRUE(live->customers(CustomerStatus::suspended, std::nullopt)->empty());
  EXPECT_FALSE(live->customer(uuid(99)).value().has_value());
}

TEST_F(ProjectionsTest, AsOfReplayGivesTheStateAtEachMoment) {
  append(hand_written_history());
  struct Moment {
    Timestamp as_of;
    CustomerStatus status;
    std::int64_t balance;
    std::string reason;
  };
  for (const auto& m : {Moment{Timestamp{hour(2).micros + 1}, CustomerStatus::validated, 100, ""},
                        Moment{hour(5), CustomerStatus::suspended, 90, "fraud check"},
                        Moment{hour(6), CustomerStatus::validated, 90, ""}}) {
    test::TempDir out;
    auto store = replay_into(*log_, out / "store", {.as_of = m.as_of});
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    auto c = *store->engine->customer(customer).value();
    EXPECT_EQ(c.status, m.status) << format_timestamp(m.as_of);
    EXPECT_EQ(c.suspension_reason.value, m.reason);
    EXPECT_EQ(store->engine->token_account(customer).value()->balance, m.balance) << format_timestamp(m.as_of);
  }
  // By sequence: up to seq 4 (the first use), nothing after.
  test::TempDir out;
  auto store = replay_into(*log_, out / "store", {.to_seq = Sequence(4)});
  ASSERT_TRUE(store.ok());
  auto t = *store->engine->token_account(customer).value();
  EXPECT_EQ(t.balance, 70);
  EXPECT_FALSE(store->engine->subscription(subscription).value().has_value());
  // The replay never touched the live store.
  auto families = log_->column_family_names();
  EXPECT_FALSE(std::any_of(families.begin(), families.end(), [](const std::string& n) { return n.starts_with("proj."); }));
  // A replay target that already holds a store is refused.
  auto again = replay_into(*log_, out / "store", {.to_seq = Sequence(4)});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already holds a store"), std::string::npos);
}

TEST_F(ProjectionsTest, FoldingInRandomChunksEqualsOnePass) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  HistoryGenerator generator({.customers = 40, .seed = seed});
  std::vector<NewEvent> history;
  while (auto e = generator.next()) history.push_back(std::move(*e));

  // Incremental: append in random chunks, catch up after each.
  auto incremental = engine();
  for (std::size_t i = 0; i < history.size();) {
    std::size_t n = std::min<std::size_t>(1 + rng() % 97, history.size() - i);
    append({history.begin() + static_cast<long>(i), history.begin() + static_cast<long>(i + n)});
    ASSERT_TRUE(incremental->catch_up().ok());
    i += n;
  }
  // One pass over the same log, in another store.
  test::TempDir other;
  auto store = replay_into(*log_, other / "store", {});
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  auto a = dump(*log_), b = dump(*store->log);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b) << "incremental and one-pass projection bytes differ";
  EXPECT_GT(a.size(), history.size() / 10);
  ASSERT_TRUE(incremental->verify().ok());
}

TEST_F(ProjectionsTest, RebuildSwapsAtomicallyUnderConcurrentReaders) {
  test::append_generated(*log_, 60, 11, 500);
  auto live = engine();
  ASSERT_TRUE(live->catch_up().ok());
  auto expected = live->customers(std::nullopt, std::nullopt).value();
  ASSERT_EQ(expected.size(), 60u);

  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, mismatches{0};
  std::thread reader([&] {
    while (!stop) {
      auto now = live->customers(std::nullopt, std::nullopt);
      if (!now.ok() || *now != expected) ++mismatches;
      ++reads;
    }
  });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(live->rebuild().ok());
  stop = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "a reader saw a half-built state";
  EXPECT_EQ(live->status().front().generation, 4u);
  auto families = log_->column_family_names();
  EXPECT_EQ(std::count_if(families.begin(), families.end(), [](const std::string& n) { return n.starts_with("proj."); }), 4)
      << "old generations are dropped";
}

TEST_F(ProjectionsTest, VerifyNamesATamperedEntity) {
  append(hand_written_history());
  auto live = engine();
  ASSERT_TRUE(live->verify().ok());
  // Change the stored token account behind the engine's back.
  TokenAccount forged = *live->token_account(customer).value();
  forged.balance = 1'000'000;
  auto family = log_->column_family("proj.tokens.1");
  ASSERT_TRUE(family.ok());
  ASSERT_TRUE(log_->db().Put({}, *family, projection_keys::entity(customer), encode_state(forged)).ok());
  auto verified = live->verify();
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.error().code(), ErrorCode::corruption);
  EXPECT_NE(verified.error().message().find("projection tokens differs from a rebuild at entity " + customer.to_string()),
            std::string::npos)
      << verified.error().message();
  EXPECT_NE(verified.error().message().find("\"balance\":1000000"), std::string::npos);
  EXPECT_NE(verified.error().message().find("\"balance\":40"), std::string::npos);
  // A rebuild repairs it.
  ASSERT_TRUE(live->rebuild({"tokens"}).ok());
  EXPECT_EQ(live->token_account(customer).value()->balance, 40);
  EXPECT_TRUE(live->verify().ok());
}

TEST_F(ProjectionsTest, RebuildKilledMidwayLeavesTheOldStateServing) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  test::append_generated(*log_, 600, 5, 2000);
  std::vector<std::pair<std::string, std::string>> before;
  {
    auto live = engine();
    ASSERT_TRUE(live->catch_up().ok());
    before = dump(*log_);
  }
  log_.reset();

  for (int round = 0; round < 8; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto log = EventLog::open(dir_ / "log");
      if (!log.ok()) _exit(3);
      auto e = ProjectionEngine::open(**log);
      if (!e.ok()) _exit(4);
      for (;;) {
        if (!(*e)->rebuild().ok()) _exit(5);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 300));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "rebuild child exited on its own, status " << status;

    log_ = test::open_log(dir_ / "log");
    auto reopened = engine();  // drops a half-built generation
    auto after = dump(*log_);
    EXPECT_TRUE(after == before) << "round " << round << ": state differs after a killed rebuild";
    auto families = log_->column_family_names();
    EXPECT_EQ(std::count_if(families.begin(), families.end(), [](const std::string& n) { return n.starts_with("proj."); }), 4)
        << "round " << round;
    ASSERT_TRUE(reopened->verify().ok()) << "round " << round;
    reopened.reset();
    log_.reset();
  }
}

// Cereal's own portable archive, through a stream: what the state records
// were written with before StringOutputArchive, and what they must stay.
template <class State>
std::string cereal_portable_bytes(const State& state) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(state);
  }
  return out.str();
}

TEST(StateRecordTest, StatesAreWrittenAsCerealsPortableArchiveWritesThemAndReadBack) {
  CustomerState customer;
  customer.customer_id = uuid(1);
  customer.customer_type = CustomerType::institution;
  customer.name = PersonalText{"sealed name bytes", uuid(9), "name"};
  customer.email = PersonalText{"a@b.example", Uuid{}, ""};
  customer.status = CustomerStatus::suspended;
  customer.validated_by = uuid(4);
  customer.validated_at = hour(3);
  customer.suspension_reason = PersonalText{"fraud check", uuid(10), "reason"};
  customer.last_updated_fields = {"name", "email"};
  customer.created_at = hour(1);
  customer.updated_at = hour(5);
  customer.version = 7;
  customer.erased = true;
  UserState user{uuid(2), uuid(1), PersonalText{"j@x.example", uuid(11), "email"}, "owner",
                 UserStatus::active, 3, hour(1), hour(2)};
  SubscriptionState subscription{uuid(3), uuid(1), "pro-monthly", SubscriptionStatus::active, hour(40), 2,
                                 PersonalText{}, hour(1), hour(2)};
  TokenAccount tokens{uuid(1), 100, 20, 50, 70, hour(14)};

  EXPECT_EQ(encode_state(customer), cereal_portable_bytes(customer));
  EXPECT_EQ(encode_state(user), cereal_portable_bytes(user));
  EXPECT_EQ(encode_state(subscription), cereal_portable_bytes(subscription));
  EXPECT_EQ(encode_state(tokens), cereal_portable_bytes(tokens));
  EXPECT_EQ(encode_state(TokenAccount{}), cereal_portable_bytes(TokenAccount{}));

  auto customer_back = decode_state<CustomerState>(encode_state(customer));
  ASSERT_TRUE(customer_back.ok()) << customer_back.error().to_string();
  EXPECT_EQ(*customer_back, customer);
  auto tokens_back = decode_state<TokenAccount>(cereal_portable_bytes(tokens));
  ASSERT_TRUE(tokens_back.ok()) << tokens_back.error().to_string();
  EXPECT_EQ(*tokens_back, tokens);
}

TEST(StateRecordTest, ATruncatedOrOversizedStateRecordIsACorruptionErrorNotACrash) {
  CustomerState customer;
  customer.customer_id = uuid(1);
  customer.name = PersonalText{"Atlas SARL", Uuid{}, ""};
  customer.last_updated_fields = {"name"};
  const std::string bytes = encode_state(customer);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    auto decoded = decode_state<CustomerState>(std::string_view(bytes).substr(0, cut));
    ASSERT_FALSE(decoded.ok()) << "cut at " << cut;
    EXPECT_EQ(decoded.error().code(), ErrorCode::corruption);
  }
  // A string length of 2^56 where the name's length is: refused before anything is allocated.
  std::string huge = bytes;
  const std::size_t name_length_at = 1 + 16 + 1;  // byte order, customer id, customer type
  huge[name_length_at + 7] = 1;
  auto decoded = decode_state<CustomerState>(huge);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message().find("larger than"), std::string::npos) << decoded.error().message();
}

}  // namespace
}  // namespace cs
