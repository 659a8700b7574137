#include "cs/read_ahead.h"

#include <thread>

#include "cs/bounded_queue.h"
#include "cs/storage_codec.h"

namespace cs {

Status read_ahead(const EventLog& log, const ReadQuery& query, const EventLog::Visitor& visit) {
  // Chunks go back to the reader once visited and are overwritten in place:
  // strings keep their buffers, and memory is allocated and freed on the
  // reader's thread only (freeing another thread's allocations is costly).
  struct Chunk {
    std::vector<RecordedEvent> events;
    std::size_t used = 0;
  };
  BoundedQueue<Chunk> queue(read_ahead_chunks_max);
  BoundedQueue<Chunk> recycled(read_ahead_chunks_max + 2);
  Status read;
  std::thread reader([&] {
    Chunk chunk;
    Status decoding;
    auto hand_over = [&] {
      bool open = queue.push(std::move(chunk));
      chunk = Chunk{};
      recycled.try_pop(chunk);
      chunk.used = 0;
      return open;
    };
    auto slot = [&]() -> RecordedEvent& {
      if (chunk.used == chunk.events.size()) chunk.events.emplace_back();
      return chunk.events[chunk.used];
    };
    if (query.stream || query.type || query.category) {
      read = log.read(query, [&](const RecordedEvent& e) {
        slot() = e;
        return ++chunk.used < read_ahead_chunk_events || hand_over();
      });
    } else {
      // Whole log: decode straight into the chunk, reusing its buffers.
      read = log.read_stored(query, [&](Sequence seq, std::string_view value) {
        RecordedEvent& e = slot();
        if (auto d = decode_stored_into(value, e); !d.ok()) {
          decoding = corruption_error("seq " + std::to_string(seq.value) + ": " + d.error().message());
          return false;
        }
        if (query.decrypt) {
          if (auto u = log.unseal(e); !u.ok()) {
            decoding = u;
            return false;
          }
        }
        return ++chunk.used < read_ahead_chunk_events || hand_over();
      });
      if (read.ok()) read = decoding;
    }
    if (chunk.used > 0) queue.push(std::move(chunk));
    queue.close();
  });
  Chunk chunk;
  bool visiting = true;
  while (visiting && queue.pop(chunk)) {
    for (std::size_t i = 0; i < chunk.used && visiting; ++i) visiting = visit(chunk.events[i]);
    recycled.try_push(std::move(chunk));
    chunk = Chunk{};
  }
  queue.cancel();  // stops the reader when the visitor stopped early
  reader.join();
  return read;
}

}  // namespace cs
