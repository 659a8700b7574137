// The daemon's Prometheus metrics (prometheus-cpp), rendered in the text
// exposition format by GET /metrics. The family names are the contract of
// docs/grafana/customer-service.json; no label ever carries personal data
// (topics, actions, codes, event types, projection names only).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace cs {

class Metrics {
 public:
  Metrics();
  ~Metrics();

  // A request's outcome stored: its topic, action, status (accepted /
  // rejected), code, and consumed → stored seconds.
  void count_request(std::string_view topic, std::string_view action, std::string_view code, double seconds);
  void count_events(std::string_view type, std::uint64_t n);
  void observe_append(double seconds);
  void set_head(std::uint64_t seq);
  void set_consumer_lag(std::string_view topic, std::int32_t partition, std::int64_t lag);
  void set_publish(std::uint64_t checkpoint, std::uint64_t lag_events, double lag_seconds);
  // A distributor transaction ended: committed or aborted, begin -> end
  // seconds, and the commit's part of them.
  void count_transaction(bool committed, double open_seconds, double commit_seconds);
  void set_projection_seq(std::string_view projection, std::uint64_t seq);
  // `reason`: the dead letter's reason class (invalid, unauthenticated, forbidden, oversized).
  void count_dead_letter(std::string_view topic, std::string_view reason);
  void count_http(std::string_view route, int status, double seconds);

  // The text exposition format (version 0.0.4), with the process's own
  // figures (process_* families) read from /proc.
  std::string render() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
};

}  // namespace cs
