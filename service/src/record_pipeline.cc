#include "record_pipeline.h"

#include "cs/distributor.h"
#include "cs/storage_codec.h"

namespace cs {

RecordPipeline::RecordPipeline(const EventLog& log, RecordPreparer& preparer, Sequence from, Sequence to,
                               std::optional<std::string> only_service, std::size_t chunk_events,
                               std::size_t boundary_events) {
  CS_ASSERT(chunk_events > 0 && boundary_events > 0, "chunks hold at least one event");
  thread_ = std::thread([=, this, &log, &preparer] {
    prepare(log, preparer, from, to, only_service, chunk_events, boundary_events);
  });
}

RecordPipeline::~RecordPipeline() {
  ready_.cancel();
  thread_.join();
}

void RecordPipeline::prepare(const EventLog& log, RecordPreparer& preparer, Sequence from, Sequence to,
                             std::optional<std::string> only_service, std::size_t chunk_events,
                             std::size_t boundary_events) {
  RecordChunk chunk;
  RecordedEvent event;  // decoded into again and again: its strings keep their buffers
  Status failed;
  auto read = log.read_stored({.from_seq = from, .to_seq = to}, [&](Sequence seq, std::string_view stored) {
    if (auto d = decode_stored_into(stored, event); !d.ok()) {
      failed = corruption_error("seq " + std::to_string(seq.value) + ": " + d.error().message());
      return false;
    }
    if (failed = preparer.add(event, only_service, chunk); !failed.ok()) return false;
    const bool at_boundary = (seq.value - from.value + 1) % boundary_events == 0;
    if (chunk.event_count < chunk_events && chunk.text.size() < distributor_chunk_bytes_max && !at_boundary) {
      return true;
    }
    if (!ready_.push(std::move(chunk))) return false;  // the caller stopped
    chunk = RecordChunk{};
    recycled_.try_pop(chunk);
    chunk.clear();
    return true;
  });
  status_ = !read.ok() ? read.error() : failed;
  if (status_.ok() && chunk.event_count > 0) ready_.push(std::move(chunk));
  ready_.close();
}

bool RecordPipeline::next(RecordChunk& chunk) {
  RecordChunk done = std::move(chunk);
  chunk = RecordChunk{};
  if (done.text.capacity() > 0) recycled_.try_push(std::move(done));
  return ready_.pop(chunk);
}

}  // namespace cs
