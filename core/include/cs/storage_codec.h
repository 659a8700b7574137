// The stored form of an event: cereal portable binary (little-endian on every
// machine), with class versions so that old events decode after the schema
// grows. Layout in docs/storage.md.
//
//   stored value = canonical bytes || chain hash (32 bytes)
//   canonical bytes = format byte, envelope (versioned), payload (versioned)
#pragma once

#include <string>
#include <string_view>

#include "cs/error.h"
#include "cs/event.h"

namespace cs {

// Format 1: every field as given. Format 2: the personal fields hold sealed
// bytes (RecordedEvent::sealed); everything else as in format 1.
inline constexpr std::uint8_t record_format_version = 1;
inline constexpr std::uint8_t record_format_sealed = 2;

// What the canonical bytes hold, borrowed from the caller (no copies).
struct CanonicalFields {
  Sequence seq;
  const Uuid& id;
  std::string_view stream;
  StreamVersion version;
  Timestamp timestamp;
  Timestamp recorded_at;
  const EventMeta& meta;
  std::uint32_t schema_version;
  const Payload& payload;
  bool sealed = false;  // format 2
};

// The bytes the chain hash covers: everything but the hash itself.
// Appends to `out` (which is not cleared), so a caller can reuse a buffer.
void encode_canonical(const CanonicalFields& fields, std::string& out);
void encode_canonical(const RecordedEvent& event, std::string& out);

// Decodes canonical bytes; the result's hash is left zero.
// Returns corruption naming what failed when the bytes do not decode.
Result<RecordedEvent> decode_canonical(std::string_view bytes);

// Splits a stored value into its event (hash filled in) after checking the
// layout. Does not check the chain: that needs the previous hash.
Result<RecordedEvent> decode_stored(std::string_view value);
// The same into `out`, reusing its buffers (for readers that decode many
// events into the same slots). On error `out` is unspecified.
Status decode_stored_into(std::string_view value, RecordedEvent& out);
// The same for the value stored under `seq`: corruption naming `seq` when it
// does not decode or holds an event stamped with another sequence.
Status decode_stored_at(Sequence seq, std::string_view value, RecordedEvent& out);

// SHA-256(previous || canonical). The first event's previous hash is all zero.
Hash chain_hash(const Hash& previous, std::string_view canonical);

// A link of the chain: the value stored under `seq` ends with
// chain_hash(previous, the bytes before it), `previous` being the hash the
// event before it ends with. Ok, or broken_chain naming `seq` (corruption
// when the value is too short to hold a hash). Each link needs only the
// stored bytes of two neighbours, so links can be checked in any order.
Status check_chain_link(Sequence seq, std::string_view value, const Hash& previous);
// The hash a stored value ends with (zero when it is too short to hold one:
// check_chain_link reports that value).
Hash stored_chain_hash(std::string_view value);
// Whole-log reads check the chain over gap-free sequences: corruption
// naming `expected` when `seq` (the next stored one) is not it.
Status check_next_seq(Sequence expected, Sequence seq);

}  // namespace cs
