#include "cs/request_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "cs/request.h"
#include "kafka_admin.h"
#include "kafka_log.h"

namespace cs {

struct RequestConsumer::Kafka {
  rd_kafka_t* consumer = nullptr;
  RequestProcessor* processor = nullptr;
  const RequestConsumerOptions* options = nullptr;
  // Set by the rebalance callback when the stored offsets cannot be read:
  // consuming from anywhere else could apply a record twice.
  std::optional<Error> assign_failure;

  ~Kafka() {
    if (consumer) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) {
    auto* self = static_cast<Kafka*>(opaque);
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      rd_kafka_assign(rk, nullptr);
      return;
    }
    // Seek to what the log's database says was consumed.
    for (int i = 0; i < partitions->cnt; ++i) {
      auto& p = partitions->elems[i];
      auto stored = self->processor->stored_offset(p.topic, p.partition);
      if (!stored.ok()) {
        self->assign_failure = stored.error();
        rd_kafka_assign(rk, nullptr);
        return;
      }
      p.offset = *stored ? **stored : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, partitions);
    if (self->options->on_assigned) self->options->on_assigned(static_cast<std::size_t>(partitions->cnt));
  }
};

RequestConsumer::RequestConsumer(RequestProcessor& processor, RequestConsumerOptions options)
    : processor_(processor), options_(std::move(options)), kafka_(std::make_unique<Kafka>()) {}

RequestConsumer::~RequestConsumer() = default;

Result<std::unique_ptr<RequestConsumer>> RequestConsumer::open(RequestProcessor& processor,
                                                               RequestConsumerOptions options) {
  if (options.brokers.empty()) return invalid_argument("request consumer: no brokers given");
  if (options.topics.empty()) options.topics = request_topics();
  std::unique_ptr<RequestConsumer> c(new RequestConsumer(processor, std::move(options)));
  const auto& o = c->options_;
  c->kafka_->processor = &c->processor_;
  c->kafka_->options = &c->options_;

  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  route_kafka_logs(conf);
  char buf[512];
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", o.brokers},
      {"group.id", o.group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"isolation.level", "read_committed"},
      // A request over request_bytes_max is dead-lettered, not read in full
      // into the answer; fetching it whole is still needed to move past it.
      {"enable.partition.eof", "false"},
  };
  settings.insert(settings.end(), o.kafka_settings.begin(), o.kafka_settings.end());
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), buf, sizeof buf) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return invalid_argument("request consumer: " + key + ": " + buf);
    }
  }
  rd_kafka_conf_set_opaque(conf, c->kafka_.get());
  rd_kafka_conf_set_rebalance_cb(conf, Kafka::on_rebalance);
  c->kafka_->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
  if (!c->kafka_->consumer) {
    rd_kafka_conf_destroy(conf);
    return fatal_error(std::string("request consumer: cannot create the consumer: ") + buf);
  }
  std::vector<TopicSpec> specs;
  for (const auto& t : o.topics) {
    specs.push_back({.name = t, .partitions = o.topic_partitions, .replication_factor = o.replication_factor});
  }
  if (auto s = create_topics(c->kafka_->consumer, specs, o.operation_timeout_ms, o.brokers, o.stop_requested);
      !s.ok()) {
    return Error(s.error().code(), "request consumer: " + s.error().message(), s.error().cause());
  }
  rd_kafka_poll_set_consumer(c->kafka_->consumer);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(o.topics.size()));
  for (const auto& t : o.topics) rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
  auto err = rd_kafka_subscribe(c->kafka_->consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err) return fatal_error(std::string("request consumer: subscribe: ") + rd_kafka_err2str(err));
  return c;
}

Status RequestConsumer::process_with_retries(std::span<const ConsumedRecord> records) {
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t attempt = 0;; ++attempt) {
    // A retry gives every record again: those stored before the failure are skipped.
    auto outcomes = processor_.process_batch(records);
    if (outcomes.ok()) {
      if (options_.on_processed) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        for (std::size_t i = 0; i < records.size(); ++i) options_.on_processed(records[i], (*outcomes)[i], seconds);
      }
      return {};
    }
    const bool stop = options_.stop_requested && options_.stop_requested->load();
    if (outcomes.error().code() != ErrorCode::retriable || attempt >= options_.store_retries_max || stop) {
      const ConsumedRecord& first = records.front();
      return Error(outcomes.error().code(), "request consumer: the outcome of the records from " +
                                                std::string(first.topic) + "/" + std::to_string(first.partition) +
                                                "@" + std::to_string(first.offset) + " could not be stored: " +
                                                outcomes.error().message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.store_retry_backoff_ms));
  }
}

namespace {

ConsumedRecord view_of(const rd_kafka_message_t* m) {
  ConsumedRecord record;
  record.topic = rd_kafka_topic_name(m->rkt);
  record.partition = m->partition;
  record.offset = m->offset;
  if (m->key) record.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) record.value = std::string_view(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers) {
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      record.headers.emplace_back(name, value ? std::string_view(static_cast<const char*>(value), size)
                                              : std::string_view());
    }
  }
  return record;
}

}  // namespace

void RequestConsumer::report_lag() {
  rd_kafka_t* rk = kafka_->consumer;
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (rd_kafka_assignment(rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR || !assigned) return;
  rd_kafka_position(rk, assigned);
  for (int i = 0; i < assigned->cnt; ++i) {
    const auto& p = assigned->elems[i];
    std::int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(rk, p.topic, p.partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (high < 0) continue;
    auto stored = processor_.stored_offset(p.topic, p.partition);
    std::int64_t next = p.offset >= 0 ? p.offset : (stored.ok() && *stored ? **stored : low);
    options_.on_lag(p.topic, p.partition, std::max<std::int64_t>(0, high - next));
  }
  rd_kafka_topic_partition_list_destroy(assigned);
}

// The group's committed offsets are for the operators' tools only (lag,
// kafka-consumer-groups): the log's database holds the offsets that count.
// One asynchronous commit per batch: a commit per record sent the broker an
// OffsetCommit request per request consumed.
static void commit_for_operators(rd_kafka_t* rk, const std::vector<rd_kafka_message_t*>& batch) {
  rd_kafka_topic_partition_list_t* next = rd_kafka_topic_partition_list_new(1);
  for (const rd_kafka_message_t* m : batch) {
    const char* topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t* p = rd_kafka_topic_partition_list_find(next, topic, m->partition);
    if (!p) p = rd_kafka_topic_partition_list_add(next, topic, m->partition);
    p->offset = std::max(p->offset, m->offset + 1);
  }
  (void)rd_kafka_commit(rk, next, /*async=*/1);  // a failure only delays what the operators see
  rd_kafka_topic_partition_list_destroy(next);
}

Status RequestConsumer::run() {
  rd_kafka_t* rk = kafka_->consumer;
  auto lag_reported = std::chrono::steady_clock::now();
  std::vector<rd_kafka_message_t*> batch;
  std::vector<ConsumedRecord> records;
  auto release = [&] {
    for (auto* m : batch) rd_kafka_message_destroy(m);
    batch.clear();
    records.clear();
  };
  while (!(options_.stop_requested && options_.stop_requested->load())) {
    // Whatever is ready, up to the limit: the first poll waits, the others do not.
    for (int timeout = options_.poll_timeout_ms; batch.size() < options_.batch_records_max; timeout = 0) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, timeout);
      if (!m) break;
      if (m->err) {
        std::string message = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        char fatal[512];
        if (rd_kafka_fatal_error(rk, fatal, sizeof fatal)) {
          release();
          return fatal_error(std::string("request consumer: ") + fatal);
        }
        if (options_.on_kafka_error) options_.on_kafka_error(message);
        continue;
      }
      batch.push_back(m);
    }
    if (kafka_->assign_failure) {
      release();
      return Error(kafka_->assign_failure->code(),
                   "request consumer: reading the stored offsets: " + kafka_->assign_failure->message());
    }
    if (options_.on_lag &&
        std::chrono::steady_clock::now() - lag_reported >= std::chrono::milliseconds(options_.lag_interval_ms)) {
      report_lag();
      lag_reported = std::chrono::steady_clock::now();
    }
    if (batch.empty()) continue;
    for (auto* m : batch) records.push_back(view_of(m));
    Status s = process_with_retries(records);
    if (s.ok()) commit_for_operators(rk, batch);
    release();
    if (!s.ok()) return s;
  }
  return {};
}

}  // namespace cs
