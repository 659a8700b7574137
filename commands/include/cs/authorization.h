// Who may do what: the (service, resource, action) matrix of design.md,
// checked before anything is appended, for Kafka requests and HTTP alike.
//
//   service                        customer                          user / subscription / token
//   admin-service                  read create update validate       user: read create update delete reset_password
//                                  suspend reactivate delete          subscription: read create update cancel
//                                                                     token: read allocate
//   accounting-service             read                              subscription: read create update renew cancel expire
//                                                                     token: read purchase
//   app-mobile-service             read create                       user: read create update delete reset_password
//                                                                     subscription: read; token: read use
//   portfolio-sme-service          read, update (own type only)      read
//   portfolio-institution-service  read, update (own type only)      read
//
// A file (`--authz FILE`) replaces the default:
//   {"services":{"admin-service":{"customer":["read","create"],"token":["read"]},
//                "portfolio-sme-service":{"customer":["read","update"],"ownCustomerType":"sme"}}}
// Thread safety: immutable after construction; any thread may ask.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cs/error.h"
#include "cs/limits.h"
#include "cs/payloads.h"

namespace cs {

enum class Resource : std::uint8_t { customer, user, subscription, token };
std::string_view resource_name(Resource resource);  // "customer", …
std::optional<Resource> parse_resource(std::string_view name);

// The actions a resource knows; anything else is refused when a matrix is read.
bool is_action_of(Resource resource, std::string_view action);

class AuthorizationMatrix {
 public:
  // design.md's table.
  static AuthorizationMatrix defaults();
  // Reads a matrix file (format above). invalid_argument naming the service,
  // resource or action at fault.
  static Result<AuthorizationMatrix> from_file(const std::string& path);
  static Result<AuthorizationMatrix> from_json_text(std::string_view text);
  static Result<AuthorizationMatrix> from_json(const nlohmann::json& doc);

  // Ok when `service` may do `action` on `resource`; for a service bound to
  // its own customer type, `customer_type` (the customer's, when known) must
  // be that type. Otherwise unauthorized, with a message that says who may
  // not do what (no personal data).
  Status check(std::string_view service, Resource resource, std::string_view action,
               std::optional<CustomerType> customer_type = std::nullopt) const;

  // The services the matrix names.
  std::set<std::string> services() const;

 private:
  struct Grants {
    std::map<Resource, std::set<std::string, std::less<>>> actions;
    std::optional<CustomerType> own_customer_type;  // only customers of this type
  };
  std::map<std::string, Grants, std::less<>> services_;
};

}  // namespace cs
