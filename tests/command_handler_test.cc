// Proves the command handler without a broker: the seed's admin action
// validates a customer; a redelivered request appends nothing and gets the
// same answer; every domain rule refuses with its own code; reads return the
// parts asked for, within the matrix; and requests are parsed strictly.
#include "cs/command_handler.h"
#include "test_support.h"

namespace cs {
namespace {

class CommandHandlerTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_.path());
  std::unique_ptr<ProjectionEngine> engine_ = std::move(ProjectionEngine::open(*log_)).value();
  AuthorizationMatrix matrix_ = AuthorizationMatrix::defaults();
  CommandHandler handler_{*log_, *engine_, matrix_};
  std::uint64_t next_request_ = 1;

  Answer send(const std::string& topic, nlohmann::json request) {
    if (!request.contains("requestId")) request["requestId"] = test::uuid(900'000 + next_request_++).to_string();
    auto parsed = parse_request(topic, request.dump());
    EXPECT_TRUE(parsed.ok()) << parsed.error().to_string();
    if (!parsed.ok()) return refusal(AnswerCode::invalid, parsed.error().message());
    return handler_.handle(*parsed);
  }
  std::string create_customer(const std::string& type = "sme") {
    auto a = send("customer.update.request", {{"sourceService", "admin-service"}, {"action", "create"},
                                              {"customerType", type}, {"name", "Acme"}, {"email", "ops@acme.example"}});
    EXPECT_TRUE(a.accepted()) << a.message;
    return a.customer_id ? a.customer_id->to_string() : "";
  }
  nlohmann::json admin(const std::string& customer, const std::string& action) {
    return {{"sourceService", "admin-service"}, {"customerId", customer}, {"adminId", test::uuid(7).to_string()},
            {"action", action}, {"details", {{"notes", "checked"}, {"reason", "review"}}}};
  }
};

TEST_F(CommandHandlerTest, TheSeedsAdminActionValidatesACustomer) {
  std::string customer = create_customer();
  auto a = send("admin.customer.action", admin(customer, "validate"));
  ASSERT_TRUE(a.accepted()) << a.message;
  ASSERT_EQ(a.events.size(), 1u);
  EXPECT_EQ(a.events[0].first, EventType::customer_validated);
  auto state = engine_->customer(*Uuid::parse(customer));
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->status, CustomerStatus::validated);
  auto record = nlohmann::json::parse(a.result_record());
  EXPECT_EQ(record["status"], "accepted");
  EXPECT_EQ(record["code"], "accepted");
  EXPECT_EQ(record["action"], "validate");
  EXPECT_EQ(record["customerId"], customer);
  EXPECT_EQ(record["events"][0]["type"], "customer.validated");
  EXPECT_EQ(record["events"][0]["seq"], 2);
}

TEST_F(CommandHandlerTest, ARedeliveredRequestAppendsNothingAndGetsTheSameEvents) {
  nlohmann::json create = {{"requestId", test::uuid(1).to_string()}, {"sourceService", "app-mobile-service"},
                           {"action", "create"}, {"customerType", "institution"}, {"name", "Bank"},
                           {"email", "it@bank.example"}};
  auto first = send("customer.update.request", create);
  auto again = send("customer.update.request", create);
  ASSERT_TRUE(first.accepted() && again.accepted()) << first.message << " / " << again.message;
  EXPECT_EQ(first.customer_id, again.customer_id) << "the id is derived from the requestId";
  EXPECT_EQ(first.events, again.events);
  EXPECT_EQ(log_->head(), Sequence(1));
  create["sourceService"] = "admin-service";  // someone else's requestId
  auto borrowed = send("customer.update.request", create);
  EXPECT_EQ(borrowed.code, AnswerCode::conflict);
  EXPECT_TRUE(borrowed.events.empty());
}

TEST_F(CommandHandlerTest, EveryDomainRuleRefusesWithItsOwnCode) {
  std::string sme = create_customer("sme");
  std::string other = create_customer("institution");
  const std::string nobody = test::uuid(4242).to_string();
  struct Case {
    std::string topic;
    nlohmann::json request;
    AnswerCode code;
    std::string message;
  };
  std::vector<Case> cases = {
      {"admin.customer.action", admin(sme, "suspend"), AnswerCode::conflict, "is pending, not validated"},
      {"admin.customer.action", admin(sme, "reactivate"), AnswerCode::conflict, "is pending, not suspended"},
      {"admin.customer.action", admin(nobody, "validate"), AnswerCode::not_found, "does not exist"},
      {"accounting.customer.request",
       {{"sourceService", "accounting-service"}, {"customerId", sme}, {"action", "record_purchase"}, {"amount", -5},
        {"price", 10}, {"currency", "EUR"}, {"paymentReference", "p-1"}},
       AnswerCode::invalid, "amount must be an integer > 0"},
      {"mobile.user.action",
       {{"sourceService", "app-mobile-service"}, {"customerId", sme}, {"action", "use_tokens"}, {"amount", 5},
        {"userId", test::uuid(9).to_string()}, {"feature", "export"}},
       AnswerCode::insufficient_tokens, "has 0 tokens, the request uses 5"},
      {"admin.customer.action", admin(sme, "validate") /* by accounting below */, AnswerCode::forbidden, ""},
      {"portfolio-institution.customer.update",
       {{"sourceService", "portfolio-institution-service"}, {"customerId", sme}, {"changes", {{"name", "X"}}}},
       AnswerCode::forbidden, "serves institution customers only"},
      {"mobile.user.action",
       {{"sourceService", "app-mobile-service"}, {"customerId", other}, {"action", "update_user"},
        {"userId", test::uuid(31).to_string()}, {"changes", {{"role", "admin"}}}},
       AnswerCode::not_found, "user"},
  };
  cases[5].request["sourceService"] = "accounting-service";
  cases[5].message = "accounting-service may not validate a customer";
  for (const auto& c : cases) {
    auto a = send(c.topic, c.request);
    EXPECT_EQ(answer_code_name(a.code), answer_code_name(c.code)) << c.request.dump() << ": " << a.message;
    EXPECT_NE(a.message.find(c.message), std::string::npos) << a.message;
    EXPECT_TRUE(a.events.empty());
  }
  EXPECT_EQ(log_->head(), Sequence(2)) << "no refused request appended anything";

  // A user belongs to its customer; a deleted customer only answers reads.
  auto user = send("mobile.user.action", {{"sourceService", "app-mobile-service"}, {"customerId", sme},
                                          {"action", "create_user"}, {"email", "u@acme.example"}, {"role", "member"}});
  ASSERT_TRUE(user.accepted()) << user.message;
  auto user_id = engine_->users_of(*Uuid::parse(sme)).value().at(0).user_id.to_string();
  auto stolen = send("mobile.user.action", {{"sourceService", "app-mobile-service"}, {"customerId", other},
                                            {"action", "reset_password"}, {"userId", user_id}});
  EXPECT_EQ(stolen.code, AnswerCode::conflict);
  EXPECT_NE(stolen.message.find("belongs to another customer"), std::string::npos) << stolen.message;
  ASSERT_TRUE(send("admin.customer.action", admin(sme, "delete")).accepted());
  auto after = send("customer.update.request", {{"sourceService", "admin-service"}, {"customerId", sme},
                                                {"action", "update"}, {"changes", {{"name", "Gone"}}}});
  EXPECT_EQ(after.code, AnswerCode::conflict);
  EXPECT_NE(after.message.find("is deleted"), std::string::npos);
  auto create_again = send("customer.update.request", {{"sourceService", "admin-service"}, {"action", "create"},
                                                       {"customerId", sme}, {"customerType", "sme"}, {"name", "A"},
                                                       {"email", "a@b.c"}});
  EXPECT_EQ(create_again.code, AnswerCode::conflict);
  auto read = send("customer.data.request", {{"sourceService", "portfolio-sme-service"}, {"customerId", sme},
                                             {"action", "read"}, {"include", {"customer"}}});
  ASSERT_TRUE(read.accepted()) << read.message;
  EXPECT_EQ(read.data["customer"]["status"], "deleted");
}

TEST_F(CommandHandlerTest, ReadsReturnThePartsAskedForWithinTheMatrix) {
  std::string customer = create_customer();
  ASSERT_TRUE(send("admin.customer.action",
                   {{"sourceService", "admin-service"}, {"customerId", customer}, {"action", "allocate_tokens"},
                    {"amount", 50}, {"adminId", test::uuid(7).to_string()}, {"reason", "welcome"}})
                  .accepted());
  auto read = send("customer.data.request", {{"sourceService", "app-mobile-service"}, {"customerId", customer},
                                             {"action", "read"}, {"include", {"customer", "tokens", "users"}}});
  ASSERT_TRUE(read.accepted()) << read.message;
  EXPECT_EQ(read.data["customer"]["customerId"], customer);
  EXPECT_EQ(read.data["tokens"]["balance"], 50);
  EXPECT_TRUE(read.data["users"].is_array());
  auto denied = send("customer.data.request", {{"sourceService", "accounting-service"}, {"customerId", customer},
                                               {"action", "read"}, {"include", {"users"}}});
  EXPECT_EQ(denied.code, AnswerCode::forbidden);
  auto use = send("mobile.user.action", {{"sourceService", "app-mobile-service"}, {"customerId", customer},
                                         {"action", "use_tokens"}, {"amount", 20}, {"userId", test::uuid(9).to_string()},
                                         {"feature", "export"}});
  ASSERT_TRUE(use.accepted()) << use.message;
  EXPECT_EQ(engine_->token_account(*Uuid::parse(customer)).value()->balance, 30);
}

TEST(RequestParsingTest, RequestsAreParsedStrictlyAndTheRequestIdIsKeptForTheAnswer) {
  const std::string id = test::uuid(1).to_string();
  struct Case {
    std::string topic, value, message;
  };
  const std::vector<Case> cases = {
      {"admin.customer.action", "{oops", "not valid JSON"},
      {"admin.customer.action", "[]", "must be a JSON object"},
      {"admin.customer.action", R"({"sourceService":"admin-service"})", "requestId is missing"},
      {"admin.customer.action", R"({"requestId":"x","sourceService":"a"})", "requestId must be a UUID"},
      {"admin.customer.action", R"({"requestId":")" + id + R"("})", "sourceService is missing"},
      {"admin.customer.action", R"({"requestId":")" + id + R"(","sourceService":"a","action":"bless"})",
       "not an action of admin.customer.action (validate, suspend, reactivate, delete, allocate_tokens, erase)"},
      {"some.topic", R"({"requestId":")" + id + R"(","sourceService":"a","action":"x"})", "not a request topic"},
      {"admin.customer.action", R"({"requestId":")" + id + R"(","sourceService":"a","action":"validate"})",
       "customerId is missing"},
      {"customer.data.request",
       R"({"requestId":")" + id + R"(","sourceService":"a","action":"read","customerId":")" + id +
           R"(","include":["secrets"]})",
       "\"secrets\" is not one of"},
      {"admin.customer.action", std::string(100, '[') + std::string(100, ']'), "nests deeper than"},
      {"admin.customer.action", std::string(request_bytes_max + 1, ' '), "over the limit"},
  };
  for (const auto& c : cases) {
    std::optional<Uuid> request_id;
    auto r = parse_request(c.topic, c.value, &request_id);
    ASSERT_FALSE(r.ok()) << c.value;
    EXPECT_NE(r.error().message().find(c.message), std::string::npos) << r.error().message();
    if (c.value.find(id) != std::string::npos && c.value.find("requestId") != std::string::npos) {
      EXPECT_EQ(request_id, Uuid::parse(id)) << "the answer can still name the request";
    }
  }
  EXPECT_EQ(request_topics().size(), 7u);
  auto portfolio = parse_request("portfolio-sme.customer.update",
                                 R"({"requestId":")" + id + R"(","sourceService":"p","customerId":")" + id + R"("})");
  ASSERT_TRUE(portfolio.ok()) << portfolio.error().to_string();
  EXPECT_EQ(portfolio->kind->action, "update") << "a topic with one action needs none";
  EXPECT_EQ(derived_uuid(test::uuid(1), "customerId"), derived_uuid(test::uuid(1), "customerId"));
  EXPECT_NE(derived_uuid(test::uuid(1), "customerId"), derived_uuid(test::uuid(2), "customerId"));
}

}  // namespace
}  // namespace cs
