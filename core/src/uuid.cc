#include "cs/uuid.h"

#include <uuid/uuid.h>

#include <cctype>
#include <cstring>

namespace cs {

std::optional<Uuid> Uuid::parse(std::string_view text) {
  // libuuid wants a NUL-terminated 36-char string; check the shape first so
  // that longer inputs are not silently truncated.
  if (text.size() != 36) return std::nullopt;
  char buf[37];
  std::memcpy(buf, text.data(), 36);
  buf[36] = '\0';
  Bytes bytes{};
  if (uuid_parse(buf, bytes.data()) != 0) return std::nullopt;
  return Uuid(bytes);
}

Uuid Uuid::random() {
  Bytes bytes{};
  uuid_generate_random(bytes.data());
  return Uuid(bytes);
}

Uuid Uuid::from_words(std::uint64_t high, std::uint64_t low) {
  Bytes b{};
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<std::uint8_t>(high >> (56 - 8 * i));
    b[8 + i] = static_cast<std::uint8_t>(low >> (56 - 8 * i));
  }
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return Uuid(b);
}

void Uuid::to_chars(char (&out)[37]) const { uuid_unparse_lower(bytes_.data(), out); }

std::string Uuid::to_string() const {
  char buf[37];
  to_chars(buf);
  return std::string(buf, 36);
}

}  // namespace cs
