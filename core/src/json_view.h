// A read-only view of one value of a document parsed by simdjson's DOM
// parser, with the few questions the codecs ask (nlohmann's names where they
// exist). Borrowed: valid while the parser that produced it is not reused.
//
// Why simdjson: it validates the whole document (UTF-8 included) and builds a
// flat tape several times faster than nlohmann builds its tree of maps, and it
// has a depth limit of its own (the parser is sized for limits::json_depth_max).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cs {

class JsonView {
 public:
  explicit JsonView(simdjson::dom::element element) : e_(element) {}

  bool is_string() const { return e_.is_string(); }
  bool is_object() const { return e_.is_object(); }
  bool is_array() const { return e_.is_array(); }
  bool is_bool() const { return e_.is_bool(); }
  // An integer (no fraction, no exponent) that fits 64 bits, signed or not.
  bool is_number_integer() const { return e_.is_int64() || e_.is_uint64(); }
  bool is_number_unsigned() const { return e_.is_uint64(); }

  // Each accessor requires the matching is_*() (a programming error otherwise).
  std::string_view str() const { return e_.get_string().value_unsafe(); }
  std::uint64_t u64() const { return e_.get_uint64().value_unsafe(); }
  std::int64_t i64() const { return e_.get_int64().value_unsafe(); }
  bool boolean() const { return e_.get_bool().value_unsafe(); }
  simdjson::dom::array array() const { return e_.get_array().value_unsafe(); }
  simdjson::dom::object object() const { return e_.get_object().value_unsafe(); }

  bool operator==(std::string_view text) const { return is_string() && str() == text; }

  // The value as compact JSON text.
  std::string dump() const { return simdjson::minify(e_); }

 private:
  simdjson::dom::element e_;
};

// The member `key` of an object view, if present.
inline std::optional<JsonView> find_member(simdjson::dom::object object, std::string_view key) {
  simdjson::dom::element value;
  if (object.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return JsonView(value);
}

}  // namespace cs
