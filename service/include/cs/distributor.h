// The CustomerEventsDistributor: publishes the log to Kafka, exactly once.
//
// Every event goes to each service the routing gives it (one record per
// event and service, keyed by customerId so a customer's events keep their
// order) and to the full-log topic. Events are published in transactions of
// at most `transaction_events_max` events and `transaction_time_max_ms`; each
// transaction also writes the "published up to seq N" checkpoint to a
// compacted topic, so the checkpoint moves if and only if the events are
// visible to read_committed consumers. On open, init_transactions fences any
// older producer with the same transactional.id and aborts its open
// transaction; the checkpoint is then read back with read_committed.
//
// Records are prepared (read, decoded, routed, formatted) on a second thread
// while the calling thread produces and commits: see record_pipeline.h.
//
// Not thread-safe: one thread drives a distributor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cs/event_log.h"
#include "cs/routing.h"

namespace cs {

class RecordPreparer;

// Events per prepared chunk: small enough that the producer starts soon after
// a commit, big enough that handing chunks over costs nothing. A
// transaction's age is checked between chunks.
inline constexpr std::size_t distributor_chunk_events = 512;
// ... and a chunk is closed once its text passes this many bytes, so that a
// run of large events keeps memory bounded (chunks ahead x this).
inline constexpr std::size_t distributor_chunk_bytes_max = 16 << 20;

struct DistributorOptions {
  std::string brokers;                                     // "127.0.0.1:19092"
  std::string transactional_id = "customer-service-distributor";
  std::string topic_template = "{event}";                  // or "{service}.{event}"
  // Every event in its stored form (sealed personal fields stay sealed),
  // kept for good (retention.ms = -1 when the distributor creates it): what
  // csctl restore rebuilds a log from.
  std::string full_log_topic = "customer-service.events";
  // Compacted: each customer's data key, wrapped by the master key, sent in
  // the transaction of its first sealed event of a run; a tombstone in the
  // transaction of its customer.erased. Empty: not published.
  std::string keys_topic = "customer-service.keys";
  std::string checkpoint_topic = "customer-service.distributor-checkpoints";
  int topic_partitions = 3;
  int replication_factor = 1;
  std::size_t transaction_events_max = 10'000;
  // A transaction is committed once this old even if it has fewer events, so
  // that a long catch-up moves the checkpoint regularly.
  int transaction_time_max_ms = 1'000;
  // Measures a transaction's age; tests pin it. Called on the publishing thread.
  std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;
  int transaction_timeout_ms = 60'000;
  int message_timeout_ms = 30'000;  // below the transaction timeout, as librdkafka requires
  int operation_timeout_ms = 30'000;
  std::size_t commit_retries_max = 5;
  std::size_t customer_type_cache_max = 1 << 18;
  // librdkafka producer settings (see docs/distributor.md for why these values).
  int linger_ms = 5;
  int retry_backoff_ms = 10;
  // The least time between a commit and the next transaction's begin. The
  // coordinator answers a commit before it has written the commit markers;
  // a partition added to the next transaction meanwhile is refused
  // (CONCURRENT_TRANSACTIONS) and librdkafka retries it only after a fixed
  // 20 ms. On a local broker the markers take about a millisecond, so a
  // short wait here saves that 20 ms on most back-to-back transactions
  // (docs/performance.md, "Back-to-back transactions"). 0: no wait.
  int transaction_settle_ms = 1;
  Routing routing = Routing::defaults();
  // The outbox (outbox.h) to publish with the log, empty for none: each
  // transaction that reaches the log's head also sends the outbox records
  // after the outbox checkpoint (at most transaction_events_max per
  // transaction), and the checkpoint record becomes "<seq>/<outbox seq>".
  std::string outbox_family;
  // Topics the outbox writes to, created at open like the event topics
  // (others, such as NestJS reply topics, are left to the broker).
  std::vector<std::string> outbox_topics;
  // Called after each transaction ends (metrics): committed or aborted,
  // seconds from its begin to its end, and of those the commit's (the
  // checkpoint record and Kafka's end of transaction, retries included; 0
  // for one aborted before its commit began).
  std::function<void(bool committed, double open_seconds, double commit_seconds)> on_transaction;
  // When set and true, publishing stops between chunks (and while waiting on
  // Kafka's queue or the checkpoint): the open transaction is aborted and the
  // call returns an error with cause `stopped`. Borrowed; may be set from a
  // signal handler.
  const std::atomic<bool>* stop_requested = nullptr;
};

class Distributor {
 public:
  // Creates the topics (existing ones are kept), initializes transactions and
  // reads the checkpoint. `log` is borrowed and must outlive the distributor.
  // Errors: retriable (broker unavailable), stopped (`stop_requested` was set
  // while waiting on the broker: obeyed within about a second), fatal
  // (fenced, misconfigured).
  static Result<std::unique_ptr<Distributor>> open(const EventLog& log, DistributorOptions options);
  ~Distributor();

  Sequence checkpoint() const { return checkpoint_; }
  // The last outbox record published (0: none).
  std::uint64_t outbox_checkpoint() const { return outbox_checkpoint_; }
  // Publishes every event after the checkpoint up to the log's head (as it
  // was when called), then the outbox records stored by then. Returns the
  // events and outbox records published. On a retriable error the
  // open transaction was aborted and the checkpoint stays where the last
  // committed transaction put it: call again (cause `stopped`: the caller
  // asked). On a fatal error destroy this distributor; a new one may be
  // opened unless the cause is `fenced`. invalid_argument: Kafka refused a
  // record for good (too large for an existing topic, not authorized): the
  // message names the seq and topic; retrying cannot help.
  Result<std::uint64_t> publish_to_head();
  // Sends seqs [from, to] again (only to `service` when given), in
  // transactions that do not move the checkpoint: a deliberate replay that
  // consumers de-duplicate by the `seq` header.
  Result<std::uint64_t> republish(Sequence from, Sequence to, const std::optional<std::string>& service);

  std::string topic_for(std::string_view service, EventType type) const;

 private:
  struct Kafka;
  Distributor(const EventLog& log, DistributorOptions options);
  Status create_topics();
  Status check_checkpoint_topic();
  Status read_checkpoint();
  bool stop_requested() const { return options_.stop_requested && options_.stop_requested->load(); }
  // Publishes [from, to] in as many transactions as the limits ask for.
  // With `outbox_to`, the outbox records after the outbox checkpoint up to
  // it follow the events (move_checkpoint only).
  Result<std::uint64_t> publish_range(Sequence from, Sequence to, const std::optional<std::string>& only_service,
                                      bool move_checkpoint, std::uint64_t outbox_to = 0);

  const EventLog& log_;
  DistributorOptions options_;
  std::unique_ptr<RecordPreparer> preparer_;
  std::unique_ptr<Kafka> kafka_;
  Sequence checkpoint_;
  std::uint64_t outbox_checkpoint_ = 0;
  // When the last transaction ended (committed or aborted), real time: what
  // transaction_settle_ms counts from.
  std::optional<std::chrono::steady_clock::time_point> last_transaction_end_;
};

}  // namespace cs
