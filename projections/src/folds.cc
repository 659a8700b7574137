#include "cs/folds.h"

#include "cs/json_codec.h"

namespace cs {
namespace {

// A value from `changes` (JSON text) when it is a string.
std::optional<std::string> changed_string(const Changes& changes, const std::string& field) {
  auto it = changes.find(field);
  if (it == changes.end()) return std::nullopt;
  if (!check_json_depth(it->second).ok()) return std::nullopt;
  auto v = nlohmann::json::parse(it->second, nullptr, false);
  if (!v.is_string()) return std::nullopt;
  return v.get<std::string>();
}

std::optional<Timestamp> changed_time(const Changes& changes, const std::string& field) {
  auto text = changed_string(changes, field);
  return text ? parse_timestamp(*text) : std::nullopt;
}

// A personal value as the event holds it: sealed bytes with what opens them,
// or plaintext.
PersonalText personal(const RecordedEvent& e, std::string_view path, const std::string& value) {
  if (e.sealed) return PersonalText{value, e.id, std::string(path)};
  return PersonalText{value, Uuid(), {}};
}

// A string in `changes`: sealed as is, or JSON text to parse.
std::optional<PersonalText> changed_personal(const RecordedEvent& e, const Changes& changes, const std::string& field) {
  if (e.sealed) {
    auto it = changes.find(field);
    if (it == changes.end()) return std::nullopt;
    return PersonalText{it->second, e.id, "changes." + field};
  }
  auto text = changed_string(changes, field);
  if (!text) return std::nullopt;
  return PersonalText{std::move(*text), Uuid(), {}};
}

const Uuid& stream_entity(const RecordedEvent& e) {
  return std::visit([](const auto& p) -> const Uuid& { return p.stream_key(); }, e.payload);
}

}  // namespace

void fold_customer(CustomerState& s, const RecordedEvent& e) {
  s.customer_id = payload_customer_id(e.payload);
  s.updated_at = e.timestamp;
  s.version = e.version.value;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, CustomerCreated>) {
          s.customer_type = p.customer_type;
          s.name = personal(e, "name", p.name);
          s.email = personal(e, "email", p.email);
          s.status = CustomerStatus::pending;
          s.created_at = e.timestamp;
        } else if constexpr (std::is_same_v<P, CustomerUpdated>) {
          if (auto v = changed_personal(e, p.changes, "name")) s.name = std::move(*v);
          if (auto v = changed_personal(e, p.changes, "email")) s.email = std::move(*v);
          s.last_updated_fields = p.updated_fields;
        } else if constexpr (std::is_same_v<P, CustomerValidated>) {
          s.status = CustomerStatus::validated;
          s.validated_by = p.admin_id;
          s.validated_at = e.timestamp;
        } else if constexpr (std::is_same_v<P, CustomerSuspended>) {
          s.status = CustomerStatus::suspended;
          s.suspension_reason = personal(e, "reason", p.reason);
        } else if constexpr (std::is_same_v<P, CustomerReactivated>) {
          s.status = CustomerStatus::validated;
          s.suspension_reason = PersonalText{};
        } else if constexpr (std::is_same_v<P, CustomerDeleted>) {
          s.status = CustomerStatus::deleted;
        } else if constexpr (std::is_same_v<P, CustomerErased>) {
          // The key is gone: what is left of the values is noise.
          s.erased = true;
          s.name = s.email = s.suspension_reason = PersonalText{};
        }
      },
      e.payload);
}

void fold_user(UserState& s, const RecordedEvent& e) {
  s.user_id = stream_entity(e);
  // A user belongs to the customer of its first event for life: the owner
  // index is a function of the log, whatever a later event claims.
  if (s.customer_id.is_nil()) s.customer_id = payload_customer_id(e.payload);
  s.updated_at = e.timestamp;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, UserCreated>) {
          s.email = personal(e, "email", p.email);
          s.role = p.role;
          s.status = UserStatus::active;
          s.created_at = e.timestamp;
        } else if constexpr (std::is_same_v<P, UserUpdated>) {
          if (auto v = changed_personal(e, p.changes, "email")) s.email = std::move(*v);
          if (auto v = changed_string(p.changes, "role")) s.role = *v;
        } else if constexpr (std::is_same_v<P, UserDeleted>) {
          s.status = UserStatus::deleted;
        } else if constexpr (std::is_same_v<P, UserPasswordReset>) {
          ++s.password_resets;
        }
      },
      e.payload);
}

void fold_subscription(SubscriptionState& s, const RecordedEvent& e) {
  s.subscription_id = stream_entity(e);
  if (s.customer_id.is_nil()) s.customer_id = payload_customer_id(e.payload);  // owner for life, as users
  s.updated_at = e.timestamp;
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, SubscriptionCreated>) {
          s.plan_id = p.plan_id;
          s.period_end = p.period_end;
          s.status = SubscriptionStatus::active;
          s.created_at = e.timestamp;
        } else if constexpr (std::is_same_v<P, SubscriptionUpdated>) {
          if (auto v = changed_string(p.changes, "planId")) s.plan_id = *v;
          if (auto v = changed_time(p.changes, "periodEnd")) s.period_end = *v;
        } else if constexpr (std::is_same_v<P, SubscriptionRenewed>) {
          s.period_end = p.period_end;
          s.status = SubscriptionStatus::active;
          ++s.renewals;
        } else if constexpr (std::is_same_v<P, SubscriptionCancelled>) {
          s.status = SubscriptionStatus::cancelled;
          s.cancellation_reason = personal(e, "reason", p.reason);
        } else if constexpr (std::is_same_v<P, SubscriptionExpired>) {
          s.status = SubscriptionStatus::expired;
        }
      },
      e.payload);
}

void fold_token_account(TokenAccount& s, const RecordedEvent& e) {
  s.customer_id = payload_customer_id(e.payload);
  s.last_activity_at = e.timestamp;
  if (const auto* p = std::get_if<TokenPurchased>(&e.payload)) s.purchased += p->amount;
  if (const auto* p = std::get_if<TokenAllocated>(&e.payload)) s.allocated += p->amount;
  if (const auto* p = std::get_if<TokenUsed>(&e.payload)) s.used += p->amount;
  s.balance = s.purchased + s.allocated - s.used;
}

nlohmann::ordered_json to_json(const CustomerView& view) {
  nlohmann::ordered_json out;
  out["customer"] = view.customer ? to_json(*view.customer) : nlohmann::ordered_json(nullptr);
  out["tokens"] = view.tokens ? to_json(*view.tokens) : nlohmann::ordered_json(nullptr);
  out["subscriptions"] = nlohmann::ordered_json::array();
  for (const auto& s : view.subscriptions) out["subscriptions"].push_back(to_json(s));
  out["users"] = nlohmann::ordered_json::array();
  for (const auto& u : view.users) out["users"].push_back(to_json(u));
  return out;
}

void CustomerViewBuilder::apply(const RecordedEvent& e) {
  switch (category_of(e.type())) {
    case Category::customer:
      fold_customer(view_.customer ? *view_.customer : view_.customer.emplace(), e);
      break;
    case Category::token:
      fold_token_account(view_.tokens ? *view_.tokens : view_.tokens.emplace(), e);
      break;
    case Category::user:
      fold_user(users_[stream_entity(e)], e);
      break;
    case Category::subscription:
      fold_subscription(subscriptions_[stream_entity(e)], e);
      break;
  }
}

Status open_personal(const EventLog& log, CustomerView& view) {
  if (view.customer) {
    if (auto s = open_personal(log, *view.customer); !s.ok()) return s;
  }
  for (auto& u : view.users) {
    if (auto s = open_personal(log, u); !s.ok()) return s;
  }
  for (auto& s : view.subscriptions) {
    if (auto st = open_personal(log, s); !st.ok()) return st;
  }
  return {};
}

CustomerView CustomerViewBuilder::finish() && {
  for (auto& [id, u] : users_) view_.users.push_back(std::move(u));
  for (auto& [id, s] : subscriptions_) view_.subscriptions.push_back(std::move(s));
  return std::move(view_);
}

}  // namespace cs
