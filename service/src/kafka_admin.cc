#include "kafka_admin.h"

namespace cs {

Status create_topics(rd_kafka_t* client, const std::vector<TopicSpec>& topics, int timeout_ms,
                     const std::string& brokers) {
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
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5'000);
    if (!event) {
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
