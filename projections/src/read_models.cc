#include "cs/read_models.h"

#include "cs/assert.h"

namespace cs {
namespace {
using ojson = nlohmann::ordered_json;
ojson optional_time(const std::optional<Timestamp>& t) { return t ? ojson(format_timestamp(*t)) : ojson(nullptr); }
}  // namespace

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
  j["name"] = s.name;
  j["email"] = s.email;
  j["status"] = std::string(status_name(s.status));
  j["validatedBy"] = s.validated_by ? ojson(s.validated_by->to_string()) : ojson(nullptr);
  j["validatedAt"] = optional_time(s.validated_at);
  j["suspensionReason"] = s.suspension_reason.empty() ? ojson(nullptr) : ojson(s.suspension_reason);
  j["lastUpdatedFields"] = s.last_updated_fields;
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
  j["version"] = s.version;
  return j;
}

ojson to_json(const UserState& s) {
  ojson j;
  j["userId"] = s.user_id.to_string();
  j["customerId"] = s.customer_id.to_string();
  j["email"] = s.email;
  j["role"] = s.role;
  j["status"] = std::string(status_name(s.status));
  j["passwordResets"] = s.password_resets;
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
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
  j["cancellationReason"] = s.cancellation_reason.empty() ? ojson(nullptr) : ojson(s.cancellation_reason);
  j["createdAt"] = format_timestamp(s.created_at);
  j["updatedAt"] = format_timestamp(s.updated_at);
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
