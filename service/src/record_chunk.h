// The Kafka records of a run of log events, prepared ahead of the producer.
//
// RecordPreparer turns each event into its records (one per target service,
// plus one on the full-log topic) and appends them to a RecordChunk: one flat
// text buffer that holds keys, header values and record values, referenced by
// offset, so that a chunk recycled by the pipeline allocates nothing once warm.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cs/event_log.h"
#include "cs/routing.h"

namespace cs {

// Customers whose data key a preparer remembers having sent.
inline constexpr std::size_t keys_published_max = 1 << 18;

struct RecordChunk {
  // Header values of one event, consecutive in `text` from `text_offset`:
  // key (customerId, 36) | eventId (36) | seq | type | schemaVersion | correlationId (36, optional).
  struct Event {
    std::uint32_t text_offset = 0;
    std::uint8_t seq_size = 0, type_size = 0, schema_size = 0;
    bool has_correlation = false;
  };
  struct Record {
    std::uint32_t topic = 0;  // index into RecordPreparer::topics()
    std::uint32_t event = 0;  // index into `events`
    std::uint32_t value_offset = 0, value_size = 0;
    bool tombstone = false;   // a null value (a compacted topic forgets the key)
  };

  Sequence first, last;          // the log events this chunk covers, [first, last]
  std::size_t event_count = 0;   // all of them, including events that route nowhere
  std::string text;
  std::vector<Event> events;     // events with at least one record
  std::vector<Record> records;

  void clear() {
    first = last = Sequence();
    event_count = 0;
    text.clear();
    events.clear();
    records.clear();
  }
  std::string_view at(std::uint32_t offset, std::size_t size) const { return {text.data() + offset, size}; }
  std::string_view key(const Event& e) const { return at(e.text_offset, 36); }
  std::string_view event_id(const Event& e) const { return at(e.text_offset + 36, 36); }
  std::string_view seq(const Event& e) const { return at(e.text_offset + 72, e.seq_size); }
  std::string_view type(const Event& e) const { return at(e.text_offset + 72 + e.seq_size, e.type_size); }
  std::string_view schema_version(const Event& e) const {
    return at(e.text_offset + 72 + e.seq_size + e.type_size, e.schema_size);
  }
  std::optional<std::string_view> correlation_id(const Event& e) const {
    if (!e.has_correlation) return std::nullopt;
    return at(e.text_offset + 72 + e.seq_size + e.type_size + e.schema_size, 36);
  }
  std::string_view value(const Record& r) const { return at(r.value_offset, r.value_size); }
};

// Routing and record formatting for one distributor. Not thread-safe: one
// thread at a time (the pipeline's) calls add().
class RecordPreparer {
 public:
  // `topic_for(service, type)` names a service's topic for an event type.
  // `log` is borrowed (customer types are looked up in it) and must outlive this.
  // `keys_topic` (empty: none) gets each customer's wrapped data key before
  // its first sealed event of this run, and a tombstone with its erasure.
  template <class TopicFor>
  RecordPreparer(const EventLog& log, const Routing& routing, TopicFor topic_for, const std::string& full_log_topic,
                 std::size_t customer_type_cache_max, const std::string& keys_topic = {});

  // Every topic a record may go to, by index; RecordChunk::Record::topic indexes it.
  const std::vector<std::string>& topics() const { return topics_; }

  // Appends the records of `event` (only those for `only_service` when given,
  // and then none on the full-log topic nor the keys topic) to `chunk`, and
  // counts the event. The services' records are made from the event opened
  // (their free-text reason in plaintext, null once erased); the full-log
  // record is the stored form. Errors: reading the customer's first event to
  // learn its type, its data key, opening the event.
  Status add(const RecordedEvent& event, const std::optional<std::string>& only_service, RecordChunk& chunk);

 private:
  struct Target {
    std::uint32_t service;  // index into services_
    std::uint32_t topic;
  };
  // Targets per event type (index = type code - 1) and customer type (0: unknown, 1: sme, 2: institution).
  using TargetTable = std::array<std::array<std::vector<Target>, 3>, event_type_count>;

  void init(const Routing& routing, const std::vector<std::vector<std::string>>& topic_names,
            const std::string& full_log_topic, const std::string& keys_topic);
  // The keys-topic record `event` calls for, if any: appended to the chunk's
  // text; returns its value offset, or SIZE_MAX for a tombstone.
  Result<std::optional<std::size_t>> key_record(const RecordedEvent& event, RecordChunk& chunk);
  Result<std::optional<CustomerType>> customer_type(const Uuid& customer);
  // Caches a customer's type within customer_type_cache_max (emptied when full).
  void remember(const Uuid& customer, CustomerType type);

  const EventLog& log_;
  std::vector<std::string> services_;
  std::vector<std::string> topics_;
  TargetTable targets_;
  std::array<bool, event_type_count> needs_customer_type_{};
  std::uint32_t full_log_topic_ = 0;
  std::optional<std::uint32_t> keys_topic_;
  // Customers whose key went out in this run (emptied when full: sent again).
  std::unordered_set<Uuid> keys_published_;
  RecordedEvent opened_;  // scratch: the current event opened for the services
  std::size_t customer_type_cache_max_;
  std::unordered_map<Uuid, CustomerType> customer_types_;
  std::string prefix_;  // scratch: the current event's shared value prefix
};

template <class TopicFor>
RecordPreparer::RecordPreparer(const EventLog& log, const Routing& routing, TopicFor topic_for,
                               const std::string& full_log_topic, std::size_t customer_type_cache_max,
                               const std::string& keys_topic)
    : log_(log), customer_type_cache_max_(customer_type_cache_max) {
  std::vector<std::vector<std::string>> names;  // [rule][type index], rules in routing order
  for (const auto& rule : routing.rules()) {
    auto& per_type = names.emplace_back(event_type_count);
    for (EventType t : rule.events) per_type[static_cast<std::size_t>(t) - 1] = topic_for(rule.service, t);
  }
  init(routing, names, full_log_topic, keys_topic);
}

}  // namespace cs
