// Proves who may do what and who is asking: every (service, resource,
// action) of design.md's matrix, allowed and denied, against a copy of the
// table written out here; portfolio services change only customers of their
// own type; matrix and credential files are refused with the part at fault
// named; HMAC-SHA256 matches RFC 4231 and signatures are checked exactly.
#include <map>
#include <set>

#include "cs/authorization.h"
#include "cs/service_credentials.h"
#include "design_matrix.h"
#include "test_support.h"

namespace cs {
namespace {

using test::design_table;

const std::map<std::string, std::vector<std::string>> every_action = {
    {"customer", {"read", "create", "update", "validate", "suspend", "reactivate", "delete"}},
    {"user", {"read", "create", "update", "delete", "reset_password"}},
    {"subscription", {"read", "create", "update", "renew", "cancel", "expire"}},
    {"token", {"read", "purchase", "allocate", "use"}},
};

TEST(AuthorizationTest, EveryCellOfTheDefaultMatrixIsAllowedOrDeniedAsDesignSays) {
  auto matrix = AuthorizationMatrix::defaults();
  std::size_t allowed = 0, denied = 0;
  for (const auto& [service, resources] : design_table) {
    for (const auto& [resource_text, actions] : every_action) {
      Resource resource = *parse_resource(resource_text);
      for (const auto& action : actions) {
        const bool expected = resources.at(resource_text).contains(action);
        Status s = matrix.check(service, resource, action);
        EXPECT_EQ(s.ok(), expected) << service << " " << action << " " << resource_text;
        if (!s.ok()) {
          EXPECT_EQ(s.error().code(), ErrorCode::unauthorized);
          EXPECT_NE(s.error().message().find(service + " may not " + action + " a " + resource_text),
                    std::string::npos)
              << s.error().message();
        }
        (expected ? allowed : denied) += 1;
      }
    }
  }
  EXPECT_EQ(allowed + denied, 5u * 22u);
  EXPECT_EQ(allowed, 18u + 9u + 10u + 5u + 5u);
  EXPECT_EQ(matrix.services().size(), 5u);
  auto stranger = matrix.check("billing-robot", Resource::customer, "read");
  ASSERT_FALSE(stranger.ok());
  EXPECT_NE(stranger.error().message().find("not a known service"), std::string::npos);
}

TEST(AuthorizationTest, PortfolioServicesChangeOnlyCustomersOfTheirOwnType) {
  auto matrix = AuthorizationMatrix::defaults();
  EXPECT_TRUE(matrix.check("portfolio-sme-service", Resource::customer, "update", CustomerType::sme).ok());
  auto other = matrix.check("portfolio-sme-service", Resource::customer, "update", CustomerType::institution);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("serves sme customers only"), std::string::npos) << other.error().message();
  EXPECT_TRUE(matrix.check("portfolio-sme-service", Resource::customer, "read", CustomerType::institution).ok());
  EXPECT_FALSE(matrix.check("portfolio-institution-service", Resource::customer, "update", CustomerType::sme).ok());
  EXPECT_TRUE(matrix.check("admin-service", Resource::customer, "update", CustomerType::institution).ok());
}

TEST(AuthorizationTest, AMatrixFileIsReadStrictly) {
  auto custom = AuthorizationMatrix::from_json_text(R"({"services":{"ops":{"customer":["read"]}}})");
  ASSERT_TRUE(custom.ok()) << custom.error().to_string();
  EXPECT_TRUE(custom->check("ops", Resource::customer, "read").ok());
  EXPECT_FALSE(custom->check("admin-service", Resource::customer, "read").ok()) << "a file replaces the default";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"nope", "not valid JSON"},
      {R"({"services":{"ops":{"wallet":["read"]}}})", "services.ops.wallet is not a resource"},
      {R"({"services":{"ops":{"token":["steal"]}}})", "\"steal\" is not an action on a token"},
      {R"({"services":{"ops":{"customer":"read"}}})", "must be an array of actions"},
      {R"({"services":{"ops":{"ownCustomerType":"bank"}}})", "ownCustomerType must be"},
      {R"({"rules":[]})", "expected {\"services\""},
      {std::string(100, '[') + std::string(100, ']'), "nests deeper than"},
  };
  for (const auto& [text, message] : bad) {
    auto m = AuthorizationMatrix::from_json_text(text);
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_NE(m.error().message().find(message), std::string::npos) << m.error().message();
  }
}

TEST(ServiceCredentialsTest, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // RFC 4231 case 6: a key longer than SHA-256's block is hashed first.
  EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // An empty key is a key too, also one whose view has no data pointer.
  EXPECT_EQ(hmac_sha256_hex("", ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(hmac_sha256_hex(std::string_view(), ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(hmac_sha256_hex("", "x"), hmac_sha256_hex(std::string(1, '\0'), "x"));
}

TEST(ServiceCredentialsTest, SignaturesAndTokensAreCheckedExactly) {
  auto c = ServiceCredentials::from_json_text(
      R"({"services":{"admin-service":{"secret":"admin-secret-0123456789","token":"admin-token-0123456789"},
                      "accounting-service":{"secret":"accounting-secret-0123"}}})");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  const std::string value = R"({"requestId":"r1","sourceService":"admin-service","action":"validate"})";
  const std::string signature = hmac_sha256_hex("admin-secret-0123456789", value);
  EXPECT_TRUE(c->verify_signature("admin-service", value, signature).ok());
  // Another service's secret, one byte changed, upper case, a stranger: all refused.
  EXPECT_FALSE(c->verify_signature("accounting-service", value, signature).ok());
  EXPECT_FALSE(c->verify_signature("admin-service", value + " ", signature).ok());
  std::string upper = signature;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_FALSE(c->verify_signature("admin-service", value, upper).ok());
  auto stranger = c->verify_signature("someone", value, signature);
  ASSERT_FALSE(stranger.ok());
  EXPECT_EQ(stranger.error().code(), ErrorCode::unauthorized);
  EXPECT_EQ(stranger.error().message().find(signature), std::string::npos) << "never echo a signature";

  EXPECT_EQ(c->service_for_token("admin-token-0123456789"), std::optional<std::string>("admin-service"));
  EXPECT_EQ(c->service_for_token("admin-token-012345678"), std::nullopt);
  EXPECT_EQ(c->service_for_token(""), std::nullopt);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"services":{"a":{"secret":"short"}}})", "services.a.secret must be a string of at least 16 bytes"},
      {R"({"services":{"a":{"token":"token-0123456789abc"}}})", "services.a.secret is missing"},
      {R"({"services":{"a":{"secret":"secret-0123456789","password":"x"}}})", "services.a.password is not"},
      {R"({"services":{"a":{"secret":"secret-0123456789","token":"same-token-0123456"},
                       "b":{"secret":"secret-9876543210","token":"same-token-0123456"}}})",
       "is also a's token"},
  };
  for (const auto& [text, message] : bad) {
    auto r = ServiceCredentials::from_json_text(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message().find(message), std::string::npos) << r.error().message();
    EXPECT_EQ(r.error().message().find("0123456789"), std::string::npos) << "never echo a secret";
  }
}

}  // namespace
}  // namespace cs
