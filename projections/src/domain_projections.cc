// The four read models as folds. Each handles only its own category; events
// for an entity it has not seen created start from a default state, so any
// history folds deterministically.
#include <nlohmann/json.hpp>

#include "cs/json_codec.h"
#include "cs/projection.h"
#include "cs/read_models.h"

namespace cs {

Result<std::optional<std::string>> StateReader::get(std::string_view key) const {
  std::string value;
  auto s = db_.Get({}, family_, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return fatal_error("projection read: " + s.ToString());
  return std::optional<std::string>(std::move(value));
}

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

class CustomersProjection final : public EntityProjection<CustomerState> {
 public:
  std::string_view name() const override { return "customers"; }
  std::uint32_t version() const override { return 1; }
  bool handles(EventType t) const override { return category_of(t) == Category::customer; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<CustomersProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override { return payload_customer_id(e.payload); }

  void fold(CustomerState& s, const RecordedEvent& e) const override {
    s.customer_id = payload_customer_id(e.payload);
    s.updated_at = e.timestamp;
    s.version = e.version.value;
    std::visit(
        [&](const auto& p) {
          using P = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<P, CustomerCreated>) {
            s.customer_type = p.customer_type;
            s.name = p.name;
            s.email = p.email;
            s.status = CustomerStatus::pending;
            s.created_at = e.timestamp;
          } else if constexpr (std::is_same_v<P, CustomerUpdated>) {
            if (auto v = changed_string(p.changes, "name")) s.name = *v;
            if (auto v = changed_string(p.changes, "email")) s.email = *v;
            s.last_updated_fields = p.updated_fields;
          } else if constexpr (std::is_same_v<P, CustomerValidated>) {
            s.status = CustomerStatus::validated;
            s.validated_by = p.admin_id;
            s.validated_at = e.timestamp;
          } else if constexpr (std::is_same_v<P, CustomerSuspended>) {
            s.status = CustomerStatus::suspended;
            s.suspension_reason = p.reason;
          } else if constexpr (std::is_same_v<P, CustomerReactivated>) {
            s.status = CustomerStatus::validated;
            s.suspension_reason.clear();
          } else if constexpr (std::is_same_v<P, CustomerDeleted>) {
            s.status = CustomerStatus::deleted;
          }
        },
        e.payload);
  }
};

class UsersProjection final : public EntityProjection<UserState> {
 public:
  std::string_view name() const override { return "users"; }
  std::uint32_t version() const override { return 1; }
  bool handles(EventType t) const override { return category_of(t) == Category::user; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<UsersProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override {
    return std::visit([](const auto& p) -> const Uuid& { return p.stream_key(); }, e.payload);
  }
  std::optional<Uuid> owner_of(const UserState& s) const override { return s.customer_id; }

  void fold(UserState& s, const RecordedEvent& e) const override {
    s.user_id = entity_of(e);
    // A user belongs to the customer of its first event for life: the owner
    // index is a function of the log, whatever a later event claims.
    if (s.customer_id.is_nil()) s.customer_id = payload_customer_id(e.payload);
    s.updated_at = e.timestamp;
    std::visit(
        [&](const auto& p) {
          using P = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<P, UserCreated>) {
            s.email = p.email;
            s.role = p.role;
            s.status = UserStatus::active;
            s.created_at = e.timestamp;
          } else if constexpr (std::is_same_v<P, UserUpdated>) {
            if (auto v = changed_string(p.changes, "email")) s.email = *v;
            if (auto v = changed_string(p.changes, "role")) s.role = *v;
          } else if constexpr (std::is_same_v<P, UserDeleted>) {
            s.status = UserStatus::deleted;
          } else if constexpr (std::is_same_v<P, UserPasswordReset>) {
            ++s.password_resets;
          }
        },
        e.payload);
  }
};

class SubscriptionsProjection final : public EntityProjection<SubscriptionState> {
 public:
  std::string_view name() const override { return "subscriptions"; }
  std::uint32_t version() const override { return 1; }
  bool handles(EventType t) const override { return category_of(t) == Category::subscription; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<SubscriptionsProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override {
    return std::visit([](const auto& p) -> const Uuid& { return p.stream_key(); }, e.payload);
  }
  std::optional<Uuid> owner_of(const SubscriptionState& s) const override { return s.customer_id; }

  void fold(SubscriptionState& s, const RecordedEvent& e) const override {
    s.subscription_id = entity_of(e);
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
            s.cancellation_reason = p.reason;
          } else if constexpr (std::is_same_v<P, SubscriptionExpired>) {
            s.status = SubscriptionStatus::expired;
          }
        },
        e.payload);
  }
};

class TokensProjection final : public EntityProjection<TokenAccount> {
 public:
  std::string_view name() const override { return "tokens"; }
  std::uint32_t version() const override { return 1; }
  bool handles(EventType t) const override { return category_of(t) == Category::token; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<TokensProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override { return payload_customer_id(e.payload); }

  void fold(TokenAccount& s, const RecordedEvent& e) const override {
    s.customer_id = payload_customer_id(e.payload);
    s.last_activity_at = e.timestamp;
    if (const auto* p = std::get_if<TokenPurchased>(&e.payload)) s.purchased += p->amount;
    if (const auto* p = std::get_if<TokenAllocated>(&e.payload)) s.allocated += p->amount;
    if (const auto* p = std::get_if<TokenUsed>(&e.payload)) s.used += p->amount;
    s.balance = s.purchased + s.allocated - s.used;
  }
};

}  // namespace

std::vector<std::unique_ptr<Projection>> make_domain_projections() {
  std::vector<std::unique_ptr<Projection>> out;
  out.push_back(std::make_unique<CustomersProjection>());
  out.push_back(std::make_unique<UsersProjection>());
  out.push_back(std::make_unique<SubscriptionsProjection>());
  out.push_back(std::make_unique<TokensProjection>());
  return out;
}

}  // namespace cs
