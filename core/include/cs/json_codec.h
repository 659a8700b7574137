// The JSON wire form of events: one object per line, as in design.md.
//
//   {"seq":42,"id":"…","type":"token.used","stream":"tokens-…","version":7,
//    "timestamp":"2026-03-01T10:15:00Z","recordedAt":"2026-03-01T10:15:00.123Z",
//    "schemaVersion":1,"data":{…},"meta":{"sourceService":"…"},"hash":"…"}
//
// Parsing is strict: an unknown key, a missing or ill-typed field, a bad UUID
// or a non-positive amount is an invalid_argument error whose message names
// the field ("data.amount must be an integer > 0, got -5").
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cs/error.h"
#include "cs/event.h"
#include "cs/json_writer.h"
#include "cs/limits.h"

namespace cs {

// One parsed line. Fields the log assigns (seq, version, recordedAt, hash,
// schemaVersion) are kept when present so that `import` can check them;
// `append` ignores them.
struct EventLine {
  std::optional<Uuid> id;
  std::optional<Timestamp> timestamp;
  EventMeta meta;
  ExpectedVersion expected;
  Payload payload;
  std::optional<Sequence> seq;
  std::optional<StreamVersion> version;
  std::optional<Timestamp> recorded_at;
  std::optional<Hash> hash;
  std::uint32_t schema_version = 0;  // the data's schema version (current unless given)
  // "sealed": true — the stored form of an event whose personal fields are
  // sealed (base64 in the line); only `import` takes it.
  bool sealed = false;
};

// Ok when `text` nests arrays and objects at most `depth_max` deep (strings
// are skipped, so brackets inside them do not count); otherwise
// invalid_argument naming the limit and the byte offset where it was passed.
// Does not validate the JSON otherwise. Cheap: one pass, no allocation.
Status check_json_depth(std::string_view text, std::size_t depth_max = limits::json_depth_max);

// A configuration document (routing, authorization, services): `text`
// checked for depth, then parsed. invalid_argument "not valid JSON" or the
// depth error. Never throws.
Result<nlohmann::json> parse_json_document(std::string_view text);
// The same for a file's whole content; invalid_argument when it cannot be read.
Result<nlohmann::json> read_json_file(const std::string& path);

// Parses and validates one line. Never throws.
Result<EventLine> parse_event_line(std::string_view line);

// Parses `data` of an event of `type` written under `schema_version`: fields
// added after that version must be absent. Errors name "data.<field>".
Result<Payload> payload_from_json(EventType type, const nlohmann::json& data,
                                  std::uint32_t schema_version);
// Validates a payload built in code against the same rules as parsing; a
// sealed payload's personal fields are not checked (they were before).
Status validate_payload(const Payload& payload, std::uint32_t schema_version, bool sealed = false);

// The payload as a JSON object, fields in table order.
nlohmann::ordered_json payload_to_json(const Payload& payload, std::uint32_t schema_version);

// How personal fields are written: as they are, sealed (base64 of the sealed
// bytes), or erased (null).
enum class PersonalForm { plain, sealed, erased };

// The payload as JSON text appended through `writer`: the same bytes as
// payload_to_json(...).dump(), minus the fields named in `omit`.
void write_payload_json(JsonWriter& writer, const Payload& payload, std::uint32_t schema_version,
                        std::span<const std::string_view> omit = {}, PersonalForm form = PersonalForm::plain);

// The full line that `csctl read` prints and `parse_event_line` accepts: a
// sealed event in its stored form ("sealed": true, personal fields base64),
// an erased one with "erased": true and its personal fields null.
std::string format_event_line(const RecordedEvent& event);
// The same line appended to `out` (no newline), for callers that reuse a buffer.
void append_event_line(std::string& out, const RecordedEvent& event);
// The event's meta object ({"sourceService":…,"correlationId":…}).
void write_meta(JsonWriter& writer, const EventMeta& meta);

// An event not yet in the log, as a line `csctl append` takes (id, type,
// stream, timestamp, data, meta; plus expectedVersion when it is not "any").
std::string format_new_event_line(const NewEvent& event);

// A line as an event to append: a missing id becomes a random UUID, a missing
// timestamp becomes `now`.
NewEvent to_new_event(const EventLine& line, Timestamp now);

}  // namespace cs
