#include "kafka_log.h"

#include <cstdio>
#include <mutex>

namespace cs {
namespace {

std::mutex sink_mu;
KafkaLogSink& sink() {
  static KafkaLogSink s;
  return s;
}

void forward(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  std::lock_guard lock(sink_mu);
  if (sink()) {
    sink()(level, rk ? rd_kafka_name(rk) : "rdkafka", facility ? facility : "", message ? message : "");
  } else {
    std::fprintf(stderr, "%%%d|%s|%s| %s\n", level, facility ? facility : "", rk ? rd_kafka_name(rk) : "rdkafka",
                 message ? message : "");
  }
}

}  // namespace

void set_kafka_log_sink(KafkaLogSink s) {
  std::lock_guard lock(sink_mu);
  sink() = std::move(s);
}

void route_kafka_logs(rd_kafka_conf_t* conf) { rd_kafka_conf_set_log_cb(conf, &forward); }

}  // namespace cs
