// Who gets which event: the distributor's routing, kept as configuration.
//
// A routing file (JSON) lists each target service, the events it receives
// (names or categories such as "token.*") and optionally the customer type it
// is limited to:
//   {"services": {"portfolio-sme-service": {"events": ["customer.*"], "customerType": "sme"}, …}}
// Routing::defaults() is design.md's table.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/error.h"
#include "cs/event.h"

namespace cs {

class Routing {
 public:
  struct Rule {
    std::string service;
    std::set<EventType> events;
    std::optional<CustomerType> customer_type;  // only customers of this type
  };

  static Routing defaults();
  // Errors name the service and entry at fault (invalid_argument).
  static Result<Routing> from_json(const nlohmann::json& config);
  static Result<Routing> from_file(const std::string& path);

  // The services that receive an event of `type` for a customer of
  // `customer_type` (nullopt: unknown, which matches no typed rule).
  std::vector<std::string> targets(EventType type, std::optional<CustomerType> customer_type) const;
  const std::vector<Rule>& rules() const { return rules_; }
  // Whether any rule depends on the customer's type (then the distributor looks it up).
  bool needs_customer_type(EventType type) const;

 private:
  std::vector<Rule> rules_;
};

// The record a service receives: the event's data as in the seed's examples,
// with `timestamp` and `targetService` added and personal data left out
// (`name`, `email` and the values in `changes`; `updatedFields` says what
// changed). JSON text.
std::string published_value(const RecordedEvent& event, std::string_view target_service);

// The same in two steps, for callers that reuse a buffer: the part every
// target shares (all but `targetService` and the closing brace), then one
// target's ending.
void append_published_prefix(std::string& out, const RecordedEvent& event);
void append_published_target(std::string& out, std::string_view target_service);

}  // namespace cs
