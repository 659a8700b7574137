#include "cs/request_processor.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <set>

#include "cs/assert.h"
#include "cs/outbox.h"
#include "cs/request.h"

namespace cs {
namespace {

// NestJS's Kafka transport (ClientKafka.send / ServerKafka replies).
constexpr std::string_view nest_reply_topic = "kafka_replyTopic";
constexpr std::string_view nest_reply_partition = "kafka_replyPartition";
constexpr std::string_view nest_correlation_id = "kafka_correlationId";
constexpr std::string_view nest_is_disposed = "kafka_nest-is-disposed";
// A NestJS correlation id is a short random string; a longer one is not echoed.
constexpr std::size_t correlation_id_bytes_max = 256;

std::optional<std::string_view> header(const ConsumedRecord& r, std::string_view name) {
  std::optional<std::string_view> last;  // Kafka allows repeats; the last one counts, as librdkafka's get_last
  for (const auto& [n, v] : r.headers) {
    if (n == name) last = v;
  }
  return last;
}

std::string offset_key(std::string_view topic, std::int32_t partition) {
  return std::string(topic) + "/" + std::to_string(partition);
}

// Printable and bounded: a reason may quote a header.
std::string shown(std::string_view s) {
  constexpr std::size_t shown_bytes_max = 60;
  return printable(s.substr(0, shown_bytes_max)) + (s.size() > shown_bytes_max ? "..." : "");
}

bool dead_letter_code(AnswerCode code) {
  return code == AnswerCode::unauthenticated || code == AnswerCode::forbidden || code == AnswerCode::invalid;
}

}  // namespace

std::string_view record_outcome_name(RecordOutcome outcome) {
  switch (outcome) {
    case RecordOutcome::answered: return "answered";
    case RecordOutcome::dead_lettered: return "dead_lettered";
    case RecordOutcome::replayed: return "replayed";
    case RecordOutcome::skipped: return "skipped";
  }
  CS_UNREACHABLE("record outcome");
}

RequestProcessor::RequestProcessor(EventLog& log, CommandHandler& handler, const ServiceCredentials* credentials,
                                   std::string topic_prefix)
    : log_(log), handler_(handler), credentials_(credentials), topic_prefix_(std::move(topic_prefix)) {}

Result<std::optional<std::int64_t>> RequestProcessor::stored_offset(std::string_view topic,
                                                                    std::int32_t partition) const {
  auto stored = log_.read_side(consumer_offsets_family, offset_key(topic, partition));
  if (!stored.ok()) return stored.error();
  if (!*stored) return std::optional<std::int64_t>{};
  const std::string& text = **stored;
  std::int64_t offset = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), offset);
  if (ec != std::errc() || end != text.data() + text.size() || offset < 0) {
    return corruption_error("consumer_offsets: " + offset_key(topic, partition) + " holds '" + shown(text) +
                            "', not an offset");
  }
  return std::optional<std::int64_t>(offset);
}

// The answer's records: on its topic, and on a NestJS reply topic when asked.
// Without `with_values`, their values are left empty (a wave's shape).
static std::vector<OutboxRecord> answer_records(const ConsumedRecord& record, const Answer& answer, bool read,
                                                const std::string& prefix, bool with_values = true) {
  std::vector<OutboxRecord> out;
  OutboxRecord main;
  main.topic = prefix + (read ? data_response_topic : request_result_topic);
  if (answer.customer_id) {
    main.key = answer.customer_id->to_string();
  } else if (answer.request_id) {
    main.key = answer.request_id->to_string();
  }
  if (with_values) main.value = read ? answer.data_response_record() : answer.result_record();
  out.push_back(main);
  auto reply_topic = header(record, nest_reply_topic);
  auto correlation = header(record, nest_correlation_id);
  if (reply_topic && correlation && *reply_topic == std::string(record.topic) + ".reply" &&
      correlation->size() <= correlation_id_bytes_max) {
    OutboxRecord reply = main;
    reply.topic = std::string(*reply_topic);
    reply.headers = {{std::string(nest_correlation_id), std::string(*correlation)},
                     {std::string(nest_is_disposed), std::string(1, '\0')}};
    if (auto p = header(record, nest_reply_partition)) {
      std::int32_t partition = 0;
      auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), partition);
      if (ec == std::errc() && end == p->data() + p->size() && partition >= 0) reply.partition = partition;
    }
    out.push_back(std::move(reply));
  }
  return out;
}

std::vector<SideWrite> RequestProcessor::answer_writes(const ConsumedRecord& record, const Answer& answer, bool read,
                                                       bool remember, std::optional<std::string> dead_letter_reason,
                                                       bool with_values) const {
  std::vector<SideWrite> writes;
  auto records = answer_records(record, answer, read, topic_prefix_, with_values);
  for (const auto& r : records) writes.push_back(outbox_write(r));
  if (remember && answer.request_id) {
    const auto& id = answer.request_id->bytes();
    // A read is remembered without what it read: a retry reads again, so an
    // erased customer's data is not kept here for ever.
    OutboxRecord remembered = records.front();
    if (read) remembered.value = answer.result_record();
    writes.push_back(SideWrite{.family = request_answers_family,
                               .key = std::string(reinterpret_cast<const char*>(id.data()), id.size()),
                               .value = with_values ? encode_remembered_answer(answer.source_service, remembered)
                                                    : std::string(),
                               .seal = true});
  }
  if (dead_letter_reason) {
    OutboxRecord dlq;
    dlq.topic = topic_prefix_ + dead_letter_topic;
    dlq.key = record.key ? std::string(*record.key) : std::string();
    dlq.value = record.value ? std::string(*record.value) : std::string();
    dlq.headers = {{"reason", *dead_letter_reason},
                   {"topic", std::string(record.topic)},
                   {"partition", std::to_string(record.partition)},
                   {"offset", std::to_string(record.offset)}};
    writes.push_back(outbox_write(dlq));
  }
  writes.push_back(SideWrite{.family = consumer_offsets_family,
                             .key = offset_key(record.topic, record.partition),
                             .value = std::to_string(record.offset + 1)});
  return writes;
}

RequestProcessor::Decision RequestProcessor::dead_letter(const ConsumedRecord& record, std::string reason,
                                                        const std::optional<Answer>& answer) const {
  Decision d;
  if (answer) {
    d.writes = answer_writes(record, *answer, /*read=*/false, /*remember=*/false, reason);
  } else {
    Answer none;  // only the dead letter and the offset
    d.writes = answer_writes(record, none, false, false, reason);
    d.writes.erase(d.writes.begin());  // no answer without a requestId to answer to
  }
  d.out.outcome = RecordOutcome::dead_lettered;
  d.out.topic = std::string(record.topic);
  d.out.code = answer ? answer->code : AnswerCode::invalid;
  if (answer) d.out.action = answer->action;
  d.out.reason = std::move(reason);
  return d;
}

// What can be said of a record without the read models: skipped, dead
// letters (size, shape, signature), or the parsed request.
Result<RequestProcessor::Screened> RequestProcessor::screen(const ConsumedRecord& record) const {
  Screened s;
  auto stored = stored_offset(record.topic, record.partition);
  if (!stored.ok()) return stored.error();
  if (*stored && record.offset < **stored) {
    Decision d;
    d.skipped = true;
    d.out = ProcessedRecord{.outcome = RecordOutcome::skipped, .topic = std::string(record.topic)};
    s.decided = std::move(d);
    return s;
  }
  if (!record.value) {
    s.decided = dead_letter(record, "invalid: the record has no value", std::nullopt);
    return s;
  }
  const std::string_view value = *record.value;
  if (value.size() > request_bytes_max) {
    s.decided = dead_letter(record, "oversized: " + std::to_string(value.size()) + " bytes, at most " +
                                        std::to_string(request_bytes_max), std::nullopt);
    return s;
  }
  std::string_view topic = record.topic;
  if (!topic.starts_with(topic_prefix_)) {
    s.decided = dead_letter(record, "invalid: topic " + shown(topic) + " is not under the prefix " +
                                        shown(topic_prefix_), std::nullopt);
    return s;
  }
  topic.remove_prefix(topic_prefix_.size());
  std::optional<Uuid> request_id;
  auto request = parse_request(topic, value, &request_id);
  if (!request.ok()) {
    std::optional<Answer> answer;
    if (request_id) answer = refusal(AnswerCode::invalid, request.error().message(), request_id);
    s.decided = dead_letter(record, "invalid: " + request.error().message(), answer);
    return s;
  }
  const std::string action(request->kind->action);
  if (credentials_) {
    auto service = header(record, "x-service");
    auto signature = header(record, "x-signature");
    std::string why;
    if (!service || !signature) {
      why = "the record has no x-service and x-signature headers";
    } else if (*service != request->source_service) {
      why = "x-service '" + shown(*service) + "' is not the sourceService '" + shown(request->source_service) + "'";
    } else if (auto v = credentials_->verify_signature(*service, value, *signature); !v.ok()) {
      why = v.error().message();
    }
    if (!why.empty()) {
      Answer answer = refusal(AnswerCode::unauthenticated, why, request->request_id, request->source_service, action);
      s.decided = dead_letter(record, "unauthenticated: " + why, answer);
      return s;
    }
  }
  s.request = std::move(*request);
  return s;
}

// The keys a request's decision depends on: its requestId and its customer
// (a creation's customer is derived from the requestId).
std::vector<std::string> RequestProcessor::conflict_keys(const Request& request) {
  std::vector<std::string> keys = {"r" + request.request_id.to_string()};
  if (request.customer_id) {
    keys.push_back("c" + request.customer_id->to_string());
  } else {
    keys.push_back("c" + derived_uuid(request.request_id, "customerId").to_string());
  }
  return keys;
}

Result<RequestProcessor::Decision> RequestProcessor::decide(const ConsumedRecord& record, const Request& request) {
  const std::string action(request.kind->action);
  // A client's retry: its first answer again, nothing applied.
  const auto& id = request.request_id.bytes();
  auto earlier = log_.read_side(request_answers_family, std::string(reinterpret_cast<const char*>(id.data()), id.size()));
  if (!earlier.ok()) return earlier.error();
  Decision d;
  d.out.topic = std::string(record.topic);
  d.out.action = action;
  std::optional<RememberedAnswer> first;
  if (*earlier) {
    auto decoded = decode_remembered_answer(**earlier);
    if (!decoded.ok()) return decoded.error();
    first = std::move(*decoded);
    // A read asked again by the same service is read again.
    if (first->source_service == request.source_service && first->answer.topic == topic_prefix_ + data_response_topic) {
      first.reset();
    }
  }
  if (first) {
    d.out.outcome = RecordOutcome::replayed;
    if (first->source_service != request.source_service) {
      Answer answer = refusal(AnswerCode::conflict,
                              "requestId " + request.request_id.to_string() + " was used by another service",
                              request.request_id, request.source_service, action);
      d.writes = answer_writes(record, answer, !request.kind->event, /*remember=*/false, std::nullopt);
      d.out.outcome = RecordOutcome::answered;
      d.out.code = AnswerCode::conflict;
      d.out.reason = answer.message;
    } else {
      d.writes.push_back(outbox_write(first->answer));
      auto reply = answer_records(record, Answer{}, false, topic_prefix_);
      if (reply.size() > 1) {
        reply[1].key = first->answer.key;
        reply[1].value = first->answer.value;
        d.writes.push_back(outbox_write(reply[1]));
      }
      d.writes.push_back(SideWrite{.family = consumer_offsets_family,
                                   .key = offset_key(record.topic, record.partition),
                                   .value = std::to_string(record.offset + 1)});
      d.out.reason = "answered before";
    }
    return d;
  }
  std::optional<NewEvent> event;
  d.answer = handler_.decide(request, event);
  if (d.answer.code == AnswerCode::unavailable) {
    return retriable_error("the store is unavailable: " + d.answer.message);
  }
  d.read = !request.kind->event;
  d.event = std::move(event);
  d.out.code = d.answer.code;
  d.out.reason = d.answer.message;
  d.out.outcome = dead_letter_code(d.answer.code) ? RecordOutcome::dead_lettered : RecordOutcome::answered;
  if (!d.event) d.writes = writes_for(record, d.answer, d.read);
  return d;
}

std::vector<SideWrite> RequestProcessor::writes_for(const ConsumedRecord& record, const Answer& answer, bool read,
                                                    bool with_values) const {
  std::optional<std::string> reason;
  if (dead_letter_code(answer.code)) reason = std::string(answer_code_name(answer.code)) + ": " + answer.message;
  return answer_writes(record, answer, read, /*remember=*/true, reason, with_values);
}

// Every record of a wave moves its partition's stored offset. The wave is
// one batch, so only the last offset of each partition counts: the others
// would cost a memtable insert each and change nothing.
static void keep_last_offset_of_each_partition(std::vector<SideWrite>& writes) {
  std::vector<std::string_view> seen;  // a wave spans a handful of partitions
  std::vector<bool> keep(writes.size(), true);
  bool dropped = false;
  for (std::size_t i = writes.size(); i-- > 0;) {
    const SideWrite& w = writes[i];
    if (w.family != consumer_offsets_family) continue;
    CS_ASSERT(!w.sequenced && !w.value_after, "a stored offset is a plain write");
    if (std::find(seen.begin(), seen.end(), std::string_view(w.key)) != seen.end()) {
      keep[i] = false;
      dropped = true;
    } else {
      seen.push_back(w.key);
    }
  }
  if (!dropped) return;
  std::vector<SideWrite> kept;
  kept.reserve(writes.size());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(writes[i]));
  }
  writes = std::move(kept);
}

// Stores a wave of decisions in one append (one batch, one WAL sync): the
// events of those that have one, every side write, the answers made once
// the sequences are known. Refused (a stream rule, a partial duplicate):
// nothing was written and the caller decides them one by one.
Status RequestProcessor::commit_wave(const std::vector<const ConsumedRecord*>& records, std::vector<Decision>& wave) {
  std::vector<NewEvent> events;
  std::vector<SideWrite> writes;
  for (std::size_t i = 0; i < wave.size(); ++i) {
    Decision& d = wave[i];
    if (d.skipped) continue;
    if (!d.event) {
      for (auto& w : d.writes) writes.push_back(std::move(w));
      continue;
    }
    const std::size_t at = events.size();
    events.push_back(*d.event);
    // The answer's writes, made once the event's sequence is known.
    auto made = std::make_shared<std::optional<std::vector<SideWrite>>>();
    const ConsumedRecord* record = records[i];
    auto build = [this, made, record, at, answer = d.answer, read = d.read,
                  type = payload_type(d.event->payload)](const AppendResult& r) -> const std::vector<SideWrite>& {
      if (!*made) {
        Answer final = answer;
        final.events = {{type, r.positions[at].seq}};
        final.message = r.duplicate ? "already applied (a redelivered request)" : "applied";
        *made = writes_for(*record, final, read);
      }
      return **made;
    };
    // Families, keys and order only: the values are made by `build`, once.
    auto shape = writes_for(*record, d.answer, d.read, /*with_values=*/false);
    for (std::size_t k = 0; k < shape.size(); ++k) {
      SideWrite w = std::move(shape[k]);
      // The answer and the remembered answer name the event's sequence; the offset does not.
      if (w.value && w.family != consumer_offsets_family) {
        w.value_after = [build, k](const AppendResult& r) { return *build(r)[k].value; };
      }
      writes.push_back(std::move(w));
    }
  }
  if (events.empty() && writes.empty()) return {};
  keep_last_offset_of_each_partition(writes);
  const auto started = std::chrono::steady_clock::now();
  // Deferred: what a wave stores leaves the process only through the
  // distributor, which syncs the WAL before it publishes; this thread goes on
  // to the next wave instead of waiting for the disk.
  auto appended = log_.append(events, writes, Durability::deferred);
  if (!appended.ok()) return appended.error();
  if (append_observer_) {
    append_observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  for (auto& d : wave) {
    if (!d.event) continue;
    d.out.events_appended = appended->duplicate ? 0 : 1;
    d.out.event_type = payload_type(d.event->payload);
    d.out.customer_id = payload_customer_id(d.event->payload);
    d.out.reason = appended->duplicate ? "already applied (a redelivered request)" : "applied";
  }
  return {};
}

static AnswerCode refusal_code(const Error& e) {
  switch (e.code()) {
    case ErrorCode::conflict: return AnswerCode::conflict;
    case ErrorCode::invalid_argument: return AnswerCode::invalid;
    case ErrorCode::not_found: return AnswerCode::not_found;
    default: return AnswerCode::unavailable;
  }
}

static bool is_refusal(const Error& e) {
  return e.code() == ErrorCode::conflict || e.code() == ErrorCode::invalid_argument ||
         e.code() == ErrorCode::not_found;
}

Result<ProcessedRecord> RequestProcessor::process(const ConsumedRecord& record) {
  auto out = process_batch(std::span(&record, 1));
  if (!out.ok()) return out.error();
  return std::move(out->front());
}

Result<ProcessedRecord> RequestProcessor::process_alone(const ConsumedRecord& record) {
  auto screened = screen(record);
  if (!screened.ok()) return screened.error();
  std::vector<Decision> wave;
  if (screened->decided) {
    wave.push_back(std::move(*screened->decided));
  } else {
    auto d = decide(record, *screened->request);
    if (!d.ok()) return d.error();
    wave.push_back(std::move(*d));
  }
  std::vector<const ConsumedRecord*> records = {&record};
  auto s = commit_wave(records, wave);
  if (!s.ok() && is_refusal(s.error()) && wave.front().event) {
    // The log refused the event (an expected version moved, a stream rule):
    // that is the answer.
    Decision& d = wave.front();
    d.answer.code = refusal_code(s.error());
    d.answer.message = s.error().message();
    d.event.reset();
    d.writes = writes_for(record, d.answer, d.read);
    d.out.code = d.answer.code;
    d.out.reason = d.answer.message;
    d.out.outcome = dead_letter_code(d.answer.code) ? RecordOutcome::dead_lettered : RecordOutcome::answered;
    s = commit_wave(records, wave);
  }
  if (!s.ok()) return s.error();
  return std::move(wave.front().out);
}

Result<std::vector<ProcessedRecord>> RequestProcessor::process_batch(std::span<const ConsumedRecord> batch) {
  std::unique_lock<std::mutex> lock;
  if (decisions_) lock = std::unique_lock(*decisions_);
  std::vector<ProcessedRecord> results;
  results.reserve(batch.size());
  std::vector<Decision> wave;
  std::vector<const ConsumedRecord*> wave_records;
  std::set<std::string> wave_keys;
  std::size_t wave_side_writes = 0;
  auto flush = [&]() -> Status {
    if (wave.empty()) return {};
    auto s = commit_wave(wave_records, wave);
    if (s.ok()) {
      for (auto& d : wave) results.push_back(std::move(d.out));
    } else if (is_refusal(s.error())) {
      // One of them was refused by the log and nothing was written: decide
      // and store them one by one.
      for (const ConsumedRecord* r : wave_records) {
        auto one = process_alone(*r);
        if (!one.ok()) return one.error();
        results.push_back(std::move(*one));
      }
    } else {
      return s;
    }
    wave.clear();
    wave_records.clear();
    wave_keys.clear();
    wave_side_writes = 0;
    return {};
  };
  for (const ConsumedRecord& record : batch) {
    auto screened = screen(record);
    if (!screened.ok()) return screened.error();
    std::vector<std::string> keys;
    if (screened->request) keys = conflict_keys(*screened->request);
    bool clash = wave.size() >= wave_requests_max || wave_side_writes + request_side_writes_max > limits::side_writes_max;
    for (const auto& k : keys) clash = clash || wave_keys.count(k);
    if (clash) {
      if (auto s = flush(); !s.ok()) return s.error();
    }
    Decision d;
    if (screened->decided) {
      d = std::move(*screened->decided);
    } else {
      auto decided = decide(record, *screened->request);
      if (!decided.ok()) return decided.error();
      d = std::move(*decided);
    }
    wave_side_writes += request_side_writes_max;
    wave_keys.insert(keys.begin(), keys.end());
    wave.push_back(std::move(d));
    wave_records.push_back(&record);
  }
  if (auto s = flush(); !s.ok()) return s.error();
  // Read-your-writes: a query after an answer sees its events. A failure
  // here leaves the outcomes stored; the next decision catches up again.
  (void)handler_.catch_up();
  return results;
}

}  // namespace cs
