// Timestamps: microseconds since the Unix epoch, UTC, as a strong type.
// Wire form is ISO-8601 UTC ("2026-03-01T10:15:00Z", with a fraction only when
// it is not zero: ".123Z" or ".123456Z"). Parsing accepts "Z" or "+00:00".
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cs {

struct Timestamp {
  std::int64_t micros = 0;

  constexpr auto operator<=>(const Timestamp&) const = default;

  static Timestamp now();
  static constexpr Timestamp from_seconds(std::int64_t s) { return Timestamp{s * 1'000'000}; }

  template <class Archive>
  void serialize(Archive& ar) { ar(micros); }
};

// Returns nullopt unless `text` is a complete ISO-8601 UTC date-time with
// year 1970..9999 and valid month, day, hour, minute and second.
std::optional<Timestamp> parse_timestamp(std::string_view text);
std::string format_timestamp(Timestamp t);
// Always with milliseconds ("...:00.123Z"): the form of `recordedAt`.
std::string format_timestamp_millis(Timestamp t);

// The same forms written into `out`, which must hold timestamp_chars_max
// bytes (no NUL is written); return the length. For hot paths that print
// many timestamps without a string each.
inline constexpr std::size_t timestamp_chars_max = 40;
std::size_t write_timestamp(Timestamp t, char* out);
std::size_t write_timestamp_millis(Timestamp t, char* out);

}  // namespace cs
