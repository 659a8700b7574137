// The 19 event types the customer-service emits, their wire names, categories
// and streams. Type codes are stored on disk: never renumber, only append.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cs {

enum class EventType : std::uint16_t {
  customer_created = 1,
  customer_updated = 2,
  customer_validated = 3,
  customer_suspended = 4,
  customer_reactivated = 5,
  customer_deleted = 6,
  user_created = 7,
  user_updated = 8,
  user_deleted = 9,
  user_password_reset = 10,
  subscription_created = 11,
  subscription_updated = 12,
  subscription_renewed = 13,
  subscription_cancelled = 14,
  subscription_expired = 15,
  token_purchased = 16,
  token_used = 17,
  token_allocated = 18,
  // The customer's data key was destroyed: its personal data is gone.
  customer_erased = 19,
};

enum class Category : std::uint8_t { customer = 1, user = 2, subscription = 3, token = 4 };

inline constexpr std::size_t event_type_count = 19;

inline constexpr std::array<EventType, event_type_count> all_event_types = {
    EventType::customer_created,      EventType::customer_updated,
    EventType::customer_validated,    EventType::customer_suspended,
    EventType::customer_reactivated,  EventType::customer_deleted,
    EventType::user_created,          EventType::user_updated,
    EventType::user_deleted,          EventType::user_password_reset,
    EventType::subscription_created,  EventType::subscription_updated,
    EventType::subscription_renewed,  EventType::subscription_cancelled,
    EventType::subscription_expired,  EventType::token_purchased,
    EventType::token_used,            EventType::token_allocated,
    EventType::customer_erased,
};

// "customer.created", ... as on the wire and in Kafka topic names.
std::string_view event_type_name(EventType type);
std::optional<EventType> parse_event_type(std::string_view name);

Category category_of(EventType type);
// "customer", "user", "subscription", "token".
std::string_view category_name(Category category);
// Accepts "token" and "token.*".
std::optional<Category> parse_category(std::string_view text);

// The stream name prefix of a category: streams are "<prefix>-<uuid>"
// ("customer-", "user-", "subscription-", "tokens-").
std::string_view stream_prefix(Category category);

}  // namespace cs
