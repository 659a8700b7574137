// A 128-bit UUID, stored as 16 bytes and written as the canonical lowercase
// 8-4-4-4-12 hex form on the wire. Random ids come from libuuid.
#pragma once

#include <array>
#include <compare>
#include <cstring>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace cs {

class Uuid {
 public:
  using Bytes = std::array<std::uint8_t, 16>;

  constexpr Uuid() = default;  // the nil UUID
  explicit constexpr Uuid(const Bytes& bytes) : bytes_(bytes) {}

  // Parses the canonical 36-character form (either case). Returns nullopt for
  // anything else, including braces, URNs and the 32-digit form.
  static std::optional<Uuid> parse(std::string_view text);
  // A random (version 4) UUID from the system's generator. Thread-safe.
  static Uuid random();
  // A version-4-shaped UUID from two 64-bit words, for deterministic
  // generators (same words, same UUID).
  static Uuid from_words(std::uint64_t high, std::uint64_t low);

  std::string to_string() const;
  // The same 36 characters written to `out` (NUL-terminated), without allocating.
  void to_chars(char (&out)[37]) const;
  const Bytes& bytes() const { return bytes_; }
  bool is_nil() const { return bytes_ == Bytes{}; }

  // Fixed-size compares the compiler inlines (the defaulted ones call memcmp).
  bool operator==(const Uuid& other) const {
    return std::memcmp(bytes_.data(), other.bytes_.data(), 16) == 0;
  }
  std::strong_ordering operator<=>(const Uuid& other) const {
    std::uint64_t a = high_word(), b = other.high_word();
    if (a != b) return a <=> b;
    return low_word() <=> other.low_word();
  }

  template <class Archive>
  void serialize(Archive& ar) { ar(bytes_); }

 private:
  // Big-endian words, so that their order is the bytes' order.
  std::uint64_t high_word() const { return word(0); }
  std::uint64_t low_word() const { return word(8); }
  std::uint64_t word(std::size_t at) const {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = v << 8 | bytes_[at + i];
    return v;
  }

  Bytes bytes_{};
};

}  // namespace cs

template <>
struct std::hash<cs::Uuid> {
  // UUIDs are mostly random bits already: fold the two halves and mix.
  std::size_t operator()(const cs::Uuid& u) const noexcept {
    std::uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, u.bytes().data(), 8);
    std::memcpy(&lo, u.bytes().data() + 8, 8);
    std::uint64_t h = hi ^ (lo * 0x9E3779B97F4A7C15ULL);
    return static_cast<std::size_t>(h ^ (h >> 29));
  }
};
