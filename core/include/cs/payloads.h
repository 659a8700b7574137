// Typed payloads of the 19 events, one struct each.
//
// Each struct lists its fields once, in `fields()`: wire name, member, the
// check its value must pass, and the schema version that introduced it. That
// one table drives the JSON codec, validation and the cereal storage form, so
// a field cannot be added to one and forgotten in another.
//
// Schema growth: add the field with `since` = the new version, bump the
// struct's `schema_version`. Events stored under an older version decode with the new field left at its default
// (an upcast); docs/storage.md keeps the history of every bump.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/common.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "cs/event_types.h"
#include "cs/time.h"
#include "cs/uuid.h"

namespace cs {

enum class CustomerType : std::uint8_t { sme = 1, institution = 2 };
std::string_view customer_type_name(CustomerType type);  // "sme" | "institution"

// A field name -> the new value as JSON text (`"\"a@b.c\""`, `42`), so any JSON
// value round-trips byte for byte while the stored form stays a plain map.
using Changes = std::map<std::string, std::string>;
using FieldList = std::vector<std::string>;

// What a field's value must satisfy besides its C++ type.
enum class Check : std::uint8_t {
  none,
  non_empty,     // a string with at least one non-blank character
  email,         // local@domain, no spaces
  currency,      // ISO 4217: three upper-case letters
  positive,      // an integer > 0
  non_negative,  // an integer >= 0
  nil_allowed,   // a UUID that may be the nil UUID (every other UUID may not)
};

template <class T, class M>
struct Field {
  std::string_view name;  // camelCase wire name
  M T::*member;
  Check check;
  std::uint32_t since_version;  // schema version that added the field
};

template <class T, class M>
constexpr Field<T, M> field(std::string_view name, M T::*member, Check check = Check::none,
                            std::uint32_t since_version = 1) {
  return {name, member, check, since_version};
}

#define CS_PAYLOAD(Struct, Type, Version, StreamKey)                      \
  static constexpr EventType type = EventType::Type;                     \
  static constexpr std::uint32_t schema_version = Version;               \
  const Uuid& stream_key() const { return StreamKey; }                   \
  bool operator==(const Struct&) const = default

struct CustomerCreated {
  Uuid customer_id;
  CustomerType customer_type = CustomerType::sme;
  std::string name;
  std::string email;
  CS_PAYLOAD(CustomerCreated, customer_created, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerCreated;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("customerType", &T::customer_type),
                           field("name", &T::name, Check::non_empty),
                           field("email", &T::email, Check::email));
  }
};

struct CustomerUpdated {
  Uuid customer_id;
  FieldList updated_fields;
  Changes changes;
  CS_PAYLOAD(CustomerUpdated, customer_updated, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerUpdated;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("updatedFields", &T::updated_fields),
                           field("changes", &T::changes));
  }
};

struct CustomerValidated {
  Uuid customer_id;
  Uuid admin_id;
  CS_PAYLOAD(CustomerValidated, customer_validated, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerValidated;
    return std::make_tuple(field("customerId", &T::customer_id), field("adminId", &T::admin_id));
  }
};

struct CustomerSuspended {
  Uuid customer_id;
  Uuid admin_id;
  std::string reason;
  CS_PAYLOAD(CustomerSuspended, customer_suspended, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerSuspended;
    return std::make_tuple(field("customerId", &T::customer_id), field("adminId", &T::admin_id),
                           field("reason", &T::reason, Check::non_empty));
  }
};

struct CustomerReactivated {
  Uuid customer_id;
  Uuid admin_id;
  CS_PAYLOAD(CustomerReactivated, customer_reactivated, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerReactivated;
    return std::make_tuple(field("customerId", &T::customer_id), field("adminId", &T::admin_id));
  }
};

struct CustomerDeleted {
  Uuid customer_id;
  Uuid admin_id;
  std::string reason;
  CS_PAYLOAD(CustomerDeleted, customer_deleted, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerDeleted;
    return std::make_tuple(field("customerId", &T::customer_id), field("adminId", &T::admin_id),
                           field("reason", &T::reason, Check::non_empty));
  }
};

struct UserCreated {
  Uuid user_id;
  Uuid customer_id;
  std::string email;
  std::string role;
  CS_PAYLOAD(UserCreated, user_created, 1, user_id);
  static constexpr auto fields() {
    using T = UserCreated;
    return std::make_tuple(field("userId", &T::user_id), field("customerId", &T::customer_id),
                           field("email", &T::email, Check::email),
                           field("role", &T::role, Check::non_empty));
  }
};

struct UserUpdated {
  Uuid user_id;
  Uuid customer_id;
  FieldList updated_fields;
  Changes changes;
  CS_PAYLOAD(UserUpdated, user_updated, 1, user_id);
  static constexpr auto fields() {
    using T = UserUpdated;
    return std::make_tuple(field("userId", &T::user_id), field("customerId", &T::customer_id),
                           field("updatedFields", &T::updated_fields),
                           field("changes", &T::changes));
  }
};

struct UserDeleted {
  Uuid user_id;
  Uuid customer_id;
  CS_PAYLOAD(UserDeleted, user_deleted, 1, user_id);
  static constexpr auto fields() {
    using T = UserDeleted;
    return std::make_tuple(field("userId", &T::user_id), field("customerId", &T::customer_id));
  }
};

struct UserPasswordReset {
  Uuid user_id;
  Uuid customer_id;
  CS_PAYLOAD(UserPasswordReset, user_password_reset, 1, user_id);
  static constexpr auto fields() {
    using T = UserPasswordReset;
    return std::make_tuple(field("userId", &T::user_id), field("customerId", &T::customer_id));
  }
};

struct SubscriptionCreated {
  Uuid subscription_id;
  Uuid customer_id;
  std::string plan_id;
  Timestamp period_end;
  CS_PAYLOAD(SubscriptionCreated, subscription_created, 1, subscription_id);
  static constexpr auto fields() {
    using T = SubscriptionCreated;
    return std::make_tuple(field("subscriptionId", &T::subscription_id),
                           field("customerId", &T::customer_id),
                           field("planId", &T::plan_id, Check::non_empty),
                           field("periodEnd", &T::period_end));
  }
};

struct SubscriptionUpdated {
  Uuid subscription_id;
  Uuid customer_id;
  FieldList updated_fields;
  Changes changes;
  CS_PAYLOAD(SubscriptionUpdated, subscription_updated, 1, subscription_id);
  static constexpr auto fields() {
    using T = SubscriptionUpdated;
    return std::make_tuple(field("subscriptionId", &T::subscription_id),
                           field("customerId", &T::customer_id),
                           field("updatedFields", &T::updated_fields),
                           field("changes", &T::changes));
  }
};

struct SubscriptionRenewed {
  Uuid subscription_id;
  Uuid customer_id;
  Timestamp period_end;
  CS_PAYLOAD(SubscriptionRenewed, subscription_renewed, 1, subscription_id);
  static constexpr auto fields() {
    using T = SubscriptionRenewed;
    return std::make_tuple(field("subscriptionId", &T::subscription_id),
                           field("customerId", &T::customer_id),
                           field("periodEnd", &T::period_end));
  }
};

struct SubscriptionCancelled {
  Uuid subscription_id;
  Uuid customer_id;
  std::string reason;
  CS_PAYLOAD(SubscriptionCancelled, subscription_cancelled, 1, subscription_id);
  static constexpr auto fields() {
    using T = SubscriptionCancelled;
    return std::make_tuple(field("subscriptionId", &T::subscription_id),
                           field("customerId", &T::customer_id),
                           field("reason", &T::reason, Check::non_empty));
  }
};

struct SubscriptionExpired {
  Uuid subscription_id;
  Uuid customer_id;
  CS_PAYLOAD(SubscriptionExpired, subscription_expired, 1, subscription_id);
  static constexpr auto fields() {
    using T = SubscriptionExpired;
    return std::make_tuple(field("subscriptionId", &T::subscription_id),
                           field("customerId", &T::customer_id));
  }
};

// Schema history: v1 had no paymentReference (events stored then decode with
// an empty one, which the token audit reports); v2 requires it.
struct TokenPurchased {
  Uuid customer_id;
  std::int64_t amount = 0;
  std::int64_t price = 0;  // minor units of `currency`
  std::string currency;
  std::string payment_reference;
  CS_PAYLOAD(TokenPurchased, token_purchased, 2, customer_id);
  static constexpr auto fields() {
    using T = TokenPurchased;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("amount", &T::amount, Check::positive),
                           field("price", &T::price, Check::non_negative),
                           field("currency", &T::currency, Check::currency),
                           field("paymentReference", &T::payment_reference, Check::non_empty, 2));
  }
};

struct TokenUsed {
  Uuid customer_id;
  std::int64_t amount = 0;
  Uuid usage_id;
  Uuid user_id;
  std::string feature;
  CS_PAYLOAD(TokenUsed, token_used, 1, customer_id);
  static constexpr auto fields() {
    using T = TokenUsed;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("amount", &T::amount, Check::positive),
                           field("usageId", &T::usage_id), field("userId", &T::user_id),
                           field("feature", &T::feature, Check::non_empty));
  }
};

// Schema history: v1 had no adminId (events stored then decode with the nil
// UUID, which the token audit reports); v2 requires it.
struct TokenAllocated {
  Uuid customer_id;
  std::int64_t amount = 0;
  Uuid admin_id;
  std::string reason;
  CS_PAYLOAD(TokenAllocated, token_allocated, 2, customer_id);
  static constexpr auto fields() {
    using T = TokenAllocated;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("amount", &T::amount, Check::positive),
                           field("adminId", &T::admin_id, Check::none, 2),
                           field("reason", &T::reason, Check::non_empty));
  }
};

// Recorded when a customer's data key is destroyed (csctl forget, the admin
// action erase): its personal fields, and its users', read as erased from
// then on. No personal data in it.
struct CustomerErased {
  Uuid customer_id;
  Uuid admin_id;  // who asked; nil when an operator ran csctl forget without --admin-id
  CS_PAYLOAD(CustomerErased, customer_erased, 1, customer_id);
  static constexpr auto fields() {
    using T = CustomerErased;
    return std::make_tuple(field("customerId", &T::customer_id),
                           field("adminId", &T::admin_id, Check::nil_allowed));
  }
};

#undef CS_PAYLOAD

// Variant alternative i holds EventType code i + 1.
using Payload =
    std::variant<CustomerCreated, CustomerUpdated, CustomerValidated, CustomerSuspended,
                 CustomerReactivated, CustomerDeleted, UserCreated, UserUpdated, UserDeleted,
                 UserPasswordReset, SubscriptionCreated, SubscriptionUpdated, SubscriptionRenewed,
                 SubscriptionCancelled, SubscriptionExpired, TokenPurchased, TokenUsed,
                 TokenAllocated, CustomerErased>;
static_assert(std::variant_size_v<Payload> == event_type_count);

// A stream's identity without its text: category and entity id. Cheap to
// hash and compare; `name()` gives "tokens-<uuid>" and the like.
struct StreamKey {
  Category category = Category::customer;
  Uuid id;
  bool operator==(const StreamKey&) const = default;
  std::string name() const;
  // The name written into `out`, without an allocation: a view of `out`.
  using NameBuffer = std::array<char, 64>;
  std::string_view name_into(NameBuffer& out) const;
};

EventType payload_type(const Payload& payload);
StreamKey payload_stream_key(const Payload& payload);
// The customer every event belongs to: the Kafka key and the sharding key.
const Uuid& payload_customer_id(const Payload& payload);
// "customer-<uuid>", "user-<uuid>", "subscription-<uuid>", "tokens-<uuid>".
std::string payload_stream(const Payload& payload);
// The schema version the current code writes for this payload's type.
std::uint32_t current_schema_version(EventType type);
// A default-constructed payload of the given type.
Payload make_payload(EventType type);

template <class T>
concept PayloadStruct = requires(const T& t) {
  T::type;
  T::schema_version;
  T::fields();
  t.stream_key();
};

// cereal: every field present at `version`, in table order. The version is
// stored in the envelope (not by cereal per class) so that an event stored
// under an old schema can be re-encoded to the very same bytes, which keeps
// the hash chain reproducible by export and import.
// P may be const (saving) or not (loading).
template <class Archive, class P>
  requires PayloadStruct<std::remove_const_t<P>>
void serialize_fields(Archive& ar, P& payload, std::uint32_t version) {
  std::apply(
      [&](const auto&... f) {
        (
            [&] {
              if (version >= f.since_version) ar(payload.*(f.member));
            }(),
            ...);
      },
      std::remove_const_t<P>::fields());
}

}  // namespace cs

template <>
struct std::hash<cs::StreamKey> {
  std::size_t operator()(const cs::StreamKey& k) const noexcept {
    return std::hash<cs::Uuid>{}(k.id) * 31 + static_cast<std::size_t>(k.category);
  }
};

