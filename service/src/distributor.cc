#include "cs/distributor.h"

#include <librdkafka/rdkafka.h>

#include <unordered_map>

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
  ~Kafka() {
    if (producer) rd_kafka_destroy(producer);
  }
};

Distributor::Distributor(const EventLog& log, DistributorOptions options)
    : log_(log), options_(std::move(options)), kafka_(std::make_unique<Kafka>()) {}

Distributor::~Distributor() = default;

std::string Distributor::topic_for(std::string_view service, EventType type) const {
  return replace_all(replace_all(options_.topic_template, "{event}", event_type_name(type)), "{service}", service);
}

Result<std::unique_ptr<Distributor>> Distributor::open(const EventLog& log, DistributorOptions options) {
  if (options.brokers.empty()) return invalid_argument("distributor: no brokers given");
  if (options.message_timeout_ms >= options.transaction_timeout_ms) {
    return invalid_argument("distributor: message timeout must be below the transaction timeout");
  }
  std::unique_ptr<Distributor> d(new Distributor(log, std::move(options)));
  const auto& o = d->options_;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string error;
  bool ok = set(conf, "bootstrap.servers", o.brokers, error) && set(conf, "transactional.id", o.transactional_id, error) &&
            set(conf, "transaction.timeout.ms", std::to_string(o.transaction_timeout_ms), error) &&
            set(conf, "message.timeout.ms", std::to_string(o.message_timeout_ms), error) &&
            set(conf, "linger.ms", "5", error) && set(conf, "batch.num.messages", "10000", error);
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
  // Fences older producers with this transactional.id and aborts their open transaction.
  if (rd_kafka_error_t* e = rd_kafka_init_transactions(d->kafka_->producer, o.operation_timeout_ms)) {
    return to_error(classify(d->kafka_->producer, e, "distributor: init_transactions"));
  }
  if (auto s = d->read_checkpoint(); !s.ok()) return s.error();
  return d;
}

Status Distributor::create_topics() {
  std::vector<std::pair<std::string, bool>> topics;  // name, compacted
  for (const auto& rule : options_.routing.rules()) {
    for (EventType t : rule.events) topics.emplace_back(topic_for(rule.service, t), false);
  }
  topics.emplace_back(options_.full_log_topic, false);
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
  Status result = retriable_error("distributor: reading the checkpoint timed out");
  const int polls_max = options_.operation_timeout_ms / 100;
  for (int i = 0; i < polls_max; ++i) {
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

Result<std::optional<CustomerType>> Distributor::customer_type(const Uuid& customer) {
  if (auto it = customer_types_.find(customer); it != customer_types_.end()) return std::optional(it->second);
  auto first = log_.read_all({.stream = "customer-" + customer.to_string(), .limit = 1});
  if (!first.ok()) return first.error();
  if (first->empty()) return std::optional<CustomerType>();
  const auto* created = std::get_if<CustomerCreated>(&first->front().payload);
  if (!created) return std::optional<CustomerType>();
  if (customer_types_.size() >= options_.customer_type_cache_max) customer_types_.clear();
  customer_types_[customer] = created->customer_type;
  return std::optional(created->customer_type);
}

Result<std::uint64_t> Distributor::publish_to_head() {
  std::uint64_t published = 0;
  while (checkpoint_ < log_.head()) {
    Sequence to(std::min(log_.head().value, checkpoint_.value + options_.transaction_events_max));
    auto n = publish_range(checkpoint_.next(), to, std::nullopt, /*move_checkpoint=*/true);
    if (!n.ok()) return n.error();
    published += *n;
  }
  return published;
}

Result<std::uint64_t> Distributor::republish(Sequence from, Sequence to, const std::optional<std::string>& service) {
  std::uint64_t published = 0;
  to = std::min(to, log_.head());
  for (Sequence start = from; start <= to;) {
    Sequence end(std::min(to.value, start.value + options_.transaction_events_max - 1));
    auto n = publish_range(start, end, service, /*move_checkpoint=*/false);
    if (!n.ok()) return n.error();
    published += *n;
    start = end.next();
  }
  return published;
}

namespace {
// Aborts the open transaction, retrying while librdkafka says the abort itself
// may be retried (a broker that is down times it out).
Status abort_with_retries(rd_kafka_t* p, int timeout_ms, std::size_t retries_max) {
  for (std::size_t attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_abort_transaction(p, timeout_ms);
    if (!e) return {};
    TxnError error = classify(p, e, "abort_transaction");
    if (error.kind != TxnErrorKind::retriable || attempt >= retries_max) return to_error(error);
  }
}
}  // namespace

// One transaction: the events of [from, to], and the checkpoint when asked.
Result<std::uint64_t> Distributor::publish_range(Sequence from, Sequence to,
                                                 const std::optional<std::string>& only_service,
                                                 bool move_checkpoint) {
  rd_kafka_t* p = kafka_->producer;
  auto events = log_.read_all({.from_seq = from, .to_seq = to});
  if (!events.ok()) return events.error();
  if (rd_kafka_error_t* e = rd_kafka_begin_transaction(p)) return to_error(classify(p, e, "begin_transaction"));

  auto produce = [&](const std::string& topic, const std::string& key, const std::string& value,
                     const RecordedEvent* event) -> Status {
    for (int attempt = 0;; ++attempt) {
      rd_kafka_headers_t* headers = nullptr;
      if (event) {
        headers = rd_kafka_headers_new(5);
        std::string id = event->id.to_string(), seq = std::to_string(event->seq.value);
        std::string type(event_type_name(event->type())), schema = std::to_string(event->stored_schema_version);
        rd_kafka_header_add(headers, "eventId", -1, id.data(), static_cast<ssize_t>(id.size()));
        rd_kafka_header_add(headers, "seq", -1, seq.data(), static_cast<ssize_t>(seq.size()));
        rd_kafka_header_add(headers, "type", -1, type.data(), static_cast<ssize_t>(type.size()));
        rd_kafka_header_add(headers, "schemaVersion", -1, schema.data(), static_cast<ssize_t>(schema.size()));
        if (event->meta.correlation_id) {
          std::string c = event->meta.correlation_id->to_string();
          rd_kafka_header_add(headers, "correlationId", -1, c.data(), static_cast<ssize_t>(c.size()));
        }
      }
      rd_kafka_resp_err_t err = rd_kafka_producev(
          p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
      if (headers) rd_kafka_headers_destroy(headers);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= produce_queue_full_retries_max) {
        return retriable_error("produce to " + topic + ": " + rd_kafka_err2str(err));
      }
      rd_kafka_poll(p, 100);
    }
  };

  Status failed;
  std::uint64_t records = 0;
  std::vector<std::string> targets, values;
  for (const auto& e : *events) {
    const Uuid& customer = payload_customer_id(e.payload);
    std::string key = customer.to_string();
    std::optional<CustomerType> type;
    if (options_.routing.needs_customer_type(e.type())) {
      auto t = customer_type(customer);
      if (!t.ok()) {
        failed = t.error();
        break;
      }
      type = *t;
    }
    targets = options_.routing.targets(e.type(), type);
    if (only_service) std::erase_if(targets, [&](const std::string& s) { return s != *only_service; });
    published_values(e, targets, values);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (failed = produce(topic_for(targets[i], e.type()), key, values[i], &e); !failed.ok()) break;
      ++records;
    }
    if (!failed.ok()) break;
    if (!only_service) {
      if (failed = produce(options_.full_log_topic, key, format_event_line(e), &e); !failed.ok()) break;
    }
  }
  if (failed.ok() && move_checkpoint) {
    failed = produce(options_.checkpoint_topic, options_.transactional_id, std::to_string(to.value), nullptr);
  }
  if (!failed.ok()) {
    if (auto s = abort_with_retries(p, options_.operation_timeout_ms, options_.commit_retries_max); !s.ok()) {
      return s.error();
    }
    return failed.error();
  }
  for (std::size_t attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_commit_transaction(p, options_.operation_timeout_ms);
    if (!e) break;
    TxnError error = classify(p, e, "commit_transaction");
    if (error.kind == TxnErrorKind::retriable && attempt < options_.commit_retries_max) continue;
    if (error.kind == TxnErrorKind::retriable || error.kind == TxnErrorKind::abortable) {
      // Rewind: nothing of this transaction is visible, the checkpoint stays.
      if (auto s = abort_with_retries(p, options_.operation_timeout_ms, options_.commit_retries_max); !s.ok()) {
        return s.error();
      }
      return retriable_error(error.message + " (transaction aborted; the checkpoint stays at seq " +
                             std::to_string(checkpoint_.value) + ")");
    }
    return to_error(error);
  }
  if (move_checkpoint) checkpoint_ = to;
  return static_cast<std::uint64_t>(events->size());
}

}  // namespace cs
