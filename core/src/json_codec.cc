#include "cs/json_codec.h"

#include <fstream>
#include <set>

#include "cs/assert.h"
#include "cs/limits.h"
#include "cs/json_writer.h"
#include "cs/personal_data.h"
#include "json_view.h"

namespace cs {
namespace {

// A DOM parser that refuses anything nested much deeper than
// limits::json_depth_max. simdjson builds its tape without recursion and
// does not count an empty array or object as a level, so its own limit is
// set a level above ours (two, with the one it refuses at): the exact limit
// is then checked on the parsed document (checked_depth), which is cheaper
// than scanning every byte of the text first.
simdjson::dom::parser depth_limited_parser() {
  simdjson::dom::parser parser;
  auto allocated = parser.allocate(simdjson::dom::MINIMAL_DOCUMENT_CAPACITY, limits::json_depth_max + 2);
  CS_ASSERT(allocated == simdjson::SUCCESS, "a parser's first buffers are allocated");
  return parser;
}

// The levels of arrays and objects in `e`, empty ones counted. Recursion
// no deeper than the parser's limit allows.
std::size_t nesting(simdjson::dom::element e) {
  std::size_t deepest = 0;
  if (e.is_array()) {
    const simdjson::dom::array array = e.get_array().value_unsafe();
    for (simdjson::dom::element child : array) deepest = std::max(deepest, nesting(child));
    return 1 + deepest;
  }
  if (e.is_object()) {
    const simdjson::dom::object object = e.get_object().value_unsafe();
    for (simdjson::dom::key_value_pair field : object) deepest = std::max(deepest, nesting(field.value));
    return 1 + deepest;
  }
  return 0;
}

// After a parse of `text` into `doc` (ok or not): the depth error, with
// where the text passed the limit, when it nests too deep.
Status checked_depth(std::string_view text, const simdjson::dom::element* doc) {
  if (doc != nullptr && nesting(*doc) <= limits::json_depth_max) return {};
  if (auto s = check_json_depth(text); !s.ok()) return s;
  if (doc == nullptr) return {};
  return invalid_argument("JSON nests deeper than " + std::to_string(limits::json_depth_max) + " levels");
}

}  // namespace

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

template <class Value>
std::string shown(const Value& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

template <class Value>
Error field_error(std::string_view path, std::string_view what, const Value& got) {
  return invalid_argument(std::string(path) + " " + std::string(what) + ", got " + shown(got));
}

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

Status check_string(std::string_view path, const std::string& s, Check check) {
  switch (check) {
    case Check::non_empty:
      if (is_blank(s)) return invalid_argument(std::string(path) + " must not be empty");
      break;
    case Check::email: {
      auto at = s.find('@');
      if (at == std::string::npos || at == 0 || at + 1 >= s.size() ||
          s.find('@', at + 1) != std::string::npos || s.find_first_of(" \t\r\n") != std::string::npos) {
        return invalid_argument(std::string(path) + " must be an e-mail address, got \"" + s + "\"");
      }
      break;
    }
    case Check::currency:
      if (s.size() != 3 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
        return invalid_argument(std::string(path) +
                                " must be an ISO 4217 code of three upper-case letters, got \"" + s +
                                "\"");
      }
      break;
    default: break;
  }
  return {};
}

Status check_integer(std::string_view path, std::int64_t v, Check check) {
  if (check == Check::positive && v <= 0) {
    return invalid_argument(std::string(path) + " must be an integer > 0, got " + std::to_string(v));
  }
  if (check == Check::non_negative && v < 0) {
    return invalid_argument(std::string(path) + " must be an integer >= 0, got " + std::to_string(v));
  }
  if (v > limits::amount_max) {
    return invalid_argument(std::string(path) + " must be at most " +
                            std::to_string(limits::amount_max) + ", got " + std::to_string(v));
  }
  return {};
}

// --- one decoder per C++ field type ---------------------------------------

Status decode(std::string_view path, JsonView v, Check, Uuid& out) {
  if (!v.is_string()) return field_error(path, "must be a UUID string", v);
  auto u = Uuid::parse(v.str());
  if (!u) return field_error(path, "must be a UUID (8-4-4-4-12 hex digits)", v);
  out = *u;
  return {};
}

Status decode(std::string_view path, JsonView v, Check check, std::string& out) {
  if (!v.is_string()) return field_error(path, "must be a string", v);
  out.assign(v.str());
  return check_string(path, out, check);
}

Status decode(std::string_view path, JsonView v, Check check, std::int64_t& out) {
  if (v.is_number_unsigned()) {
    if (v.u64() > static_cast<std::uint64_t>(limits::amount_max)) {
      return field_error(path, "is too large (at most " + std::to_string(limits::amount_max) + ")", v);
    }
    out = static_cast<std::int64_t>(v.u64());
  } else if (v.is_number_integer()) {
    out = v.i64();
  } else {
    return field_error(path, "must be an integer", v);
  }
  return check_integer(path, out, check);
}

Status decode(std::string_view path, JsonView v, Check, CustomerType& out) {
  if (v == "sme") {
    out = CustomerType::sme;
  } else if (v == "institution") {
    out = CustomerType::institution;
  } else {
    return field_error(path, "must be \"sme\" or \"institution\"", v);
  }
  return {};
}

Status decode(std::string_view path, JsonView v, Check, Timestamp& out) {
  if (!v.is_string()) return field_error(path, "must be an ISO-8601 UTC timestamp string", v);
  auto t = parse_timestamp(std::string(v.str()));
  if (!t) return field_error(path, "must be an ISO-8601 UTC timestamp (2026-03-01T10:15:00Z)", v);
  out = *t;
  return {};
}

Status decode(std::string_view path, JsonView v, Check, FieldList& out) {
  if (!v.is_array()) return field_error(path, "must be an array of field names", v);
  auto items = v.array();
  if (items.size() == 0) return invalid_argument(std::string(path) + " must name at least one field");
  if (items.size() > limits::updated_fields_max) {
    return invalid_argument(std::string(path) + " names " + std::to_string(items.size()) +
                            " fields, at most " + std::to_string(limits::updated_fields_max));
  }
  out.clear();
  for (simdjson::dom::element element : items) {
    JsonView item(element);
    if (!item.is_string() || item.str().empty()) return field_error(path, "must hold non-empty strings", item);
    if (std::find(out.begin(), out.end(), item.str()) != out.end()) {
      return field_error(path, "names a field twice", item);
    }
    out.emplace_back(item.str());
  }
  return {};
}

Status decode(std::string_view path, JsonView v, Check, Changes& out) {
  if (!v.is_object()) return field_error(path, "must be an object of new values", v);
  out.clear();
  for (auto field : v.object()) {
    // Stored as nlohmann's dump of the value (nested keys sorted): the form
    // every earlier log holds, so re-imports hash the same bytes.
    auto [at, added] = out.emplace(std::string(field.key), json::parse(JsonView(field.value).dump()).dump());
    if (!added) return invalid_argument(std::string(path) + "." + at->first + " appears twice");
  }
  return {};
}

// A sealed value as it travels in JSON: base64 of the sealed bytes.
Status decode_sealed(std::string_view path, JsonView v, std::string& out) {
  auto bytes = v.is_string() ? base64_decode(v.str()) : std::nullopt;
  if (!bytes) return field_error(path, "must be a sealed value (base64) in a sealed event", v);
  out = std::move(*bytes);
  return {};
}

// `changes` of a sealed event: its personal values sealed, the others as JSON text.
Status decode_sealed_changes(std::string_view path, JsonView v, EventType type, Changes& out) {
  if (!v.is_object()) return field_error(path, "must be an object of new values", v);
  out.clear();
  for (auto field : v.object()) {
    const std::string key(field.key);
    std::string value;
    if (is_personal_field(type, "changes." + key)) {
      if (auto s = decode_sealed(std::string(path) + "." + key, JsonView(field.value), value); !s.ok()) return s;
    } else {
      value = json::parse(JsonView(field.value).dump()).dump();
    }
    if (!out.emplace(key, std::move(value)).second) return invalid_argument(std::string(path) + "." + key + " appears twice");
  }
  return {};
}

// --- one encoder per C++ field type ---------------------------------------

ordered_json encode(const Uuid& v) { return v.to_string(); }
ordered_json encode(const std::string& v) { return v; }
ordered_json encode(std::int64_t v) { return v; }
ordered_json encode(CustomerType v) { return std::string(customer_type_name(v)); }
ordered_json encode(const Timestamp& v) { return format_timestamp(v); }
ordered_json encode(const FieldList& v) { return v; }
ordered_json encode(const Changes& v) {
  ordered_json out = ordered_json::object();
  for (const auto& [key, text] : v) out[key] = ordered_json::parse(text);
  return out;
}

// --- the same values written as text, without a document ---------------------

void write(JsonWriter& w, const Uuid& v) {
  char buf[37];
  v.to_chars(buf);
  w.unescaped_string(std::string_view(buf, 36));
}
void write(JsonWriter& w, const std::string& v) { w.string(v); }
void write(JsonWriter& w, std::int64_t v) { w.integer(v); }
void write(JsonWriter& w, CustomerType v) { w.unescaped_string(customer_type_name(v)); }
void write(JsonWriter& w, const Timestamp& v) {
  char buf[timestamp_chars_max];
  w.unescaped_string(std::string_view(buf, write_timestamp(v, buf)));
}
void write(JsonWriter& w, const FieldList& v) {
  w.begin_array();
  for (const auto& name : v) w.string(name);
  w.end_array();
}
void write(JsonWriter& w, const Changes& v) {
  // Values are JSON text from the caller; a parse and dump gives exactly what
  // payload_to_json gives. Only *.updated events have them, and few.
  w.begin_object();
  for (const auto& [key, text] : v) {
    w.key(key);
    w.raw(ordered_json::parse(text).dump());
  }
  w.end_object();
}

// --- rules that span fields -------------------------------------------------

// The creation event whose fields an update may change: a change is checked
// by the creation field's own rule, so "email" must be an e-mail address in
// customer.updated as in customer.created.
template <class Update> struct CreationOf;
template <> struct CreationOf<CustomerUpdated> { using type = CustomerCreated; };
template <> struct CreationOf<UserUpdated> { using type = UserCreated; };
template <> struct CreationOf<SubscriptionUpdated> { using type = SubscriptionCreated; };

// One `changes` value: valid JSON text, and when it names a field of the
// creation event, a valid value of that field. Names the creation table does
// not know (a deployment's own fields) take any JSON value.
template <class Update>
Status check_change_value(const std::string& name, const std::string& text) {
  std::string path = "data.changes." + name;
  // A parser of its own: an event line's document may still be in use.
  thread_local simdjson::dom::parser parser = depth_limited_parser();
  simdjson::dom::element element;
  const bool parsed = parser.parse(text).get(element) == simdjson::SUCCESS;
  if (auto s = checked_depth(text, parsed ? &element : nullptr); !s.ok()) {
    return invalid_argument(path + ": " + s.error().message());
  }
  if (!parsed) return invalid_argument(path + " is not valid JSON text");
  JsonView value(element);
  using Creation = typename CreationOf<Update>::type;
  if (name == "customerType") {
    return invalid_argument(path + ": a customer's type is set by customer.created and never changes");
  }
  Status result;
  std::apply(
      [&](const auto&... f) {
        (
            [&] {
              if (!result.ok() || f.name != name) return;
              std::decay_t<decltype(Creation{}.*(f.member))> decoded{};
              result = decode(path, value, f.check, decoded);
            }(),
            ...);
      },
      Creation::fields());
  return result;
}

template <class T>
Status check_update_fields(const T& p, bool sealed) {
  if constexpr (requires { p.updated_fields; p.changes; }) {
    for (const auto& [name, text] : p.changes) {
      if (sealed && is_personal_field(T::type, "changes." + name)) continue;  // checked before it was sealed
      if (auto s = check_change_value<T>(name, text); !s.ok()) return s;
    }
    for (const auto& name : p.updated_fields) {
      if (name == "customerId" || name == "userId" || name == "subscriptionId") {
        return invalid_argument("data.updatedFields names \"" + name + "\", an id that never changes");
      }
      if (!p.changes.contains(name)) {
        return invalid_argument("data.updatedFields names \"" + name +
                                "\" but data.changes has no value for it");
      }
    }
    for (const auto& [name, value] : p.changes) {
      if (std::find(p.updated_fields.begin(), p.updated_fields.end(), name) == p.updated_fields.end()) {
        return invalid_argument("data.changes has \"" + name + "\" which data.updatedFields does not name");
      }
    }
  }
  return {};
}

template <class T>
Status check_values(const T& p, std::uint32_t version, bool sealed) {
  Status result;
  std::apply(
      [&](const auto&... f) {
        (
            [&] {
              if (!result.ok() || version < f.since_version) return;
              if (sealed && is_personal_field(T::type, f.name)) return;  // checked before it was sealed
              const auto& value = p.*(f.member);
              std::string path = "data." + std::string(f.name);
              using M = std::decay_t<decltype(value)>;
              if constexpr (std::is_same_v<M, std::string>) {
                result = check_string(path, value, f.check);
              } else if constexpr (std::is_same_v<M, std::int64_t>) {
                result = check_integer(path, value, f.check);
              } else if constexpr (std::is_same_v<M, Uuid>) {
                if (value.is_nil() && f.check != Check::nil_allowed) {
                  result = invalid_argument(path + " must not be the nil UUID");
                }
              }
            }(),
            ...);
      },
      T::fields());
  if (!result.ok()) return result;
  return check_update_fields(p, sealed);
}

template <class T>
Result<Payload> decode_payload(simdjson::dom::object data, std::uint32_t version, bool sealed) {
  T p;
  Status result;
  std::apply(
      [&](const auto&... f) {
        (
            [&] {
              if (!result.ok()) return;
              std::string path = "data." + std::string(f.name);
              auto value = find_member(data, f.name);
              if (version < f.since_version) {
                if (value) {
                  result = invalid_argument(path + " did not exist in schema version " +
                                            std::to_string(version) + " of " +
                                            std::string(event_type_name(T::type)));
                }
                return;
              }
              if (!value) {
                result = invalid_argument(path + " is missing");
                return;
              }
              using M = std::decay_t<decltype(p.*(f.member))>;
              if constexpr (std::is_same_v<M, std::string>) {
                if (sealed && is_personal_field(T::type, f.name)) {
                  result = decode_sealed(path, *value, p.*(f.member));
                  return;
                }
              } else if constexpr (std::is_same_v<M, Changes>) {
                if (sealed) {
                  result = decode_sealed_changes(path, *value, T::type, p.*(f.member));
                  return;
                }
              }
              result = decode(path, *value, f.check, p.*(f.member));
            }(),
            ...);
      },
      T::fields());
  if (!result.ok()) return result.error();
  // Every key must be a field, and once: the table has all of them, so the
  // keys seen are at most the table's size.
  std::size_t fields_present = 0;
  for (auto field : data) {
    bool known = false;
    std::apply([&](const auto&... f) { ((known = known || f.name == field.key), ...); }, T::fields());
    if (!known) {
      return invalid_argument("data." + std::string(field.key) + " is not a field of " +
                              std::string(event_type_name(T::type)));
    }
    ++fields_present;
  }
  std::size_t fields_expected = 0;
  std::apply([&](const auto&... f) { ((fields_expected += version >= f.since_version ? 1 : 0), ...); }, T::fields());
  if (fields_present != fields_expected) return invalid_argument("data names a field twice");
  if (auto s = check_values(p, version, sealed); !s.ok()) return s.error();
  return Payload(std::move(p));
}

template <std::size_t I = 0>
Result<Payload> decode_payload_at(std::size_t index, simdjson::dom::object data, std::uint32_t version,
                                  bool sealed = false) {
  if constexpr (I < std::variant_size_v<Payload>) {
    if (index == I) return decode_payload<std::variant_alternative_t<I, Payload>>(data, version, sealed);
    return decode_payload_at<I + 1>(index, data, version, sealed);
  } else {
    CS_UNREACHABLE("event type out of range");
  }
}

Result<ExpectedVersion> parse_expected(JsonView v) {
  if (v == "any") return ExpectedVersion::any();
  if (v == "no-stream") return ExpectedVersion::no_stream();
  if (v.is_number_unsigned()) return ExpectedVersion::exactly(StreamVersion(v.u64()));
  return field_error("expectedVersion", "must be a stream version number, \"any\" or \"no-stream\"", v);
}

Status parse_meta(JsonView meta, EventMeta& out) {
  if (!meta.is_object()) return field_error("meta", "must be an object", meta);
  std::uint32_t seen = 0;  // one bit per meta field
  for (auto field : meta.object()) {
    const std::string key(field.key);
    JsonView value(field.value);
    const std::uint32_t bit = key == "sourceService" ? 1 : key == "correlationId" ? 2 : key == "causationId" ? 4 : 0;
    if (bit != 0 && (seen & bit)) return invalid_argument("meta." + key + " appears twice");
    seen |= bit;
    if (key == "sourceService") {
      if (!value.is_string() || value.str().size() > limits::service_name_bytes_max) {
        return field_error("meta.sourceService",
                           "must be a service name of at most " +
                               std::to_string(limits::service_name_bytes_max) + " bytes",
                           value);
      }
      out.source_service.assign(value.str());
    } else if (key == "correlationId" || key == "causationId") {
      Uuid u;
      if (auto s = decode("meta." + key, value, Check::none, u); !s.ok()) return s;
      (key == "correlationId" ? out.correlation_id : out.causation_id) = u;
    } else {
      return invalid_argument("meta." + key +
                              " is not a meta field (sourceService, correlationId, causationId)");
    }
  }
  return {};
}

// Top-level keys the line may carry, and how each is read.
Status parse_top_level(simdjson::dom::object doc, EventLine& line, std::optional<EventType>& type,
                       std::optional<std::string>& stream, std::optional<simdjson::dom::object>& data) {
  enum Key : std::uint8_t { type_key, data_key, id_key, stream_key, timestamp_key, recorded_at_key, meta_key,
                            expected_version_key, seq_key, version_key, schema_version_key, hash_key, sealed_key,
                            erased_key, key_count };
  static constexpr std::string_view top_level_keys[key_count] = {
      "type", "data", "id", "stream", "timestamp", "recordedAt", "meta", "expectedVersion",
      "seq", "version", "schemaVersion", "hash", "sealed", "erased"};
  std::uint32_t seen = 0;  // one bit per key of top_level_keys
  for (auto field : doc) {
    const std::string_view key = field.key;
    // One pass names the key (a length differs for most keys, so most
    // comparisons end there), then one branch reads its value.
    std::size_t k = 0;
    while (k < key_count && top_level_keys[k] != key) ++k;
    if (k == key_count) return invalid_argument("\"" + std::string(key) + "\" is not a field of an event line");
    if (seen & (1u << k)) return invalid_argument("\"" + std::string(key) + "\" appears twice");
    seen |= 1u << k;
    JsonView v(field.value);
    switch (static_cast<Key>(k)) {
      case type_key:
        if (!v.is_string()) return field_error("type", "must be a string", v);
        type = parse_event_type(v.str());
        if (!type) return field_error("type", "is not one of the 19 event types", v);
        break;
      case data_key:
        if (!v.is_object()) return field_error("data", "must be an object", v);
        data = v.object();
        break;
      case id_key: {
        Uuid u;
        if (auto s = decode("id", v, Check::none, u); !s.ok()) return s;
        line.id = u;
        break;
      }
      case stream_key:
        if (!v.is_string()) return field_error("stream", "must be a string", v);
        stream = std::string(v.str());
        break;
      case timestamp_key: {
        Timestamp t;
        if (auto s = decode("timestamp", v, Check::none, t); !s.ok()) return s;
        line.timestamp = t;
        break;
      }
      case recorded_at_key: {
        Timestamp t;
        if (auto s = decode("recordedAt", v, Check::none, t); !s.ok()) return s;
        line.recorded_at = t;
        break;
      }
      case meta_key:
        if (auto s = parse_meta(v, line.meta); !s.ok()) return s;
        break;
      case expected_version_key: {
        auto e = parse_expected(v);
        if (!e.ok()) return e.error();
        line.expected = *e;
        break;
      }
      case seq_key:
      case version_key:
        if (!v.is_number_unsigned() || v.u64() == 0) return field_error(std::string(key), "must be an integer >= 1", v);
        if (k == seq_key) {
          line.seq = Sequence(v.u64());
        } else {
          line.version = StreamVersion(v.u64());
        }
        break;
      case schema_version_key:
        if (!v.is_number_unsigned() || v.u64() == 0 || v.u64() > 1000) {
          return field_error(std::string(key), "must be an integer >= 1", v);
        }
        line.schema_version = static_cast<std::uint32_t>(v.u64());
        break;
      case hash_key: {
        auto h = v.is_string() ? hash_from_hex(v.str()) : std::nullopt;
        if (!h) return field_error("hash", "must be 64 hex digits", v);
        line.hash = *h;
        break;
      }
      case sealed_key:
        if (!v.is_bool()) return field_error("sealed", "must be true or false", v);
        line.sealed = v.boolean();
        break;
      case erased_key:
        if (!(v.is_bool() && !v.boolean())) {
          return invalid_argument("the line is of an erased customer: its personal data is gone, so it cannot be "
                                  "taken back (import the stored form: csctl export without --decrypt)");
        }
        break;
      case key_count:
        break;
    }
  }
  return {};
}

}  // namespace

Status check_json_depth(std::string_view text, std::size_t depth_max) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped byte cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > depth_max) {
        return invalid_argument("JSON nests deeper than " + std::to_string(depth_max) +
                                " levels (at byte " + std::to_string(i + 1) + ")");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return {};
}

Result<nlohmann::json> parse_json_document(std::string_view text) {
  if (auto s = check_json_depth(text); !s.ok()) return s.error();
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument("not valid JSON");
  return doc;
}

Result<nlohmann::json> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return invalid_argument("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto doc = parse_json_document(text);
  if (!doc.ok()) return invalid_argument(path + ": " + doc.error().message());
  return doc;
}

Result<Payload> payload_from_json(EventType type, const json& data, std::uint32_t schema_version) {
  const std::string text = data.dump();
  if (auto s = check_json_depth(text); !s.ok()) return s.error();
  simdjson::dom::parser parser;
  simdjson::dom::element element;
  if (parser.parse(text).get(element) != simdjson::SUCCESS || !element.is_object()) {
    return invalid_argument("data must be an object");
  }
  return decode_payload_at(static_cast<std::size_t>(type) - 1, element.get_object().value_unsafe(), schema_version);
}

Status validate_payload(const Payload& payload, std::uint32_t schema_version, bool sealed) {
  return std::visit([&](const auto& p) { return check_values(p, schema_version, sealed); }, payload);
}

ordered_json payload_to_json(const Payload& payload, std::uint32_t schema_version) {
  return std::visit(
      [&](const auto& p) {
        ordered_json out = ordered_json::object();
        using T = std::decay_t<decltype(p)>;
        std::apply(
            [&](const auto&... f) {
              ((schema_version >= f.since_version ? (void)(out[std::string(f.name)] = encode(p.*(f.member)))
                                                  : (void)0),
               ...);
            },
            T::fields());
        return out;
      },
      payload);
}

void write_payload_json(JsonWriter& writer, const Payload& payload, std::uint32_t schema_version,
                        std::span<const std::string_view> omit, PersonalForm form) {
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        writer.begin_object();
        std::apply(
            [&](const auto&... f) {
              auto one = [&](const auto& field) {
                if (schema_version < field.since_version) return;
                if (std::find(omit.begin(), omit.end(), field.name) != omit.end()) return;
                writer.known_key(field.name);
                using M = std::decay_t<decltype(p.*(field.member))>;
                if constexpr (std::is_same_v<M, std::string>) {
                  if (form != PersonalForm::plain && is_personal_field(T::type, field.name)) {
                    if (form == PersonalForm::sealed) writer.string(base64_encode(p.*(field.member)));
                    else writer.null();
                    return;
                  }
                } else if constexpr (std::is_same_v<M, Changes>) {
                  if (form != PersonalForm::plain) {
                    writer.begin_object();
                    for (const auto& [key, text] : p.*(field.member)) {
                      writer.key(key);
                      if (!is_personal_field(T::type, "changes." + key)) writer.raw(ordered_json::parse(text).dump());
                      else if (form == PersonalForm::sealed) writer.string(base64_encode(text));
                      else writer.null();
                    }
                    writer.end_object();
                    return;
                  }
                }
                write(writer, p.*(field.member));
              };
              (one(f), ...);
            },
            T::fields());
        writer.end_object();
      },
      payload);
}

Result<EventLine> parse_event_line(std::string_view text) {
  if (text.size() > limits::json_line_bytes_max) {
    return invalid_argument("line of " + std::to_string(text.size()) + " bytes is over the limit of " +
                            std::to_string(limits::json_line_bytes_max));
  }
  // One parser per thread, reused: its buffers grow to the largest line once.
  thread_local simdjson::dom::parser parser = depth_limited_parser();
  simdjson::dom::element doc;
  const auto error = parser.parse(text.data(), text.size()).get(doc);
  // Too deep is said first, with where (whatever else is wrong with the text).
  if (auto s = checked_depth(text, error == simdjson::SUCCESS ? &doc : nullptr); !s.ok()) return s.error();
  if (error != simdjson::SUCCESS) {
    return invalid_argument(std::string("not valid JSON (") + simdjson::error_message(error) + ")");
  }
  if (!doc.is_object()) return invalid_argument("an event line must be a JSON object");

  EventLine line;
  std::optional<EventType> type;
  std::optional<std::string> stream;
  std::optional<simdjson::dom::object> data;
  if (auto s = parse_top_level(doc.get_object().value_unsafe(), line, type, stream, data); !s.ok()) return s.error();
  if (!type) return invalid_argument("type is missing");
  if (!data) return invalid_argument("data is missing");

  std::uint32_t current = current_schema_version(*type);
  if (line.schema_version == 0) line.schema_version = current;
  if (line.schema_version > current) {
    return invalid_argument("schemaVersion " + std::to_string(line.schema_version) + " of " +
                            std::string(event_type_name(*type)) + " is newer than this build reads (" +
                            std::to_string(current) + ")");
  }
  auto payload = decode_payload_at(static_cast<std::size_t>(*type) - 1, *data, line.schema_version, line.sealed);
  if (!payload.ok()) return payload.error();
  line.payload = std::move(*payload);

  std::string expected_stream = payload_stream(line.payload);
  if (stream && *stream != expected_stream) {
    return invalid_argument("stream \"" + *stream + "\" does not match the event's data, which puts it in \"" +
                            expected_stream + "\"");
  }
  return line;
}

namespace {
ordered_json meta_to_json(const EventMeta& m) {
  ordered_json meta = ordered_json::object();
  if (!m.source_service.empty()) meta["sourceService"] = m.source_service;
  if (m.correlation_id) meta["correlationId"] = m.correlation_id->to_string();
  if (m.causation_id) meta["causationId"] = m.causation_id->to_string();
  return meta;
}
}  // namespace

std::string format_new_event_line(const NewEvent& e) {
  ordered_json out = ordered_json::object();
  out["id"] = e.id.to_string();
  out["type"] = std::string(event_type_name(payload_type(e.payload)));
  out["stream"] = payload_stream(e.payload);
  out["timestamp"] = format_timestamp(e.timestamp);
  if (e.expected.kind == ExpectedVersion::Kind::no_stream) out["expectedVersion"] = "no-stream";
  if (e.expected.kind == ExpectedVersion::Kind::exact) out["expectedVersion"] = e.expected.version.value;
  out["data"] = payload_to_json(e.payload, current_schema_version(payload_type(e.payload)));
  out["meta"] = meta_to_json(e.meta);
  return out.dump();
}

void write_meta(JsonWriter& w, const EventMeta& m) {
  char buf[37];
  w.begin_object();
  if (!m.source_service.empty()) {
    w.known_key("sourceService");
    w.string(m.source_service);
  }
  if (m.correlation_id) {
    w.known_key("correlationId");
    m.correlation_id->to_chars(buf);
    w.unescaped_string(std::string_view(buf, 36));
  }
  if (m.causation_id) {
    w.known_key("causationId");
    m.causation_id->to_chars(buf);
    w.unescaped_string(std::string_view(buf, 36));
  }
  w.end_object();
}

void append_event_line(std::string& out, const RecordedEvent& e) {
  JsonWriter w(out);
  char id[37];
  e.id.to_chars(id);
  w.begin_object();
  w.known_key("seq");
  w.integer(e.seq.value);
  w.known_key("id");
  w.unescaped_string(std::string_view(id, 36));
  w.known_key("type");
  w.unescaped_string(event_type_name(e.type()));
  w.known_key("stream");
  w.string(e.stream);
  w.known_key("version");
  w.integer(e.version.value);
  char time[timestamp_chars_max];
  w.known_key("timestamp");
  w.unescaped_string(std::string_view(time, write_timestamp(e.timestamp, time)));
  w.known_key("recordedAt");
  w.unescaped_string(std::string_view(time, write_timestamp_millis(e.recorded_at, time)));
  w.known_key("schemaVersion");
  w.integer(e.stored_schema_version);
  if (e.sealed) {
    w.known_key("sealed");
    w.boolean(true);
  } else if (e.erased) {
    w.known_key("erased");
    w.boolean(true);
  }
  w.known_key("data");
  write_payload_json(w, e.payload, e.stored_schema_version, {},
                     e.sealed ? PersonalForm::sealed : e.erased ? PersonalForm::erased : PersonalForm::plain);
  w.known_key("meta");
  write_meta(w, e.meta);
  w.known_key("hash");
  char hash_hex[hash_hex_chars];
  write_hash_hex(e.hash, hash_hex);
  w.unescaped_string(std::string_view(hash_hex, hash_hex_chars));
  w.end_object();
}

std::string format_event_line(const RecordedEvent& e) {
  std::string out;
  append_event_line(out, e);
  return out;
}

NewEvent to_new_event(const EventLine& line, Timestamp now) {
  NewEvent e;
  e.id = line.id ? *line.id : Uuid::random();
  e.timestamp = line.timestamp ? *line.timestamp : now;
  e.meta = line.meta;
  e.expected = line.expected;
  e.payload = line.payload;
  return e;
}

}  // namespace cs
