#include "cs/distributor.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>

#include "record_chunk.h"
#include "record_pipeline.h"

#include "cs/json_codec.h"
#include "kafka_errors.h"

namespace cs {
namespace {

constexpr int produce_queue_full_retries_max = 1'000;  // each waits up to 100 ms for deliveries


std::string replace_all(std::string text, std::string_view what, std::string_view with) {
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
  return text;
}

bool set(rd_kafka_conf_t* conf, const char* key, const std::string& value, std::string& error) {
  char buf[512];
  if (rd_kafka_conf_set(conf, key, value.c_str(), buf, sizeof buf) != RD_KAFKA_CONF_OK) {
    error = std::string(key) + ": " + buf;
    return false;
  }
  return true;
}

}  // namespace

struct Distributor::Kafka {
  rd_kafka_t* producer = nullptr;
  std::vector<rd_kafka_topic_t*> topics;  // by RecordPreparer topic index
  rd_kafka_topic_t* checkpoint_topic = nullptr;
  ~Kafka() {
    for (auto* t : topics) rd_kafka_topic_destroy(t);
    if (checkpoint_topic) rd_kafka_topic_destroy(checkpoint_topic);
    if (producer) rd_kafka_destroy(producer);
  }
};

Distributor::Distributor(const EventLog& log, DistributorOptions options)
    : log_(log), options_(std::move(options)), kafka_(std::make_unique<Kafka>()) {
  preparer_ = std::make_unique<RecordPreparer>(
      log_, options_.routing, [&](const std::string& service, EventType t) { return topic_for(service, t); },
      options_.full_log_topic, options_.customer_type_cache_max);
}

Distributor::~Distributor() = default;

std::string Distributor::topic_for(std::string_view service, EventType type) const {
  return replace_all(replace_all(options_.topic_template, "{event}", event_type_name(type)), "{service}", service);
}

Result<std::unique_ptr<Distributor>> Distributor::open(const EventLog& log, DistributorOptions options) {
  if (options.brokers.empty()) return invalid_argument("distributor: no brokers given");
  if (options.message_timeout_ms >= options.transaction_timeout_ms) {
    return invalid_argument("distributor: message timeout must be below the transaction timeout");
  }
  if (options.transaction_events_max == 0) return invalid_argument("distributor: transaction_events_max must be >= 1");
  if (options.transaction_time_max_ms <= 0 || options.transaction_time_max_ms >= options.transaction_timeout_ms) {
    return invalid_argument("distributor: transaction_time_max_ms must be > 0 and below the transaction timeout");
  }
  std::unique_ptr<Distributor> d(new Distributor(log, std::move(options)));
  const auto& o = d->options_;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string error;
  bool ok = set(conf, "bootstrap.servers", o.brokers, error) && set(conf, "transactional.id", o.transactional_id, error) &&
            set(conf, "transaction.timeout.ms", std::to_string(o.transaction_timeout_ms), error) &&
            set(conf, "message.timeout.ms", std::to_string(o.message_timeout_ms), error) &&
            set(conf, "linger.ms", std::to_string(o.linger_ms), error) &&
            set(conf, "retry.backoff.ms", std::to_string(o.retry_backoff_ms), error) &&
            set(conf, "batch.num.messages", "10000", error);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return invalid_argument("distributor: " + error);
  }
  char buf[512];
  d->kafka_->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);
  if (!d->kafka_->producer) {
    rd_kafka_conf_destroy(conf);
    return fatal_error(std::string("distributor: cannot create producer: ") + buf);
  }
  if (auto s = d->create_topics(); !s.ok()) return s.error();
  for (const auto& name : d->preparer_->topics()) {
    d->kafka_->topics.push_back(rd_kafka_topic_new(d->kafka_->producer, name.c_str(), nullptr));
  }
  d->kafka_->checkpoint_topic = rd_kafka_topic_new(d->kafka_->producer, o.checkpoint_topic.c_str(), nullptr);
  // Fences older producers with this transactional.id and aborts their open transaction.
  if (rd_kafka_error_t* e = rd_kafka_init_transactions(d->kafka_->producer, o.operation_timeout_ms)) {
    return to_error(classify(d->kafka_->producer, e, "distributor: init_transactions"));
  }
  if (auto s = d->read_checkpoint(); !s.ok()) return s.error();
  return d;
}

Status Distributor::create_topics() {
  std::vector<std::pair<std::string, bool>> topics;  // name, compacted
  for (const auto& name : preparer_->topics()) topics.emplace_back(name, false);  // the full-log topic included
  topics.emplace_back(options_.checkpoint_topic, true);
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());

  std::vector<rd_kafka_NewTopic_t*> requests;
  char buf[512];
  for (const auto& [name, compacted] : topics) {
    // One partition for checkpoints: they are read back in full on start.
    auto* t = rd_kafka_NewTopic_new(name.c_str(), compacted ? 1 : options_.topic_partitions,
                                    options_.replication_factor, buf, sizeof buf);
    if (!t) return invalid_argument("distributor: topic " + name + ": " + buf);
    if (compacted) rd_kafka_NewTopic_set_config(t, "cleanup.policy", "compact");
    requests.push_back(t);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(kafka_->producer);
  rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(kafka_->producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(admin, options_.operation_timeout_ms, buf, sizeof buf);
  rd_kafka_CreateTopics(kafka_->producer, requests.data(), requests.size(), admin, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, options_.operation_timeout_ms + 5'000);
  Status result;
  if (!event) {
    result = retriable_error("distributor: creating topics timed out (is the broker at " + options_.brokers + " up?)");
  } else if (rd_kafka_event_error(event)) {
    result = retriable_error(std::string("distributor: creating topics: ") + rd_kafka_event_error_string(event));
  } else {
    std::size_t n = 0;
    const auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (std::size_t i = 0; i < n && result.ok(); ++i) {
      auto code = rd_kafka_topic_result_error(results[i]);
      if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        result = fatal_error(std::string("distributor: topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                             rd_kafka_err2str(code));
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_queue_destroy(queue);
  for (auto* t : requests) rd_kafka_NewTopic_destroy(t);
  return result;
}

// The last committed checkpoint of this transactional.id, read with
// read_committed from the start of the compacted topic to its end.
Status Distributor::read_checkpoint() {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string error;
  bool ok = set(conf, "bootstrap.servers", options_.brokers, error) &&
            set(conf, "group.id", options_.transactional_id + ".checkpoint-reader", error) &&
            set(conf, "isolation.level", "read_committed", error) &&
            set(conf, "enable.partition.eof", "true", error) && set(conf, "enable.auto.commit", "false", error);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return invalid_argument("distributor: " + error);
  }
  char buf[512];
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
  if (!consumer) return fatal_error(std::string("distributor: checkpoint reader: ") + buf);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, options_.checkpoint_topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(consumer, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  Status result = retriable_error("distributor: reading the checkpoint topic " + options_.checkpoint_topic +
                                  " to its end timed out after " + std::to_string(options_.operation_timeout_ms) +
                                  " ms");
  // A time limit, not a poll count: every poll that returns a record counts
  // too, and the topic holds one record per transaction until compacted.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.operation_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      result = {};
      break;
    }
    if (m->err) {
      rd_kafka_resp_err_t err = m->err;
      std::string what = rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) continue;
      result = retriable_error("distributor: reading the checkpoint: " + what);
      break;
    }
    std::string key(static_cast<const char*>(m->key), m->key_len);
    std::string value(static_cast<const char*>(m->payload), m->len);
    rd_kafka_message_destroy(m);
    if (key == options_.transactional_id) checkpoint_ = Sequence(std::stoull(value));
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  if (result.ok() && checkpoint_ > log_.head()) {
    return fatal_error("distributor: Kafka says seq " + std::to_string(checkpoint_.value) +
                       " was published but this log ends at " + std::to_string(log_.head().value) +
                       ": another log published under this transactional.id");
  }
  return result;
}

Result<std::uint64_t> Distributor::publish_to_head() {
  std::uint64_t published = 0;
  Sequence head = log_.head();
  if (checkpoint_ >= head) return published;
  return publish_range(checkpoint_.next(), head, std::nullopt, /*move_checkpoint=*/true);
}

Result<std::uint64_t> Distributor::republish(Sequence from, Sequence to, const std::optional<std::string>& service) {
  to = std::min(to, log_.head());
  if (from > to) return std::uint64_t{0};
  return publish_range(from, to, service, /*move_checkpoint=*/false);
}

namespace {
// Aborts the open transaction. An abort that fails without a fatal error
// (a broker that is down times it out; an earlier delivery failure may be
// reported again) is resumed by calling it again. One that still has not
// completed after `retries_max` calls leaves the producer in the middle of an
// abort, where begin_transaction would fail forever: that is reported as
// fatal, so that the caller opens a new producer, whose init_transactions
// aborts the transaction on the broker's side.
Status abort_with_retries(rd_kafka_t* p, int timeout_ms, std::size_t retries_max) {
  for (std::size_t attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_abort_transaction(p, timeout_ms);
    if (!e) return {};
    TxnError error = classify(p, e, "abort_transaction");
    if (error.kind == TxnErrorKind::fatal || error.kind == TxnErrorKind::fenced) return to_error(error);
    if (attempt >= retries_max) {
      return fatal_error(error.message + " (the abort did not complete after " + std::to_string(attempt + 1) +
                         " attempts: this producer must be replaced)");
    }
  }
}
}  // namespace

namespace {

// Produces one record, waiting (within a limit) while librdkafka's queue is
// full. Takes ownership of `headers` (may be null).
Status produce(rd_kafka_t* p, rd_kafka_topic_t* topic, std::string_view key, std::string_view value,
               rd_kafka_headers_t* headers) {
  for (int attempt = 0;; ++attempt) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= produce_queue_full_retries_max) {
      if (headers) rd_kafka_headers_destroy(headers);
      return retriable_error(std::string("produce to ") + rd_kafka_topic_name(topic) + ": " + rd_kafka_err2str(err));
    }
    rd_kafka_poll(p, 100);
  }
}

rd_kafka_headers_t* event_headers(const RecordChunk& chunk, const RecordChunk::Event& e) {
  rd_kafka_headers_t* h = rd_kafka_headers_new(5);
  auto add = [&](const char* name, std::string_view value) {
    rd_kafka_header_add(h, name, -1, value.data(), static_cast<ssize_t>(value.size()));
  };
  add("eventId", chunk.event_id(e));
  add("seq", chunk.seq(e));
  add("type", chunk.type(e));
  add("schemaVersion", chunk.schema_version(e));
  if (auto c = chunk.correlation_id(e)) add("correlationId", *c);
  return h;
}

}  // namespace

// The records of [from, to], prepared on the pipeline's thread, produced here
// in transactions of at most transaction_events_max events (chunks never
// straddle two) and transaction_time_max_ms. A failure aborts the open
// transaction; the ones committed before it stay, and so does the checkpoint
// they moved.
Result<std::uint64_t> Distributor::publish_range(Sequence from, Sequence to,
                                                 const std::optional<std::string>& only_service,
                                                 bool move_checkpoint) {
  using clock = std::chrono::steady_clock;
  rd_kafka_t* p = kafka_->producer;
  RecordPipeline pipeline(log_, *preparer_, from, to, only_service, distributor_chunk_events,
                          options_.transaction_events_max);

  bool open = false;
  std::size_t events_in_transaction = 0;
  Sequence last_in_transaction;
  clock::time_point started;
  std::uint64_t published = 0;

  auto abort_and_fail = [&](Error error) -> Error {
    if (open) {
      if (auto s = abort_with_retries(p, options_.operation_timeout_ms, options_.commit_retries_max); !s.ok()) {
        return s.error();
      }
    }
    return error;
  };
  auto commit = [&]() -> Status {
    if (move_checkpoint) {
      std::string seq = std::to_string(last_in_transaction.value);
      if (auto s = produce(p, kafka_->checkpoint_topic, options_.transactional_id, seq, nullptr); !s.ok()) {
        return abort_and_fail(s.error());
      }
    }
    for (std::size_t attempt = 0;; ++attempt) {
      rd_kafka_error_t* e = rd_kafka_commit_transaction(p, options_.operation_timeout_ms);
      if (!e) break;
      TxnError error = classify(p, e, "commit_transaction");
      if (error.kind == TxnErrorKind::retriable && attempt < options_.commit_retries_max) continue;
      if (error.kind == TxnErrorKind::retriable || error.kind == TxnErrorKind::abortable) {
        // Rewind: nothing of this transaction is visible, the checkpoint stays.
        return abort_and_fail(retriable_error(error.message + " (transaction aborted; the checkpoint stays at seq " +
                                              std::to_string(checkpoint_.value) + ")"));
      }
      return to_error(error);
    }
    open = false;
    if (move_checkpoint) checkpoint_ = last_in_transaction;
    published += events_in_transaction;
    return {};
  };

  RecordChunk chunk;
  while (pipeline.next(chunk)) {
    if (open && events_in_transaction + chunk.event_count > options_.transaction_events_max) {
      if (auto s = commit(); !s.ok()) return s.error();
    }
    if (!open) {
      if (rd_kafka_error_t* e = rd_kafka_begin_transaction(p)) return to_error(classify(p, e, "begin_transaction"));
      open = true;
      events_in_transaction = 0;
      started = options_.clock();
    }
    Status failed;
    for (const auto& r : chunk.records) {
      const auto& event = chunk.events[r.event];
      // librdkafka owns the headers once the record is accepted: one set per record.
      failed = produce(p, kafka_->topics[r.topic], chunk.key(event), chunk.value(r), event_headers(chunk, event));
      if (!failed.ok()) break;
    }
    if (!failed.ok()) return abort_and_fail(failed.error());
    events_in_transaction += chunk.event_count;
    last_in_transaction = chunk.last;
    if (events_in_transaction >= options_.transaction_events_max ||
        options_.clock() - started >= std::chrono::milliseconds(options_.transaction_time_max_ms)) {
      if (auto s = commit(); !s.ok()) return s.error();
    }
  }
  if (!pipeline.status().ok()) return abort_and_fail(pipeline.status().error());
  if (open) {
    if (auto s = commit(); !s.ok()) return s.error();
  }
  return published;
}

}  // namespace cs
