#include "cs/routing.h"

#include <fstream>

#include "cs/json_codec.h"
#include "cs/json_writer.h"

namespace cs {
namespace {

Result<std::set<EventType>> parse_events(const std::string& service, const nlohmann::json& list) {
  if (!list.is_array() || list.empty()) {
    return invalid_argument("routing: services." + service + ".events must be a non-empty list");
  }
  std::set<EventType> out;
  for (const auto& item : list) {
    std::string name = item.is_string() ? item.get<std::string>() : "";
    if (auto type = parse_event_type(name)) {
      out.insert(*type);
    } else if (auto category = name.ends_with(".*") ? parse_category(name) : std::nullopt) {
      for (EventType t : all_event_types) {
        if (category_of(t) == *category) out.insert(t);
      }
    } else {
      return invalid_argument("routing: services." + service + ".events has \"" + name +
                              "\", neither an event type nor a category like \"token.*\"");
    }
  }
  return out;
}

}  // namespace

Result<Routing> Routing::from_json(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("services") || !config["services"].is_object()) {
    return invalid_argument("routing: expected {\"services\": {\"<service>\": {\"events\": [...]}}}");
  }
  Routing routing;
  for (const auto& [service, spec] : config["services"].items()) {
    if (!spec.is_object() || !spec.contains("events")) {
      return invalid_argument("routing: services." + service + " needs an \"events\" list");
    }
    for (const auto& [key, value] : spec.items()) {
      if (key != "events" && key != "customerType") {
        return invalid_argument("routing: services." + service + "." + key + " is not a routing field");
      }
    }
    auto events = parse_events(service, spec["events"]);
    if (!events.ok()) return events.error();
    Rule rule{service, std::move(*events), std::nullopt};
    if (spec.contains("customerType")) {
      if (spec["customerType"] == "sme") rule.customer_type = CustomerType::sme;
      else if (spec["customerType"] == "institution") rule.customer_type = CustomerType::institution;
      else return invalid_argument("routing: services." + service + ".customerType must be \"sme\" or \"institution\"");
    }
    routing.rules_.push_back(std::move(rule));
  }
  return routing;
}

Result<Routing> Routing::from_file(const std::string& path) {
  auto config = read_json_file(path);
  if (!config.ok()) return invalid_argument("routing: " + config.error().message());
  return from_json(*config);
}

Routing Routing::defaults() {
  auto routing = from_json(nlohmann::json::parse(R"({"services": {
    "admin-service": {"events": ["customer.*", "user.*", "subscription.*", "token.*"]},
    "accounting-service": {"events": ["subscription.*", "token.*", "customer.created", "customer.validated",
                                      "customer.suspended", "customer.reactivated", "customer.deleted",
                                      "customer.erased"]},
    "portfolio-sme-service": {"events": ["customer.*"], "customerType": "sme"},
    "portfolio-institution-service": {"events": ["customer.*"], "customerType": "institution"},
    "app-mobile-service": {"events": ["customer.validated", "customer.suspended", "customer.reactivated",
                                      "customer.deleted", "customer.erased", "user.*"]}
  }})"));
  CS_ASSERT(routing.ok(), "the default routing is valid");
  return std::move(routing).value();
}

std::vector<std::string> Routing::targets(EventType type, std::optional<CustomerType> customer_type) const {
  std::vector<std::string> out;
  for (const auto& rule : rules_) {
    if (!rule.events.contains(type)) continue;
    if (rule.customer_type && rule.customer_type != customer_type) continue;
    out.push_back(rule.service);
  }
  return out;
}

bool Routing::needs_customer_type(EventType type) const {
  for (const auto& rule : rules_) {
    if (rule.customer_type && rule.events.contains(type)) return true;
  }
  return false;
}

namespace {
// Personal data stays home; a service that needs it asks with customer.data.request.
constexpr std::string_view personal_fields[] = {"name", "email", "changes"};
}  // namespace

void append_published_prefix(std::string& out, const RecordedEvent& event) {
  JsonWriter writer(out);
  write_payload_json(writer, event.payload, event.stored_schema_version, personal_fields,
                     event.erased ? PersonalForm::erased : PersonalForm::plain);
  out.pop_back();  // '}'; every payload has its customerId, so a member precedes
  out += ",\"timestamp\":";
  JsonWriter::append_quoted(out, format_timestamp(event.timestamp));
}

void append_published_target(std::string& out, std::string_view target) {
  out += ",\"targetService\":";
  JsonWriter::append_quoted(out, target);
  out += '}';
}

std::string published_value(const RecordedEvent& event, std::string_view target_service) {
  std::string out;
  append_published_prefix(out, event);
  append_published_target(out, target_service);
  return out;
}

}  // namespace cs
