// The customer-service daemon: one process runs the log, the projections,
// the request consumer and the distributor (design.md).
//
//   Kafka request topics ─► RequestConsumer ─► RequestProcessor ─► CommandHandler
//                                   │ events, answer, offset: one batch │
//                                   ▼                                   ▼
//                               event log + outbox ─► Distributor ─► Kafka (events, answers, DLQ)
//
// The consumer runs on the calling thread; the distributor on a thread of
// its own, woken after each stored outcome and at least every
// publish_interval_ms. Stopping (stop_requested): the consumer finishes the
// record in hand, the distributor gets drain_time_max_ms to publish what is
// stored, then aborts its open transaction; what is stored and not yet
// published goes out on the next start.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cs/error.h"

namespace cs {

struct DaemonOptions {
  std::filesystem::path data_dir;
  // Seals personal data (cs/personal_data.h); empty: beside the data dir
  // (default_master_key_file), created on the first start of a new store.
  std::filesystem::path master_key_file;
  std::string brokers;
  std::optional<std::string> services_file;  // required unless insecure
  bool insecure = false;                      // trust sourceService (development only)
  std::optional<std::string> authz_file;      // default: design.md's matrix
  std::optional<std::string> routing_file;    // default: design.md's routing
  std::string group_id = "customer-service";
  std::string transactional_id = "customer-service";
  // Prepended to every topic the daemon reads or writes (requests, answers,
  // events, checkpoints): several environments on one cluster.
  std::string topic_prefix;
  std::string topic_template = "{event}";
  int topic_partitions = 3;
  int replication_factor = 1;
  // The HTTP API, health and metrics (http_api.h); empty: none.
  std::string http_address = "127.0.0.1:8080";
  int publish_interval_ms = 100;
  int transaction_time_max_ms = 100;
  int transaction_settle_ms = 1;  // DistributorOptions::transaction_settle_ms
  int drain_time_max_ms = 5'000;
  int operation_timeout_ms = 30'000;
  // Borrowed; set from a signal handler to stop.
  const std::atomic<bool>* stop_requested = nullptr;
  // Called once the consumer has its first assignment and the distributor
  // its topics ("ready"), with the HTTP port (0 when no HTTP).
  std::function<void(int http_port)> on_ready;
  // Structured log lines: level ("info", "warn", "error"), event name,
  // fields. No personal data is ever passed. May be called from any of the
  // daemon's threads (calls are serialized).
  std::function<void(std::string_view level, std::string_view event, const nlohmann::json& fields)> log;
};

// Runs until stop_requested. Ok on a requested stop; an error naming what
// failed otherwise (the data dir is in use by another process, a file does
// not read, the store failed, the distributor was fenced).
Status run_daemon(const DaemonOptions& options);

}  // namespace cs
