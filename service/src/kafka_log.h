// Where librdkafka's own log lines go. By default librdkafka prints them on
// stderr in its format ("%3|1796220063.092|FAIL|rdkafka#consumer-2| ..."),
// which breaks the daemon's contract of one JSON object per stderr line.
#pragma once

#include <librdkafka/rdkafka.h>

#include <functional>
#include <string_view>

namespace cs {

// `syslog_level` is librdkafka's (0 emergency .. 7 debug); `client` names the
// producer or consumer ("rdkafka#producer-1"); `facility` is librdkafka's tag
// ("FAIL", "GETPID", ...).
using KafkaLogSink = std::function<void(int syslog_level, std::string_view client, std::string_view facility,
                                        std::string_view message)>;

// Makes `sink` receive the lines of every client whose conf went through
// route_kafka_logs, from librdkafka's threads, one at a time (a mutex). Empty:
// librdkafka's format on stderr again. Process-wide: the last call wins.
void set_kafka_log_sink(KafkaLogSink sink);

// Call on every conf before rd_kafka_new.
void route_kafka_logs(rd_kafka_conf_t* conf);

// Installs a sink for its lifetime; declare it before the clients it serves so
// that it outlives them.
class ScopedKafkaLogSink {
 public:
  explicit ScopedKafkaLogSink(KafkaLogSink sink) { set_kafka_log_sink(std::move(sink)); }
  ~ScopedKafkaLogSink() { set_kafka_log_sink(nullptr); }
  ScopedKafkaLogSink(const ScopedKafkaLogSink&) = delete;
  ScopedKafkaLogSink& operator=(const ScopedKafkaLogSink&) = delete;
};

}  // namespace cs
