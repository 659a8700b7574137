#include "cs/http_api.h"

#include <httplib.h>

#include <chrono>
#include <random>
#include <thread>

#include "cs/json_codec.h"
#include "cs/outbox.h"
#include "cs/read_models.h"
#include "cs/replay.h"
#include "cs/request.h"

namespace cs {

std::string_view openapi_yaml();  // generated from docs/openapi.yaml

namespace {

int http_status(AnswerCode code, bool creation) {
  switch (code) {
    case AnswerCode::accepted: return creation ? 201 : 200;
    case AnswerCode::unauthenticated: return 401;
    case AnswerCode::forbidden: return 403;
    case AnswerCode::invalid: return 400;
    case AnswerCode::not_found: return 404;
    case AnswerCode::conflict: return 409;
    case AnswerCode::insufficient_tokens: return 422;
    case AnswerCode::unavailable: return 503;
  }
  return 500;
}

int http_status(std::string_view code, bool creation) {
  for (auto c : {AnswerCode::accepted, AnswerCode::unauthenticated, AnswerCode::forbidden, AnswerCode::invalid,
                 AnswerCode::not_found, AnswerCode::conflict, AnswerCode::insufficient_tokens,
                 AnswerCode::unavailable}) {
    if (answer_code_name(c) == code) return http_status(c, creation);
  }
  return 500;
}

void reply_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void reply_error(httplib::Response& res, int status, std::string_view code, const std::string& message) {
  nlohmann::json body = {{"code", code}, {"message", message}};
  reply_json(res, status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::optional<Uuid> path_uuid(const httplib::Request& req, int index) {
  auto u = Uuid::parse(req.matches[index].str());
  if (u && u->is_nil()) return std::nullopt;
  return u;
}

Uuid random_uuid() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return Uuid::from_words(rng(), rng());
}

// One command route: the request topic and action it stands for.
struct CommandRoute {
  const char* method;
  const char* pattern;  // regex; group 1 is the path's id when any
  const char* name;     // the route as documented (metrics label)
  const char* topic;
  const char* action;
  const char* id_field;  // the field group 1 fills: customerId, userId, subscriptionId (or nullptr)
  bool creation;
};

const CommandRoute command_routes[] = {
    {"POST", R"(/v1/customers)", "/v1/customers", "customer.update.request", "create", nullptr, true},
    {"PATCH", R"(/v1/customers/([^/]+))", "/v1/customers/{id}", "customer.update.request", "update", "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/validate)", "/v1/customers/{id}/validate", "admin.customer.action", "validate",
     "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/suspend)", "/v1/customers/{id}/suspend", "admin.customer.action", "suspend",
     "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/reactivate)", "/v1/customers/{id}/reactivate", "admin.customer.action",
     "reactivate", "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/delete)", "/v1/customers/{id}/delete", "admin.customer.action", "delete",
     "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/erase)", "/v1/customers/{id}/erase", "admin.customer.action", "erase",
     "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/tokens/purchase)", "/v1/customers/{id}/tokens/purchase",
     "accounting.customer.request", "record_purchase", "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/tokens/allocate)", "/v1/customers/{id}/tokens/allocate",
     "admin.customer.action", "allocate_tokens", "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/tokens/use)", "/v1/customers/{id}/tokens/use", "mobile.user.action",
     "use_tokens", "customerId", false},
    {"POST", R"(/v1/customers/([^/]+)/users)", "/v1/customers/{id}/users", "mobile.user.action", "create_user",
     "customerId", true},
    {"PATCH", R"(/v1/users/([^/]+))", "/v1/users/{id}", "mobile.user.action", "update_user", "userId", false},
    {"DELETE", R"(/v1/users/([^/]+))", "/v1/users/{id}", "mobile.user.action", "delete_user", "userId", false},
    {"POST", R"(/v1/users/([^/]+)/reset-password)", "/v1/users/{id}/reset-password", "mobile.user.action",
     "reset_password", "userId", false},
    {"POST", R"(/v1/customers/([^/]+)/subscriptions)", "/v1/customers/{id}/subscriptions",
     "accounting.customer.request", "create_subscription", "customerId", true},
    {"POST", R"(/v1/subscriptions/([^/]+)/renew)", "/v1/subscriptions/{id}/renew", "accounting.customer.request",
     "renew_subscription", "subscriptionId", false},
    {"POST", R"(/v1/subscriptions/([^/]+)/cancel)", "/v1/subscriptions/{id}/cancel", "accounting.customer.request",
     "cancel_subscription", "subscriptionId", false},
    {"POST", R"(/v1/subscriptions/([^/]+)/expire)", "/v1/subscriptions/{id}/expire", "accounting.customer.request",
     "expire_subscription", "subscriptionId", false},
};

// The routes that need no command handler (method, documented path).
const std::pair<const char*, const char*> query_routes[] = {
    {"GET", "/healthz"},          {"GET", "/readyz"},
    {"GET", "/metrics"},          {"GET", "/openapi.yaml"},
    {"GET", "/v1/customers"},     {"GET", "/v1/customers/{id}"},
    {"GET", "/v1/customers/{id}/view"}, {"GET", "/v1/customers/{id}/tokens"},
    {"GET", "/v1/users/{id}"},    {"GET", "/v1/subscriptions/{id}"},
};

}  // namespace

std::vector<std::pair<std::string, std::string>> HttpApi::routes() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [method, path] : query_routes) out.emplace_back(method, path);
  for (const auto& r : command_routes) out.emplace_back(r.method, r.name);
  return out;
}

struct HttpApi::Impl {
  EventLog& log;
  ProjectionEngine& engine;
  CommandHandler& handler;
  std::mutex& decisions;
  const ServiceCredentials* credentials;
  const AuthorizationMatrix& matrix;
  Metrics& metrics;
  HttpApiOptions options;
  httplib::Server server;
  std::thread thread;
  int port = 0;

  Impl(EventLog& l, ProjectionEngine& e, CommandHandler& h, std::mutex& d, const ServiceCredentials* c,
       const AuthorizationMatrix& m, Metrics& mt, HttpApiOptions o)
      : log(l), engine(e), handler(h), decisions(d), credentials(c), matrix(m), metrics(mt), options(std::move(o)) {}

  // The calling service, or an error reply already written.
  std::optional<std::string> caller(const httplib::Request& req, httplib::Response& res) {
    if (!credentials) {
      auto service = req.get_header_value("X-Service");
      if (service.empty()) {
        reply_error(res, 401, "unauthenticated", "insecure mode: name the calling service in X-Service");
        return std::nullopt;
      }
      return service;
    }
    const std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view bearer = "Bearer ";
    if (auth.size() <= bearer.size() || auth.compare(0, bearer.size(), bearer) != 0) {
      reply_error(res, 401, "unauthenticated", "an Authorization: Bearer <token> header is required");
      return std::nullopt;
    }
    auto service = credentials->service_for_token(std::string_view(auth).substr(bearer.size()));
    if (!service) {
      reply_error(res, 401, "unauthenticated", "unknown bearer token");
      return std::nullopt;
    }
    return service;
  }

  template <typename F>
  void timed(const char* route, const httplib::Request& req, httplib::Response& res, F f) {
    const auto started = std::chrono::steady_clock::now();
    try {
      f(req, res);
    } catch (const std::exception& e) {
      reply_error(res, 500, "internal", std::string("unexpected: ") + e.what());
    }
    metrics.count_http(route, res.status,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }

  void command(const CommandRoute& route, const httplib::Request& req, httplib::Response& res) {
    auto service = caller(req, res);
    if (!service) return;
    nlohmann::json body = nlohmann::json::object();
    if (!req.body.empty()) {
      auto parsed = parse_json_document(req.body);
      if (!parsed.ok()) return reply_error(res, 400, "invalid", "the body is not JSON: " + parsed.error().message());
      if (!parsed->is_object()) return reply_error(res, 400, "invalid", "the body must be a JSON object");
      body = std::move(*parsed);
    }
    Uuid request_id = random_uuid();
    if (req.has_header("Idempotency-Key")) {
      auto key = Uuid::parse(req.get_header_value("Idempotency-Key"));
      if (!key || key->is_nil()) return reply_error(res, 400, "invalid", "Idempotency-Key must be a UUID");
      request_id = *key;
    }
    body["requestId"] = request_id.to_string();
    body["sourceService"] = *service;
    body["action"] = route.action;
    if (route.id_field) {
      auto id = path_uuid(req, 1);
      if (!id) return reply_error(res, 400, "invalid", std::string(route.id_field) + " in the path must be a UUID");
      body[route.id_field] = id->to_string();
      // A user's or a subscription's customer comes from the read models.
      if (std::string_view(route.id_field) != "customerId") {
        std::optional<Uuid> owner;
        if (std::string_view(route.id_field) == "userId") {
          auto u = engine.user(*id);
          if (!u.ok()) return reply_error(res, 503, "unavailable", u.error().message());
          if (*u) owner = (*u)->customer_id;
        } else {
          auto s = engine.subscription(*id);
          if (!s.ok()) return reply_error(res, 503, "unavailable", s.error().message());
          if (*s) owner = (*s)->customer_id;
        }
        if (!owner) return reply_error(res, 404, "not_found", std::string(route.id_field) + " " + id->to_string() +
                                                                  " does not exist");
        body["customerId"] = owner->to_string();
      }
    }
    const std::string text = body.dump();
    auto request = parse_request(route.topic, text);
    if (!request.ok()) return reply_error(res, 400, "invalid", request.error().message());

    std::lock_guard lock(decisions);
    const auto& id = request_id.bytes();
    const std::string key(reinterpret_cast<const char*>(id.data()), id.size());
    auto earlier = log.read_side(request_answers_family, key);
    if (!earlier.ok()) return reply_error(res, 503, "unavailable", earlier.error().message());
    if (*earlier) {
      auto first = decode_remembered_answer(**earlier);
      if (!first.ok()) return reply_error(res, 503, "unavailable", first.error().message());
      if (first->source_service != *service) {
        return reply_error(res, 409, "conflict", "Idempotency-Key " + request_id.to_string() +
                                                     " was used by another service");
      }
      auto answer = nlohmann::json::parse(first->answer.value, nullptr, false);
      const std::string code = answer.is_object() ? answer.value("code", "unavailable") : "unavailable";
      res.set_header("Idempotent-Replayed", "true");
      return reply_json(res, http_status(code, route.creation), first->answer.value);
    }
    const auto started = std::chrono::steady_clock::now();
    Answer answer = request->kind->event ? handler.handle(*request, [&](const Answer& a) {
      OutboxRecord record{.topic = options.topic_prefix + request_result_topic,
                          .key = a.customer_id ? a.customer_id->to_string() : a.request_id->to_string(),
                          .value = a.result_record()};
      return std::vector<SideWrite>{
          outbox_write(record),
          SideWrite{.family = request_answers_family, .key = key,
                    .value = encode_remembered_answer(a.source_service, record), .seal = true}};
    })
                                         : handler.handle(*request);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics.count_request("http", route.action, answer_code_name(answer.code), seconds);
    for (const auto& [type, seq] : answer.events) {
      if (answer.message != "applied") continue;
      metrics.count_events(event_type_name(type), 1);
      if (type == EventType::customer_erased && answer.customer_id) {
        // The destroyed key's bytes leave the disk now.
        if (auto purged = log.purge_erased_key(*answer.customer_id); !purged.ok()) {
          return reply_error(res, 503, "unavailable", "erased, but the key's range could not be compacted: " +
                                                          purged.error().message());
        }
      }
    }
    if (answer.accepted()) return reply_json(res, http_status(answer.code, route.creation), answer.result_record());
    reply_error(res, http_status(answer.code, route.creation), answer_code_name(answer.code), answer.message);
  }

  // Reads need `read` on the resource; nullopt when allowed (else replied).
  bool may_read(const std::string& service, Resource resource, httplib::Response& res) {
    if (auto s = matrix.check(service, resource, "read", std::nullopt); !s.ok()) {
      reply_error(res, 403, "forbidden", s.error().message());
      return false;
    }
    return true;
  }

  // ?asOf=ISO8601 and ?toSeq=N: the moment to read at (nullopt: now).
  // False when one is malformed (replied 400).
  bool point_in_time(const httplib::Request& req, httplib::Response& res, std::optional<FoldRange>& range) {
    if (!req.has_param("asOf") && !req.has_param("toSeq")) return true;
    range.emplace();
    if (req.has_param("asOf")) {
      range->as_of = parse_timestamp(req.get_param_value("asOf"));
      if (!range->as_of) {
        reply_error(res, 400, "invalid", "asOf must be an ISO 8601 UTC timestamp (2026-03-01T10:15:00Z)");
        return false;
      }
    }
    if (req.has_param("toSeq")) {
      const std::string text = req.get_param_value("toSeq");
      std::uint64_t seq = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
      if (ec != std::errc() || end != text.data() + text.size() || seq == 0) {
        reply_error(res, 400, "invalid", "toSeq must be a log sequence (a positive integer)");
        return false;
      }
      range->to_seq = Sequence(seq);
    }
    return true;
  }

  // The customer's view now (the read models) or at `range` (its streams
  // folded from the log); replied 503 / 404 when it cannot be given.
  std::optional<CustomerView> view_of(const Uuid& id, const std::optional<FoldRange>& range, httplib::Response& res) {
    if (!range) {
      auto view = engine.view(id);
      if (!view.ok()) return reply_error(res, 503, "unavailable", view.error().message()), std::nullopt;
      if (!view->customer) {
        return reply_error(res, 404, "not_found", "customer " + id.to_string() + " does not exist"), std::nullopt;
      }
      return std::move(*view);
    }
    auto view = customer_view_at(log, id, *range);
    if (!view.ok()) return reply_error(res, 503, "unavailable", view.error().message()), std::nullopt;
    if (!*view) return reply_error(res, 503, "unavailable", "the log has no customer index yet"), std::nullopt;
    if (!(*view)->customer) {
      return reply_error(res, 404, "not_found", "customer " + id.to_string() + " did not exist at that point"),
             std::nullopt;
    }
    return std::move(**view);
  }

  void routes() {
    server.set_payload_max_length(http_body_bytes_max);
    // A response is written in parts: without this, Nagle and the client's
    // delayed ACK hold each answer about 40 ms.
    server.set_tcp_nodelay(true);
    server.set_read_timeout(5, 0);
    server.set_write_timeout(5, 0);
    server.set_keep_alive_max_count(1'000);
    server.new_task_queue = [] { return new httplib::ThreadPool(http_threads); };
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const char* code = res.status == 404 ? "not_found" : res.status == 413 ? "too_large" : "invalid";
      reply_error(res, res.status, code, res.status == 404 ? "no such route" : "HTTP " + std::to_string(res.status));
    });

    server.Get("/healthz", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/healthz", req, res, [](const auto&, auto& r) { reply_json(r, 200, R"({"status":"up"})"); });
    });
    server.Get("/readyz", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/readyz", req, res, [this](const auto&, auto& r) {
        nlohmann::json ready = options.readiness ? options.readiness() : nlohmann::json{{"ready", true}};
        reply_json(r, ready.value("ready", false) ? 200 : 503, ready.dump());
      });
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/openapi.yaml", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/openapi.yaml", req, res, [](const auto&, auto& r) {
        r.set_content(std::string(openapi_yaml()), "application/yaml");
      });
    });

    for (const auto& route : command_routes) {
      auto run = [this, &route](const httplib::Request& req, httplib::Response& res) {
        timed(route.name, req, res, [&](const auto& q, auto& r) { command(route, q, r); });
      };
      std::string_view method = route.method;
      if (method == "POST") server.Post(route.pattern, run);
      if (method == "PATCH") server.Patch(route.pattern, run);
      if (method == "DELETE") server.Delete(route.pattern, run);
    }

    server.Get(R"(/v1/customers/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/customers/{id}", req, res, [this](const auto& q, auto& r) { customer(q, r, false); });
    });
    server.Get(R"(/v1/customers/([^/]+)/view)", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/customers/{id}/view", req, res, [this](const auto& q, auto& r) { customer(q, r, true); });
    });
    server.Get(R"(/v1/customers/([^/]+)/tokens)", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/customers/{id}/tokens", req, res, [this](const auto& q, auto& r) { tokens(q, r); });
    });
    server.Get("/v1/customers", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/customers", req, res, [this](const auto& q, auto& r) { list(q, r); });
    });
    server.Get(R"(/v1/users/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/users/{id}", req, res, [this](const auto& q, auto& r) { entity(q, r, true); });
    });
    server.Get(R"(/v1/subscriptions/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      timed("/v1/subscriptions/{id}", req, res, [this](const auto& q, auto& r) { entity(q, r, false); });
    });
  }

  void customer(const httplib::Request& req, httplib::Response& res, bool whole) {
    auto service = caller(req, res);
    if (!service || !may_read(*service, Resource::customer, res)) return;
    if (whole && (!may_read(*service, Resource::user, res) || !may_read(*service, Resource::subscription, res) ||
                  !may_read(*service, Resource::token, res))) {
      return;
    }
    auto id = path_uuid(req, 1);
    if (!id) return reply_error(res, 400, "invalid", "customerId in the path must be a UUID");
    std::optional<FoldRange> range;
    if (!point_in_time(req, res, range)) return;
    auto view = view_of(*id, range, res);
    if (!view) return;
    reply_json(res, 200, whole ? to_json(*view).dump() : to_json(*view->customer).dump());
  }

  void tokens(const httplib::Request& req, httplib::Response& res) {
    auto service = caller(req, res);
    if (!service || !may_read(*service, Resource::token, res)) return;
    auto id = path_uuid(req, 1);
    if (!id) return reply_error(res, 400, "invalid", "customerId in the path must be a UUID");
    std::optional<FoldRange> range;
    if (!point_in_time(req, res, range)) return;
    auto view = view_of(*id, range, res);
    if (!view) return;
    if (!view->tokens) {
      TokenAccount empty;
      empty.customer_id = *id;
      return reply_json(res, 200, to_json(empty).dump());
    }
    reply_json(res, 200, to_json(*view->tokens).dump());
  }

  void list(const httplib::Request& req, httplib::Response& res) {
    auto service = caller(req, res);
    if (!service || !may_read(*service, Resource::customer, res)) return;
    std::optional<CustomerStatus> status;
    std::optional<CustomerType> type;
    if (req.has_param("status") && !(status = parse_customer_status(req.get_param_value("status")))) {
      return reply_error(res, 400, "invalid", "status must be pending, validated, suspended or deleted");
    }
    if (req.has_param("type") && !(type = parse_customer_type(req.get_param_value("type")))) {
      return reply_error(res, 400, "invalid", "type must be sme or institution");
    }
    std::size_t limit = http_page_customers_default;
    if (req.has_param("limit")) {
      const std::string text = req.get_param_value("limit");
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > http_page_customers_max) {
        return reply_error(res, 400, "invalid", "limit must be between 1 and " +
                                                    std::to_string(http_page_customers_max));
      }
      limit = n;
    }
    std::optional<Uuid> after;
    if (req.has_param("after") && !(after = Uuid::parse(req.get_param_value("after")))) {
      return reply_error(res, 400, "invalid", "after must be a customerId (UUID)");
    }
    auto all = engine.customers(status, type);
    if (!all.ok()) return reply_error(res, 503, "unavailable", all.error().message());
    nlohmann::ordered_json out = {{"customers", nlohmann::ordered_json::array()}, {"next", nullptr}};
    for (const auto& c : *all) {
      if (after && !(*after < c.customer_id)) continue;
      if (out["customers"].size() == limit) {
        out["next"] = out["customers"].back()["customerId"];
        break;
      }
      out["customers"].push_back(to_json(c));
    }
    reply_json(res, 200, out.dump());
  }

  void entity(const httplib::Request& req, httplib::Response& res, bool user) {
    auto service = caller(req, res);
    if (!service || !may_read(*service, user ? Resource::user : Resource::subscription, res)) return;
    auto id = path_uuid(req, 1);
    if (!id) return reply_error(res, 400, "invalid", std::string(user ? "userId" : "subscriptionId") + " must be a UUID");
    if (user) {
      auto u = engine.user(*id);
      if (!u.ok()) return reply_error(res, 503, "unavailable", u.error().message());
      if (!*u) return reply_error(res, 404, "not_found", "user " + id->to_string() + " does not exist");
      return reply_json(res, 200, to_json(**u).dump());
    }
    auto s = engine.subscription(*id);
    if (!s.ok()) return reply_error(res, 503, "unavailable", s.error().message());
    if (!*s) return reply_error(res, 404, "not_found", "subscription " + id->to_string() + " does not exist");
    reply_json(res, 200, to_json(**s).dump());
  }
};

HttpApi::HttpApi(EventLog& log, ProjectionEngine& engine, CommandHandler& handler, std::mutex& decisions,
                 const ServiceCredentials* credentials, const AuthorizationMatrix& matrix, Metrics& metrics,
                 HttpApiOptions options)
    : impl_(std::make_unique<Impl>(log, engine, handler, decisions, credentials, matrix, metrics, std::move(options))) {
  impl_->routes();
}

HttpApi::~HttpApi() { stop(); }

Status HttpApi::start() {
  const std::string& address = impl_->options.address;
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return invalid_argument("--http " + address + ": expected host:port");
  const std::string host = address.substr(0, colon);
  int port = 0;
  auto [end, ec] = std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  if (ec != std::errc() || end != address.data() + address.size() || port < 0 || port > 65535) {
    return invalid_argument("--http " + address + ": the port must be a number from 0 to 65535");
  }
  if (port == 0) {
    impl_->port = impl_->server.bind_to_any_port(host.c_str());
  } else {
    impl_->port = impl_->server.bind_to_port(host.c_str(), port) ? port : -1;
  }
  if (impl_->port <= 0) return retriable_error("--http " + address + ": cannot listen there (in use?)");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return {};
}

void HttpApi::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

int HttpApi::port() const { return impl_->port; }

}  // namespace cs
