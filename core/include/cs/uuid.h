// A 128-bit UUID, stored as 16 bytes and written as the canonical lowercase
// 8-4-4-4-12 hex form on the wire. Parsing and formatting use libuuid.
#pragma once

#include <array>
#include <compare>
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
  const Bytes& bytes() const { return bytes_; }
  bool is_nil() const { return bytes_ == Bytes{}; }

  auto operator<=>(const Uuid&) const = default;

  template <class Archive>
  void serialize(Archive& ar) { ar(bytes_); }

 private:
  Bytes bytes_{};
};

}  // namespace cs

template <>
struct std::hash<cs::Uuid> {
  std::size_t operator()(const cs::Uuid& u) const noexcept {
    std::size_t h = 0;
    for (auto b : u.bytes()) h = h * 131 + b;
    return h;
  }
};
