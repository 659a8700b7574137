// The four read models folded from the log, and their JSON form (what
// `csctl state` and the HTTP API return). All times are event timestamps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <nlohmann/json.hpp>

#include "cs/payloads.h"
#include "cs/personal_data.h"

namespace cs {

enum class CustomerStatus : std::uint8_t { pending = 1, validated = 2, suspended = 3, deleted = 4 };
enum class UserStatus : std::uint8_t { active = 1, deleted = 2 };
enum class SubscriptionStatus : std::uint8_t { active = 1, cancelled = 2, expired = 3 };

std::string_view status_name(CustomerStatus s);
std::string_view status_name(UserStatus s);
std::string_view status_name(SubscriptionStatus s);
std::optional<CustomerStatus> parse_customer_status(std::string_view text);
std::optional<CustomerType> parse_customer_type(std::string_view text);

// Personal values (PersonalText) are kept as the events stored them, sealed,
// and opened when a query reads them (open_personal below): the read models
// hold no plaintext a log sealed, and an erasure needs no rebuild.
struct CustomerState {
  Uuid customer_id;
  CustomerType customer_type = CustomerType::sme;
  PersonalText name;
  PersonalText email;
  CustomerStatus status = CustomerStatus::pending;
  std::optional<Uuid> validated_by;
  std::optional<Timestamp> validated_at;
  PersonalText suspension_reason;
  std::vector<std::string> last_updated_fields;
  Timestamp created_at;
  Timestamp updated_at;
  std::uint64_t version = 0;  // stream version of the last event folded
  bool erased = false;        // customer.erased folded, or its key found destroyed

  bool operator==(const CustomerState&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(customer_id, customer_type, name, email, status, validated_by, validated_at, suspension_reason,
       last_updated_fields, created_at, updated_at, version, erased);
  }
};

struct UserState {
  Uuid user_id;
  Uuid customer_id;
  PersonalText email;
  std::string role;
  UserStatus status = UserStatus::active;
  std::uint64_t password_resets = 0;
  Timestamp created_at;
  Timestamp updated_at;
  bool erased = false;  // set when opened: its customer is erased

  bool operator==(const UserState&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(user_id, customer_id, email, role, status, password_resets, created_at, updated_at);
  }
};

struct SubscriptionState {
  Uuid subscription_id;
  Uuid customer_id;
  std::string plan_id;
  SubscriptionStatus status = SubscriptionStatus::active;
  Timestamp period_end;
  std::uint64_t renewals = 0;
  PersonalText cancellation_reason;
  Timestamp created_at;
  Timestamp updated_at;
  bool erased = false;  // set when opened: its customer is erased

  bool operator==(const SubscriptionState&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(subscription_id, customer_id, plan_id, status, period_end, renewals, cancellation_reason, created_at,
       updated_at);
  }
};

struct TokenAccount {
  Uuid customer_id;
  std::int64_t purchased = 0;
  std::int64_t allocated = 0;
  std::int64_t used = 0;
  std::int64_t balance = 0;  // purchased + allocated - used
  std::optional<Timestamp> last_activity_at;

  bool operator==(const TokenAccount&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(customer_id, purchased, allocated, used, balance, last_activity_at);
  }
};

class EventLog;
// Opens the personal values of a read model with `log`'s keys, in place:
// plaintext, or emptied with `erased` set when its customer is erased.
// Errors: invalid_argument without the master key, corruption when a value
// does not open.
Status open_personal(const EventLog& log, CustomerState& s);
Status open_personal(const EventLog& log, UserState& s);
Status open_personal(const EventLog& log, SubscriptionState& s);
inline Status open_personal(const EventLog&, TokenAccount&) { return {}; }

// JSON of opened states: personal values as strings, or null with
// "erased": true. (A value still sealed shows as null.)
nlohmann::ordered_json to_json(const CustomerState& s);
nlohmann::ordered_json to_json(const UserState& s);
nlohmann::ordered_json to_json(const SubscriptionState& s);
nlohmann::ordered_json to_json(const TokenAccount& s);

}  // namespace cs
