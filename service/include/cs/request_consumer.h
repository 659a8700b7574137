// The request consumer: the seven request topics (design.md), read from
// Kafka and handed one record at a time to a RequestProcessor.
//
// Kafka's committed offsets are never trusted: on every partition
// assignment the consumer seeks each partition to the offset stored in the
// log's database with the outcome of its last record (the beginning when
// none), so a record is applied once however often the process dies. The
// offsets are also committed to Kafka, asynchronously, for the operators'
// tools (consumer lag); nothing reads them back. Consumes read_committed:
// a request produced in an aborted transaction is never applied.
//
// Not thread-safe: one thread calls run().
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cs/error.h"
#include "cs/request_processor.h"

namespace cs {

struct RequestConsumerOptions {
  std::string brokers;
  std::string group_id = "customer-service";
  std::vector<std::string> topics;  // default: the request topics
  // Topic names as given; prefix added by the caller (--topic-prefix).
  int topic_partitions = 3;
  int replication_factor = 1;
  int poll_timeout_ms = 100;
  // Records handed to the processor at once, at most (what Kafka has ready).
  std::size_t batch_records_max = 512;
  int operation_timeout_ms = 30'000;
  // A record whose outcome cannot be stored is tried again this many times,
  // this far apart, then run() fails (the process restarts from the stored
  // offsets).
  std::size_t store_retries_max = 50;
  int store_retry_backoff_ms = 100;
  // run() returns once this is true (checked between records). Borrowed.
  const std::atomic<bool>* stop_requested = nullptr;
  // Called on the consumer's thread after each assignment, with the number
  // of partitions assigned.
  std::function<void(std::size_t partitions)> on_assigned;
  // Called on the consumer's thread after each record's outcome is stored.
  std::function<void(const ConsumedRecord&, const ProcessedRecord&, double seconds)> on_processed;
  // Called on the consumer's thread about every lag_interval_ms with each
  // assigned partition's lag (high watermark - next offset to consume).
  std::function<void(const std::string& topic, std::int32_t partition, std::int64_t lag)> on_lag;
  int lag_interval_ms = 1'000;
  // Called on the consumer's thread for Kafka errors it rides out.
  std::function<void(const std::string& message)> on_kafka_error;
  // Extra librdkafka consumer settings (key, value).
  std::vector<std::pair<std::string, std::string>> kafka_settings;
};

class RequestConsumer {
 public:
  // Creates the request topics that do not exist and subscribes. `processor`
  // is borrowed and must outlive the consumer. Errors: invalid_argument
  // (settings), retriable (broker unreachable), stopped (`stop_requested` was
  // set while waiting on the broker), fatal.
  static Result<std::unique_ptr<RequestConsumer>> open(RequestProcessor& processor, RequestConsumerOptions options);
  // Leaves the group.
  ~RequestConsumer();

  // Consumes until stop_requested. Ok when stopped; an error when a record's
  // outcome could not be stored after the retries, when stored offsets are
  // unreadable, or on a fatal Kafka error.
  Status run();

 private:
  struct Kafka;
  RequestConsumer(RequestProcessor& processor, RequestConsumerOptions options);
  Status process_with_retries(std::span<const ConsumedRecord> records);
  void report_lag();

  RequestProcessor& processor_;
  RequestConsumerOptions options_;
  std::unique_ptr<Kafka> kafka_;
};

}  // namespace cs
