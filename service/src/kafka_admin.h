// Topic creation shared by the distributor and the request consumer.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <string>
#include <vector>

#include "cs/error.h"

namespace cs {

struct TopicSpec {
  std::string name;
  int partitions = 3;
  int replication_factor = 1;
  std::vector<std::pair<std::string, std::string>> configs;  // e.g. cleanup.policy=compact
};

// How often a wait on the broker looks at its stop flag: a signal is obeyed
// within about this long, not after the whole operation timeout.
constexpr int stop_check_interval_ms = 100;

// The next event of `queue` (an admin request's result; the caller destroys
// it), waiting up to `timeout_ms`; nullptr on a timeout, or as soon as
// `*stop_requested` (borrowed, may be null) is set, with `stopped` true.
rd_kafka_event_t* poll_or_stop(rd_kafka_queue_t* queue, int timeout_ms, const std::atomic<bool>* stop_requested,
                               bool& stopped);

// Creates the topics that do not exist yet (existing ones are kept as they
// are) through `client` (a producer or a consumer). Errors: retriable (the
// broker did not answer in time), stopped (`*stop_requested` was set while
// waiting), fatal (a topic refused for another reason), invalid_argument (a
// bad name or count).
Status create_topics(rd_kafka_t* client, const std::vector<TopicSpec>& topics, int timeout_ms,
                     const std::string& brokers_for_messages, const std::atomic<bool>* stop_requested);

}  // namespace cs
