// EventLog::read with the decoding moved to a second thread: a reader thread
// reads and decodes events into chunks while `visit` runs on the calling
// thread, so a whole-log pass costs max(decode, visit) instead of the sum.
#pragma once

#include "cs/event_log.h"

namespace cs {

// Events per chunk handed from the reader to the visitor, and chunks the
// reader may run ahead.
inline constexpr std::size_t read_ahead_chunk_events = 1'024;
inline constexpr std::size_t read_ahead_chunks_max = 16;
// DecodeOn::whichever_is_idle: a chunk started while fewer than this many
// wait for the visitor is left for the visitor to decode. One, the chunk
// just handed over, is usually still queued while the visitor wakes up.
inline constexpr std::size_t read_ahead_visitor_decodes_below_chunks = 2;

// Which thread decodes (and opens, with `decrypt`) the events read.
enum class DecodeOn {
  // Per chunk: the visitor's thread when it has next to nothing queued (it
  // would wait for the reader otherwise), else the reader's. A rebuild's folds
  // are faster than the decoding, an audit's bookkeeping slower: either way
  // both threads stay busy.
  whichever_is_idle,
  reader,   // every chunk on the reader's thread
  visitor,  // every chunk on the visitor's thread
};

// Same contract as EventLog::read (`visit` returning false stops the read;
// errors are the read's, a stored event that does not decode is corruption
// naming its sequence, after the events before it were visited), with
// `visit` called on the calling thread, in order. With verify_chain, each
// link is checked by the thread that decodes its event, and a broken one is
// reported as EventLog::read reports it, after the events before it.
Status read_ahead(const EventLog& log, const ReadQuery& query, const EventLog::Visitor& visit,
                  DecodeOn decode_on = DecodeOn::whichever_is_idle);

}  // namespace cs
