#include "cs/payloads.h"

#include <cstdio>
#include <cstring>

#include "cs/assert.h"
#include "cs/event.h"
#include "hex_digits.h"

namespace cs {

std::string_view customer_type_name(CustomerType type) {
  return type == CustomerType::institution ? "institution" : "sme";
}

EventType payload_type(const Payload& payload) {
  return static_cast<EventType>(payload.index() + 1);
}

const Uuid& payload_customer_id(const Payload& payload) {
  return std::visit([](const auto& p) -> const Uuid& { return p.customer_id; }, payload);
}

std::string StreamKey::name() const { return std::string(stream_prefix(category)) + id.to_string(); }

std::string_view StreamKey::name_into(NameBuffer& out) const {
  const std::string_view prefix = stream_prefix(category);
  static_assert(sizeof(NameBuffer) >= 13 + 36 + 1, "the longest prefix, a UUID and its terminator");
  std::memcpy(out.data(), prefix.data(), prefix.size());
  char text[37];
  id.to_chars(text);
  std::memcpy(out.data() + prefix.size(), text, 36);
  return std::string_view(out.data(), prefix.size() + 36);
}

StreamKey payload_stream_key(const Payload& payload) {
  return std::visit([](const auto& p) { return StreamKey{category_of(p.type), p.stream_key()}; }, payload);
}

std::string payload_stream(const Payload& payload) { return payload_stream_key(payload).name(); }

namespace {
template <std::size_t I = 0>
std::uint32_t schema_version_at(std::size_t index) {
  if constexpr (I < std::variant_size_v<Payload>) {
    if (index == I) return std::variant_alternative_t<I, Payload>::schema_version;
    return schema_version_at<I + 1>(index);
  } else {
    CS_UNREACHABLE("event type out of range");
  }
}

template <std::size_t I = 0>
Payload make_payload_at(std::size_t index) {
  if constexpr (I < std::variant_size_v<Payload>) {
    if (index == I) return Payload(std::in_place_index<I>);
    return make_payload_at<I + 1>(index);
  } else {
    CS_UNREACHABLE("event type out of range");
  }
}

// The variant's order is the type codes' order; a mismatch would store
// events under the wrong type.
template <std::size_t... I>
constexpr bool variant_matches_codes(std::index_sequence<I...>) {
  return ((static_cast<std::size_t>(std::variant_alternative_t<I, Payload>::type) == I + 1) && ...);
}
static_assert(variant_matches_codes(std::make_index_sequence<event_type_count>{}));
}  // namespace

std::uint32_t current_schema_version(EventType type) {
  return schema_version_at(static_cast<std::size_t>(type) - 1);
}

Payload make_payload(EventType type) { return make_payload_at(static_cast<std::size_t>(type) - 1); }

void write_hash_hex(const Hash& hash, char* out) {
  static_assert(hash_hex_chars == 2 * std::tuple_size_v<Hash>);
  for (std::size_t i = 0; i < hash.size(); ++i) std::memcpy(out + 2 * i, hex_digit_pairs[hash[i]].data(), 2);
}

std::string bytes_to_hex(std::string_view bytes) {
  std::string out(2 * bytes.size(), '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::memcpy(out.data() + 2 * i, hex_digit_pairs[static_cast<unsigned char>(bytes[i])].data(), 2);
  }
  return out;
}

std::string hash_to_hex(const Hash& hash) {
  std::string out(hash_hex_chars, '0');
  write_hash_hex(hash, out.data());
  return out;
}

// Two hashes on every line csctl import reads: branch-free, as Uuid::parse.
std::optional<Hash> hash_from_hex(std::string_view hex) {
  if (hex.size() != 2 * std::tuple_size_v<Hash>) return std::nullopt;
  Hash out{};
  int invalid = 0;  // any digit's -1 sets the sign bit
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = hex_digit_values[static_cast<unsigned char>(hex[2 * i])];
    const int low = hex_digit_values[static_cast<unsigned char>(hex[2 * i + 1])];
    invalid |= high | low;
    out[i] = static_cast<std::uint8_t>(high << 4 | (low & 0xf));
  }
  if (invalid < 0) return std::nullopt;
  return out;
}

std::string to_string(const ExpectedVersion& expected) {
  switch (expected.kind) {
    case ExpectedVersion::Kind::any: return "any";
    case ExpectedVersion::Kind::no_stream: return "no-stream";
    case ExpectedVersion::Kind::exact: return std::to_string(expected.version.value);
  }
  return "?";
}

}  // namespace cs
