// Records prepared on a thread of their own, ahead of the producer.
//
// The pipeline's thread reads [from, to] from the log, decodes each event and
// has the RecordPreparer format its records into chunks of at most
// `chunk_events` events; the caller takes the chunks in sequence order and
// hands each one back when done, so that buffers are reused and freed on the
// thread that allocated them. While the caller waits on Kafka (a commit, a
// full queue), the next chunks are being prepared.
#pragma once

#include <optional>
#include <string>
#include <thread>

#include "cs/bounded_queue.h"
#include "record_chunk.h"

namespace cs {

// Chunks the preparing thread may be ahead of the caller: with 512-event
// chunks, about 4,000 events and 4 MB of records.
inline constexpr std::size_t pipeline_chunks_ahead_max = 8;

class RecordPipeline {
 public:
  // Starts preparing at once. `log` and `preparer` are borrowed; the preparer
  // is used by the pipeline's thread only until this is destroyed.
  // A chunk ends after `chunk_events` events, and also after every
  // `boundary_events`-th event from `from`, so that transactions of that many
  // events are made of whole chunks.
  RecordPipeline(const EventLog& log, RecordPreparer& preparer, Sequence from, Sequence to,
                 std::optional<std::string> only_service, std::size_t chunk_events, std::size_t boundary_events);
  // Stops the preparing thread (early if the caller gave up) and joins it.
  ~RecordPipeline();
  RecordPipeline(const RecordPipeline&) = delete;
  RecordPipeline& operator=(const RecordPipeline&) = delete;

  // Swaps the next chunk into `chunk` (whose old contents are recycled).
  // Returns false once [from, to] is all handed out or preparing failed:
  // then status() says which.
  bool next(RecordChunk& chunk);
  // Valid after next() returned false: reading or routing errors.
  const Status& status() const { return status_; }

 private:
  void prepare(const EventLog& log, RecordPreparer& preparer, Sequence from, Sequence to,
               std::optional<std::string> only_service, std::size_t chunk_events, std::size_t boundary_events);

  BoundedQueue<RecordChunk> ready_{pipeline_chunks_ahead_max};
  BoundedQueue<RecordChunk> recycled_{pipeline_chunks_ahead_max + 2};
  Status status_;  // written by the thread before it closes `ready_`
  std::thread thread_;
};

}  // namespace cs
