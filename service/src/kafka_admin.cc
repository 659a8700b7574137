#include "kafka_admin.h"

#include <algorithm>
#include <chrono>

namespace cs {

rd_kafka_event_t* poll_or_stop(rd_kafka_queue_t* queue, int timeout_ms, const std::atomic<bool>* stop_requested,
                               bool& stopped) {
  stopped = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (stop_requested && stop_requested->load()) {
      stopped = true;
      return nullptr;
    }
    const auto left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left_ms <= 0) return nullptr;
    const int slice_ms = static_cast<int>(std::min<long long>(left_ms, stop_check_interval_ms));
    if (rd_kafka_event_t* event = rd_kafka_queue_poll(queue, slice_ms)) return event;
  }
}

Status create_topics(rd_kafka_t* client, const std::vector<TopicSpec>& topics, int timeout_ms,
                     const std::string& brokers, const std::atomic<bool>* stop_requested) {
  if (topics.empty()) return {};
  std::vector<rd_kafka_NewTopic_t*> requests;
  char buf[512];
  Status result;
  for (const auto& spec : topics) {
    auto* t = rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions, spec.replication_factor, buf, sizeof buf);
    if (!t) {
      result = invalid_argument("topic " + printable(spec.name) + ": " + buf);
      break;
    }
    for (const auto& [key, value] : spec.configs) rd_kafka_NewTopic_set_config(t, key.c_str(), value.c_str());
    requests.push_back(t);
  }
  if (result.ok()) {
    rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
    rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(admin, timeout_ms, buf, sizeof buf);
    rd_kafka_CreateTopics(client, requests.data(), requests.size(), admin, queue);
    bool stopped = false;
    // On a stop, as on a timeout, the queue is destroyed with the answer
    // still due: librdkafka discards what reaches a destroyed queue.
    rd_kafka_event_t* event = poll_or_stop(queue, timeout_ms + 5'000, stop_requested, stopped);
    if (stopped) {
      result = stopped_error("stopped while creating topics");
    } else if (!event) {
      result = retriable_error("creating topics timed out (is the broker at " + brokers + " up?)");
    } else if (rd_kafka_event_error(event)) {
      result = retriable_error(std::string("creating topics: ") + rd_kafka_event_error_string(event));
    } else {
      std::size_t n = 0;
      const auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
      for (std::size_t i = 0; i < n && result.ok(); ++i) {
        auto code = rd_kafka_topic_result_error(results[i]);
        if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          result = fatal_error(std::string("topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                               rd_kafka_err2str(code));
        }
      }
    }
    if (event) rd_kafka_event_destroy(event);
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_queue_destroy(queue);
  }
  for (auto* t : requests) rd_kafka_NewTopic_destroy(t);
  return result;
}

}  // namespace cs
