// Key encodings of the log's column families (docs/storage.md draws them).
// Integers are big-endian so that RocksDB's bytewise order is numeric order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cs/event_types.h"
#include "cs/ids.h"

namespace cs::keys {

inline void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

inline std::uint64_t get_u64(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(in[i]);
  return v;
}

// events: seq (8)
inline std::string seq_key(Sequence seq) {
  std::string k;
  put_u64(k, seq.value);
  return k;
}

// stream_index: stream bytes, 0x00, version (8)  ->  seq (8)
// Stream names never contain 0x00, so one stream's keys are contiguous.
inline std::string stream_prefix_key(std::string_view stream) {
  std::string k(stream);
  k.push_back('\0');
  return k;
}
inline std::string stream_index_key(std::string_view stream, StreamVersion version) {
  std::string k = stream_prefix_key(stream);
  put_u64(k, version.value);
  return k;
}

// type_index: type code (2), seq (8)  ->  empty
inline std::string type_prefix_key(EventType type) {
  auto code = static_cast<std::uint16_t>(type);
  return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}
inline std::string type_index_key(EventType type, Sequence seq) {
  std::string k = type_prefix_key(type);
  put_u64(k, seq.value);
  return k;
}

// meta (default column family)
inline constexpr std::string_view meta_log_format = "log_format";
inline constexpr std::string_view meta_stream_count = "stream_count";
inline constexpr std::uint64_t log_format_version = 1;

}  // namespace cs::keys
