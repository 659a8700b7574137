// Topic creation shared by the distributor and the request consumer.
#pragma once

#include <librdkafka/rdkafka.h>

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

// Creates the topics that do not exist yet (existing ones are kept as they
// are) through `client` (a producer or a consumer). Errors: retriable (the
// broker did not answer in time), fatal (a topic refused for another reason),
// invalid_argument (a bad name or count).
Status create_topics(rd_kafka_t* client, const std::vector<TopicSpec>& topics, int timeout_ms,
                     const std::string& brokers_for_messages);

}  // namespace cs
