#include "cs/read_ahead.h"

#include <algorithm>
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
  // With verify_chain, the hash the event before the chunk's first ends with:
  // each link needs only its neighbour's stored hash, so whichever thread
  // decodes a chunk checks its links (SHA-256 costs more than the reading).
  Hash chain_previous{};
};

// Decodes (and opens, with `decrypt`) a stored event into `e`, reusing its
// buffers. The error names the event's sequence.
// With `previous`, the chain link is checked first.
Status decode_one(const EventLog& log, bool decrypt, std::string_view value, Sequence seq, const Hash* previous,
                  RecordedEvent& e) {
  if (previous) {
    if (auto c = check_chain_link(seq, value, *previous); !c.ok()) return c;
  }
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
  // The chain is checked here rather than by read_stored, so that it is
  // checked on the thread that decodes; read_stored only hands out bytes.
  const bool verify_chain = query.verify_chain;
  ReadQuery scan = query;
  scan.verify_chain = false;
  Sequence expected = std::max(query.from_seq.value_or(Sequence(1)), Sequence(1));
  Hash previous{};
  if (verify_chain && expected.value > 1) {
    auto before = log.stored_hash(expected.prev());
    if (!before.ok()) return before.error();
    previous = *before;
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
    read = log.read_stored(scan, [&](Sequence seq, std::string_view value) {
      if (chunk.used == 0) {
        const bool visitor_idle = queue.size() < read_ahead_visitor_decodes_below_chunks;
        chunk.stored = decode_on == DecodeOn::visitor || (decode_on == DecodeOn::whichever_is_idle && visitor_idle);
        chunk.raw.clear();
        chunk.raw_ends.clear();
        chunk.seqs.clear();
        chunk.chain_previous = previous;
      }
      if (verify_chain) {
        if (decoding = check_next_seq(expected, seq); !decoding.ok()) return false;
        expected = expected.next();
      }
      RecordedEvent& e = slot();
      if (chunk.stored) {
        chunk.raw.append(value);
        chunk.raw_ends.push_back(chunk.raw.size());
        chunk.seqs.push_back(seq);
      } else if (decoding = decode_one(log, query.decrypt, value, seq, verify_chain ? &previous : nullptr, e);
                 !decoding.ok()) {
        return false;
      }
      if (verify_chain) previous = stored_chain_hash(value);
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
    Hash link_previous = chunk.chain_previous;
    for (std::size_t i = 0; i < chunk.used && visiting; ++i) {
      if (chunk.stored) {
        const std::string_view value(chunk.raw.data() + begin, chunk.raw_ends[i] - begin);
        begin = chunk.raw_ends[i];
        decoding = decode_one(log, query.decrypt, value, chunk.seqs[i], verify_chain ? &link_previous : nullptr,
                              chunk.events[i]);
        if (!decoding.ok()) break;
        if (verify_chain) link_previous = stored_chain_hash(value);
      }
      visiting = visit(chunk.events[i]);
    }
    if (!decoding.ok()) break;
    recycled.try_push(std::move(chunk));
    chunk = Chunk{};
  }
  queue.cancel();  // stops the reader when the visitor stopped early
  reader.join();
  // The visitor's error is at an event the reader handed over, so before
  // wherever the reader stopped: it is the first in log order. A visitor
  // that stopped asked for nothing the reader met after.
  if (!decoding.ok()) return decoding;
  return visiting ? read : Status{};
}

}  // namespace cs
