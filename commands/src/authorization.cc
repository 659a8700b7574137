#include "cs/authorization.h"

#include <array>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cs/json_codec.h"

namespace cs {
namespace {

constexpr std::array<std::string_view, 4> resource_names = {"customer", "user", "subscription", "token"};

// Every action each resource knows (design.md's matrix and request table).
const std::map<Resource, std::set<std::string, std::less<>>>& known_actions() {
  static const std::map<Resource, std::set<std::string, std::less<>>> actions = {
      {Resource::customer, {"read", "create", "update", "validate", "suspend", "reactivate", "delete", "erase"}},
      {Resource::user, {"read", "create", "update", "delete", "reset_password"}},
      {Resource::subscription, {"read", "create", "update", "renew", "cancel", "expire"}},
      {Resource::token, {"read", "purchase", "allocate", "use"}},
  };
  return actions;
}

constexpr std::string_view default_matrix = R"({"services": {
  "admin-service": {
    "customer": ["read", "create", "update", "validate", "suspend", "reactivate", "delete", "erase"],
    "user": ["read", "create", "update", "delete", "reset_password"],
    "subscription": ["read", "create", "update", "cancel"],
    "token": ["read", "allocate"]},
  "accounting-service": {
    "customer": ["read"],
    "subscription": ["read", "create", "update", "renew", "cancel", "expire"],
    "token": ["read", "purchase"]},
  "app-mobile-service": {
    "customer": ["read", "create"],
    "user": ["read", "create", "update", "delete", "reset_password"],
    "subscription": ["read"],
    "token": ["read", "use"]},
  "portfolio-sme-service": {
    "customer": ["read", "update"], "user": ["read"], "subscription": ["read"], "token": ["read"],
    "ownCustomerType": "sme"},
  "portfolio-institution-service": {
    "customer": ["read", "update"], "user": ["read"], "subscription": ["read"], "token": ["read"],
    "ownCustomerType": "institution"}
}})";

}  // namespace

std::string_view resource_name(Resource resource) { return resource_names[static_cast<std::size_t>(resource)]; }

std::optional<Resource> parse_resource(std::string_view name) {
  for (std::size_t i = 0; i < resource_names.size(); ++i) {
    if (resource_names[i] == name) return static_cast<Resource>(i);
  }
  return std::nullopt;
}

bool is_action_of(Resource resource, std::string_view action) {
  const auto& actions = known_actions().at(resource);
  return actions.find(action) != actions.end();
}

AuthorizationMatrix AuthorizationMatrix::defaults() {
  auto matrix = from_json_text(default_matrix);
  CS_ASSERT(matrix.ok(), "the default authorization matrix is valid");
  return std::move(matrix).value();
}

Result<AuthorizationMatrix> AuthorizationMatrix::from_file(const std::string& path) {
  auto doc = read_json_file(path);
  if (!doc.ok()) return invalid_argument("authorization: " + doc.error().message());
  return from_json(*doc);
}

Result<AuthorizationMatrix> AuthorizationMatrix::from_json_text(std::string_view text) {
  auto doc = parse_json_document(text);
  if (!doc.ok()) return invalid_argument("authorization: " + doc.error().message());
  return from_json(*doc);
}

Result<AuthorizationMatrix> AuthorizationMatrix::from_json(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("services") || !doc.at("services").is_object() || doc.size() != 1) {
    return invalid_argument("authorization: expected {\"services\": {\"<service>\": {\"<resource>\": [actions]}}}");
  }
  AuthorizationMatrix matrix;
  for (const auto& [service, grants] : doc.at("services").items()) {
    if (service.empty() || service.size() > limits::service_name_bytes_max) {
      return invalid_argument("authorization: a service name must be 1 to " +
                              std::to_string(limits::service_name_bytes_max) + " bytes");
    }
    if (!grants.is_object()) return invalid_argument("authorization: services." + service + " must be an object");
    Grants& g = matrix.services_[service];
    for (const auto& [key, value] : grants.items()) {
      if (key == "ownCustomerType") {
        if (value == "sme") {
          g.own_customer_type = CustomerType::sme;
        } else if (value == "institution") {
          g.own_customer_type = CustomerType::institution;
        } else {
          return invalid_argument("authorization: services." + service +
                                  ".ownCustomerType must be \"sme\" or \"institution\"");
        }
        continue;
      }
      auto resource = parse_resource(key);
      if (!resource) {
        return invalid_argument("authorization: services." + service + "." + key +
                                " is not a resource (customer, user, subscription, token, ownCustomerType)");
      }
      if (!value.is_array()) {
        return invalid_argument("authorization: services." + service + "." + key + " must be an array of actions");
      }
      auto& actions = g.actions[*resource];
      for (const auto& action : value) {
        if (!action.is_string() || !is_action_of(*resource, action.get_ref<const std::string&>())) {
          return invalid_argument("authorization: services." + service + "." + key + ": " + action.dump() +
                                  " is not an action on a " + key);
        }
        actions.insert(action.get<std::string>());
      }
    }
  }
  return matrix;
}

Status AuthorizationMatrix::check(std::string_view service, Resource resource, std::string_view action,
                                  std::optional<CustomerType> customer_type) const {
  auto who = services_.find(service);
  auto denied = [&](const std::string& why) {
    return unauthorized_error(std::string(service) + " may not " + std::string(action) + " a " +
                              std::string(resource_name(resource)) + why);
  };
  if (who == services_.end()) return denied(" (not a known service)");
  const Grants& g = who->second;
  auto granted = g.actions.find(resource);
  if (granted == g.actions.end() || granted->second.find(action) == granted->second.end()) return denied("");
  // A portfolio service changes only customers of its own type; it reads all.
  if (g.own_customer_type && action != "read" && customer_type && *customer_type != *g.own_customer_type) {
    return denied(" of type " + std::string(customer_type_name(*customer_type)) + " (it serves " +
                  std::string(customer_type_name(*g.own_customer_type)) + " customers only)");
  }
  return {};
}

std::set<std::string> AuthorizationMatrix::services() const {
  std::set<std::string> out;
  for (const auto& [name, grants] : services_) out.insert(name);
  return out;
}

}  // namespace cs
