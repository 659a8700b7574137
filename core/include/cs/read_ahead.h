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

// Same contract as EventLog::read (`visit` returning false stops the read;
// errors are the read's), with `visit` called on the calling thread, in order.
Status read_ahead(const EventLog& log, const ReadQuery& query, const EventLog::Visitor& visit);

}  // namespace cs
