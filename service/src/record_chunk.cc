#include "record_chunk.h"

#include <charconv>
#include <limits>

#include "cs/json_codec.h"
#include "cs/personal_data.h"

namespace cs {

void RecordPreparer::init(const Routing& routing, const std::vector<std::vector<std::string>>& topic_names,
                          const std::string& full_log_topic, const std::string& keys_topic) {
  std::unordered_map<std::string, std::uint32_t> topic_index;
  auto index_of = [&](const std::string& name) {
    auto [it, added] = topic_index.emplace(name, static_cast<std::uint32_t>(topics_.size()));
    if (added) topics_.push_back(name);
    return it->second;
  };
  // The table is Routing::targets() asked once per (event type, customer
  // type), so the routing rules keep a single reading.
  std::unordered_map<std::string, std::uint32_t> service_index;
  for (const auto& rule : routing.rules()) {
    service_index.emplace(rule.service, static_cast<std::uint32_t>(services_.size()));
    services_.push_back(rule.service);
  }
  const std::optional<CustomerType> customer_types[] = {std::nullopt, CustomerType::sme, CustomerType::institution};
  for (EventType t : all_event_types) {
    std::size_t ti = static_cast<std::size_t>(t) - 1;
    needs_customer_type_[ti] = routing.needs_customer_type(t);
    for (const auto& customer_type : customer_types) {
      auto& targets = targets_[ti][customer_type ? static_cast<std::size_t>(*customer_type) : 0];
      for (const auto& service : routing.targets(t, customer_type)) {
        std::uint32_t s = service_index.at(service);
        targets.push_back({s, index_of(topic_names[s][ti])});
      }
    }
  }
  full_log_topic_ = index_of(full_log_topic);
  if (!keys_topic.empty()) keys_topic_ = index_of(keys_topic);
}

Result<std::optional<std::size_t>> RecordPreparer::key_record(const RecordedEvent& event, RecordChunk& chunk) {
  if (!keys_topic_) return std::optional<std::size_t>();
  const Uuid& customer = payload_customer_id(event.payload);
  if (event.type() == EventType::customer_erased) {
    keys_published_.erase(customer);
    return std::optional<std::size_t>(SIZE_MAX);
  }
  if (!event.sealed || keys_published_.contains(customer)) return std::optional<std::size_t>();
  auto stored = log_.stored_data_key(customer);
  if (!stored.ok()) return stored.error();
  // Erased since (its tombstone follows with the erasure), or none: nothing to send.
  if (!*stored || EventLog::is_erased_marker(**stored)) return std::optional<std::size_t>();
  if (keys_published_.size() >= keys_published_max) keys_published_.clear();
  keys_published_.insert(customer);
  const std::size_t offset = chunk.text.size();
  char id[37];
  customer.to_chars(id);
  chunk.text += R"({"customerId":")";
  chunk.text.append(id, 36);
  chunk.text += R"(","wrapped":")";
  chunk.text += base64_encode(std::string_view(**stored).substr(1));
  chunk.text += "\"}";
  return std::optional<std::size_t>(offset);
}

Result<std::optional<CustomerType>> RecordPreparer::customer_type(const Uuid& customer) {
  if (auto it = customer_types_.find(customer); it != customer_types_.end()) return std::optional(it->second);
  auto first = log_.read_all({.stream = "customer-" + customer.to_string(), .limit = 1});
  if (!first.ok()) return first.error();
  if (first->empty()) return std::optional<CustomerType>();
  const auto* created = std::get_if<CustomerCreated>(&first->front().payload);
  if (!created) return std::optional<CustomerType>();
  remember(customer, created->customer_type);
  return std::optional(created->customer_type);
}

void RecordPreparer::remember(const Uuid& customer, CustomerType type) {
  if (customer_types_.size() >= customer_type_cache_max_) customer_types_.clear();
  customer_types_[customer] = type;
}

Status RecordPreparer::add(const RecordedEvent& event, const std::optional<std::string>& only_service,
                           RecordChunk& chunk) {
  if (chunk.event_count == 0) chunk.first = event.seq;
  chunk.last = event.seq;
  ++chunk.event_count;

  const std::size_t ti = static_cast<std::size_t>(event.type()) - 1;
  const Uuid& customer = payload_customer_id(event.payload);
  if (const auto* created = std::get_if<CustomerCreated>(&event.payload)) {
    remember(customer, created->customer_type);  // learnt on the way: later events need no lookup
  }
  std::size_t customer_type_index = 0;
  if (needs_customer_type_[ti]) {
    auto type = customer_type(customer);
    if (!type.ok()) return type.error();
    if (*type) customer_type_index = static_cast<std::size_t>(**type);
  }
  const auto& targets = targets_[ti][customer_type_index];
  auto wanted = [&](const Target& t) { return !only_service || services_[t.service] == *only_service; };
  std::size_t service_records = 0;
  for (const auto& t : targets) service_records += wanted(t) ? 1 : 0;
  if (service_records == 0 && only_service) return {};

  CS_ASSERT(chunk.text.size() < std::numeric_limits<std::uint32_t>::max() / 2, "a record chunk stays far below 2 GiB");
  RecordChunk::Event headers;
  headers.text_offset = static_cast<std::uint32_t>(chunk.text.size());
  char id[37];
  customer.to_chars(id);
  chunk.text.append(id, 36);
  event.id.to_chars(id);
  chunk.text.append(id, 36);
  char number[24];
  auto end = std::to_chars(number, number + sizeof number, event.seq.value).ptr;
  chunk.text.append(number, end);
  headers.seq_size = static_cast<std::uint8_t>(end - number);
  auto type_name = event_type_name(event.type());
  chunk.text += type_name;
  headers.type_size = static_cast<std::uint8_t>(type_name.size());
  end = std::to_chars(number, number + sizeof number, event.stored_schema_version).ptr;
  chunk.text.append(number, end);
  headers.schema_size = static_cast<std::uint8_t>(end - number);
  if (event.meta.correlation_id) {
    event.meta.correlation_id->to_chars(id);
    chunk.text.append(id, 36);
    headers.has_correlation = true;
  }
  const auto event_index = static_cast<std::uint32_t>(chunk.events.size());
  chunk.events.push_back(headers);

  auto add_record = [&](std::uint32_t topic, std::size_t value_offset) {
    chunk.records.push_back({topic, event_index, static_cast<std::uint32_t>(value_offset),
                             static_cast<std::uint32_t>(chunk.text.size() - value_offset)});
  };
  if (!only_service) {
    // The key first, so a consumer that restores the log has it before the
    // event that needs it; both in the same transaction anyway.
    auto key = key_record(event, chunk);
    if (!key.ok()) return key.error();
    if (*key && **key == SIZE_MAX) {
      chunk.records.push_back({*keys_topic_, event_index, 0, 0, /*tombstone=*/true});
    } else if (*key) {
      add_record(*keys_topic_, **key);
    }
  }
  if (service_records > 0) {
    const RecordedEvent* for_services = &event;
    if (event.sealed) {
      opened_ = event;
      if (auto s = log_.unseal(opened_); !s.ok()) return s;
      for_services = &opened_;
    }
    prefix_.clear();
    append_published_prefix(prefix_, *for_services);
    for (const auto& t : targets) {
      if (!wanted(t)) continue;
      std::size_t offset = chunk.text.size();
      chunk.text += prefix_;
      append_published_target(chunk.text, services_[t.service]);
      add_record(t.topic, offset);
    }
  }
  if (!only_service) {
    std::size_t offset = chunk.text.size();
    append_event_line(chunk.text, event);
    add_record(full_log_topic_, offset);
  }
  return {};
}

}  // namespace cs
