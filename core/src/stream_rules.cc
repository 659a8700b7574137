#include "stream_rules.h"

#include "cs/limits.h"

namespace cs {
namespace {

bool opens_stream(EventType type) {
  return type == EventType::customer_created || type == EventType::user_created ||
         type == EventType::subscription_created;
}

// Credits and uses of a token event, 0 for every other event.
void token_amounts(const Payload& payload, std::int64_t& credit, std::int64_t& use) {
  credit = 0;
  use = 0;
  if (const auto* p = std::get_if<TokenPurchased>(&payload)) credit = p->amount;
  if (const auto* p = std::get_if<TokenAllocated>(&payload)) credit = p->amount;
  if (const auto* p = std::get_if<TokenUsed>(&payload)) use = p->amount;
}

Status check_total(const StreamKey& stream, const char* what, std::int64_t before, std::int64_t amount) {
  std::int64_t after = 0;
  if (__builtin_add_overflow(before, amount, &after) || after > limits::token_total_max) {
    return invalid_argument(stream.name() + ": tokens " + what + " are " + std::to_string(before) +
                            "; adding " + std::to_string(amount) + " would pass the limit of " +
                            std::to_string(limits::token_total_max) + " per account");
  }
  return {};
}

}  // namespace

Status check_stream_rules(const StreamFacts& facts, const StreamKey& stream, const Payload& payload) {
  EventType type = payload_type(payload);
  if (opens_stream(type) && facts.version != 0) {
    return conflict_error("stream " + stream.name() + " already exists (version " +
                          std::to_string(facts.version) + "): " + std::string(event_type_name(type)) +
                          " opens a stream");
  }
  if (facts.version != 0 && (stream.category == Category::user || stream.category == Category::subscription) &&
      payload_customer_id(payload) != facts.owner) {
    return conflict_error(stream.name() + " belongs to customer " + facts.owner.to_string() +
                          " for life, the event names customer " + payload_customer_id(payload).to_string());
  }
  std::int64_t credit = 0, use = 0;
  token_amounts(payload, credit, use);
  if (auto s = check_total(stream, "credited (purchased + allocated)", facts.credited, credit); !s.ok()) {
    return s;
  }
  return check_total(stream, "used", facts.used, use);
}

Status advance_stream_facts(StreamFacts& facts, const Payload& payload) {
  std::int64_t credit = 0, use = 0;
  token_amounts(payload, credit, use);
  std::int64_t credited = 0, used = 0;
  if (__builtin_add_overflow(facts.credited, credit, &credited) || credited > limits::token_total_max ||
      __builtin_add_overflow(facts.used, use, &used) || used > limits::token_total_max) {
    return invalid_argument("tokens of customer " + payload_customer_id(payload).to_string() +
                            " pass the limit of " + std::to_string(limits::token_total_max) + " per account");
  }
  if (facts.version == 0) facts.owner = payload_customer_id(payload);
  ++facts.version;
  facts.credited = credited;
  facts.used = used;
  return {};
}

}  // namespace cs
