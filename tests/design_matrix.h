// design.md's authorization table, written out as the tests' own
// expectation (not read from the code under test): service -> resource ->
// actions. Portfolio updates are for their own customer type only.
#pragma once

#include <map>
#include <set>
#include <string>

namespace cs::test {

inline const std::map<std::string, std::map<std::string, std::set<std::string>>> design_table = {
    {"admin-service",
     {{"customer", {"read", "create", "update", "validate", "suspend", "reactivate", "delete"}},
      {"user", {"read", "create", "update", "delete", "reset_password"}},
      {"subscription", {"read", "create", "update", "cancel"}},
      {"token", {"read", "allocate"}}}},
    {"accounting-service",
     {{"customer", {"read"}},
      {"user", {}},
      {"subscription", {"read", "create", "update", "renew", "cancel", "expire"}},
      {"token", {"read", "purchase"}}}},
    {"app-mobile-service",
     {{"customer", {"read", "create"}},
      {"user", {"read", "create", "update", "delete", "reset_password"}},
      {"subscription", {"read"}},
      {"token", {"read", "use"}}}},
    {"portfolio-sme-service",
     {{"customer", {"read", "update"}}, {"user", {"read"}}, {"subscription", {"read"}}, {"token", {"read"}}}},
    {"portfolio-institution-service",
     {{"customer", {"read", "update"}}, {"user", {"read"}}, {"subscription", {"read"}}, {"token", {"read"}}}},
};

}  // namespace cs::test
