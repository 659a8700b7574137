// The daemon's HTTP side (cpp-httplib): the same commands as the Kafka
// requests through the same command handler, queries of the read models,
// health, readiness and Prometheus metrics. Routes and bodies:
// docs/openapi.yaml (served at GET /openapi.yaml).
//
// Authentication: `Authorization: Bearer <token>`, one token per service in
// the --services file; the authorization matrix as on Kafka. An
// `Idempotency-Key` header (a UUID) plays the role of requestId: a retry gets
// the first answer. Status codes: 200/201 accepted, 400 invalid, 401
// unauthenticated, 403 forbidden, 404 not_found, 409 conflict, 422
// insufficient_tokens, 503 unavailable; error bodies {"code","message"}.
// /healthz, /readyz, /metrics and /openapi.yaml need no token.
//
// Thread safety: the server's threads serialize their decisions with the
// Kafka consumer's through the `decisions` mutex; queries run beside them.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/command_handler.h"
#include "cs/error.h"
#include "cs/event_log.h"
#include "cs/metrics.h"
#include "cs/projection_engine.h"
#include "cs/service_credentials.h"

namespace cs {

// A request body larger than this is refused (413) before it is read.
inline constexpr std::size_t http_body_bytes_max = 64 << 10;
// Threads serving HTTP connections.
inline constexpr int http_threads = 4;
// Customers per page of GET /v1/customers, at most (and by default).
inline constexpr std::size_t http_page_customers_max = 1'000;
inline constexpr std::size_t http_page_customers_default = 100;

struct HttpApiOptions {
  std::string address = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  std::string topic_prefix;                // of the answer records stored for Kafka
  // Readiness: {"ready": bool, …parts}; called by GET /readyz.
  std::function<nlohmann::json()> readiness;
};

class HttpApi {
 public:
  // Borrowed: all of them must outlive the API. `credentials` null: insecure,
  // the `X-Service` header names the caller.
  HttpApi(EventLog& log, ProjectionEngine& engine, CommandHandler& handler, std::mutex& decisions,
          const ServiceCredentials* credentials, const AuthorizationMatrix& matrix, Metrics& metrics,
          HttpApiOptions options);
  ~HttpApi();

  // Binds and serves on a thread of its own. invalid_argument for a bad
  // address, retriable when the port cannot be bound.
  Status start();
  void stop();
  int port() const;
  // Every route served, as (method, documented path with {id}): what
  // docs/openapi.yaml must describe.
  static std::vector<std::pair<std::string, std::string>> routes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cs
