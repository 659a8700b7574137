#include "cs/outbox.h"

#include <charconv>
#include <cstring>

namespace cs {
namespace {

constexpr char format_version = 1;
constexpr std::int64_t no_partition = -1;

void put_string(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  char len[4] = {char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  out.append(len, 4);
  out.append(s);
}

// Reads a length-prefixed string at `at`; false when the bytes end first.
bool get_string(std::string_view in, std::size_t& at, std::string& out) {
  if (in.size() - at < 4) return false;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(in[at + i]);
  at += 4;
  if (in.size() - at < n) return false;
  out.assign(in.substr(at, n));
  at += n;
  return true;
}

}  // namespace

std::string encode_outbox_record(const OutboxRecord& r) {
  CS_ASSERT(r.headers.size() <= outbox_headers_max, "outbox headers are bounded");
  std::string out(1, format_version);
  put_string(out, r.topic);
  put_string(out, r.key);
  put_string(out, r.value);
  put_string(out, std::to_string(r.partition ? *r.partition : no_partition));
  out.push_back(static_cast<char>(r.headers.size()));
  for (const auto& [name, value] : r.headers) {
    put_string(out, name);
    put_string(out, value);
  }
  return out;
}

Result<OutboxRecord> decode_outbox_record(std::string_view in) {
  if (in.empty() || in[0] != format_version) {
    return corruption_error("outbox record: unknown format " + (in.empty() ? std::string("(empty)")
                                                                          : std::to_string(int(in[0]))));
  }
  OutboxRecord r;
  std::size_t at = 1;
  std::string partition;
  if (!get_string(in, at, r.topic) || !get_string(in, at, r.key) || !get_string(in, at, r.value) ||
      !get_string(in, at, partition) || at >= in.size()) {
    return corruption_error("outbox record: truncated");
  }
  std::int64_t p = 0;
  auto [end, ec] = std::from_chars(partition.data(), partition.data() + partition.size(), p);
  if (ec != std::errc() || end != partition.data() + partition.size() || p < no_partition || p > INT32_MAX) {
    return corruption_error("outbox record: partition '" + partition.substr(0, 20) + "'");
  }
  if (p != no_partition) r.partition = static_cast<std::int32_t>(p);
  const std::size_t headers = static_cast<unsigned char>(in[at++]);
  if (headers > outbox_headers_max) return corruption_error("outbox record: " + std::to_string(headers) + " headers");
  for (std::size_t i = 0; i < headers; ++i) {
    std::string name, value;
    if (!get_string(in, at, name) || !get_string(in, at, value)) return corruption_error("outbox record: truncated");
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  if (at != in.size()) return corruption_error("outbox record: trailing bytes");
  if (r.topic.empty()) return corruption_error("outbox record: no topic");
  return r;
}

SideWrite outbox_write(const OutboxRecord& record) {
  // Sealed at rest: a data response holds a customer's name, a dead letter a refused request's bytes.
  return SideWrite{.family = outbox_family, .value = encode_outbox_record(record), .sequenced = true, .seal = true};
}

std::string encode_remembered_answer(std::string_view source_service, const OutboxRecord& answer) {
  const std::size_t n = std::min<std::size_t>(source_service.size(), 255);  // service names are short
  std::string out(1, static_cast<char>(n));
  out.append(source_service.substr(0, n));
  out += encode_outbox_record(answer);
  return out;
}

Result<RememberedAnswer> decode_remembered_answer(std::string_view bytes) {
  if (bytes.empty() || bytes.size() < 1u + static_cast<unsigned char>(bytes[0])) {
    return corruption_error("request_answers: truncated entry");
  }
  const std::size_t n = static_cast<unsigned char>(bytes[0]);
  auto answer = decode_outbox_record(bytes.substr(1 + n));
  if (!answer.ok()) return corruption_error("request_answers: " + answer.error().message());
  return RememberedAnswer{std::string(bytes.substr(1, n)), std::move(*answer)};
}

}  // namespace cs
