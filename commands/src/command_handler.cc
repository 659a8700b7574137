#include "cs/command_handler.h"

#include <memory>

#include "cs/json_codec.h"
#include "cs/json_writer.h"
#include "cs/read_models.h"

namespace cs {
namespace {

AnswerCode code_for(const Error& e) {
  switch (e.code()) {
    case ErrorCode::unauthorized: return AnswerCode::forbidden;
    case ErrorCode::not_found: return AnswerCode::not_found;
    case ErrorCode::conflict: return AnswerCode::conflict;
    case ErrorCode::invalid_argument: return AnswerCode::invalid;
    case ErrorCode::corruption:
    case ErrorCode::retriable:
    case ErrorCode::fatal: return AnswerCode::unavailable;
  }
  return AnswerCode::unavailable;
}

// Payload errors name "data.<field>"; a request names its fields bare.
std::string request_message(std::string message) {
  for (std::size_t at = message.find("data."); at != std::string::npos; at = message.find("data.", at)) {
    message.erase(at, 5);
  }
  return message;
}

// The id a request gives in `field`, or for a creation one derived from its requestId.
Result<Uuid> entity_id(const Request& r, const char* field, bool creation) {
  auto it = r.fields.find(field);
  if (it == r.fields.end()) {
    if (creation) return derived_uuid(r.request_id, field);
    return invalid_argument(std::string(field) + " is missing");
  }
  auto u = it->is_string() ? Uuid::parse(it->get_ref<const std::string&>()) : std::nullopt;
  if (!u || u->is_nil()) return invalid_argument(std::string(field) + " must be a UUID");
  return *u;
}

// A data field's value from the request: top level first, then `details`.
const nlohmann::json* request_value(const Request& r, std::string_view name) {
  if (auto it = r.fields.find(name); it != r.fields.end()) return &*it;
  if (auto d = r.fields.find("details"); d != r.fields.end() && d->is_object()) {
    if (auto it = d->find(name); it != d->end()) return &*it;
  }
  return nullptr;
}

}  // namespace

std::string_view answer_code_name(AnswerCode code) {
  switch (code) {
    case AnswerCode::accepted: return "accepted";
    case AnswerCode::unauthenticated: return "unauthenticated";
    case AnswerCode::forbidden: return "forbidden";
    case AnswerCode::invalid: return "invalid";
    case AnswerCode::not_found: return "not_found";
    case AnswerCode::conflict: return "conflict";
    case AnswerCode::insufficient_tokens: return "insufficient_tokens";
    case AnswerCode::unavailable: return "unavailable";
  }
  CS_UNREACHABLE("answer code");
}

std::string Answer::result_record() const {
  std::string out;
  JsonWriter w(out);
  char id[37];
  w.begin_object();
  w.key("requestId");
  if (request_id) {
    request_id->to_chars(id);
    w.string(std::string_view(id, 36));
  } else {
    w.raw("null");
  }
  w.key("sourceService");
  w.string(source_service);
  w.key("action");
  w.string(action);
  w.key("status");
  w.string(accepted() ? "accepted" : "rejected");
  w.key("code");
  w.string(answer_code_name(code));
  w.key("message");
  w.string(message);
  w.key("customerId");
  if (customer_id) {
    customer_id->to_chars(id);
    w.string(std::string_view(id, 36));
  } else {
    w.raw("null");
  }
  w.key("events");
  w.begin_array();
  for (const auto& [type, seq] : events) {
    w.begin_object();
    w.key("type");
    w.string(event_type_name(type));
    w.key("seq");
    w.integer(seq.value);
    w.end_object();
  }
  w.end_array();
  w.key("timestamp");
  w.string(format_timestamp_millis(timestamp));
  w.end_object();
  return out;
}

std::string Answer::data_response_record() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["requestId"] = request_id ? nlohmann::ordered_json(request_id->to_string()) : nlohmann::ordered_json(nullptr);
  out["sourceService"] = source_service;
  out["action"] = action;
  out["status"] = accepted() ? "accepted" : "rejected";
  out["code"] = answer_code_name(code);
  out["message"] = message;
  out["customerId"] = customer_id ? nlohmann::ordered_json(customer_id->to_string()) : nlohmann::ordered_json(nullptr);
  if (data.is_object()) {
    for (const auto& [part, value] : data.items()) out[part] = value;
  }
  out["timestamp"] = format_timestamp_millis(timestamp);
  return out.dump();
}

Answer refusal(AnswerCode code, std::string message, std::optional<Uuid> request_id, std::string source_service,
               std::string action) {
  Answer a;
  a.request_id = request_id;
  a.source_service = std::move(source_service);
  a.action = std::move(action);
  a.code = code;
  a.message = std::move(message);
  a.timestamp = Timestamp::now();
  return a;
}

// What the handler learnt of the request's entities on the way.
struct CommandHandler::Context {
  std::optional<CustomerState> customer;
  std::optional<UserState> user;
  std::optional<SubscriptionState> subscription;
  std::optional<TokenAccount> tokens;
  Uuid customer_id;
  std::optional<Uuid> entity_id;  // the user's or the subscription's
};

CommandHandler::CommandHandler(EventLog& log, ProjectionEngine& engine, const AuthorizationMatrix& matrix,
                               std::function<Timestamp()> clock)
    : log_(log), engine_(engine), matrix_(matrix), clock_(std::move(clock)) {}

Answer CommandHandler::handle(const Request& request, const AnswerWrites& writes) {
  std::optional<NewEvent> event;
  Answer answer = decide(request, event);
  if (!event) return store(std::move(answer), writes);

  // The answer names the sequences the event gets: its side writes' values
  // are made by the log once they are known.
  std::vector<SideWrite> side_writes;
  struct Made {
    Answer answer;
    std::optional<std::vector<SideWrite>> writes;
  };
  auto made = std::make_shared<Made>(Made{answer, std::nullopt});
  if (writes) {
    side_writes = writes(answer);
    for (std::size_t i = 0; i < side_writes.size(); ++i) {
      if (!side_writes[i].value) continue;  // a delete stays one
      side_writes[i].value_after = [made, &writes, i, type = *request.kind->event](const AppendResult& r) {
        if (!made->writes) {
          made->answer.events = {{type, r.positions.front().seq}};
          made->answer.message = r.duplicate ? "already applied (a redelivered request)" : "applied";
          made->writes = writes(made->answer);
        }
        CS_ASSERT(i < made->writes->size() && (*made->writes)[i].value, "answer writes keep their shape");
        return *(*made->writes)[i].value;
      };
    }
  }
  auto appended = log_.append(std::span(&*event, 1), side_writes);
  if (!appended.ok()) {
    // Refused (a stream rule, an expected version): nothing was written; the
    // refusal is the answer. An I/O failure stores nothing at all.
    answer.code = code_for(appended.error());
    answer.message = request_message(appended.error().message());
    return store(std::move(answer), writes);
  }
  answer.events.emplace_back(*request.kind->event, appended->positions.front().seq);
  answer.message = appended->duplicate ? "already applied (a redelivered request)" : "applied";
  if (auto caught_up = engine_.catch_up(); !caught_up.ok()) {
    // The event and its answer are stored: the read models catch up on the next request.
    answer.message += " (projections behind: " + caught_up.error().message() + ")";
  }
  return answer;
}

Status CommandHandler::catch_up() {
  auto caught_up = engine_.catch_up();
  if (!caught_up.ok()) return caught_up.error();
  return {};
}

Answer CommandHandler::store(Answer answer, const AnswerWrites& writes) {
  if (!writes || answer.code == AnswerCode::unavailable) return answer;
  auto stored = log_.append({}, writes(answer));
  if (!stored.ok()) {
    answer.code = AnswerCode::unavailable;
    answer.message = "the answer could not be stored: " + stored.error().message();
  }
  return answer;
}

Answer CommandHandler::decide(const Request& request, std::optional<NewEvent>& event_out) {
  CS_ASSERT(request.kind != nullptr, "a parsed request has a kind");
  const RequestKind& kind = *request.kind;
  Answer answer = refusal(AnswerCode::accepted, "", request.request_id, request.source_service, std::string(kind.action));
  answer.timestamp = clock_();
  auto fail = [&](const Error& e) {
    answer.code = code_for(e);
    answer.message = request_message(e.message());
    return answer;
  };
  if (kind.event) {
    // A request seen before (a client's retry, a redelivery) gets its first
    // result again and applies nothing.
    auto earlier = log_.find_event(derived_uuid(request.request_id, "event"));
    if (!earlier.ok()) return fail(earlier.error());
    if (*earlier && (*earlier)->meta.source_service != request.source_service) {
      answer.code = AnswerCode::conflict;
      answer.message = "requestId " + request.request_id.to_string() + " was used by another service";
      return answer;
    }
    if (*earlier) {
      answer.customer_id = payload_customer_id((*earlier)->payload);
      answer.events.emplace_back((*earlier)->type(), (*earlier)->seq);
      answer.message = "already applied (a redelivered request)";
      return answer;
    }
  }
  if (auto caught_up = engine_.catch_up(); !caught_up.ok()) return fail(caught_up.error());

  Context context;
  const bool creates_customer = kind.event == EventType::customer_created;
  auto customer_id = entity_id(request, "customerId", creates_customer);
  if (!customer_id.ok()) return fail(customer_id.error());
  context.customer_id = *customer_id;
  answer.customer_id = *customer_id;
  // A command's rules read the customer's status, type and version only: its
  // personal fields stay sealed (a read opens them).
  auto customer = engine_.customer(*customer_id, kind.event ? ProjectionEngine::PersonalFields::kept_sealed
                                                            : ProjectionEngine::PersonalFields::opened);
  if (!customer.ok()) return fail(customer.error());
  context.customer = *customer;

  if (auto s = authorize(request, context); !s.ok()) return fail(s.error());
  if (!kind.event) return read(request, context);
  if (auto refused = check_rules(request, context)) {
    answer.code = refused->code;
    answer.message = request_message(refused->message);
    return answer;
  }
  auto event = build_event(request, context);
  if (!event.ok()) return fail(event.error());
  event_out = std::move(*event);
  return answer;
}

Status CommandHandler::authorize(const Request& request, Context& context) const {
  const RequestKind& kind = *request.kind;
  std::optional<CustomerType> type;
  if (context.customer) type = context.customer->customer_type;
  if (kind.event == EventType::customer_created) {
    if (auto* t = request_value(request, "customerType"); t && t->is_string()) {
      if (*t == "sme") type = CustomerType::sme;
      if (*t == "institution") type = CustomerType::institution;
    }
  }
  if (!kind.event) {
    for (const auto& part : request.include) {
      Resource resource = part == "customer" ? Resource::customer
                          : part == "users"  ? Resource::user
                          : part == "tokens" ? Resource::token
                                             : Resource::subscription;
      if (auto s = matrix_.check(request.source_service, resource, "read", type); !s.ok()) return s;
    }
    return {};
  }
  return matrix_.check(request.source_service, kind.resource, kind.permission, type);
}

std::optional<CommandHandler::Refusal> CommandHandler::check_rules(const Request& request, Context& c) const {
  auto s = check_entity_rules(request, c);
  if (!s.ok()) return Refusal{code_for(s.error()), s.error().message()};
  if (*request.kind->event != EventType::token_used) return std::nullopt;
  auto account = engine_.token_account(c.customer_id);
  if (!account.ok()) return Refusal{code_for(account.error()), account.error().message()};
  const std::int64_t balance = *account ? (*account)->balance : 0;
  const auto* amount = request_value(request, "amount");
  if (amount && amount->is_number_integer() && amount->get<std::int64_t>() > balance) {
    return Refusal{AnswerCode::insufficient_tokens, "customer " + c.customer_id.to_string() + " has " +
                                                        std::to_string(balance) + " tokens, the request uses " +
                                                        std::to_string(amount->get<std::int64_t>())};
  }
  return std::nullopt;
}

Status CommandHandler::check_entity_rules(const Request& request, Context& c) const {
  const RequestKind& kind = *request.kind;
  const EventType type = *kind.event;
  const std::string customer = "customer " + c.customer_id.to_string();
  if (type == EventType::customer_created) {
    if (c.customer) return conflict_error(customer + " exists already");
    return {};
  }
  if (!c.customer) return not_found_error(customer + " does not exist");
  if (c.customer->erased) return conflict_error(customer + " was erased: only reads are possible");
  // Erasure (GDPR): whatever the status, a deleted customer included.
  if (type == EventType::customer_erased) return {};
  const CustomerStatus status = c.customer->status;
  if (status == CustomerStatus::deleted) return conflict_error(customer + " is deleted: only reads are possible");
  auto must_be = [&](CustomerStatus wanted) -> Status {
    if (status == wanted) return {};
    return conflict_error(customer + " is " + std::string(status_name(status)) + ", not " +
                          std::string(status_name(wanted)));
  };
  switch (type) {
    case EventType::customer_validated: return must_be(CustomerStatus::pending);
    case EventType::customer_suspended: return must_be(CustomerStatus::validated);
    case EventType::customer_reactivated: return must_be(CustomerStatus::suspended);
    default: break;
  }
  const auto category = category_of(type);
  if (category != Category::user && category != Category::subscription) return {};
  const bool user = category == Category::user;
  const bool creation = type == EventType::user_created || type == EventType::subscription_created;
  auto id = entity_id(request, user ? "userId" : "subscriptionId", creation);
  if (!id.ok()) return id.error();
  c.entity_id = *id;
  const std::string what = std::string(user ? "user " : "subscription ") + id->to_string();
  std::optional<Uuid> owner;
  std::string state;
  if (user) {
    auto found = engine_.user(*id);
    if (!found.ok()) return found.error();
    if (*found) {
      owner = (*found)->customer_id;
      state = std::string(status_name((*found)->status));
    }
  } else {
    auto found = engine_.subscription(*id);
    if (!found.ok()) return found.error();
    if (*found) {
      owner = (*found)->customer_id;
      state = std::string(status_name((*found)->status));
    }
  }
  if (creation) return owner ? conflict_error(what + " exists already") : Status{};
  if (!owner) return not_found_error(what + " does not exist");
  if (*owner != c.customer_id) return conflict_error(what + " belongs to another customer");
  if (state == "deleted") return conflict_error(what + " is deleted");
  if ((type == EventType::subscription_cancelled || type == EventType::subscription_expired) && state != "active") {
    return conflict_error(what + " is " + state + ", not active");
  }
  if (type == EventType::subscription_renewed && state == "cancelled") return conflict_error(what + " is cancelled");
  return {};
}

Result<NewEvent> CommandHandler::build_event(const Request& request, const Context& c) const {
  const EventType type = *request.kind->event;
  nlohmann::json data = nlohmann::json::object();
  Payload shape = make_payload(type);
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        std::apply(
            [&](const auto&... f) {
              auto one = [&](std::string_view name) {
                if (name == "customerId") {
                  data["customerId"] = c.customer_id.to_string();
                } else if ((name == "userId" || name == "subscriptionId") && c.entity_id) {
                  data[std::string(name)] = c.entity_id->to_string();
                } else if (name == "usageId" && !request_value(request, name)) {
                  data["usageId"] = derived_uuid(request.request_id, "usageId").to_string();
                } else if (name == "updatedFields" && !request_value(request, name)) {
                  if (const auto* changes = request_value(request, "changes"); changes && changes->is_object()) {
                    auto& fields = data["updatedFields"] = nlohmann::json::array();
                    for (const auto& [key, value] : changes->items()) fields.push_back(key);
                  }
                } else if (const auto* value = request_value(request, name)) {
                  data[std::string(name)] = *value;
                }
              };
              (one(f.name), ...);
            },
            T::fields());
      },
      shape);
  auto payload = payload_from_json(type, data, current_schema_version(type));
  if (!payload.ok()) return payload.error();
  NewEvent e;
  e.id = derived_uuid(request.request_id, "event");
  e.timestamp = clock_();
  e.meta.source_service = request.source_service;
  e.meta.correlation_id = request.request_id;
  e.payload = std::move(*payload);
  // Status changes were checked against this version of the customer.
  if (category_of(type) == Category::customer && type != EventType::customer_created && c.customer) {
    e.expected = ExpectedVersion::exactly(StreamVersion(c.customer->version));
  }
  return e;
}

Answer CommandHandler::read(const Request& request, const Context& c) const {
  Answer answer = refusal(AnswerCode::accepted, "read", request.request_id, request.source_service,
                          std::string(request.kind->action));
  answer.timestamp = clock_();
  answer.customer_id = c.customer_id;
  if (!c.customer) {
    answer.code = AnswerCode::not_found;
    answer.message = "customer " + c.customer_id.to_string() + " does not exist";
    return answer;
  }
  auto fail = [&](const Error& e) {
    answer.code = code_for(e);
    answer.message = e.message();
    answer.data = nullptr;
    return answer;
  };
  answer.data = nlohmann::ordered_json::object();
  for (const auto& part : request.include) {
    if (part == "customer") {
      answer.data["customer"] = to_json(*c.customer);
    } else if (part == "tokens") {
      auto t = engine_.token_account(c.customer_id);
      if (!t.ok()) return fail(t.error());
      answer.data["tokens"] = *t ? to_json(**t) : nlohmann::ordered_json(nullptr);
    } else if (part == "users") {
      auto users = engine_.users_of(c.customer_id);
      if (!users.ok()) return fail(users.error());
      auto& list = answer.data["users"] = nlohmann::ordered_json::array();
      for (const auto& u : *users) list.push_back(to_json(u));
    } else {
      auto subs = engine_.subscriptions_of(c.customer_id);
      if (!subs.ok()) return fail(subs.error());
      auto& list = answer.data["subscriptions"] = nlohmann::ordered_json::array();
      for (const auto& s : *subs) list.push_back(to_json(s));
    }
  }
  return answer;
}

}  // namespace cs
