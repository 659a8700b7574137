// Key encodings of the log's column families (docs/storage.md draws them).
// Integers in keys are big-endian so that RocksDB's bytewise order is numeric
// order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cs/event_types.h"
#include "cs/ids.h"
#include "cs/uuid.h"

namespace cs::keys {

inline void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

inline std::uint64_t get_u64(std::string_view in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(in[i]);
  return v;
}

// A sequence as 8 big-endian bytes (the id index's values, the tail of an
// event's key).
inline std::string seq_key(Sequence seq) {
  std::string k;
  put_u64(k, seq.value);
  return k;
}

// events: category (1) ‖ seq (8). One category's events are contiguous, in
// log order, so that reading a category (or a type or stream in it) reads
// only its own blocks; the log's order is the merge of the four runs by seq.
inline constexpr std::size_t event_key_bytes = 9;
inline constexpr std::array<Category, 4> all_categories = {Category::customer, Category::user,
                                                          Category::subscription, Category::token};
inline void write_event_key(Category category, Sequence seq, char (&out)[event_key_bytes]) {
  out[0] = static_cast<char>(category);
  for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>(seq.value >> (56 - 8 * i));
}
inline void put_event_key(std::string& out, Category category, Sequence seq) {
  char key[event_key_bytes];
  write_event_key(category, seq, key);
  out.append(key, event_key_bytes);
}
inline std::string event_key(Category category, Sequence seq) {
  std::string k;
  k.reserve(event_key_bytes);
  put_event_key(k, category, seq);
  return k;
}
// The category byte of an event key, and where the category's run begins and
// ends (exclusive).
inline std::string category_begin_key(Category category) { return std::string(1, static_cast<char>(category)); }
inline std::string category_end_key(Category category) {
  return std::string(1, static_cast<char>(static_cast<std::uint8_t>(category) + 1));
}
// An event key's seq; nullopt when the bytes are not an event key of a category.
inline std::optional<std::uint64_t> event_key_seq(std::string_view key, Category category) {
  if (key.size() != event_key_bytes || static_cast<std::uint8_t>(key[0]) != static_cast<std::uint8_t>(category)) {
    return std::nullopt;
  }
  return get_u64(key.substr(1));
}
// Keys of the first layout (format 1): 8-byte seqs, which all sort before
// the first category's byte.
inline constexpr std::size_t format1_event_key_bytes = 8;

// Index keys end with the first position (8) of a block of positions that one
// group commit wrote:
//   stream_index: stream bytes, 0x00, first version  ->  block of seqs of
//                 versions first, first+1, …
//   type_index:   type code (2), first seq            ->  block of seqs of that type
// Stream names never contain 0x00, so one stream's keys are contiguous.
inline std::string stream_prefix_key(std::string_view stream) {
  std::string k(stream);
  k.push_back('\0');
  return k;
}
inline std::string type_prefix_key(EventType type) {
  auto code = static_cast<std::uint16_t>(type);
  return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}
inline std::string block_key(std::string prefix, std::uint64_t first_position) {
  put_u64(prefix, first_position);
  return prefix;
}

// A block: varint count, varint first seq, varint gaps to each next seq.
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline bool get_varint(std::string_view& in, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift <= 63 && !in.empty(); shift += 7) {
    auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

inline void append_block(std::span<const std::uint64_t> seqs, std::string& out) {
  put_varint(out, seqs.size());
  std::uint64_t previous = 0;
  for (auto s : seqs) {
    put_varint(out, s - previous);
    previous = s;
  }
}

inline std::string encode_block(std::span<const std::uint64_t> seqs) {
  std::string out;
  append_block(seqs, out);
  return out;
}

// Returns nullopt when the bytes are not a block of strictly growing seqs.
inline std::optional<std::vector<std::uint64_t>> decode_block(std::string_view in) {
  std::uint64_t count = 0;
  if (!get_varint(in, count) || count == 0 || count > in.size()) return std::nullopt;
  std::vector<std::uint64_t> seqs;
  seqs.reserve(count);
  std::uint64_t previous = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t gap = 0;
    if (!get_varint(in, gap) || (i > 0 && gap == 0)) return std::nullopt;
    previous += gap;
    seqs.push_back(previous);
  }
  if (!in.empty()) return std::nullopt;
  return seqs;
}

// customer_streams: customer id (16), category code (1), stream id (16) -> empty.
// One entry per user and subscription stream, written with its first event:
// a customer's streams are one prefix scan away.
inline constexpr std::size_t customer_stream_key_bytes = 33;
inline std::string customer_stream_key(const Uuid& customer, Category category, const Uuid& stream) {
  std::string k;
  k.reserve(customer_stream_key_bytes);
  k.append(reinterpret_cast<const char*>(customer.bytes().data()), 16);
  k.push_back(static_cast<char>(category));
  k.append(reinterpret_cast<const char*>(stream.bytes().data()), 16);
  return k;
}
// The categories whose streams belong to a customer through their first event
// (customer and token streams are named by the customer id itself).
inline bool owned_through_first_event(Category category) {
  return category == Category::user || category == Category::subscription;
}

// meta (default column family)
inline constexpr std::string_view meta_log_format = "log_format";
// Present (value 1) once customer_streams lists every stream: from the first
// event for a log created with it, after a one-time build for an older log.
inline constexpr std::string_view meta_customer_index = "customer_index";
// HMAC-SHA256 of a fixed text under the master key (cs/personal_data.h):
// present once the log seals personal data, so another key is refused.
inline constexpr std::string_view meta_master_key_check = "master_key_check";
inline constexpr std::string_view meta_stream_count = "stream_count";
// 2: events keyed by category and seq (1: by seq alone; a writable open
// rewrites such a log's events once, EventLog::open).
inline constexpr std::uint64_t log_format_version = 2;
inline constexpr std::uint64_t log_format_seq_keyed = 1;

}  // namespace cs::keys
