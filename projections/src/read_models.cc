#include "cs/read_models.h"

#include "cs/assert.h"
#include "cs/event_log.h"

namespace cs {
namespace {
using ojson = nlohmann::ordered_json;
ojson optional_time(const std::optional<Timestamp>& t) { return t ? ojson(format_timestamp(*t)) : ojson(nullptr); }
ojson personal(const PersonalText& t, bool erased) {
  return erased || t.sealed() ? ojson(nullptr) : ojson(t.value);
}
// A free text that may be absent: null when empty.
ojson optional_personal(const PersonalText& t, bool erased) {
  return t.value.empty() ? ojson(nullptr) : personal(t, erased);
}

// Opens each value; `erased` set when the customer is.
Status open_all(const EventLog& log, const Uuid& customer, bool& erased, std::initializer_list<PersonalText*> texts) {
  for (PersonalText* text : texts) {
    // A value from `changes` was sealed as its JSON text ("\"a@b.c\"").
    const bool json_text = text->sealed() && text->field.starts_with("changes.");
    auto gone = log.open_personal(customer, *text);
    if (!gone.ok()) return gone.error();
    erased = erased || *gone;
    if (json_text && !*gone) {
      auto v = nlohmann::json::parse(text->value, nullptr, false);
      if (v.is_string()) text->value = v.get<std::string>();
    }
  }
  if (erased) {
    for (PersonalText* text : texts) *text = PersonalText{};
  }
  return {};
}
}  // namespace

Status open_personal(const EventLog& log, CustomerState& s) {
  return open_all(log, s.customer_id, s.erased, {&s.name, &s.email, &s.suspension_reason});
}
Status open_personal(const EventLog& log, UserState& s) { return open_all(log, s.customer_id, s.erased, {&s.email}); }
Status open_personal(const EventLog& log, SubscriptionState& s) {
  return open_all(log, s.customer_id, s.erased, {&s.cancellation_reason});
}

std::string_view status_name(CustomerStatus s) {
  switch (s) {
    case CustomerStatus::pending: return "pending";
    case CustomerStatus::validated: return "validated";
    case CustomerStatus::suspended: return "suspended";
    case CustomerStatus::deleted: return "deleted";
  }
  CS_UNREACHABLE("customer status");
}

std::string_view status_name(UserStatus s) { return s == UserStatus::active ? "active" : "deleted"; }

std::string_view status_name(SubscriptionStatus s) {
  switch (s) {
    case SubscriptionStatus::active: return "active";
    case SubscriptionStatus::cancelled: return "cancelled";
    case SubscriptionStatus::expired: return "expired";
  }
  CS_UNREACHABLE("subscription status");
}

std::optional<CustomerStatus> parse_customer_status(std::string_view text) {
  for (auto s : {CustomerStatus::pending, CustomerStatus::validated, CustomerStatus::suspended, CustomerStatus::deleted}) {
    if (status_name(s) == text) return s;
  }
  return std::nullopt;
}

std::optional<CustomerType> parse_customer_type(std::string_view text) {
  if (text == "sme") return CustomerType::sme;
  if (text == "institution") return CustomerType::institution;
  return std::nullopt;
}

ojson to_json(const CustomerState& s) {
  ojson j;
  j["customerId"] = s.customer_id.to_string();
  j["customerType"] = std::string(customer_type_name(s.customer_type));
  j["name"] = personal(s.name, s.erased);
  j["email"] = personal(s.email, s.erased);
  j["status"] = std::string(status_name(s.status));
  j["validatedBy"] = s.validated_by ? ojson(s.validated_by->to_string()) : ojson(nullptr);
  j["validatedAt"] = optional_time(s.validated_at);
  j["suspensionReason"] = optional_personal(s.suspension_reason, s.erased);
  j["lastUpdatedFields"] = s.last_updated_fields;
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
  j["version"] = s.version;
  j["erased"] = s.erased;
  return j;
}

ojson to_json(const UserState& s) {
  ojson j;
  j["userId"] = s.user_id.to_string();
  j["customerId"] = s.customer_id.to_string();
  j["email"] = personal(s.email, s.erased);
  j["role"] = s.role;
  j["status"] = std::string(status_name(s.status));
  j["passwordResets"] = s.password_resets;
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
  j["erased"] = s.erased;
  return j;
}

ojson to_json(const SubscriptionState& s) {
  ojson j;
  j["subscriptionId"] = s.subscription_id.to_string();
  j["customerId"] = s.customer_id.to_string();
  j["planId"] = s.plan_id;
  j["status"] = std::string(status_name(s.status));
  j["periodEnd"] = format_timestamp(s.period_end);
  j["renewals"] = s.renewals;
  j["cancellationReason"] = optional_personal(s.cancellation_reason, s.erased);
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
  j["erased"] = s.erased;
  return j;
}

ojson to_json(const TokenAccount& s) {
  ojson j;
  j["customerId"] = s.customer_id.to_string();
  j["purchased"] = s.purchased;
  j["allocated"] = s.allocated;
  j["used"] = s.used;
  j["balance"] = s.balance;
  j["lastActivityAt"] = optional_time(s.last_activity_at);
  return j;
}

}  // namespace cs
