// Proves the event log's contracts on a real RocksDB in a temp dir: positions,
// expected versions, multi-stream atomicity, idempotency, every read path,
// limits, group commit under concurrent appenders, reopen, and tamper detection.
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <thread>

#include "cs/storage_codec.h"
#include "test_support.h"

namespace cs {
namespace {

using test::make_event;
using test::uuid;

class EventLogTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_.path());

  AppendResult append_ok(std::vector<NewEvent> events) {
    auto r = log_->append(events);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : AppendResult{};
  }
  std::vector<RecordedEvent> read(ReadQuery q) {
    auto r = log_->read_all(q);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : std::vector<RecordedEvent>{};
  }
  static std::vector<std::uint64_t> seqs(const std::vector<RecordedEvent>& events) {
    std::vector<std::uint64_t> out;
    for (const auto& e : events) out.push_back(e.seq.value);
    return out;
  }
};

TEST_F(EventLogTest, SequencesAndStreamVersionsStartAtOneWithNoGaps) {
  auto r = append_ok({make_event(test::customer_created(1), 1), make_event(test::token_purchased(1, 10), 2),
                      make_event(test::token_used(1, 3, 1), 3)});
  EXPECT_FALSE(r.duplicate);
  ASSERT_EQ(r.positions.size(), 3u);
  EXPECT_EQ(r.positions[0], (EventPosition{Sequence(1), StreamVersion(1)}));
  EXPECT_EQ(r.positions[1], (EventPosition{Sequence(2), StreamVersion(1)}));
  EXPECT_EQ(r.positions[2], (EventPosition{Sequence(3), StreamVersion(2)}));
  EXPECT_EQ(log_->head(), Sequence(3));
  EXPECT_EQ(*log_->stream_version("tokens-" + uuid(1).to_string()), StreamVersion(2));
  EXPECT_EQ(*log_->stream_version("tokens-" + uuid(2).to_string()), StreamVersion(0));

  auto events = read({});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].stream, "customer-" + uuid(1).to_string());
  EXPECT_EQ(events[2].version, StreamVersion(2));
  EXPECT_EQ(events[2].payload, Payload(test::token_used(1, 3, 1)));
  EXPECT_EQ(events[2].meta.source_service, "admin-service");
  EXPECT_EQ(events[2].hash, log_->head_hash());
}

TEST_F(EventLogTest, ExpectedVersionModes) {
  append_ok({make_event(test::customer_created(1), 1, ExpectedVersion::no_stream())});
  append_ok({make_event(CustomerValidated{uuid(1), uuid(4)}, 2, ExpectedVersion::exactly(StreamVersion(1)))});
  append_ok({make_event(CustomerSuspended{uuid(1), uuid(4), "late"}, 3, ExpectedVersion::any())});

  auto stale = log_->append(std::vector{make_event(CustomerReactivated{uuid(1), uuid(4)}, 4,
                                                   ExpectedVersion::exactly(StreamVersion(2)))});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ErrorCode::conflict);
  EXPECT_NE(stale.error().message().find("stream customer-" + uuid(1).to_string() +
                                         ": expected version 2, actual version 3"),
            std::string::npos)
      << stale.error().message();

  auto exists = log_->append(std::vector{make_event(test::customer_created(1), 5, ExpectedVersion::no_stream())});
  ASSERT_FALSE(exists.ok());
  EXPECT_NE(exists.error().message().find("expected version no-stream, actual version 3"), std::string::npos);
  EXPECT_EQ(log_->head(), Sequence(3));
}

TEST_F(EventLogTest, SeveralStreamsInOneAppendAreAllOrNothing) {
  append_ok({make_event(test::customer_created(1), 1)});
  // A status change and a token allocation together; the second conflicts.
  auto r = log_->append(std::vector{
      make_event(CustomerValidated{uuid(1), uuid(4)}, 2, ExpectedVersion::exactly(StreamVersion(1))),
      make_event(TokenAllocated{uuid(1), 50, uuid(4), "welcome"}, 3, ExpectedVersion::exactly(StreamVersion(7)))});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::conflict);
  EXPECT_EQ(log_->head(), Sequence(1));
  EXPECT_EQ(read({}).size(), 1u);
  EXPECT_EQ(*log_->stream_version("customer-" + uuid(1).to_string()), StreamVersion(1));

  auto ok = append_ok({make_event(CustomerValidated{uuid(1), uuid(4)}, 2, ExpectedVersion::exactly(StreamVersion(1))),
                       make_event(TokenAllocated{uuid(1), 50, uuid(4), "welcome"}, 3, ExpectedVersion::no_stream())});
  EXPECT_EQ(ok.positions[1], (EventPosition{Sequence(3), StreamVersion(1)}));
  ASSERT_TRUE(log_->verify().ok());
}

TEST_F(EventLogTest, AppendingKnownIdsIsANoOpReturningTheOriginalPositions) {
  std::vector<NewEvent> events{make_event(test::customer_created(1), 1, ExpectedVersion::no_stream()),
                               make_event(test::token_purchased(1, 10), 2)};
  auto first = append_ok(events);
  Hash head_hash = log_->head_hash();
  // A retry after a lost reply: expected versions no longer hold, yet it is a no-op.
  auto again = append_ok(events);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.positions, first.positions);
  EXPECT_EQ(log_->head(), Sequence(2));
  EXPECT_EQ(log_->head_hash(), head_hash);

  // Some known, some new: refused whole.
  auto partial = log_->append(std::vector{events[0], make_event(test::token_purchased(1, 5), 3)});
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(partial.error().message().find("idempotent only as a whole"), std::string::npos);

  // A known id reused for another event: a conflict, not a silent no-op.
  NewEvent reuse = make_event(test::token_used(1, 1, 1), 2);
  auto reused = log_->append(std::vector{reuse});
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(reused.error().code(), ErrorCode::conflict);
  EXPECT_NE(reused.error().message().find("already in the log at seq 2 as token.purchased"), std::string::npos)
      << reused.error().message();

  // The same id twice in one append.
  auto twice = log_->append(std::vector{make_event(test::token_purchased(1, 5), 9), make_event(test::token_purchased(1, 6), 9)});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message().find("appears twice"), std::string::npos);
  EXPECT_EQ(log_->head(), Sequence(2));
}

// An open that says it will not append (a rebuild's, an audit's) has no
// memtable structures for appends; an append through it still does what any
// append does, and a normal open after it sees the same log.
TEST_F(EventLogTest, AnOpenWithoutAppendsStillAppendsCorrectly) {
  append_ok({make_event(test::customer_created(1), 1, ExpectedVersion::no_stream())});
  log_.reset();
  log_ = test::open_log(dir_.path(), {.appends = false});
  auto first = append_ok({make_event(test::token_purchased(1, 10), 2), make_event(test::customer_created(2), 3)});
  EXPECT_EQ(first.positions.front().seq, Sequence(2));
  auto again = append_ok({make_event(test::token_purchased(1, 10), 2), make_event(test::customer_created(2), 3)});
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(seqs(read({.stream = "customer-" + uuid(2).to_string()})), (std::vector<std::uint64_t>{3}));
  log_.reset();
  log_ = test::open_log(dir_.path());
  EXPECT_TRUE(append_ok({make_event(test::customer_created(2), 3)}).duplicate);
  EXPECT_EQ(seqs(read({.verify_chain = true})), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(seqs(read({.stream = "customer-" + uuid(2).to_string()})), (std::vector<std::uint64_t>{3}));
}

// Each writable open starts a new RocksDB info LOG; the old ones are
// removed past info_log_files_kept, so commands run against a store over
// months do not fill its directory with them (RocksDB's default kept 1,000).
TEST_F(EventLogTest, WritableOpensKeepABoundedNumberOfInfoLogs) {
  for (std::size_t i = 0; i < info_log_files_kept + 15; ++i) {
    log_.reset();
    log_ = test::open_log(dir_.path());
  }
  std::size_t info_logs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    if (entry.path().filename().string().starts_with("LOG")) ++info_logs;
  }
  EXPECT_GE(info_logs, 2u);
  EXPECT_LE(info_logs, info_log_files_kept);
}

// The event-id family's memtable is small (it is flushed in the background
// every ~95,000 ids, event_log.cc): ids that went to table files by the
// flushes, ids still in the memtable, and ids of a reopened log are all
// known, as duplicates and as conflicts.
TEST_F(EventLogTest, KnownIdsAreFoundAcrossTheIdFamilysFlushesAndAReopen) {
  constexpr std::uint64_t events = 240'000;
  std::vector<NewEvent> batch;
  for (std::uint64_t i = 1; i <= events; ++i) {
    batch.push_back(make_event(test::token_purchased(1 + i % 97, 1), i));
    if (batch.size() == 2'000) {
      append_ok(batch);
      batch.clear();
    }
  }
  ASSERT_EQ(log_->head(), Sequence(events));
  auto check = [&](const char* when) {
    for (std::uint64_t i : {std::uint64_t{1}, std::uint64_t{50'000}, std::uint64_t{120'000}, events}) {
      auto again = log_->append(std::vector{make_event(test::token_purchased(1 + i % 97, 1), i)});
      ASSERT_TRUE(again.ok()) << when << ", id " << i << ": " << again.error().to_string();
      EXPECT_TRUE(again->duplicate) << when << ", id " << i;
      EXPECT_EQ(again->positions.front().seq, Sequence(i)) << when << ", id " << i;
      auto reused = log_->append(std::vector{make_event(test::token_purchased(1 + i % 97, 2), i)});
      ASSERT_FALSE(reused.ok()) << when << ", id " << i;
      EXPECT_EQ(reused.error().code(), ErrorCode::conflict) << when << ", id " << i;
      auto found = log_->find_event(test::uuid(1'000'000 + i));
      ASSERT_TRUE(found.ok() && found->has_value()) << when << ", id " << i;
      EXPECT_EQ((*found)->seq, Sequence(i));
    }
    EXPECT_EQ(log_->head(), Sequence(events)) << when;
  };
  check("open");
  log_.reset();
  log_ = test::open_log(dir_.path());
  check("reopened");
}

TEST_F(EventLogTest, ReadsForwardBackwardByStreamTypeAndCategory) {
  // Two customers interleaved: seq 1..8.
  append_ok({make_event(test::customer_created(1), 1), make_event(test::customer_created(2), 2),
             make_event(test::token_purchased(1, 10), 3), make_event(test::token_purchased(2, 20), 4),
             make_event(test::token_used(1, 4, 1), 5), make_event(CustomerValidated{uuid(2), uuid(4)}, 6),
             make_event(TokenAllocated{uuid(1), 5, uuid(4), "promo"}, 7), make_event(test::token_used(2, 1, 2), 8)});

  EXPECT_EQ(seqs(read({})), (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(seqs(read({.from_seq = Sequence(6)})), (std::vector<std::uint64_t>{6, 7, 8}));
  EXPECT_EQ(seqs(read({.from_seq = Sequence(3), .limit = 2})), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(seqs(read({.from_seq = Sequence(2), .to_seq = Sequence(4)})), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(seqs(read({.backward = true})), (std::vector<std::uint64_t>{8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(seqs(read({.from_seq = Sequence(3), .backward = true})), (std::vector<std::uint64_t>{3, 2, 1}));

  std::string tokens1 = "tokens-" + uuid(1).to_string();
  EXPECT_EQ(seqs(read({.stream = tokens1})), (std::vector<std::uint64_t>{3, 5, 7}));
  EXPECT_EQ(seqs(read({.stream = tokens1, .from_version = StreamVersion(2)})), (std::vector<std::uint64_t>{5, 7}));
  EXPECT_EQ(seqs(read({.stream = tokens1, .backward = true})), (std::vector<std::uint64_t>{7, 5, 3}));
  EXPECT_EQ(seqs(read({.stream = tokens1, .from_version = StreamVersion(2), .backward = true})),
            (std::vector<std::uint64_t>{5, 3}));
  EXPECT_TRUE(read({.stream = "tokens-" + uuid(3).to_string()}).empty());

  EXPECT_EQ(seqs(read({.type = EventType::token_used})), (std::vector<std::uint64_t>{5, 8}));
  EXPECT_EQ(seqs(read({.type = EventType::token_used, .backward = true})), (std::vector<std::uint64_t>{8, 5}));
  EXPECT_EQ(seqs(read({.type = EventType::customer_created, .from_seq = Sequence(2)})), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(seqs(read({.category = Category::token})), (std::vector<std::uint64_t>{3, 4, 5, 7, 8}));
  EXPECT_EQ(seqs(read({.category = Category::token, .from_seq = Sequence(5), .backward = true})),
            (std::vector<std::uint64_t>{5, 4, 3}));
  EXPECT_EQ(seqs(read({.category = Category::customer, .limit = 2})), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(read({.category = Category::user}).empty());

  auto bad = log_->read_all({.stream = tokens1, .type = EventType::token_used});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(log_->read_event(Sequence(9)).error().code(), ErrorCode::not_found);
}

// Index reads span many blocks (one per stream and type per group commit).
// Whatever the block boundaries, every indexed read from any position, in
// either direction, must equal the same filter applied to a full scan.
TEST_F(EventLogTest, IndexedReadsEqualAFilteredFullScanWhateverTheBlocks) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uint64_t n = 0;
  for (int append = 0; append < 60; ++append) {
    std::vector<NewEvent> batch;
    for (std::size_t i = 0, size = 1 + rng() % 12; i < size; ++i) {
      std::uint64_t customer = rng() % 4;
      Payload p = rng() % 3 == 0 ? Payload(test::token_used(customer, 1, ++n))
                 : rng() % 2    ? Payload(test::token_purchased(customer, 5))
                                : Payload(CustomerUpdated{uuid(customer), {"name"}, {{"name", "\"x\""}}});
      batch.push_back(make_event(p, ++n));
    }
    append_ok(batch);
    // Reopened now and then: the recovery writes what was in the memtable to
    // a file, so a stream's blocks spread over files (with and without its
    // prefix in their filters) and the memtable.
    if (append % 20 == 19) {
      log_.reset();
      log_ = test::open_log(dir_.path());
    }
  }
  auto all = read({});
  ASSERT_EQ(all.size(), log_->head().value);
  for (int trial = 0; trial < 300; ++trial) {
    ReadQuery q;
    std::function<bool(const RecordedEvent&)> selects;
    std::function<std::uint64_t(const RecordedEvent&)> position = [](const RecordedEvent& e) { return e.seq.value; };
    switch (rng() % 4) {
      case 0: {
        std::string stream = (rng() % 2 ? "tokens-" : "customer-") + uuid(rng() % 5).to_string();
        q.stream = stream;
        selects = [stream](const RecordedEvent& e) { return e.stream == stream; };
        position = [](const RecordedEvent& e) { return e.version.value; };
        if (rng() % 2) q.from_version = StreamVersion(rng() % 40);
        break;
      }
      case 1: {
        EventType type = rng() % 2 ? EventType::token_used : EventType::customer_updated;
        q.type = type;
        selects = [type](const RecordedEvent& e) { return e.type() == type; };
        if (rng() % 2) q.from_seq = Sequence(rng() % (all.size() + 5));
        break;
      }
      case 2: {
        const Category category = rng() % 2 ? Category::token : Category::customer;
        q.category = category;
        selects = [category](const RecordedEvent& e) { return category_of(e.type()) == category; };
        if (rng() % 2) q.from_seq = Sequence(rng() % (all.size() + 5));
        break;
      }
      default:  // the whole log: its categories merged by seq
        selects = [](const RecordedEvent&) { return true; };
        if (rng() % 2) q.from_seq = Sequence(rng() % (all.size() + 5));
    }
    q.backward = rng() % 2;
    if (rng() % 3 == 0) q.limit = rng() % 10;
    // No `from`: forward from the start, backward from the end.
    std::uint64_t from = q.from_version ? q.from_version->value
                         : q.from_seq   ? q.from_seq->value
                         : q.backward   ? UINT64_MAX
                                        : 0;
    std::vector<std::uint64_t> expected;
    auto consider = [&](const RecordedEvent& e) {
      if (!selects(e) || expected.size() >= q.limit) return;
      if (q.backward ? position(e) > from : position(e) < from) return;
      expected.push_back(e.seq.value);
    };
    if (q.backward) {
      for (auto it = all.rbegin(); it != all.rend(); ++it) consider(*it);
    } else {
      for (const auto& e : all) consider(e);
    }
    EXPECT_EQ(seqs(read(q)), expected) << "trial " << trial;
  }
  auto heads = log_->stream_version("tokens-" + uuid(0).to_string());
  ASSERT_TRUE(heads.ok());
  EXPECT_EQ(heads->value, static_cast<std::uint64_t>(std::count_if(all.begin(), all.end(), [](const RecordedEvent& e) {
              return e.stream == "tokens-" + uuid(0).to_string();
            })));
  EXPECT_TRUE(log_->verify().ok());
}

TEST_F(EventLogTest, LimitsAndInvalidEventsAreRefusedBeforeAnythingIsWritten) {
  EXPECT_EQ(log_->append({}).error().code(), ErrorCode::invalid_argument);

  auto small = test::open_log(dir_ / "small", {.event_size_bytes_max = 200, .append_events_max = 2});
  CustomerCreated big = test::customer_created(1);
  big.name = std::string(500, 'x');
  auto too_big = small->append(std::vector{make_event(big, 1)});
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.error().message().find("over the limit of 200"), std::string::npos) << too_big.error().message();
  auto too_many = small->append(std::vector{make_event(test::token_purchased(1, 1), 1),
                                            make_event(test::token_purchased(1, 2), 2),
                                            make_event(test::token_purchased(1, 3), 3)});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message().find("at most 2 in one append"), std::string::npos);

  auto negative = log_->append(std::vector{make_event(test::token_used(1, -3, 1), 1)});
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.error().message().find("data.amount must be an integer > 0"), std::string::npos);
  EXPECT_EQ(log_->head(), Sequence(0));
  EXPECT_EQ(small->head(), Sequence(0));
}

TEST_F(EventLogTest, ConcurrentAppendersAreGroupCommittedWithoutLosingOrder) {
  constexpr int threads = 8, appends_per_thread = 50;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < appends_per_thread; ++i) {
        std::uint64_t n = static_cast<std::uint64_t>(t * 1000 + i);
        // Each thread owns one stream and states its version exactly.
        auto r = log_->append(std::vector{make_event(test::token_purchased(100 + t, i + 1), n,
                                                     i == 0 ? ExpectedVersion::no_stream()
                                                            : ExpectedVersion::exactly(StreamVersion(i)))});
        ASSERT_TRUE(r.ok()) << r.error().to_string();
        ASSERT_EQ(r->positions[0].version, StreamVersion(i + 1));
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(log_->head(), Sequence(threads * appends_per_thread));
  for (int t = 0; t < threads; ++t) {
    auto events = read({.stream = "tokens-" + uuid(100 + t).to_string()});
    ASSERT_EQ(events.size(), static_cast<std::size_t>(appends_per_thread));
    for (int i = 0; i < appends_per_thread; ++i) {
      EXPECT_EQ(std::get<TokenPurchased>(events[i].payload).amount, i + 1);
    }
  }
  auto verified = log_->verify();
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  EXPECT_EQ(verified->events_checked, static_cast<std::uint64_t>(threads * appends_per_thread));
}

TEST_F(EventLogTest, ReopeningRestoresHeadHashAndStreams) {
  append_ok({make_event(test::customer_created(1), 1), make_event(test::token_purchased(1, 10), 2)});
  Hash hash = log_->head_hash();
  log_.reset();
  log_ = test::open_log(dir_.path());
  EXPECT_EQ(log_->head(), Sequence(2));
  EXPECT_EQ(log_->head_hash(), hash);
  auto r = append_ok({make_event(test::token_used(1, 1, 1), 3, ExpectedVersion::exactly(StreamVersion(1)))});
  EXPECT_EQ(r.positions[0], (EventPosition{Sequence(3), StreamVersion(2)}));
  auto stats = log_->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->events, 3u);
  EXPECT_EQ(stats->streams, 2u);
  EXPECT_EQ(stats->events_by_type[EventType::token_purchased], 1u);
  EXPECT_GT(stats->size_on_disk_bytes, 0u);
  EXPECT_TRUE(log_->verify().ok());
}

// Durability::deferred: the append is visible at once, and it survives the
// death of the process that made it (SIGKILL before any sync_wal), because
// the WAL holds it in the kernel's cache; sync_wal then makes it durable.
TEST_F(EventLogTest, ADeferredAppendIsVisibleAtOnceAndSurvivesAKilledProcess) {
  std::vector<NewEvent> first{make_event(test::customer_created(1), 1)};
  auto r = log_->append(first, {}, Durability::deferred);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(log_->head(), Sequence(1));
  EXPECT_EQ(read({}).size(), 1u);
  ASSERT_TRUE(log_->sync_wal().ok());
  log_.reset();

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto log = test::open_log(dir_.path());
    std::vector<NewEvent> second{make_event(test::token_purchased(1, 10), 2)};
    SideWrite offset{.family = "consumer_offsets", .key = "t/0", .value = "8"};
    auto appended = log->append(second, std::span(&offset, 1), Durability::deferred);
    const char byte = appended.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &byte, 1);
    for (;;) pause();  // killed here, the log never closed nor synced
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  ASSERT_EQ(byte, 'y') << "the child's deferred append failed";

  log_ = test::open_log(dir_.path());
  EXPECT_EQ(log_->head(), Sequence(2));
  EXPECT_EQ(seqs(read({})), (std::vector<std::uint64_t>{1, 2}));
  auto offset = log_->read_side("consumer_offsets", "t/0");
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(*offset, std::optional<std::string>("8")) << "the side write is in the same batch as the event";
  EXPECT_TRUE(log_->verify().ok());
}

// A read-only open leaves the projections' families closed (each one opened
// costs a read command its memtable and first table files) and opens the
// rest: the log's own and the side families that readers of offsets and
// outboxes need.
TEST(EventLogReadOnlyTest, OpensTheLogAndItsSideFamiliesButNotTheProjections) {
  test::TempDir dir;
  {
    auto log = test::open_log(dir.path());
    ASSERT_TRUE(log->column_family("proj.customers.1").ok());
    std::vector<NewEvent> events{make_event(test::customer_created(1), 1)};
    SideWrite offset{.family = "consumer_offsets", .key = "t/0", .value = "8"};
    ASSERT_TRUE(log->append(events, std::span(&offset, 1)).ok());
  }
  auto read_only = test::open_log(dir.path(), {.read_only = true});
  const auto names = read_only->column_family_names();
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.starts_with("proj."); }), 0);
  EXPECT_NE(std::find(names.begin(), names.end(), "consumer_offsets"), names.end());
  EXPECT_EQ(read_only->read_side("consumer_offsets", "t/0").value(), std::optional<std::string>("8"));
  EXPECT_EQ(read_only->head(), Sequence(1));
  auto refused = read_only->column_family("proj.customers.1");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("read-only"), std::string::npos) << refused.error().to_string();
  read_only.reset();
  // Left closed, not lost: the next writable open has it.
  auto log = test::open_log(dir.path());
  const auto all = log->column_family_names();
  EXPECT_NE(std::find(all.begin(), all.end(), "proj.customers.1"), all.end());
}

// After a failed write nothing more is promised durable: sync_wal says so.
TEST(EventLogSyncTest, SyncWalReportsTheLogsFailure) {
  test::TempDir dir;
  EventLogOptions options;
  options.write_failure_probe = [] { return Status(fatal_error("injected I/O error")); };
  auto log = test::open_log(dir.path(), options);
  std::vector<NewEvent> events{make_event(test::customer_created(1), 1)};
  EXPECT_FALSE(log->append(events, {}, Durability::deferred).ok());
  auto s = log->sync_wal();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("injected I/O error"), std::string::npos) << s.error().message();
}

TEST_F(EventLogTest, ChainedHashesAreReproducibleFromTheBytes) {
  append_ok({make_event(test::customer_created(1), 1), make_event(test::token_purchased(1, 10), 2)});
  auto events = read({});
  std::string canonical;
  encode_canonical(events[0], canonical);
  Hash h1 = chain_hash(Hash{}, canonical);
  EXPECT_EQ(events[0].hash, h1);
  canonical.clear();
  encode_canonical(events[1], canonical);
  EXPECT_EQ(events[1].hash, chain_hash(h1, canonical));
}

// Changes one byte of one stored event behind the log's back; verify names it.
TEST_F(EventLogTest, VerifyNamesTheFirstTamperedSequence) {
  for (int i = 1; i <= 20; ++i) append_ok({make_event(test::token_purchased(1, i), static_cast<std::uint64_t>(i))});
  ASSERT_TRUE(log_->verify().ok());
  log_.reset();
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir_.path().string(), &names).ok());
    for (auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open({}, dir_.path().string(), families, &handles, &raw).ok());
    auto events_cf = handles[std::find(names.begin(), names.end(), "events") - names.begin()];
    const std::string key = EventLog::event_key(Category::token, Sequence(13));
    std::string value;
    ASSERT_TRUE(raw->Get({}, events_cf, key, &value).ok());
    // The payload's amount 13 is followed by its price 130: bump the amount.
    // The event still decodes; only the chain can tell.
    auto pos = value.find(std::string("\x0d\x00\x00\x00\x00\x00\x00\x00\x82\x00", 10));
    ASSERT_NE(pos, std::string::npos);
    value[pos] = 14;
    ASSERT_TRUE(raw->Put({}, events_cf, key, value).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  log_ = test::open_log(dir_.path());
  auto decoded = log_->read_event(Sequence(13));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<TokenPurchased>(decoded->payload).amount, 14);
  auto verified = log_->verify();
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.error().code(), ErrorCode::corruption);
  EXPECT_NE(verified.error().message().find("seq 13: hash chain broken"), std::string::npos)
      << verified.error().message();
  // A range before the damage still verifies.
  EXPECT_TRUE(log_->verify({.from_seq = Sequence(1), .to_seq = Sequence(12)}).ok());
  // A chain-verifying read hands out seq 1..12, then stops at 13.
  std::vector<std::uint64_t> seen;
  auto s = log_->read({.verify_chain = true}, [&](const RecordedEvent& e) {
    seen.push_back(e.seq.value);
    return true;
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "seq 13: hash chain broken");
  EXPECT_EQ(seen.size(), 12u);
  // Anchored past the damage, the rest of the chain holds.
  EXPECT_TRUE(log_->read({.from_seq = Sequence(14), .verify_chain = true}, [](const RecordedEvent&) { return true; }).ok());
}

// Rewrites a log's events under the first layout's keys (8-byte seqs) and
// marks it format 1, behind its back; `keep_new_keys` leaves the current
// keys too, as a conversion killed after its ingest would.
void make_first_layout(const std::filesystem::path& dir, bool keep_new_keys) {
  test::change_family(dir, "events", [&](rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events) {
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(raw.NewIterator({}, events));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ASSERT_EQ(it->key().size(), 9u);
      batch.Put(events, it->key().ToString().substr(1), it->value());
      if (!keep_new_keys) batch.Delete(events, it->key());
    }
    ASSERT_TRUE(it->status().ok());
    it.reset();
    batch.Put("log_format", std::string("\0\0\0\0\0\0\0\1", 8));
    ASSERT_TRUE(raw.Write({}, &batch).ok());
    ASSERT_TRUE(raw.Flush({}, events).ok());
  });
}

// Format 1 kept events by seq alone. Such a log is refused by a read-only
// open with a message that says what to do, and converted by the first
// writable open (also when a conversion was killed after its ingest): the
// same events in the same order, every read path and the chain intact, no
// key of the old layout left.
TEST(EventLogLayoutTest, ALogOfTheFirstLayoutIsConvertedByItsFirstWritableOpen) {
  for (bool killed_after_ingest : {false, true}) {
    SCOPED_TRACE(killed_after_ingest ? "conversion killed after its ingest" : "first conversion");
    test::TempDir dir;
    std::vector<RecordedEvent> before, tokens_before, customer_before;
    {
      auto log = test::open_log(dir.path());
      std::vector<NewEvent> batch;
      std::uint64_t n = 0;
      for (std::uint64_t c = 0; c < 30; ++c) {
        batch.push_back(make_event(test::customer_created(c), ++n));
        batch.push_back(make_event(test::token_purchased(c, 10), ++n));
        batch.push_back(make_event(test::token_used(c, 1, c), ++n));
      }
      ASSERT_TRUE(log->append(batch).ok());
      before = log->read_all({}).value();
      tokens_before = log->read_all({.category = Category::token}).value();
      customer_before = log->read_all({.category = Category::customer}).value();
    }
    make_first_layout(dir.path(), killed_after_ingest);
    auto refused = EventLog::open(dir.path(), {.read_only = true});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), ErrorCode::invalid_argument);
    EXPECT_NE(refused.error().message().find("csctl rebuild"), std::string::npos) << refused.error().message();

    auto log = test::open_log(dir.path());
    ASSERT_EQ(log->head().value, before.size());
    auto after = log->read_all({}).value();
    ASSERT_EQ(after.size(), before.size());
    for (std::size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].seq, before[i].seq);
      EXPECT_EQ(after[i].hash, before[i].hash);
    }
    EXPECT_EQ(log->read_all({.category = Category::token}).value().size(), tokens_before.size());
    EXPECT_EQ(log->read_all({.category = Category::customer}).value().size(), customer_before.size());
    EXPECT_EQ(log->read_all({.type = EventType::token_used, .backward = true}).value().size(), 30u);
    auto verified = log->verify();
    ASSERT_TRUE(verified.ok()) << verified.error().to_string();
    EXPECT_EQ(verified->events_checked, before.size());
    std::unique_ptr<rocksdb::Iterator> it(log->db().NewIterator({}, *log->column_family("events")));
    std::size_t keys = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++keys) EXPECT_EQ(it->key().size(), 9u);
    EXPECT_EQ(keys, before.size());
    it.reset();
    // And it appends on from there.
    ASSERT_TRUE(log->append(std::vector<NewEvent>{make_event(test::token_purchased(1, 5), 1'000)}).ok());
    log.reset();
    auto reopened = EventLog::open(dir.path(), {.read_only = true});
    ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
    EXPECT_EQ((*reopened)->head().value, before.size() + 1);
  }
}

// A first open killed while RocksDB made the database (it writes the
// database with its default family, then creates each other family) leaves
// some of the log's families, all empty, and no format marker.
TEST(EventLogCreationTest, AFirstOpenKilledWhileMakingTheDatabaseIsCompletedByTheNextWritableOpen) {
  for (const std::vector<std::string>& made : std::vector<std::vector<std::string>>{
           {"default"}, {"default", "events"}, {"default", "events", "stream_index", "type_index"}}) {
    test::TempDir dir;
    {
      rocksdb::Options options;
      options.create_if_missing = true;
      options.create_missing_column_families = true;
      std::vector<rocksdb::ColumnFamilyDescriptor> families;
      for (const auto& name : made) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
      std::vector<rocksdb::ColumnFamilyHandle*> handles;
      rocksdb::DB* db = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(options, (dir / "log").string(), families, &handles, &db).ok());
      for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
      delete db;
    }
    auto read_only = EventLog::open(dir / "log", {.read_only = true});
    ASSERT_FALSE(read_only.ok()) << made.size();
    EXPECT_EQ(read_only.error().code(), ErrorCode::not_found) << read_only.error().to_string();
    EXPECT_NE(read_only.error().message().find("its creation was interrupted"), std::string::npos)
        << read_only.error().to_string();
    auto log = EventLog::open(dir / "log");
    ASSERT_TRUE(log.ok()) << made.size() << ": " << log.error().to_string();
    auto r = (*log)->append(std::vector<NewEvent>{make_event(test::customer_created(1), 1)});
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_TRUE((*log)->verify().ok());
  }
  // The same families with something in them, or a family of another kind,
  // are not an unfinished log: refused, not written into.
  test::TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{"default", {}}, {"events", {}}, {"sessions", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, (dir / "other").string(), families, &handles, &db).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto other = EventLog::open(dir / "other");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("not a customer-service log"), std::string::npos) << other.error().to_string();
}

}  // namespace
}  // namespace cs
