// Proves the rules the log enforces on every append, each found in review and
// each failing before its fix: an id names one event (same data or a
// conflict), a creation event opens its stream, a user or subscription
// belongs to one customer for life (and the projections agree whatever the
// log holds), token totals stay under a named limit, and a failed group write
// fails every writer of the group and every append queued behind it.
#include <algorithm>
#include <atomic>
#include <thread>

#include "cs/json_codec.h"
#include "cs/storage_codec.h"
#include "cs/projection_engine.h"
#include "cs/read_models.h"
#include "test_support.h"

namespace cs {
namespace {

using test::make_event;
using test::uuid;

class LogRulesTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_.path());

  void append_ok(std::vector<NewEvent> events) {
    auto r = log_->append(events);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
  Error append_error(std::vector<NewEvent> events) {
    auto r = log_->append(events);
    EXPECT_FALSE(r.ok());
    return r.ok() ? Error(ErrorCode::fatal, "append succeeded") : r.error();
  }
};

UserCreated user_created(std::uint64_t user, std::uint64_t customer) {
  return {uuid(user), uuid(customer), "u@acme.example", "member"};
}
UserUpdated user_updated(std::uint64_t user, std::uint64_t customer) {
  return {uuid(user), uuid(customer), {"role"}, {{"role", "\"admin\""}}};
}

TEST_F(LogRulesTest, AKnownIdWithOtherDataIsAConflictNotADuplicate) {
  append_ok({make_event(test::customer_created(1), 1), make_event(test::token_purchased(1, 5), 2)});
  auto same = log_->append(std::vector{make_event(test::token_purchased(1, 5), 2)});
  ASSERT_TRUE(same.ok()) << same.error().to_string();
  EXPECT_TRUE(same->duplicate);

  auto other = make_event(test::token_purchased(1, 5), 2);
  std::get<TokenPurchased>(other.payload).amount = 500;
  Error e = append_error({other});
  EXPECT_EQ(e.code(), ErrorCode::conflict) << e.to_string();
  EXPECT_NE(e.message().find(other.id.to_string()), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("other data"), std::string::npos) << e.message();
  EXPECT_EQ(log_->head(), Sequence(2));
}

TEST_F(LogRulesTest, AnIdStagedInTheSameAppendWithOtherDataIsAConflict) {
  // Two writers of one group: the second reuses the first's id with other data.
  std::vector<NewEvent> first{make_event(test::customer_created(1), 1)};
  auto second = make_event(test::customer_created(1), 1);
  std::get<CustomerCreated>(second.payload).name = "Someone Else";
  append_ok(first);
  Error e = append_error({second});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
}

TEST_F(LogRulesTest, ACreationEventOnAnExistingStreamIsRefused) {
  append_ok({make_event(test::customer_created(1, CustomerType::sme), 1)});
  Error e = append_error({make_event(test::customer_created(1, CustomerType::institution), 2)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  EXPECT_NE(e.message().find("already exists"), std::string::npos) << e.message();
  // In one append too, and for users and subscriptions.
  e = append_error({make_event(user_created(50, 1), 3), make_event(user_created(50, 1), 4)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  append_ok({make_event(SubscriptionCreated{uuid(60), uuid(1), "pro", test::at_seconds(100)}, 5)});
  e = append_error({make_event(SubscriptionCreated{uuid(60), uuid(1), "pro", test::at_seconds(100)}, 6)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  EXPECT_EQ(log_->head(), Sequence(2));
}

TEST_F(LogRulesTest, AUserBelongsToItsCustomerForLife) {
  append_ok({make_event(test::customer_created(1), 1), make_event(test::customer_created(2), 2),
             make_event(user_created(50, 1), 3)});
  Error e = append_error({make_event(user_updated(50, 2), 4)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  EXPECT_NE(e.message().find("belongs to customer " + uuid(1).to_string()), std::string::npos) << e.message();
  // Within one append as well, and after a reopen (the owner is read back).
  e = append_error({make_event(user_created(51, 1), 5), make_event(user_updated(51, 2), 6)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  log_.reset();
  log_ = test::open_log(dir_.path());
  e = append_error({make_event(UserDeleted{uuid(50), uuid(2)}, 7)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
  append_ok({make_event(user_updated(50, 1), 8)});
  append_ok({make_event(SubscriptionCreated{uuid(60), uuid(1), "pro", test::at_seconds(100)}, 9)});
  e = append_error({make_event(SubscriptionRenewed{uuid(60), uuid(2), test::at_seconds(9)}, 10)});
  EXPECT_EQ(e.code(), ErrorCode::conflict);
}

TEST_F(LogRulesTest, TokenTotalsStayUnderTheirNamedLimit) {
  append_ok({make_event(test::customer_created(1), 1)});
  // Up to the limit exactly, in maximal purchases.
  std::uint64_t id = 100;
  std::vector<NewEvent> batch;
  for (std::int64_t total = 0; total < limits::token_total_max; total += limits::amount_max) {
    batch.push_back(make_event(TokenPurchased{uuid(1), limits::amount_max, 1, "EUR", "pay"}, ++id));
  }
  append_ok(batch);
  Error e = append_error({make_event(test::token_purchased(1, 1), ++id)});
  EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
  EXPECT_NE(e.message().find("limit of " + std::to_string(limits::token_total_max)), std::string::npos)
      << e.message();
  // Read back after a reopen: the totals are folded from the stream.
  log_.reset();
  log_ = test::open_log(dir_.path());
  e = append_error({make_event(TokenAllocated{uuid(1), 1, uuid(4), "gift"}, ++id)});
  EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
  append_ok({make_event(test::token_used(1, 5, 1), ++id)});
}

TEST(OwnerIndexTest, AUserMovedByAnOldLogStaysWithItsFirstCustomer) {
  // A log written before the owner rule may hold such an event: import it
  // (import keeps history as it was) and check both read models agree.
  test::TempDir source_dir, dir;
  std::vector<RecordedEvent> history;
  {
    auto source = test::open_log(source_dir.path());
    ASSERT_TRUE(source->append(std::vector{make_event(test::customer_created(1), 1), make_event(test::customer_created(2), 2),
                                           make_event(user_created(50, 1), 3)})
                    .ok());
    auto events = source->read_all({});
    ASSERT_TRUE(events.ok());
    history = *events;
  }
  // The moving event, chained by hand as an old log would hold it.
  RecordedEvent moved = history.back();
  moved.seq = Sequence(4);
  moved.version = StreamVersion(2);
  moved.id = uuid(999);
  moved.payload = user_updated(50, 2);
  std::string stored;
  encode_canonical(moved, stored);
  moved.hash = chain_hash(history.back().hash, stored);
  history.push_back(moved);

  auto log = test::open_log(dir.path());
  auto imported = log->import(history);
  ASSERT_TRUE(imported.ok()) << imported.error().to_string();
  auto engine = ProjectionEngine::open(*log);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->catch_up().ok());
  auto user = (*engine)->user(uuid(50));
  ASSERT_TRUE(user.ok());
  ASSERT_TRUE(user->has_value());
  EXPECT_EQ((*user)->customer_id, uuid(1));
  auto of_first = (*engine)->users_of(uuid(1));
  auto of_second = (*engine)->users_of(uuid(2));
  ASSERT_TRUE(of_first.ok() && of_second.ok());
  EXPECT_EQ(of_first->size(), 1u);
  EXPECT_EQ(of_second->size(), 0u);
  auto report = (*engine)->verify();
  EXPECT_TRUE(report.ok()) << report.error().to_string();
}

TEST(GroupFailureTest, AWriterWhoseIdWasStagedByAFailedGroupGetsTheFailure) {
  test::TempDir dir;
  std::atomic<int> groups{0};
  EventLog* raw = nullptr;
  EventLogOptions options;
  options.write_failure_probe = [&]() -> Status {
    if (++groups == 1) {
      // Hold the first group until two more appends queue behind it, so
      // that they form the second group together.
      while (raw->queued_appends() < 3) std::this_thread::yield();
      return {};
    }
    return fatal_error("injected I/O error");
  };
  auto log = test::open_log(dir.path(), options);
  raw = log.get();
  std::vector<NewEvent> a{make_event(test::customer_created(1), 1)};
  std::vector<NewEvent> b{make_event(test::customer_created(2), 2)};
  Result<AppendResult> ra = fatal_error("not run"), rb = ra, rc = ra;
  std::thread ta([&] { ra = log->append(a); });
  while (log->queued_appends() < 1) std::this_thread::yield();
  std::thread tb([&] { rb = log->append(b); });
  while (log->queued_appends() < 2) std::this_thread::yield();
  std::thread tc([&] { rc = log->append(b); });  // the same id as b: staged by b in the same group
  ta.join();
  tb.join();
  tc.join();
  ASSERT_TRUE(ra.ok()) << ra.error().to_string();
  ASSERT_FALSE(rb.ok());
  ASSERT_FALSE(rc.ok()) << "told 'already in the log' for an id whose write failed";
  EXPECT_EQ(rc.error().code(), ErrorCode::fatal);
  EXPECT_EQ(log->head(), Sequence(1));
}

TEST(GroupFailureTest, AppendsQueuedBehindAFailedGroupAreRefused) {
  test::TempDir dir;
  std::atomic<int> groups{0};
  EventLog* raw = nullptr;
  EventLogOptions options;
  options.group_commit_events_max = 1;  // one append per group
  options.write_failure_probe = [&]() -> Status {
    int n = ++groups;
    if (n == 1) {
      while (raw->queued_appends() < 3) std::this_thread::yield();
      return {};
    }
    if (n == 2) return fatal_error("injected I/O error");
    return {};
  };
  auto log = test::open_log(dir.path(), options);
  raw = log.get();
  std::vector<NewEvent> a{make_event(test::customer_created(1), 1)};
  std::vector<NewEvent> b{make_event(test::customer_created(2), 2)};
  std::vector<NewEvent> c{make_event(test::customer_created(3), 3)};
  Result<AppendResult> ra = fatal_error("not run"), rb = ra, rc = ra;
  std::thread ta([&] { ra = log->append(a); });
  while (log->queued_appends() < 1) std::this_thread::yield();
  std::thread tb([&] { rb = log->append(b); });
  while (log->queued_appends() < 2) std::this_thread::yield();
  std::thread tc([&] { rc = log->append(c); });
  ta.join();
  tb.join();
  tc.join();
  ASSERT_TRUE(ra.ok());
  ASSERT_FALSE(rb.ok());
  ASSERT_FALSE(rc.ok()) << "committed behind a failed group";
  EXPECT_EQ(rc.error().code(), ErrorCode::fatal);
  EXPECT_EQ(log->head(), Sequence(1));
  auto later = log->append(std::vector{make_event(test::customer_created(4), 4)});
  EXPECT_FALSE(later.ok());
}

TEST(ChangesTest, UpdatesAreCheckedByTheCreationFieldsRules) {
  auto parse = [](const std::string& changes, const std::string& fields) {
    return parse_event_line(R"({"type":"customer.updated","data":{"customerId":")" + uuid(1).to_string() +
                            R"(","updatedFields":)" + fields + R"(,"changes":)" + changes + "}}");
  };
  EXPECT_TRUE(parse(R"({"email":"new@acme.example"})", R"(["email"])").ok());
  EXPECT_TRUE(parse(R"({"phone":"+33 1 23"})", R"(["phone"])").ok());  // a deployment's own field
  auto bad_email = parse(R"({"email":"not-an-email"})", R"(["email"])");
  ASSERT_FALSE(bad_email.ok());
  EXPECT_NE(bad_email.error().message().find("data.changes.email must be an e-mail address"), std::string::npos)
      << bad_email.error().message();
  auto empty_name = parse(R"({"name":"  "})", R"(["name"])");
  ASSERT_FALSE(empty_name.ok());
  EXPECT_NE(empty_name.error().message().find("data.changes.name must not be empty"), std::string::npos)
      << empty_name.error().message();
  auto number_name = parse(R"({"name":5})", R"(["name"])");
  ASSERT_FALSE(number_name.ok());
  EXPECT_NE(number_name.error().message().find("data.changes.name must be a string"), std::string::npos);
  auto type = parse(R"({"customerType":"institution"})", R"(["customerType"])");
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.error().message().find("never changes"), std::string::npos);
  // Built in code, the same rules hold at append.
  CustomerUpdated p{uuid(1), {"email"}, {{"email", "\"x\""}}};
  EXPECT_FALSE(validate_payload(p, 1).ok());
  CustomerUpdated not_json{uuid(1), {"email"}, {{"email", "{oops"}}};
  EXPECT_FALSE(validate_payload(not_json, 1).ok());
}

TEST(DuplicateKeysTest, AKeyGivenTwiceIsRefusedNotSilentlyOverwritten) {
  const std::string c = uuid(1).to_string();
  const std::string data = R"({"customerId":")" + c + R"(","customerType":"sme","name":"A","email":"a@b.c"})";
  auto top = parse_event_line(R"({"type":"customer.created","type":"customer.deleted","data":)" + data + "}");
  ASSERT_FALSE(top.ok());
  EXPECT_NE(top.error().message().find("\"type\" appears twice"), std::string::npos) << top.error().message();
  auto in_data = parse_event_line(R"({"type":"customer.created","data":{"customerId":")" + c +
                                  R"(","customerType":"sme","name":"A","name":"B","email":"a@b.c"}})");
  ASSERT_FALSE(in_data.ok());
  EXPECT_NE(in_data.error().message().find("twice"), std::string::npos) << in_data.error().message();
  auto in_meta = parse_event_line(R"({"type":"customer.created","meta":{"sourceService":"a","sourceService":"b"},"data":)" +
                                  data + "}");
  ASSERT_FALSE(in_meta.ok());
  EXPECT_NE(in_meta.error().message().find("meta.sourceService appears twice"), std::string::npos);
  EXPECT_TRUE(parse_event_line(R"({"type":"customer.created","data":)" + data + "}").ok());
}

TEST(NestingTest, DeepJsonIsRefusedBeforeParsingEverywhere) {
  std::string deep = R"({"type":"customer.created","data":)" + std::string(100'000, '[') + "}";
  auto r = parse_event_line(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("nests deeper than " + std::to_string(limits::json_depth_max)),
            std::string::npos)
      << r.error().message();
  std::string in_changes = R"({"type":"customer.updated","data":{"customerId":")" + uuid(1).to_string() +
                           R"(","updatedFields":["x"],"changes":{"x":)" + std::string(100'000, '{') + "}}}";
  EXPECT_FALSE(parse_event_line(in_changes).ok());
  // Brackets inside strings do not count, escaped quotes do not end strings.
  EXPECT_TRUE(check_json_depth(R"({"a":"[[[[\"[[[["})", 2).ok());
  EXPECT_FALSE(check_json_depth("[[[", 2).ok());
  EXPECT_TRUE(check_json_depth(std::string(64, '[') + std::string(64, ']')).ok());
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

TEST(VerifySnapshotTest, VerifyBesideAnAppenderSeesOneConsistentLog) {
  test::TempDir dir;
  auto log = test::open_log(dir.path());
  ASSERT_TRUE(log->append(std::vector{make_event(test::customer_created(1), 1)}).ok());
  std::atomic<bool> done{false};
  std::thread appender([&] {
    for (std::uint64_t i = 0; i < 300; ++i) {
      std::vector<NewEvent> batch;
      for (std::uint64_t j = 0; j < 20; ++j) {
        std::uint64_t n = 10 + i * 20 + j;
        batch.push_back(make_event(test::customer_created(n), n));
      }
      EXPECT_TRUE(log->append(batch).ok());
    }
    done = true;
  });
  int runs = 0;
  while (!done || runs == 0) {
    auto report = log->verify();
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    ++runs;
  }
  appender.join();
  EXPECT_TRUE(log->verify().ok());
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

std::optional<std::string> side_value(EventLog& log, const std::string& family, const std::string& key) {
  auto cf = log.column_family(family);
  EXPECT_TRUE(cf.ok());
  std::string value;
  auto s = log.db().Get({}, *cf, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  EXPECT_TRUE(s.ok()) << s.ToString();
  return value;
}

// Families are created and dropped several at a time (a rebuild makes four):
// existing ones are returned as they are, a name given twice is one family,
// absent names are skipped by a drop, and all of it survives a reopen.
TEST(ColumnFamiliesTest, CreatedAndDroppedTogether) {
  test::TempDir dir;
  {
    auto log = test::open_log(dir.path());
    auto first = log->column_family("proj.a.1");
    ASSERT_TRUE(first.ok());
    auto handles = log->column_families({"proj.b.1", "proj.a.1", "proj.c.1", "proj.b.1"});
    ASSERT_TRUE(handles.ok()) << handles.error().to_string();
    ASSERT_EQ(handles->size(), 4u);
    EXPECT_EQ((*handles)[1], *first) << "an existing family is returned, not made again";
    EXPECT_EQ((*handles)[0], (*handles)[3]) << "a name given twice is one family";
    EXPECT_NE((*handles)[0], (*handles)[2]);
    for (const char* name : {"proj.a.1", "proj.b.1", "proj.c.1"}) {
      ASSERT_TRUE(log->db().Put({}, *log->column_family(name), "k", name).ok());
    }
    ASSERT_TRUE(log->drop_column_families({"proj.a.1", "proj.absent.1", "proj.a.1"}).ok());
  }
  auto log = test::open_log(dir.path());
  auto names = log->column_family_names();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_FALSE(has("proj.a.1"));
  EXPECT_FALSE(has("proj.absent.1"));
  ASSERT_TRUE(has("proj.b.1"));
  ASSERT_TRUE(has("proj.c.1"));
  EXPECT_EQ(side_value(*log, "proj.c.1", "k"), "proj.c.1");
  ASSERT_TRUE(log->drop_column_families({"proj.b.1", "proj.c.1"}).ok());
  names = log->column_family_names();
  EXPECT_FALSE(has("proj.b.1") || has("proj.c.1"));
}

// Side writes are the exactly-once primitive of the daemon (a consumed
// offset and an answer in the same batch as the events): all or nothing.
TEST(SideWritesTest, CommitWithTheEventsOrNotAtAll) {
  test::TempDir dir;
  std::atomic<bool> fail_writes{false};
  EventLogOptions options;
  options.write_failure_probe = [&]() -> Status {
    return fail_writes ? Status(fatal_error("injected I/O error")) : Status{};
  };
  auto log = test::open_log(dir.path(), options);
  std::vector<NewEvent> create{make_event(test::customer_created(1), 1)};
  std::vector<SideWrite> offset{{"consumer_offsets", "requests/0", "17"}, {"outbox", "0001", "answer 1"}};
  auto r = log->append(create, offset);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "17");
  EXPECT_EQ(side_value(*log, "outbox", "0001"), "answer 1");

  // A redelivery: the events are known, the offset still moves.
  std::vector<SideWrite> next{{"consumer_offsets", "requests/0", "18"}};
  auto again = log->append(create, next);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "18");

  // No events: an answer and an offset alone (a rejection); a delete.
  std::vector<SideWrite> only{{"consumer_offsets", "requests/0", "19"}, {"outbox", "0001", std::nullopt}};
  auto alone = log->append({}, only);
  ASSERT_TRUE(alone.ok()) << alone.error().to_string();
  EXPECT_TRUE(alone->positions.empty());
  EXPECT_EQ(log->head(), Sequence(1));
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "19");
  EXPECT_EQ(side_value(*log, "outbox", "0001"), std::nullopt);

  // A refused append writes nothing of its side writes.
  std::vector<SideWrite> refused{{"consumer_offsets", "requests/0", "20"}};
  EXPECT_FALSE(log->append(std::vector{make_event(test::customer_created(1, CustomerType::institution), 2)}, refused).ok());
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "19");

  // Not into the log's own families, not empty, not unbounded.
  EXPECT_FALSE(log->append({}, std::vector<SideWrite>{{"events", "k", "v"}}).ok());
  EXPECT_FALSE(log->append({}, std::vector<SideWrite>{{"proj.customers.1", "k", "v"}}).ok());
  EXPECT_FALSE(log->append({}, std::vector<SideWrite>{{"outbox", "", "v"}}).ok());
  EXPECT_FALSE(log->append({}, std::vector<SideWrite>{{"outbox", "k", std::string(limits::side_write_bytes_max, 'x')}}).ok());
  EXPECT_FALSE(log->append({}, std::vector<SideWrite>{}).ok());

  // A failed write: neither events nor side writes.
  fail_writes = true;
  std::vector<SideWrite> lost{{"consumer_offsets", "requests/0", "21"}};
  EXPECT_FALSE(log->append(std::vector{make_event(test::customer_created(2), 3)}, lost).ok());
  fail_writes = false;
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "19");
  EXPECT_EQ(log->head(), Sequence(1));

  // Durable across a reopen, and verify still holds.
  log.reset();
  log = test::open_log(dir.path());
  EXPECT_EQ(side_value(*log, "consumer_offsets", "requests/0"), "19");
  EXPECT_TRUE(log->verify().ok());
}

// An outbox: values made once positions are known, keys taken in commit
// order from the family's own sequence, concurrent writers included.
TEST(SideWritesTest, ValuesAfterPositionsAndSequencedKeys) {
  test::TempDir dir;
  auto log = test::open_log(dir.path());
  auto answer = [](const AppendResult& r) {
    std::string v = r.duplicate ? "dup" : "new";
    for (const auto& p : r.positions) v += ":" + std::to_string(p.seq.value);
    return v;
  };
  SideWrite outbox{.family = "outbox", .value_after = answer, .sequenced = true};
  std::vector<NewEvent> create{make_event(test::customer_created(1), 1)};
  ASSERT_TRUE(log->append(create, std::vector{outbox}).ok());
  ASSERT_TRUE(log->append(create, std::vector{outbox}).ok());  // a redelivery: the original position
  ASSERT_TRUE(log->append({}, std::vector{outbox}).ok());       // no events
  EXPECT_EQ(side_value(*log, "outbox", EventLog::sequenced_key(1)), "new:1");
  EXPECT_EQ(side_value(*log, "outbox", EventLog::sequenced_key(2)), "dup:1");
  EXPECT_EQ(side_value(*log, "outbox", EventLog::sequenced_key(3)), "new");
  auto head = log->side_sequence_head("outbox");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(*head, 3u);
  EXPECT_EQ(*log->side_sequence_head("never-written"), 0u);

  // A refused append takes no sequence.
  EXPECT_FALSE(log->append(std::vector{make_event(test::customer_created(1, CustomerType::institution), 2)},
                           std::vector{outbox}).ok());
  EXPECT_EQ(*log->side_sequence_head("outbox"), 3u);

  // A made value over the limit refuses a side-only append and takes nothing.
  SideWrite huge{.family = "outbox", .value_after = [](const AppendResult&) {
                   return std::string(limits::side_write_bytes_max, 'x');
                 }, .sequenced = true};
  auto refused = log->append({}, std::vector{huge});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(*log->side_sequence_head("outbox"), 3u);

  // Four threads: sequences dense, each taken once, and the counter
  // survives a reopen.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(log->append({}, std::vector{outbox}).ok());
    });
  }
  for (auto& t : threads) t.join();
  std::uint64_t expected = 1, seen = 0;
  ASSERT_TRUE(log->scan_side("outbox", "", SIZE_MAX, [&](std::string_view key, std::string_view) {
    EXPECT_EQ(key, EventLog::sequenced_key(expected));
    ++expected;
    ++seen;
    return true;
  }).ok());
  EXPECT_EQ(seen, 203u);
  log.reset();
  log = test::open_log(dir.path());
  ASSERT_TRUE(log->append({}, std::vector{outbox}).ok());
  EXPECT_EQ(*log->side_sequence_head("outbox"), 204u);
  auto read = log->read_side("outbox", EventLog::sequenced_key(204));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "new");
}

}  // namespace
}  // namespace cs
