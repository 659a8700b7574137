#include "cs/json_writer.h"

#include <cstring>

namespace cs {
namespace {

// Does any of the 8 bytes of `word` need an escape (below 0x20, '"', '\\')?
// Bit tricks on a whole word: most strings (ids, names, stream names) have
// nothing to escape, and a byte at a time was a tenth of a read's time.
bool word_needs_escape(std::uint64_t word) {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  constexpr std::uint64_t highs = 0x8080808080808080ull;
  auto has_zero_byte = [](std::uint64_t x) { return ((x - ones) & ~x & highs) != 0; };
  const bool below_space = ((word - ones * 0x20) & ~word & highs) != 0;
  return below_space || has_zero_byte(word ^ (ones * '"')) || has_zero_byte(word ^ (ones * '\\'));
}

}  // namespace

void JsonWriter::append_quoted(std::string& out, std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain_from = 0;  // runs of bytes that need no escape are appended at once
  std::size_t i = 0;
  while (i < value.size()) {
    if (i + 8 <= value.size()) {
      std::uint64_t word;
      std::memcpy(&word, value.data() + i, 8);
      if (!word_needs_escape(word)) {
        i += 8;
        continue;
      }
    }
    auto c = static_cast<unsigned char>(value[i]);
    ++i;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + plain_from, i - 1 - plain_from);
    plain_from = i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
    }
  }
  out.append(value.data() + plain_from, value.size() - plain_from);
  out += '"';
}

}  // namespace cs
