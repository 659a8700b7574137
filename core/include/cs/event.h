// An event as the log stores it: the envelope around a typed payload.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cs/event_types.h"
#include "cs/ids.h"
#include "cs/payloads.h"
#include "cs/time.h"
#include "cs/uuid.h"

namespace cs {

using Hash = std::array<std::uint8_t, 32>;  // SHA-256
inline constexpr std::size_t hash_hex_chars = 64;
// Lowercase hex of `hash`, hash_hex_chars long.
std::string hash_to_hex(const Hash& hash);
// Any bytes as lowercase hex, two digits a byte (keys and ids in messages).
std::string bytes_to_hex(std::string_view bytes);
// The same into `out` (hash_hex_chars bytes, not terminated), for paths that
// format one hash per event and should not allocate for it.
void write_hash_hex(const Hash& hash, char* out);
std::optional<Hash> hash_from_hex(std::string_view hex);

// Where an event came from and why. All optional.
struct EventMeta {
  std::string source_service;          // e.g. "admin-service"; empty when unknown
  std::optional<Uuid> correlation_id;  // the request that started the chain
  std::optional<Uuid> causation_id;    // the message that directly caused this event

  bool operator==(const EventMeta&) const = default;
};

// What a stream's version must be before an event is appended.
struct ExpectedVersion {
  enum class Kind : std::uint8_t { any, no_stream, exact };
  Kind kind = Kind::any;
  StreamVersion version{};  // meaningful for `exact` only

  static ExpectedVersion any() { return {}; }
  static ExpectedVersion no_stream() { return {Kind::no_stream, {}}; }
  static ExpectedVersion exactly(StreamVersion v) { return {Kind::exact, v}; }
  bool operator==(const ExpectedVersion&) const = default;
};
std::string to_string(const ExpectedVersion& expected);

// An event offered to EventLog::append. Its stream follows from the payload.
struct NewEvent {
  Uuid id;  // the idempotency key: appending an id that is in the log is a no-op
  Timestamp timestamp;  // when it happened (the business time)
  EventMeta meta;
  ExpectedVersion expected;
  Payload payload;
};

// An event read back from the log.
struct RecordedEvent {
  Sequence seq;
  Uuid id;
  std::string stream;
  StreamVersion version;
  Timestamp timestamp;
  Timestamp recorded_at;  // when the log stored it, in whole milliseconds
  EventMeta meta;
  // The payload's schema version when it was written; `payload` itself is
  // always in the current schema (older versions are upcast on decode).
  std::uint32_t stored_schema_version = 0;
  Payload payload;
  Hash hash{};  // chain hash: SHA-256(previous event's hash || canonical bytes)
  // The payload's personal fields hold sealed bytes (cs/personal_data.h), as
  // stored; EventLog::unseal opens them. False for an event stored in
  // plaintext (written before sealing, or with no personal field).
  bool sealed = false;
  // Unsealed, but its customer's data key is destroyed: the personal fields
  // are empty and read as erased.
  bool erased = false;

  EventType type() const { return payload_type(payload); }
};

}  // namespace cs
