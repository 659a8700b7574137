// Proves that prepared record chunks are bounded in bytes as well as events:
// a run of the largest events the log accepts is split into chunks of at
// most distributor_chunk_bytes_max (plus the one event that passed it), with
// every event and record accounted for, so 32-bit offsets into a chunk can
// never overflow (512 such events made one 3 GB chunk before).
#include "cs/distributor.h"
#include "record_pipeline.h"
#include "test_support.h"

namespace cs {
namespace {

TEST(RecordPipelineTest, ChunksOfLargeEventsAreBoundedInBytes) {
  test::TempDir dir;
  auto log = test::open_log(dir.path());
  constexpr std::size_t events = 60;
  std::vector<NewEvent> batch;
  for (std::size_t i = 0; i < events; ++i) {
    // ~1 MB stored; its full-log line is ~1 MB of JSON.
    batch.push_back(test::make_event(
        CustomerCreated{test::uuid(i + 1), CustomerType::sme, std::string(1'000'000, 'n'), "a@b.c"}, i + 1));
  }
  ASSERT_TRUE(log->append(batch).ok());

  Routing routing = Routing::defaults();
  RecordPreparer preparer(
      *log, routing, [](const std::string& service, EventType t) { return service + "." + std::string(event_type_name(t)); },
      "full-log", 1024);
  RecordPipeline pipeline(*log, preparer, Sequence(1), log->head(), std::nullopt, distributor_chunk_events, 10'000);
  RecordChunk chunk;
  std::size_t seen_events = 0, chunks = 0;
  Sequence last;
  while (pipeline.next(chunk)) {
    ++chunks;
    EXPECT_EQ(chunk.first, last.next());
    last = chunk.last;
    seen_events += chunk.event_count;
    // Closed once past the bound: at most the bound plus one event's records.
    EXPECT_LT(chunk.text.size(), distributor_chunk_bytes_max + limits::published_record_bytes_max * 3);
    EXPECT_LT(chunk.event_count, distributor_chunk_events);
    for (const auto& r : chunk.records) EXPECT_LE(chunk.value(r).size(), limits::published_record_bytes_max);
  }
  ASSERT_TRUE(pipeline.status().ok()) << pipeline.status().error().to_string();
  EXPECT_EQ(seen_events, events);
  EXPECT_EQ(last, log->head());
  EXPECT_GE(chunks, 3u) << "60 MB of full-log lines in chunks of 16 MiB";
}

}  // namespace
}  // namespace cs
