// Proves EventLog::BulkWriter (csctl append and import): a run committed in
// chunks, large ones as ingested table files, leaves exactly the log that
// appends of the same events leave — the same stored bytes, indexes, reads
// and chain — keeps every rule of append, shows nothing before a commit,
// loses only the staged chunk when abandoned or failed, and holds off other
// writers while it lives.
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "cs/storage_codec.h"
#include "history_generator.h"
#include "test_support.h"

namespace cs {
namespace {

using test::make_event;
using test::uuid;

constexpr std::int64_t pinned_micros = 1'767'225'600'000'000;  // 2026-01-01

EventLogOptions pinned() {
  EventLogOptions options;
  options.clock = [] { return Timestamp{pinned_micros}; };
  return options;
}

// A generated history, then one customer's 20,000 token uses: more than
// limits::index_block_entries_max events of one stream and of one type in a
// single chunk, so their index blocks are split.
std::vector<NewEvent> history() {
  std::vector<NewEvent> events;
  HistoryGenerator generator({.customers = 200, .seed = 9});
  while (auto e = generator.next()) events.push_back(std::move(*e));
  events.push_back(make_event(test::customer_created(77), 1));
  events.push_back(make_event(test::token_purchased(77, 1'000'000), 2));
  for (std::uint64_t i = 0; i < 20'000; ++i) events.push_back(make_event(test::token_used(77, 1, i), 10 + i));
  return events;
}

void append_in_batches(EventLog& log, const std::vector<NewEvent>& events, std::size_t batch) {
  for (std::size_t i = 0; i < events.size(); i += batch) {
    auto r = log.append(std::span(events).subspan(i, std::min(batch, events.size() - i)));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
}

void bulk_in_batches(EventLog::BulkWriter& bulk, const std::vector<NewEvent>& events, std::size_t batch) {
  for (std::size_t i = 0; i < events.size(); i += batch) {
    auto r = bulk.append(std::span(events).subspan(i, std::min(batch, events.size() - i)));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
}

std::vector<std::pair<std::uint64_t, std::string>> stored(const EventLog& log, const ReadQuery& query) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  auto s = log.read_stored(query, [&](Sequence seq, std::string_view value) {
    out.emplace_back(seq.value, std::string(value));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.error().to_string();
  return out;
}

// Every key and value of an index family, in order.
std::vector<std::pair<std::string, std::string>> family(EventLog& log, const std::string& name) {
  auto handle = log.column_family(name);
  EXPECT_TRUE(handle.ok());
  rocksdb::ReadOptions whole;
  whole.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(log.db().NewIterator(whole, *handle));
  std::vector<std::pair<std::string, std::string>> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(it->key().ToString(), it->value().ToString());
  EXPECT_TRUE(it->status().ok());
  return out;
}

TEST(BulkWriterTest, AChunkIngestedAsTablesIsTheLogThatAppendsLeave) {
  const auto events = history();
  ASSERT_GT(events.size(), limits::bulk_ingest_events_min);
  test::TempDir dir;
  auto appended = test::open_log(dir / "appended", pinned());
  append_in_batches(*appended, events, 1'000);
  auto bulked = test::open_log(dir / "bulked", pinned());
  {
    auto bulk = bulked->bulk_writer();
    ASSERT_TRUE(bulk.ok()) << bulk.error().to_string();
    bulk_in_batches(**bulk, events, 1'000);
    EXPECT_EQ((*bulk)->staged_events(), events.size());
    EXPECT_EQ(bulked->head(), Sequence(0)) << "staged events are not in the log before the commit";
    ASSERT_TRUE((*bulk)->commit().ok());
    EXPECT_EQ((*bulk)->staged_events(), 0u);
  }
  ASSERT_EQ(bulked->head(), appended->head());
  EXPECT_EQ(bulked->head_hash(), appended->head_hash());
  // Written as table files, not through the write-ahead log: nothing of it
  // waits in a memtable.
  std::uint64_t in_memtable = 1;
  ASSERT_TRUE(bulked->db().GetIntProperty(*bulked->column_family("events"), "rocksdb.num-entries-active-mem-table",
                                          &in_memtable));
  EXPECT_EQ(in_memtable, 0u);

  EXPECT_EQ(stored(*bulked, {}), stored(*appended, {}));
  // Small chunks, each committed on the writer's thread while the next is
  // staged: the same log again.
  auto options = pinned();
  options.bulk_chunk_bytes_max = 1 << 20;
  auto chunked = test::open_log(dir / "chunked", options);
  {
    auto bulk = chunked->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    bulk_in_batches(**bulk, events, 1'000);
    ASSERT_TRUE((*bulk)->commit().ok());
  }
  EXPECT_EQ(stored(*chunked, {}), stored(*appended, {}));
  EXPECT_EQ(chunked->head_hash(), appended->head_hash());
  EXPECT_EQ(stored(*chunked, {.type = EventType::token_used}), stored(*appended, {.type = EventType::token_used}));
  EXPECT_EQ(stored(*chunked, {.stream = "tokens-" + uuid(77).to_string(), .from_version = StreamVersion(17'000),
                              .limit = 5, .backward = true}),
            stored(*appended, {.stream = "tokens-" + uuid(77).to_string(), .from_version = StreamVersion(17'000),
                               .limit = 5, .backward = true}));
  EXPECT_EQ(family(*chunked, "customer_streams"), family(*appended, "customer_streams"));
  EXPECT_EQ(chunked->stats()->streams, appended->stats()->streams);
  EXPECT_TRUE(chunked->verify().ok());
  // The token stream's and type's blocks are split the same way: a read
  // from inside a block, either way, finds the same events.
  const std::string tokens = "tokens-" + uuid(77).to_string();
  for (std::uint64_t from : {1ULL, 16'383ULL, 16'384ULL, 16'385ULL, 19'999ULL}) {
    for (bool backward : {false, true}) {
      ReadQuery by_stream{.stream = tokens, .from_version = StreamVersion(from), .limit = 3, .backward = backward};
      EXPECT_EQ(stored(*bulked, by_stream), stored(*appended, by_stream)) << from << " " << backward;
    }
  }
  const auto used_seqs = stored(*appended, {.type = EventType::token_used});
  ASSERT_GT(used_seqs.size(), limits::index_block_entries_max);
  for (std::size_t at : {std::size_t{0}, limits::index_block_entries_max - 1, limits::index_block_entries_max,
                         used_seqs.size() - 1}) {
    for (bool backward : {false, true}) {
      ReadQuery by_type{.type = EventType::token_used, .from_seq = Sequence(used_seqs[at].first), .limit = 2,
                        .backward = backward};
      EXPECT_EQ(stored(*bulked, by_type), stored(*appended, by_type)) << at << " " << backward;
    }
  }
  EXPECT_EQ(stored(*bulked, {.category = Category::customer}), stored(*appended, {.category = Category::customer}));
  // Every id is found, every stream has its head and customer, the chain holds.
  for (std::size_t i = 0; i < events.size(); i += 997) {
    auto found = bulked->find_event(events[i].id);
    ASSERT_TRUE(found.ok() && found->has_value());
    EXPECT_EQ((*found)->seq, Sequence(i + 1));
  }
  EXPECT_EQ(*bulked->stream_version(tokens), StreamVersion(20'001));
  EXPECT_EQ(bulked->stats()->streams, appended->stats()->streams);
  EXPECT_EQ(family(*bulked, "customer_streams"), family(*appended, "customer_streams"));
  auto verified = bulked->verify();
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  EXPECT_EQ(verified->events_checked, events.size());

  // Reopened, it goes on as any log does.
  bulked.reset();
  bulked = test::open_log(dir / "bulked", pinned());
  auto more = bulked->append(std::vector<NewEvent>{make_event(test::token_used(77, 1, 99'999), 99'999)});
  ASSERT_TRUE(more.ok()) << more.error().to_string();
  EXPECT_EQ(more->positions[0], (EventPosition{Sequence(events.size() + 1), StreamVersion(20'002)}));
  EXPECT_TRUE(bulked->verify().ok());
}

TEST(BulkWriterTest, EveryRuleOfAppendHoldsAcrossTheStagedChunk) {
  test::TempDir dir;
  auto log = test::open_log(dir / "log");
  auto bulk = log->bulk_writer();
  ASSERT_TRUE(bulk.ok());
  auto& writer = **bulk;
  const std::vector<NewEvent> first = {make_event(test::customer_created(1), 1),
                                       make_event(test::token_purchased(1, 10), 2)};
  auto staged = writer.append(first);
  ASSERT_TRUE(staged.ok()) << staged.error().to_string();
  EXPECT_EQ(staged->positions[1], (EventPosition{Sequence(2), StreamVersion(1)}));
  // A creation on a stream the chunk opened, and an expected version that
  // only the staged events explain.
  auto again = writer.append(std::vector<NewEvent>{make_event(test::customer_created(1), 3)});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::conflict) << again.error().to_string();
  auto expected = writer.append(
      std::vector<NewEvent>{make_event(test::token_used(1, 4, 1), 4, ExpectedVersion::exactly(StreamVersion(1)))});
  ASSERT_TRUE(expected.ok()) << expected.error().to_string();
  EXPECT_EQ(expected->positions[0], (EventPosition{Sequence(3), StreamVersion(2)}));
  EXPECT_EQ(log->head(), Sequence(0));
  // The same events again: the chunk is committed first, and they are a
  // duplicate with their original positions.
  auto repeated = writer.append(first);
  ASSERT_TRUE(repeated.ok()) << repeated.error().to_string();
  EXPECT_TRUE(repeated->duplicate);
  EXPECT_EQ(repeated->positions[1], (EventPosition{Sequence(2), StreamVersion(1)}));
  EXPECT_EQ(log->head(), Sequence(3));
  EXPECT_EQ(writer.staged_events(), 0u);
  // Known and new ids together are refused whole; a known id with other data
  // is a conflict.
  auto mixed = writer.append(std::vector<NewEvent>{first[0], make_event(test::token_used(1, 1, 2), 5)});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.error().code(), ErrorCode::invalid_argument);
  NewEvent other = first[1];
  other.payload = test::token_purchased(1, 11);
  auto changed = writer.append(std::vector<NewEvent>{other});
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.error().code(), ErrorCode::conflict);
  ASSERT_TRUE(writer.commit().ok());
  EXPECT_EQ(log->head(), Sequence(3));
  EXPECT_TRUE(log->verify().ok());
}

TEST(BulkWriterTest, WhileAChunkIsCommittedTheNextSeesWhatItStaged) {
  test::TempDir dir;
  // Each chunk's write waits until the test lets it go: what the next chunk
  // stages meanwhile cannot learn from the database what the one before
  // staged.
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0, released = 0;
  auto options = pinned();
  options.bulk_chunk_bytes_max = 2 << 20;
  options.write_failure_probe = [&]() -> Status {
    std::unique_lock lock(mu);
    const int call = ++calls;
    cv.wait(lock, [&] { return released >= call; });
    return {};
  };
  auto release = [&](int up_to) {
    std::lock_guard lock(mu);
    released = up_to;
    cv.notify_all();
  };
  auto log = test::open_log(dir / "log", options);
  auto bulk = log->bulk_writer();
  ASSERT_TRUE(bulk.ok());
  auto& writer = **bulk;
  // A failed assertion leaves the test with a chunk still held: let it go
  // before the writer waits for it.
  struct ReleaseAll {
    std::function<void(int)> release;
    ~ReleaseAll() { release(1'000'000); }
  } release_all{release};
  // Customer 1's creation, then customers until the chunk is full and
  // handed over (its write held); then more, enough that the next chunk
  // writes its own events table while the first one waits.
  std::vector<NewEvent> first = {make_event(test::customer_created(1), 1), make_event(test::token_purchased(1, 50), 2)};
  std::uint64_t n = 100;
  // A call that fills the chunk leaves nothing staged: all of it went.
  for (std::size_t at = 0; first.size() == 2 || writer.staged_events() > 0; at += 500) {
    while (first.size() < at + 500) first.push_back(make_event(test::customer_created(n), n)), ++n;
    ASSERT_TRUE(writer.append(std::span(first).subspan(at, 500)).ok());
    ASSERT_LT(first.size(), 100'000u) << "the chunk never filled";
  }
  std::vector<NewEvent> second;
  for (std::size_t i = 0; i < limits::bulk_ingest_events_min + 500; ++i, ++n) {
    second.push_back(make_event(test::customer_created(n), n));
  }
  for (std::size_t at = 0; at < second.size(); at += 500) {
    ASSERT_TRUE(writer.append(std::span(second).subspan(at, std::min<std::size_t>(500, second.size() - at))).ok());
  }
  ASSERT_GT(writer.staged_events(), 0u) << "the second chunk must not fill";
  // Its streams set the rules here, before it is written.
  auto created_again = writer.append(std::vector<NewEvent>{make_event(test::customer_created(1), 3)});
  ASSERT_FALSE(created_again.ok());
  EXPECT_EQ(created_again.error().code(), ErrorCode::conflict) << created_again.error().to_string();
  auto next = writer.append(
      std::vector<NewEvent>{make_event(test::token_used(1, 5, 1), 4, ExpectedVersion::exactly(StreamVersion(1)))});
  ASSERT_TRUE(next.ok()) << next.error().to_string();
  EXPECT_EQ(next->positions[0], (EventPosition{Sequence(first.size() + second.size() + 1), StreamVersion(2)}));
  EXPECT_EQ(log->head(), Sequence(0));
  // Its ids again: the writer waits for it, and they are duplicates.
  release(1);
  auto again = writer.append(std::span(first).first(2));
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->positions[1], (EventPosition{Sequence(2), StreamVersion(1)}));
  EXPECT_EQ(log->head(), Sequence(first.size()));
  // An erasure in a chunk being written holds in the next.
  std::vector<NewEvent> erase = {make_event(CustomerErased{uuid(1), uuid(9)}, 5)};
  for (std::size_t at = 0; erase.size() == 1 || writer.staged_events() > 0; at += 500) {
    while (erase.size() < at + 500) erase.push_back(make_event(test::customer_created(n), n)), ++n;
    ASSERT_TRUE(writer.append(std::span(erase).subspan(at, 500)).ok());
    ASSERT_LT(erase.size(), 100'000u) << "the chunk never filled";
  }
  auto after_erasure = writer.append(std::vector<NewEvent>{make_event(CustomerValidated{uuid(1), uuid(9)}, 6)});
  ASSERT_FALSE(after_erasure.ok());
  EXPECT_EQ(after_erasure.error().code(), ErrorCode::conflict) << after_erasure.error().to_string();
  release(100);
  ASSERT_TRUE(writer.commit().ok());
  EXPECT_EQ(log->head(), Sequence(first.size() + second.size() + 1 + erase.size()));
  EXPECT_TRUE(log->verify().ok());
}

TEST(BulkWriterTest, AnAbandonedChunkLeavesNothingAndTheLogGoesOnFromItsHead) {
  test::TempDir dir;
  auto log = test::open_log(dir / "log");
  ASSERT_TRUE(log->append(std::vector<NewEvent>{make_event(test::customer_created(1), 1)}).ok());
  std::vector<NewEvent> events;
  for (std::uint64_t i = 0; i < limits::bulk_ingest_events_min + 10; ++i) {
    events.push_back(make_event(test::customer_created(100 + i), 100 + i));
  }
  {
    auto bulk = log->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    bulk_in_batches(**bulk, events, 500);
  }
  EXPECT_EQ(log->head(), Sequence(1));
  EXPECT_EQ(log->read_all({})->size(), 1u);
  // The same events append as new ones, right after the head.
  auto r = log->append(std::span(events).first(3));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_FALSE(r->duplicate);
  EXPECT_EQ(r->positions[0].seq, Sequence(2));
  log.reset();
  log = test::open_log(dir / "log");
  EXPECT_EQ(log->head(), Sequence(4));
  EXPECT_TRUE(log->verify().ok());
}

TEST(BulkWriterTest, AFailedCommitLosesOnlyItsChunkAndTheLogRefusesMore) {
  test::TempDir dir;
  std::atomic<bool> fail{false};
  auto options = pinned();
  options.write_failure_probe = [&]() -> Status {
    if (fail) return fatal_error("disk on fire (test)");
    return {};
  };
  auto log = test::open_log(dir / "log", options);
  std::vector<NewEvent> events;
  for (std::uint64_t i = 0; i < 2 * limits::bulk_ingest_events_min; ++i) {
    events.push_back(make_event(test::customer_created(100 + i), 100 + i));
  }
  {
    auto bulk = log->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    bulk_in_batches(**bulk, std::vector<NewEvent>(events.begin(), events.begin() + limits::bulk_ingest_events_min), 1'000);
    ASSERT_TRUE((*bulk)->commit().ok());
    fail = true;
    bulk_in_batches(**bulk, std::vector<NewEvent>(events.begin() + limits::bulk_ingest_events_min, events.end()), 1'000);
    auto s = (*bulk)->commit();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::fatal);
    EXPECT_NE(s.error().message().find("disk on fire"), std::string::npos);
    auto after = (*bulk)->append(std::vector<NewEvent>{make_event(test::customer_created(1), 1)});
    ASSERT_FALSE(after.ok());
    EXPECT_TRUE((*bulk)->commit().ok()) << "nothing staged, nothing to commit";
  }
  EXPECT_EQ(log->head(), Sequence(limits::bulk_ingest_events_min));
  EXPECT_FALSE(log->append(std::vector<NewEvent>{make_event(test::customer_created(1), 1)}).ok());
  // A chunk committed in the background fails the same way: the next call says so.
  log.reset();
  fail = false;
  options.bulk_chunk_bytes_max = 64 << 10;
  log = test::open_log(dir / "log", options);
  {
    auto bulk = log->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    fail = true;
    Status failed;
    for (std::size_t i = limits::bulk_ingest_events_min; failed.ok() && i < events.size(); i += 100) {
      auto r = (*bulk)->append(std::span(events).subspan(i, 100));
      if (!r.ok()) failed = r.error();
    }
    ASSERT_FALSE(failed.ok()) << "a failed background commit is reported by a later call";
    EXPECT_EQ(failed.error().code(), ErrorCode::fatal);
    EXPECT_FALSE((*bulk)->commit().ok());
  }
  EXPECT_EQ(log->head(), Sequence(limits::bulk_ingest_events_min));
  EXPECT_FALSE(log->bulk_writer().ok());
  log.reset();
  log = test::open_log(dir / "log");
  EXPECT_EQ(log->head(), Sequence(limits::bulk_ingest_events_min));
  EXPECT_TRUE(log->verify().ok());
}

TEST(BulkWriterTest, AppendsFromOtherThreadsWaitUntilTheBulkWriterIsGone) {
  test::TempDir dir;
  auto log = test::open_log(dir / "log");
  std::vector<NewEvent> events;
  for (std::uint64_t i = 0; i < 3; ++i) events.push_back(make_event(test::customer_created(100 + i), 100 + i));
  auto bulk = log->bulk_writer();
  ASSERT_TRUE(bulk.ok());
  ASSERT_TRUE((*bulk)->append(std::span(events).first(1)).ok());
  Result<AppendResult> other{fatal_error("not run")};
  std::thread appender([&] { other = log->append(std::span(events).subspan(1, 1)); });
  // Whenever the other append got to the queue, it commits after the bulk
  // writer's chunks, not between them.
  ASSERT_TRUE((*bulk)->commit().ok());
  ASSERT_TRUE((*bulk)->append(std::span(events).subspan(2, 1)).ok());
  ASSERT_TRUE((*bulk)->commit().ok());
  bulk->reset();
  appender.join();
  ASSERT_TRUE(other.ok()) << other.error().to_string();
  EXPECT_EQ(other->positions[0].seq, Sequence(3));
  EXPECT_TRUE(log->verify().ok());
}

TEST(BulkWriterTest, SealedChunksOpenAndImportedChunksKeepTheChain) {
  test::TempDir dir;
  auto options = pinned();
  options.master_key_file = dir / "master-key";
  auto source = test::open_log(dir / "source", options);
  std::vector<NewEvent> events;
  HistoryGenerator generator({.customers = 200, .seed = 4});
  while (auto e = generator.next()) events.push_back(std::move(*e));
  ASSERT_GT(events.size(), limits::bulk_ingest_events_min);
  {
    auto bulk = source->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    bulk_in_batches(**bulk, events, 700);
    ASSERT_TRUE((*bulk)->commit().ok());
  }
  ASSERT_TRUE(source->seals_personal_data());
  auto opened = source->read_all({.decrypt = true});
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  ASSERT_EQ(opened->size(), events.size());
  for (std::size_t i = 0; i < events.size(); ++i) ASSERT_EQ((*opened)[i].payload, events[i].payload) << i;
  // Reopened, the data keys the chunk stored open the events again.
  source.reset();
  source = test::open_log(dir / "source", options);
  auto first = source->read_event(Sequence(1));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(source->unseal(*first).ok());
  EXPECT_EQ(first->payload, events[0].payload);

  // Its stored form imported by a bulk writer ends with the same head hash.
  auto copy = test::open_log(dir / "copy", options);
  ASSERT_TRUE(source->scan_data_keys([&](const Uuid& customer, std::string_view key) {
                      EXPECT_TRUE(copy->import_data_key(customer, key).ok());
                      return true;
                    }).ok());
  auto recorded = source->read_all({});
  ASSERT_TRUE(recorded.ok());
  {
    auto bulk = copy->bulk_writer();
    ASSERT_TRUE(bulk.ok());
    for (std::size_t i = 0; i < recorded->size(); i += 1'000) {
      auto r = (*bulk)->import(std::span(*recorded).subspan(i, std::min<std::size_t>(1'000, recorded->size() - i)));
      ASSERT_TRUE(r.ok()) << r.error().to_string();
    }
    // An event the staged chunk holds is refused: its position is taken.
    auto twice = (*bulk)->import(std::span(*recorded).first(1));
    ASSERT_FALSE(twice.ok());
    ASSERT_TRUE((*bulk)->commit().ok());
  }
  EXPECT_EQ(copy->head_hash(), source->head_hash());
  EXPECT_TRUE(copy->verify().ok());
}

}  // namespace
}  // namespace cs
