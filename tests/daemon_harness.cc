#include "daemon_harness.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace cs::test {

std::string kafka_brokers() {
  const char* b = std::getenv("CS_KAFKA_BROKERS");
  return b ? b : "";
}

std::string KafkaRecord::header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

TestProducer::TestProducer(const std::string& brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
  rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
  producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
}

TestProducer::~TestProducer() {
  if (producer_) {
    rd_kafka_flush(producer_, 10'000);
    rd_kafka_destroy(producer_);
  }
}

bool TestProducer::send(const std::string& topic, const std::optional<std::string>& key, const std::string& value,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size() + 1);
  for (const auto& [n, v] : headers) {
    rd_kafka_header_add(h, n.data(), static_cast<ssize_t>(n.size()), v.data(), static_cast<ssize_t>(v.size()));
  }
  const void* key_bytes = key ? static_cast<const void*>(key->data()) : nullptr;
  const std::size_t key_size = key ? key->size() : 0;
  auto err = rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key_bytes, key_size),
                               RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
  if (err) {
    rd_kafka_headers_destroy(h);
    return false;
  }
  return true;
}

bool TestProducer::flush() { return rd_kafka_flush(producer_, 30'000) == RD_KAFKA_RESP_ERR_NO_ERROR; }

std::vector<KafkaRecord> consume_all_of(const std::string& brokers, const std::vector<std::string>& topics) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "daemon-test-reader", err, sizeof err);
  rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  // Partitions from the metadata (topics may not exist yet: then none).
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(consumer, 1, nullptr, &md, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::set<std::string> wanted(topics.begin(), topics.end());
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (!wanted.count(md->topics[i].topic) || md->topics[i].err) continue;
      for (int p = 0; p < md->topics[i].partition_cnt; ++p) {
        rd_kafka_topic_partition_list_add(list, md->topics[i].topic, md->topics[i].partitions[p].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  std::vector<KafkaRecord> out;
  const int expected = list->cnt;
  if (expected > 0) {
    rd_kafka_assign(consumer, list);
    std::set<std::pair<std::string, int>> at_end;
    for (int idle = 0; static_cast<int>(at_end.size()) < expected && idle < 100;) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
      if (!m) {
        ++idle;
        continue;
      }
      std::string topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        at_end.insert({topic, m->partition});
      } else if (!m->err) {
        KafkaRecord r;
        r.topic = topic;
        r.partition = m->partition;
        r.offset = m->offset;
        if (m->key) r.key = std::string(static_cast<char*>(m->key), m->key_len);
        if (m->payload) r.value = std::string(static_cast<char*>(m->payload), m->len);
        rd_kafka_headers_t* h = nullptr;
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
          const char* name;
          const void* value;
          std::size_t size;
          for (std::size_t i = 0; rd_kafka_header_get_all(h, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
               ++i) {
            r.headers.emplace_back(name, value ? std::string(static_cast<const char*>(value), size) : "");
          }
        }
        out.push_back(std::move(r));
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

DaemonProcess::DaemonProcess(std::filesystem::path dir, std::vector<std::string> args)
    : dir_(std::move(dir)), args_(std::move(args)) {}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(10));
}

bool DaemonProcess::start(bool wait_ready) {
  ++starts_;
  const auto out = dir_ / "daemon.stdout";
  const auto err = dir_ / "daemon.stderr";
  std::error_code ec;
  std::filesystem::remove(out, ec);
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<std::string> argv_strings = {std::string(CS_BIN_DIR) + "/customer-service"};
    argv_strings.insert(argv_strings.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (!wait_ready) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    if (stdout_text().find("ready") != std::string::npos) return true;
    if (!running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool DaemonProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::optional<int> DaemonProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  kill(pid_, signal);
  auto status = wait_exit(timeout);
  if (!status && pid_ > 0) {
    kill(pid_, SIGKILL);
    int s = 0;
    waitpid(pid_, &s, 0);
    pid_ = -1;
  }
  return status;
}

static std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DaemonProcess::stderr_text() const { return read_text(dir_ / "daemon.stderr"); }
std::string DaemonProcess::stdout_text() const { return read_text(dir_ / "daemon.stdout"); }

}  // namespace cs::test
