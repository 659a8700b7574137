#include "cs/restore.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "cs/json_codec.h"
#include "cs/personal_data.h"
#include "cs/replay.h"
#include "kafka_log.h"

namespace cs {
namespace {

using Consumer = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;

// A consumer of `topic`'s partitions from their start, read_committed, no
// group: assigned by hand, told when it reaches each partition's end.
Result<Consumer> open_reader(const RestoreOptions& o, const std::string& topic, int& partitions) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  route_kafka_logs(conf);
  char buf[512];
  for (const auto& [key, value] : std::vector<std::pair<const char*, std::string>>{
           {"bootstrap.servers", o.brokers},
           {"group.id", "customer-service-restore"},
           {"isolation.level", "read_committed"},
           {"enable.partition.eof", "true"},
           {"enable.auto.commit", "false"},
           {"auto.offset.reset", "earliest"},
           // Prefetched records are bounded per partition.
           {"queued.max.messages.kbytes", "16384"}}) {
    if (rd_kafka_conf_set(conf, key, value.c_str(), buf, sizeof buf) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return invalid_argument(std::string("restore: ") + key + ": " + buf);
    }
  }
  Consumer consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf), &rd_kafka_destroy);
  if (!consumer) return fatal_error(std::string("restore: consumer: ") + buf);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_topic_t* handle = rd_kafka_topic_new(consumer.get(), topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(consumer.get(), 0, handle, &metadata, o.operation_timeout_ms);
  rd_kafka_topic_destroy(handle);
  if (err) return retriable_error("restore: metadata of " + topic + ": " + rd_kafka_err2str(err));
  const auto topic_error = metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  partitions = metadata->topic_cnt == 1 ? metadata->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(metadata);
  if (topic_error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || partitions == 0) {
    partitions = 0;
    return consumer;  // nothing was ever published there
  }
  if (topic_error) return retriable_error("restore: " + topic + ": " + rd_kafka_err2str(topic_error));
  return consumer;
}

// Every partition from its start. After the partitions' readers exist: what
// is fetched before would go to the consumer's own queue, never read here.
Status assign_all(rd_kafka_t* consumer, const std::string& topic, int partitions) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  auto err = rd_kafka_assign(consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err) return retriable_error("restore: assign " + topic + ": " + rd_kafka_err2str(err));
  return {};
}

// One partition of a topic, read in order through its own queue.
class PartitionReader {
 public:
  PartitionReader(rd_kafka_t* consumer, const std::string& topic, int partition)
      : queue_(rd_kafka_queue_get_partition(consumer, topic.c_str(), partition), &rd_kafka_queue_destroy),
        topic_(topic), partition_(partition) {
    // A partition's queue forwards to the consumer's by default: served here instead.
    rd_kafka_queue_forward(queue_.get(), nullptr);
  }

  // The next record (nullptr at the partition's end), waiting up to the
  // timeout for each fetch. The caller owns the message.
  Result<rd_kafka_message_t*> next(int timeout_ms) {
    if (done_) return static_cast<rd_kafka_message_t*>(nullptr);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consume_queue(queue_.get(), 200);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        done_ = true;
        return static_cast<rd_kafka_message_t*>(nullptr);
      }
      if (m->err) {
        std::string what = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        return retriable_error("restore: " + topic_ + " partition " + std::to_string(partition_) + ": " + what);
      }
      return m;
    }
    return retriable_error("restore: " + topic_ + " partition " + std::to_string(partition_) +
                           " sent nothing for " + std::to_string(timeout_ms) + " ms");
  }

 private:
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue_;
  std::string topic_;
  int partition_;
  bool done_ = false;
};

std::string where(const rd_kafka_message_t* m) {
  return std::string(rd_kafka_topic_name(m->rkt)) + " partition " + std::to_string(m->partition) + " offset " +
         std::to_string(m->offset) + ": ";
}

Status restore_keys(EventLog& log, const RestoreOptions& o, RestoreReport& report) {
  int partitions = 0;
  auto consumer = open_reader(o, o.keys_topic, partitions);
  if (!consumer.ok()) return consumer.error();
  std::vector<PartitionReader> readers;
  for (int p = 0; p < partitions; ++p) readers.emplace_back(consumer->get(), o.keys_topic, p);
  if (partitions > 0) {
    if (auto s = assign_all(consumer->get(), o.keys_topic, partitions); !s.ok()) return s;
  }
  for (auto& reader : readers) {
    for (;;) {
      auto next = reader.next(o.operation_timeout_ms);
      if (!next.ok()) return next.error();
      if (*next == nullptr) break;
      std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> m(*next, &rd_kafka_message_destroy);
      auto customer = m->key ? Uuid::parse(std::string_view(static_cast<const char*>(m->key), m->key_len))
                             : std::nullopt;
      if (!customer) return invalid_argument("restore: " + where(m.get()) + "the key is not a customerId");
      std::string stored;
      if (m->payload == nullptr) {
        stored = std::string(1, '\0');  // a tombstone: the customer was erased
      } else {
        auto doc = parse_json_document(std::string_view(static_cast<const char*>(m->payload), m->len));
        const auto* wrapped = doc.ok() && doc->is_object() && doc->contains("wrapped") && (*doc)["wrapped"].is_string()
                                  ? &(*doc)["wrapped"]
                                  : nullptr;
        auto bytes = wrapped ? base64_decode(wrapped->get<std::string>()) : std::nullopt;
        if (!bytes) return invalid_argument("restore: " + where(m.get()) + "not a data key record");
        if (!log.seals_personal_data()) {
          return invalid_argument("restore: the keys topic holds data keys: give the master key they are wrapped "
                                  "with (--master-key FILE)");
        }
        stored = std::string(1, '\1') + *bytes;
      }
      if (auto s = log.import_data_key(*customer, stored); !s.ok()) {
        return Error(s.error().code(), "restore: " + where(m.get()) + s.error().message());
      }
      ++report.data_keys;
    }
  }
  return {};
}

// The head record of each partition, parsed; merged by sequence.
struct Head {
  std::optional<RecordedEvent> event;
  bool done = false;
};

Status restore_events(EventLog& log, const RestoreOptions& o, RestoreReport& report) {
  int partitions = 0;
  auto consumer = open_reader(o, o.full_log_topic, partitions);
  if (!consumer.ok()) return consumer.error();
  std::vector<PartitionReader> readers;
  std::vector<Head> heads(static_cast<std::size_t>(partitions));
  for (int p = 0; p < partitions; ++p) readers.emplace_back(consumer->get(), o.full_log_topic, p);
  if (partitions > 0) {
    if (auto s = assign_all(consumer->get(), o.full_log_topic, partitions); !s.ok()) return s;
  }
  Sequence last = log.head();
  auto advance = [&](std::size_t p) -> Status {
    heads[p].event.reset();
    while (!heads[p].done && !heads[p].event) {
      auto next = readers[p].next(o.operation_timeout_ms);
      if (!next.ok()) return next.error();
      if (*next == nullptr) {
        heads[p].done = true;
        break;
      }
      std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> m(*next, &rd_kafka_message_destroy);
      if (m->payload == nullptr) return invalid_argument("restore: " + where(m.get()) + "a tombstone on the full log");
      auto line = parse_event_line(std::string_view(static_cast<const char*>(m->payload), m->len));
      if (!line.ok()) return invalid_argument("restore: " + where(m.get()) + line.error().message());
      auto event = recorded_event_from_line(*line);
      if (!event.ok()) return invalid_argument("restore: " + where(m.get()) + event.error().message());
      if (event->seq <= last) {
        ++report.duplicates;  // imported already (a republished range, or a resumed restore)
        continue;
      }
      heads[p].event = std::move(*event);
    }
    return {};
  };
  for (std::size_t p = 0; p < heads.size(); ++p) {
    if (auto s = advance(p); !s.ok()) return s;
  }
  std::vector<RecordedEvent> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return {};
    auto imported = log.import(batch);
    if (!imported.ok()) return Error(imported.error().code(), "restore: " + imported.error().message());
    report.events += batch.size();
    batch.clear();
    return {};
  };
  for (;;) {
    if (o.stop_requested && o.stop_requested->load()) {
      if (auto s = flush(); !s.ok()) return s;
      return stopped_error("restore: stopped at seq " + std::to_string(last.value) + "; run it again to go on");
    }
    std::optional<std::size_t> lowest;
    for (std::size_t p = 0; p < heads.size(); ++p) {
      if (heads[p].event && (!lowest || heads[p].event->seq < heads[*lowest].event->seq)) lowest = p;
    }
    if (!lowest) break;
    RecordedEvent& e = *heads[*lowest].event;
    if (e.seq == last) {  // the same seq on two partitions: a duplicate
      ++report.duplicates;
    } else if (e.seq != last.next()) {
      return corruption_error("restore: the full-log topic " + o.full_log_topic + " has no seq " +
                              std::to_string(last.next().value) + " (the next it holds is " +
                              std::to_string(e.seq.value) + "): its retention dropped records, nothing after " +
                              std::to_string(last.value) + " can be restored");
    } else {
      last = e.seq;
      batch.push_back(std::move(e));
      if (batch.size() >= restore_batch_events_max) {
        if (auto s = flush(); !s.ok()) return s;
      }
    }
    if (auto s = advance(*lowest); !s.ok()) return s;
  }
  return flush();
}

}  // namespace

Result<RestoreReport> restore_from_kafka(EventLog& log, const RestoreOptions& options) {
  if (options.brokers.empty()) return invalid_argument("restore: no brokers given");
  RestoreReport report;
  if (auto s = restore_keys(log, options, report); !s.ok()) return s.error();
  if (auto s = restore_events(log, options, report); !s.ok()) return s.error();
  report.head = log.head();
  report.head_hash = log.head_hash();
  return report;
}

}  // namespace cs
