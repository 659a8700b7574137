// read_ahead hands out what EventLog::read does, in order, whichever thread
// decodes (cs/read_ahead.h's DecodeOn): the same events for whole-log,
// stream, type and category reads, the same stop, the same error for a
// stored event that does not decode or that an index names wrongly, and the
// same chain check as a verifying read, whichever thread checks the links.
#include "cs/read_ahead.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cs/json_codec.h"
#include "test_support.h"

namespace cs {
namespace {

// More than two chunks, the last one partly filled.
constexpr std::uint64_t event_count = 2 * read_ahead_chunk_events + 300;

const DecodeOn every_mode[] = {DecodeOn::whichever_is_idle, DecodeOn::reader, DecodeOn::visitor};

std::string mode_name(DecodeOn mode) {
  switch (mode) {
    case DecodeOn::whichever_is_idle: return "whichever_is_idle";
    case DecodeOn::reader: return "reader";
    case DecodeOn::visitor: return "visitor";
  }
  return "?";
}

// Token purchases of 7 customers in turn (a stream's events 7 apart), and a
// customer created every 100 events (a type whose events are far apart):
// index reads step to near events and seek to far ones.
void fill(const std::filesystem::path& dir) {
  auto log = test::open_log(dir);
  std::vector<NewEvent> batch;
  for (std::uint64_t i = 1; i <= event_count; ++i) {
    if (i % 100 == 0) {
      batch.push_back(test::make_event(test::customer_created(10'000 + i), 2'000'000 + i));
    }
    batch.push_back(test::make_event(test::token_purchased(1 + i % 7, static_cast<std::int64_t>(i)), i));
    if (batch.size() == 500 || i == event_count) {
      ASSERT_TRUE(log->append(batch).ok());
      batch.clear();
    }
  }
}

// Opens the log's RocksDB behind its back and gives `change` its events family.
void change_events(const std::filesystem::path& dir,
                   const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle*)>& change) {
  test::change_family(dir, "events", change);
}

// The key event `seq` is stored under (its category's), or the token
// category's when none holds it.
std::string seq_key(rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events, std::uint64_t seq) {
  for (Category c : {Category::customer, Category::user, Category::subscription, Category::token}) {
    std::string value;
    if (raw.Get({}, events, EventLog::event_key(c, Sequence(seq)), &value).ok()) {
      return EventLog::event_key(c, Sequence(seq));
    }
  }
  return EventLog::event_key(Category::token, Sequence(seq));
}

// Replaces the stored bytes of event `seq` behind the log's back.
void overwrite_stored(const std::filesystem::path& dir, std::uint64_t seq, const std::string& value) {
  change_events(dir, [&](rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events) {
    std::string old;
    ASSERT_TRUE(raw.Get({}, events, seq_key(raw, events, seq), &old).ok()) << "no stored event at seq " << seq;
    ASSERT_TRUE(raw.Put({}, events, seq_key(raw, events, seq), value).ok());
  });
}

std::string stored_value(const std::filesystem::path& dir, std::uint64_t seq) {
  std::string value;
  change_events(dir, [&](rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events) {
    ASSERT_TRUE(raw.Get({}, events, seq_key(raw, events, seq), &value).ok()) << "no stored event at seq " << seq;
  });
  return value;
}

std::vector<std::uint64_t> seqs_of(const EventLog& log, const ReadQuery& q) {
  std::vector<std::uint64_t> seqs;
  EXPECT_TRUE(log.read(q, [&](const RecordedEvent& e) {
                   seqs.push_back(e.seq.value);
                   return true;
                 }).ok());
  return seqs;
}

TEST(ReadAheadTest, EveryModeHandsOutWhatReadDoesInOrder) {
  test::TempDir dir;
  fill(dir.path());
  auto log = test::open_log(dir.path());
  const std::vector<std::pair<std::string, ReadQuery>> queries = {
      {"whole log", {}},
      {"stream", {.stream = "tokens-" + test::uuid(3).to_string()}},
      {"stream backward", {.stream = "tokens-" + test::uuid(5).to_string(), .from_version = StreamVersion(200),
                           .backward = true}},
      {"type", {.type = EventType::customer_created}},
      {"category backward", {.category = Category::token, .from_seq = Sequence(1'700), .backward = true}},
      {"category with limit", {.category = Category::customer, .from_seq = Sequence(250), .limit = 7}},
  };
  for (const auto& [name, query] : queries) {
    for (bool decrypt : {false, true}) {
      ReadQuery q = query;
      q.decrypt = decrypt;
      std::vector<std::string> direct;
      ASSERT_TRUE(log->read(q, [&](const RecordedEvent& e) {
                       direct.push_back(format_event_line(e));
                       return true;
                     }).ok());
      ASSERT_FALSE(direct.empty()) << name;
      for (DecodeOn mode : every_mode) {
        std::vector<std::string> ahead;
        ASSERT_TRUE(read_ahead(*log, q, [&](const RecordedEvent& e) {
                      ahead.push_back(format_event_line(e));
                      return true;
                    }, mode).ok());
        EXPECT_EQ(ahead, direct) << name << ", " << mode_name(mode) << ", decrypt " << decrypt;
      }
    }
  }
  // What the index reads select, against the whole log filtered.
  std::vector<std::uint64_t> created, stream3;
  ASSERT_TRUE(log->read({}, [&](const RecordedEvent& e) {
                   if (e.type() == EventType::customer_created) created.push_back(e.seq.value);
                   if (e.stream == "tokens-" + test::uuid(3).to_string()) stream3.push_back(e.seq.value);
                   return true;
                 }).ok());
  EXPECT_EQ(seqs_of(*log, {.type = EventType::customer_created}), created);
  EXPECT_EQ(seqs_of(*log, {.stream = "tokens-" + test::uuid(3).to_string()}), stream3);
  EXPECT_EQ(created.size(), event_count / 100);
}

TEST(ReadAheadTest, AVisitorThatStopsStopsTheReadInEveryMode) {
  test::TempDir dir;
  fill(dir.path());
  auto log = test::open_log(dir.path());
  for (DecodeOn mode : every_mode) {
    std::uint64_t seen = 0;
    auto s = read_ahead(*log, ReadQuery{}, [&](const RecordedEvent&) { return ++seen < 1500; }, mode);
    ASSERT_TRUE(s.ok()) << mode_name(mode) << ": " << s.error().to_string();
    EXPECT_EQ(seen, 1500u) << mode_name(mode);
  }
}

TEST(ReadAheadTest, AStoredEventThatDoesNotDecodeIsCorruptionNamingItsSequenceInEveryMode) {
  test::TempDir dir;
  fill(dir.path());
  const std::uint64_t bad = read_ahead_chunk_events + 77;  // in the second chunk
  overwrite_stored(dir.path(), bad, "\x01\x02\x03");
  auto log = test::open_log(dir.path());
  for (DecodeOn mode : every_mode) {
    std::vector<std::uint64_t> seen;
    auto s = read_ahead(*log, ReadQuery{}, [&](const RecordedEvent& e) {
      seen.push_back(e.seq.value);
      return true;
    }, mode);
    ASSERT_FALSE(s.ok()) << mode_name(mode);
    EXPECT_EQ(s.error().code(), ErrorCode::corruption) << mode_name(mode);
    EXPECT_NE(s.error().message().find("seq " + std::to_string(bad) + ":"), std::string::npos)
        << mode_name(mode) << ": " << s.error().message();
    ASSERT_EQ(seen.size(), bad - 1) << mode_name(mode) << ": every event before the bad one, none after";
    EXPECT_EQ(seen.back(), bad - 1) << mode_name(mode);
  }
}

// An index entry naming a seq the events family does not hold, or holding
// another event, is corruption naming that seq: nothing is skipped silently,
// and the events before it were handed out.
TEST(ReadAheadTest, AnIndexReadOfAMissingOrMisplacedEventIsCorruptionNamingItsSequence) {
  test::TempDir dir;
  fill(dir.path());
  std::vector<std::uint64_t> created;
  {
    auto log = test::open_log(dir.path());
    created = seqs_of(*log, {.type = EventType::customer_created});
  }
  ASSERT_GE(created.size(), 20u);
  const std::uint64_t missing = created[10];
  const std::uint64_t misplaced = created[15];
  change_events(dir.path(), [&](rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events) {
    ASSERT_TRUE(raw.Delete({}, events, seq_key(raw, events, missing)).ok());
  });
  overwrite_stored(dir.path(), misplaced, stored_value(dir.path(), misplaced - 1));
  auto log = test::open_log(dir.path());
  struct Case {
    ReadQuery query;
    std::uint64_t bad = 0;
    std::string says;
    std::size_t before = 0;
  };
  std::vector<Case> cases(2);
  cases[0].query.type = EventType::customer_created;
  cases[0].bad = missing;
  cases[0].says = "is in an index but not in the log";
  cases[0].before = 10;
  cases[1].query.type = EventType::customer_created;
  cases[1].query.from_seq = Sequence(missing + 1);
  cases[1].bad = misplaced;
  cases[1].says = "holds an event stamped seq " + std::to_string(misplaced - 1);
  cases[1].before = 4;
  for (const auto& c : cases) {
    for (DecodeOn mode : every_mode) {
      std::vector<std::uint64_t> seen;
      auto s = read_ahead(*log, c.query, [&](const RecordedEvent& e) {
        seen.push_back(e.seq.value);
        return true;
      }, mode);
      ASSERT_FALSE(s.ok()) << mode_name(mode) << ", seq " << c.bad;
      EXPECT_EQ(s.error().code(), ErrorCode::corruption) << mode_name(mode);
      EXPECT_NE(s.error().message().find("seq " + std::to_string(c.bad) + " " + c.says), std::string::npos)
          << mode_name(mode) << ": " << s.error().message();
      EXPECT_EQ(seen.size(), c.before) << mode_name(mode) << ": every event before the bad one, none after";
    }
  }
}

// With verify_chain, each chunk's links are checked by the thread that
// decodes it: an altered event is a broken chain naming it, after every event
// before it, as EventLog::read reports it, in every mode; a gap further on,
// which the reader meets first, does not hide it, nor do either reach a
// visitor that stopped before them; and a read from past the altered event is
// anchored on the stored hash before it.
TEST(ReadAheadTest, TheChainIsCheckedInEveryModeAndTheFirstBreakInLogOrderIsReported) {
  test::TempDir dir;
  fill(dir.path());
  const std::uint64_t altered = read_ahead_chunk_events + 77;  // in the second chunk
  const std::uint64_t missing = event_count - 5;
  std::string value = stored_value(dir.path(), altered);
  value[value.size() / 2] = static_cast<char>(value[value.size() / 2] ^ 0x20);
  overwrite_stored(dir.path(), altered, value);
  change_events(dir.path(), [&](rocksdb::DB& raw, rocksdb::ColumnFamilyHandle* events) {
    ASSERT_TRUE(raw.Delete({}, events, seq_key(raw, events, missing)).ok());
  });
  auto log = test::open_log(dir.path());
  auto direct = log->read({.verify_chain = true}, [](const RecordedEvent&) { return true; });
  ASSERT_FALSE(direct.ok());
  ASSERT_EQ(direct.error().cause(), ErrorCause::broken_chain) << direct.error().to_string();
  for (DecodeOn mode : every_mode) {
    std::vector<std::uint64_t> seen;
    auto s = read_ahead(*log, {.verify_chain = true}, [&](const RecordedEvent& e) {
      // Long enough for the reader to reach the gap before the altered
      // event is checked here (it is not, in mode reader).
      if (seen.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      seen.push_back(e.seq.value);
      return true;
    }, mode);
    ASSERT_FALSE(s.ok()) << mode_name(mode);
    EXPECT_EQ(s.error().cause(), ErrorCause::broken_chain) << mode_name(mode) << ": " << s.error().to_string();
    EXPECT_EQ(s.error().message(), direct.error().message()) << mode_name(mode);
    ASSERT_EQ(seen.size(), altered - 1) << mode_name(mode) << ": every event before the altered one, none after";
    EXPECT_EQ(seen.back(), altered - 1) << mode_name(mode);

    // A visitor that stops before the break hears of no error.
    seen.clear();
    s = read_ahead(*log, {.verify_chain = true}, [&](const RecordedEvent& e) {
      if (seen.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      seen.push_back(e.seq.value);
      return e.seq.value < altered - 10;
    }, mode);
    ASSERT_TRUE(s.ok()) << mode_name(mode) << ": " << s.error().to_string();
    EXPECT_EQ(seen.back(), altered - 10) << mode_name(mode);

    seen.clear();
    s = read_ahead(*log, {.from_seq = Sequence(altered + 1), .to_seq = Sequence(missing - 1), .verify_chain = true},
                   [&](const RecordedEvent& e) {
                     seen.push_back(e.seq.value);
                     return true;
                   }, mode);
    ASSERT_TRUE(s.ok()) << mode_name(mode) << ": " << s.error().to_string();
    EXPECT_EQ(seen.size(), missing - 1 - altered) << mode_name(mode);

    s = read_ahead(*log, {.from_seq = Sequence(altered + 1), .verify_chain = true},
                   [](const RecordedEvent&) { return true; }, mode);
    ASSERT_FALSE(s.ok()) << mode_name(mode);
    EXPECT_EQ(s.error().message(), "seq " + std::to_string(missing) + " is missing: the next stored event is seq " +
                                       std::to_string(missing + 1))
        << mode_name(mode);
  }
}

}  // namespace
}  // namespace cs
