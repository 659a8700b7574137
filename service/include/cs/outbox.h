// The outbox: Kafka records the daemon owes (answers, data responses,
// dead letters), stored in the log's database in the same batch as what
// caused them, then published by the distributor's transactions. Stored
// first, sent exactly once.
//
// The family is sequenced (EventLog's `sequenced` side writes): record n is
// at key n, taken in commit order, so the distributor follows it with one
// checkpoint (`"<event seq>/<outbox seq>"`) and never skips a late commit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cs/error.h"
#include "cs/event_log.h"

namespace cs {

inline constexpr const char* outbox_family = "outbox";
// The answers' topics (design.md).
inline constexpr const char* request_result_topic = "customer.request.result";
inline constexpr const char* data_response_topic = "customer.data.response";
inline constexpr const char* dead_letter_topic = "customer-service.dlq";
// Headers on one outbox record, at most.
inline constexpr std::size_t outbox_headers_max = 16;

struct OutboxRecord {
  std::string topic;
  std::string key;  // empty: no key
  std::string value;
  std::optional<std::int32_t> partition;  // nullopt: by the key
  std::vector<std::pair<std::string, std::string>> headers;
  bool operator==(const OutboxRecord&) const = default;
};

// The stored form: a version byte, then length-prefixed fields.
std::string encode_outbox_record(const OutboxRecord& record);
// corruption naming what is wrong when `bytes` is not an encoded record.
Result<OutboxRecord> decode_outbox_record(std::string_view bytes);

// A side write appending `record` to the outbox (value made when stored).
SideWrite outbox_write(const OutboxRecord& record);

// The first answer to a requestId (family request_answers, key the
// requestId's 16 bytes): who asked, and the answer record, so that a retry
// is answered the same and another service's reuse is refused.
inline constexpr const char* request_answers_family = "request_answers";
struct RememberedAnswer {
  std::string source_service;
  OutboxRecord answer;
};
std::string encode_remembered_answer(std::string_view source_service, const OutboxRecord& answer);
Result<RememberedAnswer> decode_remembered_answer(std::string_view bytes);

}  // namespace cs
