// read_ahead hands out what EventLog::read does, in order, whichever thread
// decodes (cs/read_ahead.h's DecodeOn): the same events, the same stop, the
// same error for a stored event that does not decode.
#include "cs/read_ahead.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <string>
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

void fill(const std::filesystem::path& dir) {
  auto log = test::open_log(dir);
  std::vector<NewEvent> batch;
  for (std::uint64_t i = 1; i <= event_count; ++i) {
    batch.push_back(test::make_event(test::token_purchased(1 + i % 7, static_cast<std::int64_t>(i)), i));
    if (batch.size() == 500 || i == event_count) {
      ASSERT_TRUE(log->append(batch).ok());
      batch.clear();
    }
  }
}

// Replaces the stored bytes of event `seq` behind the log's back.
void overwrite_stored(const std::filesystem::path& dir, std::uint64_t seq, const std::string& value) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open({}, dir.string(), families, &handles, &raw).ok());
  auto* events = handles[std::find(names.begin(), names.end(), "events") - names.begin()];
  std::string key(8, '\0');
  for (int b = 0; b < 8; ++b) key[7 - b] = static_cast<char>((seq >> (8 * b)) & 0xff);
  std::string old;
  ASSERT_TRUE(raw->Get({}, events, key, &old).ok()) << "no stored event at seq " << seq;
  ASSERT_TRUE(raw->Put({}, events, key, value).ok());
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

TEST(ReadAheadTest, EveryModeHandsOutWhatReadDoesInOrder) {
  test::TempDir dir;
  fill(dir.path());
  auto log = test::open_log(dir.path());
  for (bool decrypt : {false, true}) {
    ReadQuery q;
    q.decrypt = decrypt;
    std::vector<std::string> direct;
    ASSERT_TRUE(log->read(q, [&](const RecordedEvent& e) {
                     direct.push_back(format_event_line(e));
                     return true;
                   }).ok());
    ASSERT_EQ(direct.size(), event_count);
    for (DecodeOn mode : every_mode) {
      std::vector<std::string> ahead;
      ASSERT_TRUE(read_ahead(*log, q, [&](const RecordedEvent& e) {
                    ahead.push_back(format_event_line(e));
                    return true;
                  }, mode).ok());
      EXPECT_EQ(ahead, direct) << mode_name(mode) << ", decrypt " << decrypt;
    }
  }
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

}  // namespace
}  // namespace cs
