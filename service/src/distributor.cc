#include "cs/distributor.h"

#include <librdkafka/rdkafka.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <thread>

#include "record_chunk.h"
#include "record_pipeline.h"

#include "cs/json_codec.h"
#include "cs/outbox.h"
#include "kafka_admin.h"
#include "kafka_errors.h"
#include "kafka_log.h"

namespace cs {
namespace {

constexpr int produce_queue_full_retries_max = 1'000;  // each waits up to 100 ms for deliveries
// The longest a blocking call to the broker waits before the stop flag is
// looked at again (the whole wait is still operation_timeout_ms).
constexpr int broker_wait_slice_ms = 500;

std::string replace_all(std::string text, std::string_view what, std::string_view with) {
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
  return text;
}

// The producer's and the topics' record size limit: the largest record plus
// the batch framing around it.
constexpr std::size_t message_max_bytes = limits::published_record_bytes_max + (16 << 10);

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
  // The first record Kafka refused for good since the last transaction began
  // (set by the delivery report callback, on the thread that polls).
  std::optional<std::string> refused;

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* kafka = static_cast<Kafka*>(opaque);
    if (!m->err || !is_permanent_record_error(m->err) || kafka->refused) return;
    std::string seq = "?";
    rd_kafka_headers_t* headers = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(headers, "seq", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && value) {
      seq = std::string(static_cast<const char*>(value), size);
    }
    kafka->refused = "Kafka refused the record of seq " + seq + " (" + std::to_string(m->len) + " bytes) for topic " +
                     rd_kafka_topic_name(m->rkt) + " for good: " + rd_kafka_err2str(m->err);
  }
  std::vector<rd_kafka_topic_t*> topics;  // by RecordPreparer topic index
  rd_kafka_topic_t* checkpoint_topic = nullptr;
  std::map<std::string, rd_kafka_topic_t*> outbox_topics;  // by name, made on first use
  ~Kafka() {
    for (auto* t : topics) rd_kafka_topic_destroy(t);
    for (auto& [name, t] : outbox_topics) {
      if (t) rd_kafka_topic_destroy(t);
    }
    if (checkpoint_topic) rd_kafka_topic_destroy(checkpoint_topic);
    if (producer) rd_kafka_destroy(producer);
  }
};

Distributor::Distributor(const EventLog& log, DistributorOptions options)
    : log_(log), options_(std::move(options)), kafka_(std::make_unique<Kafka>()) {
  preparer_ = std::make_unique<RecordPreparer>(
      log_, options_.routing, [&](const std::string& service, EventType t) { return topic_for(service, t); },
      options_.full_log_topic, options_.customer_type_cache_max, options_.keys_topic);
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
  route_kafka_logs(conf);
  std::string error;
  bool ok = set(conf, "bootstrap.servers", o.brokers, error) && set(conf, "transactional.id", o.transactional_id, error) &&
            set(conf, "transaction.timeout.ms", std::to_string(o.transaction_timeout_ms), error) &&
            set(conf, "message.timeout.ms", std::to_string(o.message_timeout_ms), error) &&
            set(conf, "linger.ms", std::to_string(o.linger_ms), error) &&
            set(conf, "retry.backoff.ms", std::to_string(o.retry_backoff_ms), error) &&
            set(conf, "batch.num.messages", "10000", error) &&
            set(conf, "message.max.bytes", std::to_string(message_max_bytes), error);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return invalid_argument("distributor: " + error);
  }
  char buf[512];
  rd_kafka_conf_set_opaque(conf, d->kafka_.get());
  rd_kafka_conf_set_dr_msg_cb(conf, Kafka::on_delivery);
  d->kafka_->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);
  if (!d->kafka_->producer) {
    rd_kafka_conf_destroy(conf);
    return fatal_error(std::string("distributor: cannot create producer: ") + buf);
  }
  if (auto s = d->create_topics(); !s.ok()) return s.error();
  if (auto s = d->check_checkpoint_topic(); !s.ok()) return s.error();
  for (const auto& name : d->preparer_->topics()) {
    d->kafka_->topics.push_back(rd_kafka_topic_new(d->kafka_->producer, name.c_str(), nullptr));
  }
  d->kafka_->checkpoint_topic = rd_kafka_topic_new(d->kafka_->producer, o.checkpoint_topic.c_str(), nullptr);
  // Fences older producers with this transactional.id and aborts their open transaction.
  // In slices, so that a stop is obeyed: a call that timed out may be made
  // again. The call after a timeout reports what the broker said meanwhile
  // (often CONCURRENT_TRANSACTIONS while it aborts a killed producer's
  // transaction): a retriable answer is asked again to the deadline.
  const auto init_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.operation_timeout_ms);
  for (;;) {
    rd_kafka_error_t* e = rd_kafka_init_transactions(d->kafka_->producer, broker_wait_slice_ms);
    if (!e) break;
    if (!rd_kafka_error_is_retriable(e) || std::chrono::steady_clock::now() >= init_deadline) {
      return to_error(classify(d->kafka_->producer, e, "distributor: init_transactions"));
    }
    rd_kafka_error_destroy(e);
    if (d->stop_requested()) return stopped_error("distributor: stopped while initializing transactions");
  }
  if (auto s = d->read_checkpoint(); !s.ok()) return s.error();
  return d;
}

Status Distributor::create_topics() {
  enum class Kind { events, checkpoints, keys, full_log };
  std::vector<std::pair<std::string, Kind>> names;
  for (const auto& name : preparer_->topics()) {
    names.emplace_back(name, name == options_.keys_topic       ? Kind::keys
                             : name == options_.full_log_topic ? Kind::full_log
                                                               : Kind::events);
  }
  for (const auto& name : options_.outbox_topics) names.emplace_back(name, Kind::events);
  names.emplace_back(options_.checkpoint_topic, Kind::checkpoints);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<TopicSpec> topics;
  for (const auto& [name, kind] : names) {
    // One partition for checkpoints: they are read back in full on start.
    TopicSpec t{.name = name, .partitions = kind == Kind::checkpoints ? 1 : options_.topic_partitions,
                .replication_factor = options_.replication_factor,
                .configs = {{"max.message.bytes", std::to_string(message_max_bytes)}}};
    if (kind == Kind::checkpoints || kind == Kind::keys) t.configs.emplace_back("cleanup.policy", "compact");
    if (kind == Kind::full_log) t.configs.emplace_back("retention.ms", "-1");
    topics.push_back(std::move(t));
  }
  auto s = cs::create_topics(kafka_->producer, topics, options_.operation_timeout_ms, options_.brokers,
                             options_.stop_requested);
  if (!s.ok()) return Error(s.error().code(), "distributor: " + s.error().message(), s.error().cause());
  return {};
}

namespace {

// A consumer of the checkpoint topic with the given isolation level.
rd_kafka_t* checkpoint_consumer(const DistributorOptions& o, const char* isolation, std::string& error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  route_kafka_logs(conf);
  bool ok = set(conf, "bootstrap.servers", o.brokers, error) &&
            set(conf, "group.id", o.transactional_id + ".checkpoint-reader", error) &&
            set(conf, "isolation.level", isolation, error) && set(conf, "enable.partition.eof", "true", error) &&
            set(conf, "enable.auto.commit", "false", error);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  char buf[512];
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
  if (!consumer) error = buf;
  return consumer;
}

// The checkpoint a record holds: a decimal sequence, nothing else.
struct Checkpoint {
  Sequence seq;
  std::uint64_t outbox = 0;
};

// "<seq>" or "<seq>/<outbox seq>": decimal numbers, nothing else.
Result<Checkpoint> parse_checkpoint(const rd_kafka_message_t* m, const std::string& topic) {
  std::string where = "distributor: checkpoint topic " + topic + " offset " + std::to_string(m->offset) + ": ";
  if (m->payload == nullptr) {
    return corruption_error(where + "a tombstone deletes this distributor's checkpoint; without it the whole log "
                                    "would be published again. Restore it, or publish under a new transactional id");
  }
  std::string_view text(static_cast<const char*>(m->payload), m->len);
  auto number = [](std::string_view digits, std::uint64_t& out) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return ec == std::errc() && end == digits.data() + digits.size() && !digits.empty();
  };
  Checkpoint c;
  const auto slash = text.find('/');
  std::uint64_t seq = 0;
  if (!number(text.substr(0, slash), seq) ||
      (slash != std::string_view::npos && !number(text.substr(slash + 1), c.outbox))) {
    return corruption_error(where + "\"" + printable(text.substr(0, 40)) + "\" is not a sequence number" +
                            " (nor \"<seq>/<outbox seq>\")");
  }
  c.seq = Sequence(seq);
  return c;
}

}  // namespace

// The checkpoint topic must keep this distributor's last record for ever and
// in order: one partition, compacted. Anything else would lose it (delete
// policy) or split it (several partitions): refused, naming what to fix.
Status Distributor::check_checkpoint_topic() {
  const std::string& name = options_.checkpoint_topic;
  // A topic just created shows in the metadata only after a moment.
  int partitions = 0;
  rd_kafka_resp_err_t topic_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.operation_timeout_ms);
  do {
    if (stop_requested()) return stopped_error("distributor: stopped while reading the metadata of " + name);
    const rd_kafka_metadata_t* metadata = nullptr;
    rd_kafka_topic_t* handle = rd_kafka_topic_new(kafka_->producer, name.c_str(), nullptr);
    auto err = rd_kafka_metadata(kafka_->producer, 0, handle, &metadata, broker_wait_slice_ms);
    rd_kafka_topic_destroy(handle);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
      topic_error = err;
      continue;  // to the deadline's check
    }
    if (err) return retriable_error("distributor: metadata of " + name + ": " + rd_kafka_err2str(err));
    topic_error = metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    partitions = metadata->topic_cnt == 1 ? metadata->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(metadata);
    if (!topic_error && partitions > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  if (topic_error || partitions == 0) {
    return retriable_error("distributor: checkpoint topic " + name + " is not ready: " + rd_kafka_err2str(topic_error));
  }
  if (partitions != 1) {
    return invalid_argument("distributor: checkpoint topic " + name + " has " + std::to_string(partitions) +
                            " partitions; it needs exactly 1 (give another --checkpoint-topic or recreate it)");
  }

  char buf[512];
  rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(kafka_->producer);
  rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(kafka_->producer, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(admin, options_.operation_timeout_ms, buf, sizeof buf);
  rd_kafka_DescribeConfigs(kafka_->producer, &resource, 1, admin, queue);
  bool stopped = false;
  rd_kafka_event_t* event = poll_or_stop(queue, options_.operation_timeout_ms + 5'000, options_.stop_requested, stopped);
  Status result = stopped ? stopped_error("distributor: stopped while describing " + name)
                          : retriable_error("distributor: describing " + name + " timed out");
  if (event && rd_kafka_event_error(event)) {
    result = retriable_error("distributor: describing " + name + ": " + rd_kafka_event_error_string(event));
  } else if (event) {
    std::size_t n = 0;
    const auto** resources = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &n);
    std::string policy;
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t entries_n = 0;
      const auto** entries = rd_kafka_ConfigResource_configs(resources[i], &entries_n);
      for (std::size_t j = 0; j < entries_n; ++j) {
        if (std::string_view(rd_kafka_ConfigEntry_name(entries[j])) == "cleanup.policy" &&
            rd_kafka_ConfigEntry_value(entries[j])) {
          policy = rd_kafka_ConfigEntry_value(entries[j]);
        }
      }
    }
    result = policy.find("compact") != std::string::npos && policy.find("delete") == std::string::npos
                 ? Status{}
                 : Status(invalid_argument("distributor: checkpoint topic " + name + " has cleanup.policy=" +
                                           (policy.empty() ? "(unknown)" : policy) +
                                           "; it needs compact, or the checkpoint is eventually deleted"));
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_queue_destroy(queue);
  rd_kafka_ConfigResource_destroy(resource);
  return result;
}

// The last committed checkpoint of this transactional.id, read with
// read_committed from the start of the compacted topic to its end. A
// read_committed reader stops at the last stable offset: another producer's
// open transaction on the topic would hide checkpoints committed after it
// began, and resuming from the older one would publish events twice. So the
// read must reach the topic's high watermark (read uncommitted) as it was
// before reading; while it cannot, the checkpoint is not trusted.
Status Distributor::read_checkpoint() {
  std::string error;
  std::int64_t low = 0, high = 0;
  {
    rd_kafka_t* probe = checkpoint_consumer(options_, "read_uncommitted", error);
    if (!probe) return fatal_error("distributor: checkpoint reader: " + error);
    // A topic just created has no leader for a moment: ask again until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.operation_timeout_ms);
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_query_watermark_offsets(probe, options_.checkpoint_topic.c_str(), 0, &low, &high,
                                                   broker_wait_slice_ms)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
           std::chrono::steady_clock::now() < deadline && !stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    rd_kafka_destroy(probe);
    if (err && stop_requested()) return stopped_error("distributor: stopped while reading the checkpoint");
    if (err) return retriable_error("distributor: end of " + options_.checkpoint_topic + ": " + rd_kafka_err2str(err));
  }
  rd_kafka_t* consumer = checkpoint_consumer(options_, "read_committed", error);
  if (!consumer) return fatal_error("distributor: checkpoint reader: " + error);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, options_.checkpoint_topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(consumer, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  std::int64_t stable_end = -1;  // where the read_committed reader last found the end
  Status result;
  bool done = false;
  // A time limit, not a poll count: every poll that returns a record counts
  // too, and the topic holds one record per transaction until compacted.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.operation_timeout_ms);
  while (!done && result.ok()) {
    if (stop_requested()) {
      result = stopped_error("distributor: stopped while reading the checkpoint");
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      result = retriable_error(
          "distributor: reading the checkpoint topic " + options_.checkpoint_topic + " timed out after " +
          std::to_string(options_.operation_timeout_ms) + " ms: committed reads end at offset " +
          std::to_string(stable_end) + " but the topic ends at " + std::to_string(high) +
          (stable_end >= 0 && stable_end < high ? " (another producer holds a transaction open on it; a checkpoint "
                                                  "behind it may be newer, so none is trusted yet)"
                                                : ""));
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      stable_end = m->offset;
      done = stable_end >= high;
    } else if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__TRANSPORT && m->err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        result = retriable_error(std::string("distributor: reading the checkpoint: ") + rd_kafka_message_errstr(m));
      }
    } else if (m->key_len == options_.transactional_id.size() &&
               std::memcmp(m->key, options_.transactional_id.data(), m->key_len) == 0) {
      auto read = parse_checkpoint(m, options_.checkpoint_topic);
      if (read.ok()) {
        checkpoint_ = read->seq;
        outbox_checkpoint_ = read->outbox;
      } else {
        result = read.error();
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  if (result.ok() && !options_.outbox_family.empty()) {
    auto outbox_head = log_.side_sequence_head(options_.outbox_family);
    if (!outbox_head.ok()) return outbox_head.error();
    if (outbox_checkpoint_ > *outbox_head) {
      return fatal_error("distributor: Kafka says outbox record " + std::to_string(outbox_checkpoint_) +
                         " was published but this outbox ends at " + std::to_string(*outbox_head) +
                         ": another store published under this transactional.id");
    }
  }
  if (result.ok() && checkpoint_ > log_.head()) {
    return fatal_error("distributor: Kafka says seq " + std::to_string(checkpoint_.value) +
                       " was published but this log ends at " + std::to_string(log_.head().value) +
                       ": another log published under this transactional.id");
  }
  return result;
}

Result<std::uint64_t> Distributor::publish_to_head() {
  // The outbox's end first: an answer stored by then was stored with its
  // events, so the log's head read after it covers them, and no answer is
  // sent before the events it names.
  std::uint64_t outbox_head = 0;
  if (!options_.outbox_family.empty()) {
    auto h = log_.side_sequence_head(options_.outbox_family);
    if (!h.ok()) return h.error();
    outbox_head = *h;
  }
  Sequence head = log_.head();
  if (checkpoint_ >= head && outbox_checkpoint_ >= outbox_head) return std::uint64_t{0};
  return publish_range(checkpoint_.next(), head, std::nullopt, /*move_checkpoint=*/true,
                       std::max(outbox_head, outbox_checkpoint_));
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
Status produce(rd_kafka_t* p, rd_kafka_topic_t* topic, std::string_view key, std::optional<std::string_view> value,
               rd_kafka_headers_t* headers, const std::atomic<bool>* stop_requested) {
  // No value: a tombstone.
  char* value_bytes = value ? const_cast<char*>(value->data()) : nullptr;
  const std::size_t value_size = value ? value->size() : 0;
  for (int attempt = 0;; ++attempt) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(value_bytes, value_size),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    const bool stop = stop_requested && stop_requested->load();
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= produce_queue_full_retries_max || stop) {
      if (headers) rd_kafka_headers_destroy(headers);
      std::string what = std::string("produce to ") + rd_kafka_topic_name(topic) + " (" +
                         std::to_string(value_size) + " bytes): " + rd_kafka_err2str(err);
      if (stop) return stopped_error("distributor: stopped while Kafka's queue was full");
      if (is_permanent_record_error(err)) return invalid_argument(what);
      return retriable_error(what);
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
                                                 bool move_checkpoint, std::uint64_t outbox_to) {
  using clock = std::chrono::steady_clock;
  rd_kafka_t* p = kafka_->producer;
  // The callers read `to` and `outbox_to` from the log's heads; appends may
  // be visible there before they are durable (Durability::deferred). One
  // WAL sync now, and nothing published would be lost by a power loss.
  if (auto s = log_.sync_wal(); !s.ok()) return s.error();
  std::optional<RecordPipeline> pipeline;
  if (from <= to) {
    pipeline.emplace(log_, *preparer_, from, to, only_service, distributor_chunk_events,
                     options_.transaction_events_max);
  }

  bool open = false;
  std::size_t events_in_transaction = 0;
  Sequence last_in_transaction = checkpoint_;
  std::uint64_t outbox_last_in_transaction = outbox_checkpoint_;
  clock::time_point started;
  std::uint64_t published = 0;

  std::optional<clock::time_point> commit_started;
  auto seconds_since = [&](clock::time_point t) { return std::chrono::duration<double>(options_.clock() - t).count(); };
  auto abort_and_fail = [&](Error error) -> Error {
    if (open) {
      if (options_.on_transaction) {
        options_.on_transaction(false, seconds_since(started), commit_started ? seconds_since(*commit_started) : 0.0);
      }
      auto aborted = abort_with_retries(p, options_.operation_timeout_ms, options_.commit_retries_max);
      last_transaction_end_ = std::chrono::steady_clock::now();
      if (!aborted.ok()) return aborted.error();
    }
    return error;
  };
  auto commit = [&]() -> Status {
    commit_started = options_.clock();
    if (move_checkpoint) {
      std::string seq = std::to_string(last_in_transaction.value);
      // A distributor without an outbox keeps the outbox part it found.
      if (!options_.outbox_family.empty() || outbox_checkpoint_ > 0) {
        seq += "/" + std::to_string(outbox_last_in_transaction);
      }
      if (auto s = produce(p, kafka_->checkpoint_topic, options_.transactional_id, seq, nullptr, nullptr); !s.ok()) {
        return abort_and_fail(s.error());
      }
    }
    for (std::size_t attempt = 0;; ++attempt) {
      rd_kafka_error_t* e = rd_kafka_commit_transaction(p, options_.operation_timeout_ms);
      if (!e) break;
      TxnError error = classify(p, e, "commit_transaction");
      if (kafka_->refused) {
        // A record the broker refuses for good fails every retry the same way.
        return abort_and_fail(invalid_argument("distributor: " + *kafka_->refused +
                                               " (transaction aborted; the checkpoint stays at seq " +
                                               std::to_string(checkpoint_.value) + ")"));
      }
      if (error.kind == TxnErrorKind::retriable && attempt < options_.commit_retries_max) continue;
      if (error.kind == TxnErrorKind::retriable || error.kind == TxnErrorKind::abortable) {
        // Rewind: nothing of this transaction is visible, the checkpoint stays.
        return abort_and_fail(retriable_error(error.message + " (transaction aborted; the checkpoint stays at seq " +
                                              std::to_string(checkpoint_.value) + ")"));
      }
      return to_error(error);
    }
    open = false;
    last_transaction_end_ = std::chrono::steady_clock::now();
    if (options_.on_transaction) options_.on_transaction(true, seconds_since(started), seconds_since(*commit_started));
    if (move_checkpoint) {
      checkpoint_ = last_in_transaction;
      outbox_checkpoint_ = outbox_last_in_transaction;
    }
    published += events_in_transaction;
    return {};
  };

  auto produce_outbox = [&](std::uint64_t seq, const OutboxRecord& record) -> Status {
    auto [it, fresh] = kafka_->outbox_topics.try_emplace(record.topic, nullptr);
    if (fresh) it->second = rd_kafka_topic_new(p, record.topic.c_str(), nullptr);
    if (!it->second) return invalid_argument("distributor: outbox record " + std::to_string(seq) + ": topic " +
                                             printable(record.topic) + ": " + rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_headers_t* headers = rd_kafka_headers_new(record.headers.size() + 1);
    for (const auto& [name, value] : record.headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
    const std::string outbox_seq = std::to_string(seq);
    rd_kafka_header_add(headers, "outboxSeq", -1, outbox_seq.data(), static_cast<ssize_t>(outbox_seq.size()));
    const std::int32_t partition = record.partition ? *record.partition : RD_KAFKA_PARTITION_UA;
    for (int attempt = 0;; ++attempt) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          p, RD_KAFKA_V_RKT(it->second), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_KEY(record.key.empty() ? nullptr : record.key.data(), record.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= produce_queue_full_retries_max) {
        rd_kafka_headers_destroy(headers);
        std::string what = "distributor: outbox record " + outbox_seq + " to " + printable(record.topic) + ": " +
                           rd_kafka_err2str(err);
        return is_permanent_record_error(err) ? Status(invalid_argument(what)) : Status(retriable_error(what));
      }
      rd_kafka_poll(p, 100);
    }
  };
  auto begin = [&]() -> Status {
    if (last_transaction_end_ && options_.transaction_settle_ms > 0) {
      const auto settled = *last_transaction_end_ + std::chrono::milliseconds(options_.transaction_settle_ms);
      if (settled > std::chrono::steady_clock::now()) std::this_thread::sleep_until(settled);
    }
    if (rd_kafka_error_t* e = rd_kafka_begin_transaction(p)) return to_error(classify(p, e, "begin_transaction"));
    open = true;
    commit_started.reset();
    kafka_->refused.reset();
    events_in_transaction = 0;
    started = options_.clock();
    return {};
  };

  RecordChunk chunk;
  while (pipeline && pipeline->next(chunk)) {
    if (stop_requested()) {
      return abort_and_fail(stopped_error("distributor: stopped; the open transaction was aborted, the checkpoint "
                                          "stays at seq " + std::to_string(checkpoint_.value)));
    }
    if (open && events_in_transaction + chunk.event_count > options_.transaction_events_max) {
      if (auto s = commit(); !s.ok()) return s.error();
    }
    if (!open) {
      if (auto s = begin(); !s.ok()) return s.error();
    }
    Status failed;
    for (const auto& r : chunk.records) {
      const auto& event = chunk.events[r.event];
      // librdkafka owns the headers once the record is accepted: one set per record.
      failed = produce(p, kafka_->topics[r.topic], chunk.key(event),
                       r.tombstone ? std::nullopt : std::optional<std::string_view>(chunk.value(r)),
                       event_headers(chunk, event), options_.stop_requested);
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
  if (pipeline && !pipeline->status().ok()) return abort_and_fail(pipeline->status().error());
  // The outbox, in the transaction that reached the head (and more when it
  // holds more than a transaction's worth).
  if (move_checkpoint && outbox_to > outbox_checkpoint_) {
    std::vector<std::pair<std::uint64_t, OutboxRecord>> batch;
    std::uint64_t next = outbox_checkpoint_ + 1;
    while (next <= outbox_to) {
      if (stop_requested()) {
        return abort_and_fail(stopped_error("distributor: stopped while publishing the outbox"));
      }
      batch.clear();
      Status read = log_.scan_side(options_.outbox_family, EventLog::sequenced_key(next),
                                   std::min<std::uint64_t>(outbox_to - next + 1, options_.transaction_events_max),
                                   [&](std::string_view key, std::string_view value) {
                                     const std::uint64_t seq = next + batch.size();
                                     if (key != EventLog::sequenced_key(seq)) return false;
                                     auto record = decode_outbox_record(value);
                                     if (!record.ok()) return false;
                                     batch.emplace_back(seq, std::move(*record));
                                     return true;
                                   });
      if (!read.ok()) return abort_and_fail(read.error());
      if (batch.empty()) {
        return abort_and_fail(corruption_error("distributor: outbox record " + std::to_string(next) +
                                               " is missing or does not decode"));
      }
      if (open && events_in_transaction + batch.size() > options_.transaction_events_max) {
        if (auto s = commit(); !s.ok()) return s.error();
      }
      if (!open) {
        if (auto s = begin(); !s.ok()) return s.error();
      }
      for (const auto& [seq, record] : batch) {
        if (auto s = produce_outbox(seq, record); !s.ok()) return abort_and_fail(s.error());
      }
      events_in_transaction += batch.size();
      outbox_last_in_transaction = batch.back().first;
      next = outbox_last_in_transaction + 1;
    }
  }
  if (open) {
    if (auto s = commit(); !s.ok()) return s.error();
  }
  return published;
}

}  // namespace cs
