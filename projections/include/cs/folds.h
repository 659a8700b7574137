// The four read models' folds, one event at a time, and a customer's whole
// view folded in memory. The projections fold with these very functions, so
// a view folded here from a customer's events equals what the projections
// store for the same events, field for field.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/event.h"
#include "cs/read_models.h"

namespace cs {

// Each folds one event of its category into the state (a default state for
// an entity not seen created, so any history folds deterministically).
void fold_customer(CustomerState& state, const RecordedEvent& event);
// A user or subscription keeps the customer of its first folded event.
void fold_user(UserState& state, const RecordedEvent& event);
void fold_subscription(SubscriptionState& state, const RecordedEvent& event);
void fold_token_account(TokenAccount& state, const RecordedEvent& event);

// Everything the read models say about one customer.
struct CustomerView {
  std::optional<CustomerState> customer;          // nullopt: no customer event folded
  std::optional<TokenAccount> tokens;             // nullopt: no token event folded
  std::vector<SubscriptionState> subscriptions;   // in subscription id order
  std::vector<UserState> users;                   // in user id order
};

// {"customer": …|null, "tokens": …|null, "subscriptions": […], "users": […]}
nlohmann::ordered_json to_json(const CustomerView& view);
// Opens every personal value of the view with `log`'s keys (read_models.h).
Status open_personal(const EventLog& log, CustomerView& view);

// Folds one customer's events (its customer and token streams, the user and
// subscription streams it owns) into its view. Each entity folds only its own
// stream, so streams may come one after the other: each in log order is
// enough. Memory: one state per entity. Not thread-safe.
class CustomerViewBuilder {
 public:
  void apply(const RecordedEvent& event);
  CustomerView finish() &&;

 private:
  CustomerView view_;
  std::map<Uuid, UserState> users_;  // id order, as the projections list them
  std::map<Uuid, SubscriptionState> subscriptions_;
};

}  // namespace cs
