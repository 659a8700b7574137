// The command handler: one request (parsed; its sender authenticated by the
// transport) → authorization → domain rules against the read models → events
// appended → one answer. No I/O of its own besides the log and the
// projections it is given, so the Kafka consumer and the HTTP API share it and
// tests drive it without a broker.
//
// Domain rules (each refused with its own code):
//   conflict             a creation for an id that exists; validate a customer
//                        that is not pending, suspend one not validated,
//                        reactivate one not suspended; anything but reads on a
//                        deleted customer (or user); a user or subscription of
//                        another customer; cancel/expire a subscription that is
//                        not active, renew a cancelled one
//   not_found            the customer, user or subscription does not exist
//   insufficient_tokens  a use larger than the balance
//   invalid              a field missing, ill-typed or out of range (amounts
//                        positive and at most limits::amount_max), named
//   forbidden            outside the authorization matrix (portfolio services
//                        only change customers of their own type)
//
// Event ids are derived from the requestId, so a redelivered request appends
// nothing and is answered with the original positions.
// Not thread-safe: one thread handles requests (the log itself is).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/authorization.h"
#include "cs/event_log.h"
#include "cs/projection_engine.h"
#include "cs/request.h"

namespace cs {

enum class AnswerCode : std::uint8_t {
  accepted,
  unauthenticated,
  forbidden,
  invalid,
  not_found,
  conflict,
  insufficient_tokens,
  unavailable,  // the store could not be read or written: retry later
};
std::string_view answer_code_name(AnswerCode code);  // "accepted", "not_found", …

struct Answer {
  std::optional<Uuid> request_id;  // absent when the request did not say it
  std::string source_service;
  std::string action;
  AnswerCode code = AnswerCode::accepted;
  std::string message;
  std::optional<Uuid> customer_id;
  std::vector<std::pair<EventType, Sequence>> events;  // appended (or found appended before)
  nlohmann::ordered_json data;  // reads: the parts asked for
  Timestamp timestamp;

  bool accepted() const { return code == AnswerCode::accepted; }
  // The customer.request.result record: {"requestId","sourceService","action",
  // "status","code","message","customerId","events":[{"type","seq"}],"timestamp"}.
  std::string result_record() const;
};

// An answer refusing a request that could not be parsed or authenticated.
Answer refusal(AnswerCode code, std::string message, std::optional<Uuid> request_id = std::nullopt,
               std::string source_service = {}, std::string action = {});

class CommandHandler {
 public:
  // `log`, `engine` and `matrix` are borrowed and must outlive the handler.
  CommandHandler(EventLog& log, ProjectionEngine& engine, const AuthorizationMatrix& matrix,
                 std::function<Timestamp()> clock = Timestamp::now);

  Answer handle(const Request& request);

 private:
  struct Context;
  struct Refusal {
    AnswerCode code;
    std::string message;
  };
  Status authorize(const Request& request, Context& context) const;
  // nullopt when the request may go on.
  std::optional<Refusal> check_rules(const Request& request, Context& context) const;
  Status check_entity_rules(const Request& request, Context& context) const;
  Result<NewEvent> build_event(const Request& request, const Context& context) const;
  Answer read(const Request& request, const Context& context) const;

  EventLog& log_;
  ProjectionEngine& engine_;
  const AuthorizationMatrix& matrix_;
  std::function<Timestamp()> clock_;
};

}  // namespace cs
