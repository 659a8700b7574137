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

}  // namespace cs
