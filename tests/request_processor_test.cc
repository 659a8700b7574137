// Proves a request record's outcome is stored exactly once, without a
// broker: the events, the answer in the outbox, the dead letter and the
// consumed offset commit in one batch; a record below the stored offset is
// skipped; a client's retry gets its first answer again; bad, unsigned and
// forbidden records are dead-lettered with the original bytes and their
// position; NestJS request-response headers get a reply.
#include "cs/request_processor.h"

#include "cs/outbox.h"
#include "cs/request.h"

#include <set>
#include "test_support.h"

namespace cs {
namespace {

constexpr const char* admin_secret = "admin-secret-0123456789";
constexpr const char* mobile_secret = "mobile-secret-0123456789";

class RequestProcessorTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_.path());
  std::unique_ptr<ProjectionEngine> engine_ = std::move(ProjectionEngine::open(*log_)).value();
  AuthorizationMatrix matrix_ = AuthorizationMatrix::defaults();
  CommandHandler handler_{*log_, *engine_, matrix_};
  ServiceCredentials credentials_ = std::move(ServiceCredentials::from_json_text(
      std::string(R"({"services":{"admin-service":{"secret":")") + admin_secret +
      R"("},"app-mobile-service":{"secret":")" + mobile_secret + R"("}}})")).value();
  RequestProcessor processor_{*log_, handler_, &credentials_};
  std::int64_t next_offset_ = 0;
  std::uint64_t next_request_ = 1;

  struct Sent {
    std::string topic;
    std::string value;
    std::vector<std::pair<std::string, std::string>> headers;
    std::int64_t offset = 0;
  };

  // A signed record of `request` (requestId added when absent) by `service`.
  Sent signed_record(const std::string& topic, nlohmann::json request, const std::string& service = "admin-service") {
    if (!request.contains("requestId")) request["requestId"] = test::uuid(700'000 + next_request_++).to_string();
    if (!request.contains("sourceService")) request["sourceService"] = service;
    Sent s{topic, request.dump(), {}, next_offset_++};
    const char* secret = service == "admin-service" ? admin_secret : mobile_secret;
    s.headers = {{"x-service", service}, {"x-signature", hmac_sha256_hex(secret, s.value)}};
    return s;
  }
  Result<ProcessedRecord> deliver(const Sent& s, std::int32_t partition = 0) {
    ConsumedRecord r{.topic = s.topic, .partition = partition, .offset = s.offset, .value = s.value};
    for (const auto& [n, v] : s.headers) r.headers.emplace_back(n, v);
    return processor_.process(r);
  }
  ProcessedRecord must_deliver(const Sent& s) {
    auto r = deliver(s);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : ProcessedRecord{};
  }
  std::vector<OutboxRecord> outbox() const {
    std::vector<OutboxRecord> out;
    EXPECT_TRUE(log_->scan_side(outbox_family, "", SIZE_MAX, [&](std::string_view, std::string_view v) {
      auto r = decode_outbox_record(v);
      EXPECT_TRUE(r.ok());
      if (r.ok()) out.push_back(*r);
      return true;
    }).ok());
    return out;
  }
  std::string create_customer(const std::string& type = "sme") {
    auto s = signed_record("customer.update.request", {{"action", "create"}, {"customerType", type},
                                                       {"name", "Acme"}, {"email", "ops@acme.example"}});
    must_deliver(s);
    auto answer = nlohmann::json::parse(outbox().back().value);
    EXPECT_EQ(answer["code"], "accepted");
    return answer["customerId"];
  }
};

std::string header_of(const OutboxRecord& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "(none)";
}

TEST_F(RequestProcessorTest, TheSeedsAdminActionIsAppliedAnsweredAndItsOffsetStored) {
  std::string customer = create_customer();
  auto validate = signed_record("admin.customer.action", {{"customerId", customer},
                                                         {"adminId", test::uuid(7).to_string()},
                                                         {"action", "validate"},
                                                         {"details", {{"notes", "KYC checked"}}}});
  auto r = must_deliver(validate);
  EXPECT_EQ(r.outcome, RecordOutcome::answered);
  EXPECT_EQ(r.code, AnswerCode::accepted);
  EXPECT_EQ(r.events_appended, 1u);
  EXPECT_EQ(log_->head(), Sequence(2));
  auto records = outbox();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].topic, request_result_topic);
  EXPECT_EQ(records[1].key, customer);
  auto answer = nlohmann::json::parse(records[1].value);
  EXPECT_EQ(answer["requestId"], nlohmann::json::parse(validate.value)["requestId"]);
  EXPECT_EQ(answer["status"], "accepted");
  EXPECT_EQ(answer["events"][0]["type"], "customer.validated");
  EXPECT_EQ(answer["events"][0]["seq"], 2) << "the answer names the sequence the event got";
  auto state = engine_->customer(*Uuid::parse(customer));
  ASSERT_TRUE(state.ok() && *state);
  EXPECT_EQ((*state)->status, CustomerStatus::validated) << "a query after the answer sees it";
  auto offset = processor_.stored_offset("admin.customer.action", 0);
  ASSERT_TRUE(offset.ok() && offset->has_value());
  EXPECT_EQ(**offset, validate.offset + 1);
  EXPECT_FALSE(processor_.stored_offset("admin.customer.action", 1)->has_value());

  // Delivered again (a consumer that did not seek): skipped, nothing new.
  auto again = must_deliver(validate);
  EXPECT_EQ(again.outcome, RecordOutcome::skipped);
  EXPECT_EQ(outbox().size(), 2u);
  EXPECT_EQ(log_->head(), Sequence(2));
}

TEST_F(RequestProcessorTest, AClientsRetryGetsItsFirstAnswerAndAppliesNothing) {
  std::string customer = create_customer();
  auto use = signed_record("mobile.user.action",
                           {{"action", "use_tokens"}, {"customerId", customer}, {"amount", 5},
                            {"userId", test::uuid(8).to_string()}, {"feature", "export"}},
                           "app-mobile-service");
  auto first = must_deliver(use);
  EXPECT_EQ(first.code, AnswerCode::insufficient_tokens);
  // Tokens arrive; the client retries the same request (a new record): the
  // first answer stands, nothing is applied.
  auto allocate = signed_record("admin.customer.action", {{"action", "allocate_tokens"}, {"customerId", customer},
                                                          {"amount", 10}, {"adminId", test::uuid(7).to_string()},
                                                          {"reason", "welcome"}});
  ASSERT_EQ(must_deliver(allocate).code, AnswerCode::accepted);
  const Sequence head = log_->head();
  Sent retry = use;
  retry.offset = next_offset_++;
  auto second = must_deliver(retry);
  EXPECT_EQ(second.outcome, RecordOutcome::replayed);
  EXPECT_EQ(log_->head(), head);
  auto records = outbox();
  EXPECT_EQ(records.back(), records[1]) << "the same answer record, byte for byte";

  // The same requestId from another service is a conflict, not a replay.
  auto borrowed = nlohmann::json::parse(use.value);
  borrowed["sourceService"] = "admin-service";
  auto r = must_deliver(signed_record("mobile.user.action", borrowed));
  EXPECT_EQ(r.code, AnswerCode::conflict);
  EXPECT_EQ(nlohmann::json::parse(outbox().back().value)["code"], "conflict");
}

TEST_F(RequestProcessorTest, BadRecordsAreDeadLetteredWithTheirBytesAndPosition) {
  struct Case {
    std::string name;
    Sent record;
    bool answered;  // a requestId could be read
    std::string reason_starts;
  };
  auto unsigned_record = signed_record("admin.customer.action", {{"action", "validate"},
                                                                 {"customerId", test::uuid(1).to_string()},
                                                                 {"adminId", test::uuid(7).to_string()}});
  unsigned_record.headers.clear();
  auto wrong_signature = signed_record("admin.customer.action", {{"action", "validate"},
                                                                 {"customerId", test::uuid(1).to_string()},
                                                                 {"adminId", test::uuid(7).to_string()}});
  wrong_signature.headers[1].second = hmac_sha256_hex("not-the-secret-at-all", wrong_signature.value);
  auto other_signer = signed_record("admin.customer.action",
                                    {{"action", "validate"}, {"sourceService", "admin-service"},
                                     {"customerId", test::uuid(1).to_string()}, {"adminId", test::uuid(7).to_string()}},
                                    "app-mobile-service");
  auto forbidden = signed_record("admin.customer.action", {{"action", "validate"},
                                                           {"customerId", test::uuid(1).to_string()},
                                                           {"adminId", test::uuid(7).to_string()}},
                                 "app-mobile-service");
  auto bad_field = signed_record("customer.update.request", {{"action", "create"}, {"customerType", "sme"},
                                                             {"name", "Acme"}, {"email", "not an e-mail"}});
  Sent not_json{"customer.update.request", "{\"requestId\": nope", {}, next_offset_++};
  Sent oversized{"mobile.user.action", std::string(request_bytes_max + 1, ' '), {}, next_offset_++};
  std::vector<Case> cases = {
      {"unsigned", unsigned_record, true, "unauthenticated: "},
      {"wrong signature", wrong_signature, true, "unauthenticated: "},
      {"signed by another service", other_signer, true, "unauthenticated: "},
      {"outside the matrix", forbidden, true, "forbidden: "},
      {"a bad field", bad_field, true, "invalid: "},
      {"not JSON", not_json, false, "invalid: "},
      {"oversized", oversized, false, "oversized: "},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto before = outbox().size();
    auto r = must_deliver(c.record);
    EXPECT_EQ(r.outcome, RecordOutcome::dead_lettered);
    auto records = outbox();
    ASSERT_EQ(records.size(), before + (c.answered ? 2 : 1));
    const OutboxRecord& dlq = records.back();
    EXPECT_EQ(dlq.topic, dead_letter_topic);
    EXPECT_EQ(dlq.value, c.record.value) << "the original bytes";
    EXPECT_EQ(header_of(dlq, "reason").rfind(c.reason_starts, 0), 0u) << header_of(dlq, "reason");
    EXPECT_EQ(header_of(dlq, "topic"), c.record.topic);
    EXPECT_EQ(header_of(dlq, "partition"), "0");
    EXPECT_EQ(header_of(dlq, "offset"), std::to_string(c.record.offset));
    if (c.answered) {
      auto answer = nlohmann::json::parse(records[records.size() - 2].value);
      EXPECT_EQ(answer["status"], "rejected");
      EXPECT_EQ(answer["requestId"], nlohmann::json::parse(c.record.value)["requestId"]);
    }
    EXPECT_EQ(**processor_.stored_offset(c.record.topic, 0), c.record.offset + 1) << "the offset advances";
  }
  EXPECT_EQ(log_->head(), Sequence(0)) << "nothing bad was applied";

  // A forged record does not take the requestId from its rightful sender.
  auto rightful = nlohmann::json::parse(unsigned_record.value);
  auto created = create_customer();
  rightful["customerId"] = created;
  auto signed_again = signed_record("admin.customer.action", rightful);
  EXPECT_EQ(must_deliver(signed_again).code, AnswerCode::accepted);
}

TEST_F(RequestProcessorTest, ReadsAreAnsweredOnTheDataResponseTopicAndNestRepliesGetTheirs) {
  std::string customer = create_customer();
  auto read = signed_record("customer.data.request",
                            {{"customerId", customer}, {"include", {"customer", "tokens"}}}, "app-mobile-service");
  read.headers.emplace_back("kafka_correlationId", "corr-42");
  read.headers.emplace_back("kafka_replyTopic", "customer.data.request.reply");
  read.headers.emplace_back("kafka_replyPartition", "2");
  auto r = must_deliver(read);
  EXPECT_EQ(r.code, AnswerCode::accepted);
  auto records = outbox();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1].topic, data_response_topic);
  auto answer = nlohmann::json::parse(records[1].value);
  EXPECT_EQ(answer["customer"]["customerId"], customer);
  EXPECT_EQ(answer["customer"]["status"], "pending");
  EXPECT_TRUE(answer.contains("tokens"));
  EXPECT_EQ(records[2].topic, "customer.data.request.reply");
  EXPECT_EQ(records[2].partition, 2);
  EXPECT_EQ(records[2].value, records[1].value);
  EXPECT_EQ(header_of(records[2], "kafka_correlationId"), "corr-42");
  EXPECT_EQ(header_of(records[2], "kafka_nest-is-disposed"), std::string(1, '\0'));

  // A record cannot steer its answer into another topic (an event topic).
  auto steering = signed_record("customer.data.request",
                                {{"customerId", customer}, {"include", {"customer"}}}, "app-mobile-service");
  steering.headers.emplace_back("kafka_correlationId", "corr-43");
  steering.headers.emplace_back("kafka_replyTopic", "customer.validated");
  must_deliver(steering);
  records = outbox();
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[3].topic, data_response_topic);
}

TEST_F(RequestProcessorTest, AStoreThatCannotBeWrittenStoresNothingAndSaysSo) {
  test::TempDir dir;
  std::atomic<bool> fail{false};
  EventLogOptions options;
  options.write_failure_probe = [&]() -> Status { return fail ? Status(fatal_error("injected")) : Status{}; };
  auto log = test::open_log(dir.path(), options);
  auto engine = std::move(ProjectionEngine::open(*log)).value();
  CommandHandler handler(*log, *engine, matrix_);
  RequestProcessor processor(*log, handler, nullptr);  // insecure: sourceService trusted
  nlohmann::json create = {{"requestId", test::uuid(1).to_string()}, {"sourceService", "admin-service"},
                           {"action", "create"}, {"customerType", "sme"}, {"name", "A"}, {"email", "a@b.example"}};
  std::string value = create.dump();
  fail = true;
  auto r = processor.process({.topic = "customer.update.request", .offset = 5, .value = value});
  ASSERT_FALSE(r.ok());
  fail = false;
  EXPECT_EQ(log->head(), Sequence(0));
  EXPECT_FALSE(processor.stored_offset("customer.update.request", 0)->has_value());
}

// A batch is decided in waves: a request sees the ones before it on the same
// customer (create → validate → suspend, allocate → use), independent ones
// share one append, and a wave the log refuses (the same new userId for two
// customers) is decided again record by record.
TEST_F(RequestProcessorTest, ABatchDecidesEachRequestAfterTheOnesBeforeIt) {
  std::string a = create_customer(), b = create_customer("institution");
  const std::string admin = test::uuid(7).to_string(), user = test::uuid(31).to_string();
  const auto create_c = test::uuid(5555);
  std::vector<Sent> sent = {
      signed_record("customer.update.request", {{"requestId", create_c.to_string()}, {"action", "create"},
                                                {"customerType", "sme"}, {"name", "C"}, {"email", "c@c.example"}}),
      signed_record("admin.customer.action", {{"action", "validate"}, {"adminId", admin},
                                              {"customerId", derived_uuid(create_c, "customerId").to_string()}}),
      signed_record("admin.customer.action", {{"action", "suspend"}, {"adminId", admin}, {"reason", "r"},
                                              {"customerId", derived_uuid(create_c, "customerId").to_string()}}),
      signed_record("admin.customer.action", {{"action", "allocate_tokens"}, {"customerId", a}, {"amount", 10},
                                              {"adminId", admin}, {"reason", "r"}}),
      signed_record("mobile.user.action", {{"action", "use_tokens"}, {"customerId", a}, {"amount", 7},
                                           {"userId", user}, {"feature", "f"}}, "app-mobile-service"),
      signed_record("mobile.user.action", {{"action", "use_tokens"}, {"customerId", a}, {"amount", 7},
                                           {"userId", user}, {"feature", "f"}}, "app-mobile-service"),
      signed_record("mobile.user.action", {{"action", "create_user"}, {"customerId", a}, {"userId", user},
                                           {"email", "u@a.example"}, {"role", "member"}}, "app-mobile-service"),
      signed_record("mobile.user.action", {{"action", "create_user"}, {"customerId", b}, {"userId", user},
                                           {"email", "u@b.example"}, {"role", "member"}}, "app-mobile-service"),
      signed_record("admin.customer.action", {{"action", "validate"}, {"adminId", admin}, {"customerId", b}}),
  };
  std::vector<ConsumedRecord> records;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    ConsumedRecord r{.topic = sent[i].topic, .partition = static_cast<std::int32_t>(i % 2), .offset = sent[i].offset,
                     .value = sent[i].value};
    for (const auto& [n, v] : sent[i].headers) r.headers.emplace_back(n, v);
    records.push_back(r);
  }
  auto out = processor_.process_batch(records);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  std::vector<AnswerCode> codes;
  for (const auto& o : *out) codes.push_back(o.code);
  EXPECT_EQ(codes, (std::vector<AnswerCode>{AnswerCode::accepted, AnswerCode::accepted, AnswerCode::accepted,
                                            AnswerCode::accepted, AnswerCode::accepted,
                                            AnswerCode::insufficient_tokens, AnswerCode::accepted,
                                            AnswerCode::conflict, AnswerCode::accepted}));
  // One answer per record, each naming its own event's sequence.
  auto records_out = outbox();
  ASSERT_EQ(records_out.size(), 2 + sent.size());
  std::set<std::uint64_t> seqs;
  for (std::size_t i = 2; i < records_out.size(); ++i) {
    auto answer = nlohmann::json::parse(records_out[i].value);
    if (answer["status"] == "accepted") {
      ASSERT_EQ(answer["events"].size(), 1u) << answer.dump();
      auto event = log_->read_event(Sequence(answer["events"][0]["seq"].get<std::uint64_t>()));
      ASSERT_TRUE(event.ok());
      EXPECT_EQ(event_type_name(event->type()), answer["events"][0]["type"].get<std::string>());
      EXPECT_TRUE(seqs.insert(event->seq.value).second);
    }
  }
  EXPECT_EQ(log_->head(), Sequence(2 + 7));
  EXPECT_EQ(**processor_.stored_offset("mobile.user.action", 1), sent[7].offset + 1);
  // Given again (a consumer retrying after a failure): all skipped.
  auto again = processor_.process_batch(records);
  ASSERT_TRUE(again.ok());
  for (const auto& o : *again) EXPECT_EQ(o.outcome, RecordOutcome::skipped);
  EXPECT_EQ(log_->head(), Sequence(9));
}

}  // namespace
}  // namespace cs
