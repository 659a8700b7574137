// A request from another service, as it arrives on one of the seven request
// topics of design.md (or, later, over HTTP), parsed and checked for shape:
//
//   {"requestId":"<uuid>","sourceService":"admin-service","customerId":"<uuid>",
//    "adminId":"<uuid>","action":"validate","details":{"notes":"…"}}
//
// The event's data fields are read from the request's top level, or from
// `details` when absent there (the seed keeps free text in `details`).
// customerId, userId and subscriptionId are given by the caller, or for a
// creation derived from requestId, so that a redelivered request creates the
// same entity. What a request may do, and to what, is the handler's business.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/authorization.h"
#include "cs/error.h"
#include "cs/event_types.h"
#include "cs/uuid.h"

namespace cs {

// A request record larger than this is refused before it is parsed.
inline constexpr std::size_t request_bytes_max = 64 << 10;

// One action of one topic: what it needs permission for and what it appends
// (nothing for reads).
struct RequestKind {
  std::string_view topic;
  std::string_view action;
  Resource resource;
  std::string_view permission;
  std::optional<EventType> event;  // nullopt: a read
};

// Every (topic, action) the daemon serves, in design.md's order.
const std::vector<RequestKind>& request_kinds();
// The request topics (seven).
std::vector<std::string> request_topics();
// The kind of `action` on `topic`; topics with one action accept a missing
// action (portfolio updates). nullptr when unknown.
const RequestKind* find_request_kind(std::string_view topic, std::string_view action);

struct Request {
  const RequestKind* kind = nullptr;  // points into request_kinds()
  Uuid request_id;
  std::string source_service;
  std::optional<Uuid> customer_id;
  nlohmann::json fields;  // the request object itself (top level + details)
  // Read requests: the parts asked for ("customer", "users", "subscriptions", "tokens").
  std::vector<std::string> include;
};

// Parses a request record of `topic`. invalid_argument naming what is wrong
// (not JSON, not an object, a missing or ill-typed requestId, sourceService,
// action, customerId, include); the message never quotes more than 60 bytes
// of the input. `request_id` is set as soon as it could be read, so that a
// refusal can still be answered.
Result<Request> parse_request(std::string_view topic, std::string_view value, std::optional<Uuid>* request_id = nullptr);

// A UUID derived from a request id and a purpose ("customerId", "event-0"):
// the same inputs give the same UUID (SHA-256 based, version 5 layout).
Uuid derived_uuid(const Uuid& request_id, std::string_view purpose);

}  // namespace cs
