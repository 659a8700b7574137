#include "cs/read_ahead.h"

#include <thread>

#include "cs/bounded_queue.h"
#include "cs/storage_codec.h"

namespace cs {
namespace {

// Chunks go back to the reader once visited and are overwritten in place:
// strings keep their buffers, and memory is mostly allocated and freed on
// the reader's thread (freeing another thread's allocations is costly).
struct Chunk {
  std::vector<RecordedEvent> events;
  std::size_t used = 0;
  // When set, the events are still as stored (`raw`, the i-th ending at
  // raw_ends[i]) and the visiting thread decodes them.
  bool stored = false;
  std::string raw;
  std::vector<std::size_t> raw_ends;
  std::vector<Sequence> seqs;
};

// Decodes (and opens, with `decrypt`) a stored event into `e`, reusing its
// buffers. The error names the event's sequence.
Status decode_one(const EventLog& log, bool decrypt, std::string_view value, Sequence seq, RecordedEvent& e) {
  if (auto d = decode_stored_at(seq, value, e); !d.ok()) return d;
  if (decrypt) {
    if (auto u = log.unseal(e); !u.ok()) return u;
  }
  return {};
}

}  // namespace

Status read_ahead(const EventLog& log, const ReadQuery& query, const EventLog::Visitor& visit, DecodeOn decode_on) {
  if (query.decrypt) {
    if (auto p = log.prepare_unseal(query); !p.ok()) return p;
  }
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
      chunk.stored = false;
      return open;
    };
    auto slot = [&]() -> RecordedEvent& {
      if (chunk.used == chunk.events.size()) chunk.events.emplace_back();
      return chunk.events[chunk.used];
    };
    // Decode straight into the chunk, reusing its buffers, or leave the
    // chunk's events as stored for the visitor to decode (see DecodeOn).
    read = log.read_stored(query, [&](Sequence seq, std::string_view value) {
      if (chunk.used == 0) {
        const bool visitor_idle = queue.size() < read_ahead_visitor_decodes_below_chunks;
        chunk.stored = decode_on == DecodeOn::visitor || (decode_on == DecodeOn::whichever_is_idle && visitor_idle);
        chunk.raw.clear();
        chunk.raw_ends.clear();
        chunk.seqs.clear();
      }
      RecordedEvent& e = slot();
      if (chunk.stored) {
        chunk.raw.append(value);
        chunk.raw_ends.push_back(chunk.raw.size());
        chunk.seqs.push_back(seq);
      } else if (decoding = decode_one(log, query.decrypt, value, seq, e); !decoding.ok()) {
        return false;
      }
      return ++chunk.used < read_ahead_chunk_events || hand_over();
    });
    if (read.ok()) read = decoding;
    if (chunk.used > 0) queue.push(std::move(chunk));
    queue.close();
  });
  Chunk chunk;
  bool visiting = true;
  Status decoding;
  while (visiting && queue.pop(chunk)) {
    std::size_t begin = 0;
    for (std::size_t i = 0; i < chunk.used && visiting; ++i) {
      if (chunk.stored) {
        const std::string_view value(chunk.raw.data() + begin, chunk.raw_ends[i] - begin);
        begin = chunk.raw_ends[i];
        decoding = decode_one(log, query.decrypt, value, chunk.seqs[i], chunk.events[i]);
        if (!decoding.ok()) break;
      }
      visiting = visit(chunk.events[i]);
    }
    if (!decoding.ok()) break;
    recycled.try_push(std::move(chunk));
    chunk = Chunk{};
  }
  queue.cancel();  // stops the reader when the visitor stopped early
  reader.join();
  return read.ok() ? decoding : read;
}

}  // namespace cs
