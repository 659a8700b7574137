// What the log knows of one stream when it appends to it, and the rules that
// knowledge enforces. The group-commit leader keeps these facts per stream
// (staged, then committed); on a miss they are read back from the stream.
//
//   rule                                         refused with
//   a creation event on a stream that exists     conflict  ("opens a stream")
//   a user / subscription event naming another   conflict  ("belongs to customer …
//     customer than the stream's first event                 for life")
//   token credits or uses passing                invalid_argument (named limit)
//     limits::token_total_max
#pragma once

#include <cstdint>
#include <string>

#include "cs/error.h"
#include "cs/event.h"

namespace cs {

struct StreamFacts {
  std::uint64_t version = 0;  // 0: the stream has no event
  Uuid owner;                 // customerId of the stream's first event
  std::int64_t credited = 0;  // tokens streams: purchased + allocated so far
  std::int64_t used = 0;      // tokens streams: used so far
};

// Whether `payload` may be appended to a stream in state `facts`. No side
// effects, no allocation when it may (the caller names the event on error).
Status check_stream_rules(const StreamFacts& facts, const StreamKey& stream, const Payload& payload);

// `facts` after `payload` was appended. The token totals are checked: an
// overflow past limits::token_total_max is invalid_argument and leaves
// `facts` unchanged (only possible for events that skipped the rules, as
// imports do).
Status advance_stream_facts(StreamFacts& facts, const Payload& payload);

}  // namespace cs
