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
  // The customer.data.response record of a read: the same fields but
  // `events`, and the parts asked for ("customer", "users", "subscriptions",
  // "tokens") at the top level.
  std::string data_response_record() const;
};

// An answer refusing a request that could not be parsed or authenticated.
Answer refusal(AnswerCode code, std::string message, std::optional<Uuid> request_id = std::nullopt,
               std::string source_service = {}, std::string action = {});

// What a transport commits with a request's outcome, in the same RocksDB
// batch as the request's events (or alone when it appends nothing): the
// consumed offset, the answer in an outbox. Called with the final answer (its
// events' sequences set), possibly twice and on the log's group-commit
// thread: it must give the same families, keys and `sequenced` flags each
// time and must not call the log.
using AnswerWrites = std::function<std::vector<SideWrite>(const Answer&)>;

class CommandHandler {
 public:
  // `log`, `engine` and `matrix` are borrowed and must outlive the handler.
  CommandHandler(EventLog& log, ProjectionEngine& engine, const AuthorizationMatrix& matrix,
                 std::function<Timestamp()> clock = Timestamp::now);

  // Decides and applies one request. With `writes`, the answer is stored
  // with them: in the batch of the request's events, or in a batch of its
  // own for a read, a refusal or a request applied before. An answer with
  // code `unavailable` was not stored, nor anything else: the store could not
  // be read or written, and the transport tries the request again later.
  Answer handle(const Request& request, const AnswerWrites& writes = {});
  // Decides without storing: the answer, and in `event` the event to append
  // when the request changes something (the answer's events are then left
  // for the caller to fill once appended). For transports that store many
  // requests' outcomes in one append. An `unavailable` answer: the store
  // could not be read.
  Answer decide(const Request& request, std::optional<NewEvent>& event);
  // Folds what was appended into the read models, so that a query after an
  // answer sees it. Errors: the projections' (the events stay stored).
  Status catch_up();

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
  // Stores an answer that appends nothing (unavailable ones excepted).
  Answer store(Answer answer, const AnswerWrites& writes);

  EventLog& log_;
  ProjectionEngine& engine_;
  const AuthorizationMatrix& matrix_;
  std::function<Timestamp()> clock_;
};

}  // namespace cs
