#include "cs/event_types.h"

#include "cs/assert.h"

namespace cs {
namespace {

struct TypeInfo {
  EventType type;
  std::string_view name;
  Category category;
};

constexpr std::array<TypeInfo, event_type_count> type_infos = {{
    {EventType::customer_created, "customer.created", Category::customer},
    {EventType::customer_updated, "customer.updated", Category::customer},
    {EventType::customer_validated, "customer.validated", Category::customer},
    {EventType::customer_suspended, "customer.suspended", Category::customer},
    {EventType::customer_reactivated, "customer.reactivated", Category::customer},
    {EventType::customer_deleted, "customer.deleted", Category::customer},
    {EventType::user_created, "user.created", Category::user},
    {EventType::user_updated, "user.updated", Category::user},
    {EventType::user_deleted, "user.deleted", Category::user},
    {EventType::user_password_reset, "user.password.reset", Category::user},
    {EventType::subscription_created, "subscription.created", Category::subscription},
    {EventType::subscription_updated, "subscription.updated", Category::subscription},
    {EventType::subscription_renewed, "subscription.renewed", Category::subscription},
    {EventType::subscription_cancelled, "subscription.cancelled", Category::subscription},
    {EventType::subscription_expired, "subscription.expired", Category::subscription},
    {EventType::token_purchased, "token.purchased", Category::token},
    {EventType::token_used, "token.used", Category::token},
    {EventType::token_allocated, "token.allocated", Category::token},
    {EventType::customer_erased, "customer.erased", Category::customer},
}};

const TypeInfo& info(EventType type) {
  auto index = static_cast<std::size_t>(type) - 1;
  CS_ASSERT(index < type_infos.size(), "event type code out of range");
  return type_infos[index];
}

}  // namespace

std::string_view event_type_name(EventType type) { return info(type).name; }

std::optional<EventType> parse_event_type(std::string_view name) {
  for (const auto& t : type_infos) {
    if (t.name == name) return t.type;
  }
  return std::nullopt;
}

Category category_of(EventType type) { return info(type).category; }

std::string_view category_name(Category category) {
  switch (category) {
    case Category::customer: return "customer";
    case Category::user: return "user";
    case Category::subscription: return "subscription";
    case Category::token: return "token";
  }
  CS_UNREACHABLE("unknown category");
}

std::optional<Category> parse_category(std::string_view text) {
  if (text.ends_with(".*")) text.remove_suffix(2);
  for (Category c : {Category::customer, Category::user, Category::subscription, Category::token}) {
    if (category_name(c) == text) return c;
  }
  return std::nullopt;
}

std::string_view stream_prefix(Category category) {
  switch (category) {
    case Category::customer: return "customer-";
    case Category::user: return "user-";
    case Category::subscription: return "subscription-";
    case Category::token: return "tokens-";
  }
  CS_UNREACHABLE("unknown category");
}

}  // namespace cs
