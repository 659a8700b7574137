#include "cs/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <fstream>
#include <filesystem>
#include <sstream>

namespace cs {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

const prometheus::Histogram::BucketBoundaries latency_buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};

// process_* figures from /proc/self (the Prometheus client convention).
void append_process_metrics(std::string& out) {
  std::ifstream stat("/proc/self/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = content.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream fields(content.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  if (f.size() < 22) return;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;  // utime + stime
  const double rss = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
  const double vsize = std::stod(f[20]);
  double boot = 0;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0) boot = std::stod(line.substr(6));
  }
  const double start = boot + std::stod(f[19]) / ticks;
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    ++fds;
  }
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    std::ostringstream line;
    line.precision(17);
    line << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << value
         << "\n";
    out += line.str();
  };
  metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
  metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
  metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
  metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", start);
  metric("process_open_fds", "gauge", "Number of open file descriptors.", static_cast<double>(fds));
}

}  // namespace

struct Metrics::Families {
  prometheus::Family<prometheus::Counter>& events;
  prometheus::Gauge& head;
  prometheus::Histogram& append;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& request_duration;
  prometheus::Family<prometheus::Gauge>& consumer_lag;
  prometheus::Gauge& checkpoint;
  prometheus::Gauge& lag_events;
  prometheus::Gauge& lag_seconds;
  prometheus::Family<prometheus::Counter>& transactions;
  prometheus::Histogram& transaction_duration;
  prometheus::Histogram& transaction_commit;
  prometheus::Family<prometheus::Gauge>& projection_seq;
  prometheus::Family<prometheus::Counter>& dlq;
  prometheus::Family<prometheus::Counter>& http;
  prometheus::Family<prometheus::Histogram>& http_duration;
};

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  families_ = std::unique_ptr<Families>(new Families{
      BuildCounter().Name("customer_service_events_appended_total").Help("Events appended to the log, by type.").Register(r),
      BuildGauge().Name("customer_service_log_head_seq").Help("The log's last sequence.").Register(r).Add({}),
      BuildHistogram()
          .Name("customer_service_append_duration_seconds")
          .Help("Time to store one wave of request outcomes (one append, one WAL sync).")
          .Register(r)
          .Add({}, latency_buckets),
      BuildCounter()
          .Name("customer_service_requests_total")
          .Help("Requests whose outcome was stored, by topic, action, status and code.")
          .Register(r),
      BuildHistogram()
          .Name("customer_service_request_duration_seconds")
          .Help("From a request consumed to its outcome stored.")
          .Register(r)
          .Add({}, latency_buckets),
      BuildGauge()
          .Name("customer_service_consumer_lag")
          .Help("Records of a request partition not yet consumed.")
          .Register(r),
      BuildGauge()
          .Name("customer_service_publish_checkpoint_seq")
          .Help("The last log sequence published to Kafka.")
          .Register(r)
          .Add({}),
      BuildGauge()
          .Name("customer_service_publish_lag_events")
          .Help("Events in the log not yet published to Kafka.")
          .Register(r)
          .Add({}),
      BuildGauge()
          .Name("customer_service_publish_lag_seconds")
          .Help("Age of the oldest event not yet published (0 when caught up).")
          .Register(r)
          .Add({}),
      BuildCounter()
          .Name("customer_service_transactions_total")
          .Help("Distributor Kafka transactions, by result (committed, aborted).")
          .Register(r),
      BuildHistogram()
          .Name("customer_service_transaction_duration_seconds")
          .Help("A distributor Kafka transaction from its begin to its end (commit or abort).")
          .Register(r)
          .Add({}, latency_buckets),
      BuildHistogram()
          .Name("customer_service_transaction_commit_seconds")
          .Help("The commit of a distributor Kafka transaction: its checkpoint record and the end of transaction.")
          .Register(r)
          .Add({}, latency_buckets),
      BuildGauge()
          .Name("customer_service_projection_seq")
          .Help("The last log sequence folded into each projection.")
          .Register(r),
      BuildCounter()
          .Name("customer_service_dlq_total")
          .Help("Records sent to the dead-letter topic, by request topic and reason.")
          .Register(r),
      BuildCounter().Name("customer_service_http_requests_total").Help("HTTP requests by route and status.").Register(r),
      BuildHistogram()
          .Name("customer_service_http_request_duration_seconds")
          .Help("HTTP request handling time by route.")
          .Register(r),
  });
  // The families show from the first scrape, at zero.
  families_->transactions.Add({{"result", "committed"}});
  families_->transactions.Add({{"result", "aborted"}});
}

Metrics::~Metrics() = default;

void Metrics::count_request(std::string_view topic, std::string_view action, std::string_view code, double seconds) {
  families_->requests
      .Add({{"topic", std::string(topic)},
            {"action", std::string(action)},
            {"status", code == "accepted" ? "accepted" : "rejected"},
            {"code", std::string(code)}})
      .Increment();
  families_->request_duration.Observe(seconds);
}

void Metrics::count_events(std::string_view type, std::uint64_t n) {
  families_->events.Add({{"type", std::string(type)}}).Increment(static_cast<double>(n));
}

void Metrics::observe_append(double seconds) { families_->append.Observe(seconds); }
void Metrics::set_head(std::uint64_t seq) { families_->head.Set(static_cast<double>(seq)); }

void Metrics::set_consumer_lag(std::string_view topic, std::int32_t partition, std::int64_t lag) {
  families_->consumer_lag.Add({{"topic", std::string(topic)}, {"partition", std::to_string(partition)}})
      .Set(static_cast<double>(lag));
}

void Metrics::set_publish(std::uint64_t checkpoint, std::uint64_t lag_events, double lag_seconds) {
  families_->checkpoint.Set(static_cast<double>(checkpoint));
  families_->lag_events.Set(static_cast<double>(lag_events));
  families_->lag_seconds.Set(lag_seconds);
}

void Metrics::count_transaction(bool committed, double open_seconds, double commit_seconds) {
  families_->transactions.Add({{"result", committed ? "committed" : "aborted"}}).Increment();
  families_->transaction_duration.Observe(open_seconds);
  if (commit_seconds > 0) families_->transaction_commit.Observe(commit_seconds);
}

void Metrics::set_projection_seq(std::string_view projection, std::uint64_t seq) {
  families_->projection_seq.Add({{"projection", std::string(projection)}}).Set(static_cast<double>(seq));
}

void Metrics::count_dead_letter(std::string_view topic, std::string_view reason) {
  families_->dlq.Add({{"topic", std::string(topic)}, {"reason", std::string(reason)}}).Increment();
}

void Metrics::count_http(std::string_view route, int status, double seconds) {
  families_->http.Add({{"route", std::string(route)}, {"status", std::to_string(status)}}).Increment();
  families_->http_duration.Add({{"route", std::string(route)}}, latency_buckets).Observe(seconds);
}

std::string Metrics::render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  std::string text = out.str();
  append_process_metrics(text);
  return text;
}

}  // namespace cs
