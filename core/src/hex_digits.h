// The value of each byte as a hex digit of either case, -1 for every other
// byte: parsers of ids and hashes use one load per character instead of
// three range tests (every input line carries several of them).
#pragma once

#include <array>
#include <cstdint>

namespace cs {

inline constexpr std::array<std::int8_t, 256> hex_digit_values = [] {
  std::array<std::int8_t, 256> table{};
  table.fill(-1);
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<std::int8_t>(c - 'A' + 10);
  return table;
}();

// Each byte's two lowercase hex digits: writers of ids and hashes copy a
// pair per byte instead of looking up each half.
inline constexpr std::array<std::array<char, 2>, 256> hex_digit_pairs = [] {
  constexpr char digits[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> table{};
  for (int b = 0; b < 256; ++b) table[b] = {digits[b >> 4], digits[b & 0xF]};
  return table;
}();

}  // namespace cs
