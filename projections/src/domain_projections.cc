// The four read models as projections: each handles only its own category
// and folds with cs/folds.h.
#include "cs/folds.h"
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

class CustomersProjection final : public EntityProjection<CustomerState> {
 public:
  std::string_view name() const override { return "customers"; }
  // 2: personal values kept sealed (PersonalText), customer.erased.
  std::uint32_t version() const override { return 2; }
  bool handles(EventType t) const override { return category_of(t) == Category::customer; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<CustomersProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override { return payload_customer_id(e.payload); }

  void fold(CustomerState& s, const RecordedEvent& e) const override { fold_customer(s, e); }
};

class UsersProjection final : public EntityProjection<UserState> {
 public:
  std::string_view name() const override { return "users"; }
  std::uint32_t version() const override { return 2; }  // 2: the e-mail kept sealed
  bool handles(EventType t) const override { return category_of(t) == Category::user; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<UsersProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override {
    return std::visit([](const auto& p) -> const Uuid& { return p.stream_key(); }, e.payload);
  }
  std::optional<Uuid> owner_of(const UserState& s) const override { return s.customer_id; }

  void fold(UserState& s, const RecordedEvent& e) const override { fold_user(s, e); }
};

class SubscriptionsProjection final : public EntityProjection<SubscriptionState> {
 public:
  std::string_view name() const override { return "subscriptions"; }
  std::uint32_t version() const override { return 2; }  // 2: the cancellation reason kept sealed
  bool handles(EventType t) const override { return category_of(t) == Category::subscription; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<SubscriptionsProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override {
    return std::visit([](const auto& p) -> const Uuid& { return p.stream_key(); }, e.payload);
  }
  std::optional<Uuid> owner_of(const SubscriptionState& s) const override { return s.customer_id; }

  void fold(SubscriptionState& s, const RecordedEvent& e) const override { fold_subscription(s, e); }
};

class TokensProjection final : public EntityProjection<TokenAccount> {
 public:
  std::string_view name() const override { return "tokens"; }
  std::uint32_t version() const override { return 1; }
  bool handles(EventType t) const override { return category_of(t) == Category::token; }
  std::unique_ptr<Projection> clone_empty() const override { return std::make_unique<TokensProjection>(); }

 protected:
  const Uuid& entity_of(const RecordedEvent& e) const override { return payload_customer_id(e.payload); }

  void fold(TokenAccount& s, const RecordedEvent& e) const override { fold_token_account(s, e); }
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
