// The real daemon as a process, and a plain librdkafka client to talk to it:
// what the daemon tests share.
#pragma once

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cs::test {

std::string kafka_brokers();  // CS_KAFKA_BROKERS, or empty

struct KafkaRecord {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(const std::string& name) const;  // "" when absent
};

// A producer; idempotent, so a retry inside librdkafka never duplicates.
class TestProducer {
 public:
  explicit TestProducer(const std::string& brokers);
  ~TestProducer();
  // Produces and waits for the broker's ack; false on failure.
  bool send(const std::string& topic, const std::optional<std::string>& key, const std::string& value,
            const std::vector<std::pair<std::string, std::string>>& headers = {});
  bool flush();

 private:
  rd_kafka_t* producer_ = nullptr;
};

// Every committed record of `topics` (all partitions) as of now, read_committed.
std::vector<KafkaRecord> consume_all_of(const std::string& brokers, const std::vector<std::string>& topics);
// Waits until `predicate(records)` holds for the records of `topics`, up to
// `timeout`; returns the last records read.
template <typename Predicate>
std::vector<KafkaRecord> consume_until(const std::string& brokers, const std::vector<std::string>& topics,
                                       Predicate predicate, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto records = consume_all_of(brokers, topics);
    if (predicate(records) || std::chrono::steady_clock::now() > deadline) return records;
  }
}

// build/bin/customer-service with `args`, stdout and stderr to files in `dir`.
class DaemonProcess {
 public:
  DaemonProcess(std::filesystem::path dir, std::vector<std::string> args);
  ~DaemonProcess();  // SIGKILL if still running
  // Starts it; with wait_ready, waits (up to 90 s) for its "ready" line.
  bool start(bool wait_ready = true);
  bool running();
  // Sends `signal` and waits (up to `timeout`) for the exit; returns the exit
  // status as waitpid gives it, nullopt when it did not exit in time.
  std::optional<int> stop(int signal = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits for an exit without signalling.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string stderr_text() const;
  std::string stdout_text() const;

 private:
  std::filesystem::path dir_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

}  // namespace cs::test
