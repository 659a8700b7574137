#include "cs/request_processor.h"

#include <charconv>

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

// request_answers value: the sender, then the first answer record.
std::string remembered(std::string_view source_service, const OutboxRecord& answer) {
  std::string out(1, static_cast<char>(std::min<std::size_t>(source_service.size(), 255)));
  out.append(source_service.substr(0, 255));
  out += encode_outbox_record(answer);
  return out;
}

struct Remembered {
  std::string source_service;
  OutboxRecord answer;
};

Result<Remembered> parse_remembered(std::string_view bytes) {
  if (bytes.empty() || bytes.size() < 1u + static_cast<unsigned char>(bytes[0])) {
    return corruption_error("request_answers: truncated entry");
  }
  const std::size_t n = static_cast<unsigned char>(bytes[0]);
  auto answer = decode_outbox_record(bytes.substr(1 + n));
  if (!answer.ok()) return corruption_error("request_answers: " + answer.error().message());
  return Remembered{std::string(bytes.substr(1, n)), std::move(*answer)};
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
static std::vector<OutboxRecord> answer_records(const ConsumedRecord& record, const Answer& answer, bool read,
                                                const std::string& prefix) {
  std::vector<OutboxRecord> out;
  OutboxRecord main;
  main.topic = prefix + (read ? data_response_topic : request_result_topic);
  if (answer.customer_id) {
    main.key = answer.customer_id->to_string();
  } else if (answer.request_id) {
    main.key = answer.request_id->to_string();
  }
  main.value = read ? answer.data_response_record() : answer.result_record();
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
                                                       bool remember,
                                                       std::optional<std::string> dead_letter_reason) const {
  std::vector<SideWrite> writes;
  auto records = answer_records(record, answer, read, topic_prefix_);
  for (const auto& r : records) writes.push_back(outbox_write(r));
  if (remember && answer.request_id) {
    const auto& id = answer.request_id->bytes();
    writes.push_back(SideWrite{.family = request_answers_family,
                               .key = std::string(reinterpret_cast<const char*>(id.data()), id.size()),
                               .value = remembered(answer.source_service, records.front())});
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

Result<ProcessedRecord> RequestProcessor::dead_letter(const ConsumedRecord& record, std::string reason,
                                                      const std::optional<Answer>& answer) {
  std::vector<SideWrite> writes;
  if (answer) {
    writes = answer_writes(record, *answer, /*read=*/false, /*remember=*/false, reason);
  } else {
    Answer none;  // only the dead letter and the offset
    writes = answer_writes(record, none, false, false, reason);
    writes.erase(writes.begin());  // no answer without a requestId to answer to
  }
  auto stored = log_.append({}, writes);
  if (!stored.ok()) return stored.error();
  ProcessedRecord out;
  out.outcome = RecordOutcome::dead_lettered;
  out.topic = std::string(record.topic);
  out.code = answer ? answer->code : AnswerCode::invalid;
  if (answer) out.action = answer->action;
  out.reason = std::move(reason);
  return out;
}

Result<ProcessedRecord> RequestProcessor::process(const ConsumedRecord& record) {
  auto stored = stored_offset(record.topic, record.partition);
  if (!stored.ok()) return stored.error();
  if (*stored && record.offset < **stored) {
    return ProcessedRecord{.outcome = RecordOutcome::skipped, .topic = std::string(record.topic)};
  }
  if (!record.value) return dead_letter(record, "invalid: the record has no value", std::nullopt);
  const std::string_view value = *record.value;
  if (value.size() > request_bytes_max) {
    return dead_letter(record, "oversized: " + std::to_string(value.size()) + " bytes, at most " +
                                   std::to_string(request_bytes_max), std::nullopt);
  }
  std::string_view topic = record.topic;
  if (!topic.starts_with(topic_prefix_)) {
    return dead_letter(record, "invalid: topic " + shown(topic) + " is not under the prefix " + shown(topic_prefix_),
                       std::nullopt);
  }
  topic.remove_prefix(topic_prefix_.size());
  std::optional<Uuid> request_id;
  auto request = parse_request(topic, value, &request_id);
  if (!request.ok()) {
    std::optional<Answer> answer;
    if (request_id) answer = refusal(AnswerCode::invalid, request.error().message(), request_id);
    return dead_letter(record, "invalid: " + request.error().message(), answer);
  }
  const std::string action(request->kind->action);
  if (credentials_) {
    auto service = header(record, "x-service");
    auto signature = header(record, "x-signature");
    std::string why;
    if (!service || !signature) {
      why = "the record has no x-service and x-signature headers";
    } else if (*service != request->source_service) {
      why = "x-service '" + shown(*service) + "' is not the sourceService '" +
            shown(request->source_service) + "'";
    } else if (auto s = credentials_->verify_signature(*service, value, *signature); !s.ok()) {
      why = s.error().message();
    }
    if (!why.empty()) {
      Answer answer = refusal(AnswerCode::unauthenticated, why, request->request_id, request->source_service, action);
      return dead_letter(record, "unauthenticated: " + why, answer);
    }
  }

  // A client's retry: its first answer again, nothing applied.
  const auto& id = request->request_id.bytes();
  auto earlier = log_.read_side(request_answers_family, std::string(reinterpret_cast<const char*>(id.data()), id.size()));
  if (!earlier.ok()) return earlier.error();
  if (*earlier) {
    auto first = parse_remembered(**earlier);
    if (!first.ok()) return first.error();
    ProcessedRecord out{.outcome = RecordOutcome::replayed, .topic = std::string(record.topic), .action = action};
    std::vector<SideWrite> writes;
    if (first->source_service != request->source_service) {
      Answer answer = refusal(AnswerCode::conflict,
                              "requestId " + request->request_id.to_string() + " was used by another service",
                              request->request_id, request->source_service, action);
      writes = answer_writes(record, answer, !request->kind->event, /*remember=*/false, std::nullopt);
      out.outcome = RecordOutcome::answered;
      out.code = AnswerCode::conflict;
      out.reason = answer.message;
    } else {
      writes.push_back(outbox_write(first->answer));
      auto reply = answer_records(record, Answer{}, false, topic_prefix_);
      if (reply.size() > 1) {
        reply[1].key = first->answer.key;
        reply[1].value = first->answer.value;
        writes.push_back(outbox_write(reply[1]));
      }
      writes.push_back(SideWrite{.family = consumer_offsets_family,
                                 .key = offset_key(record.topic, record.partition),
                                 .value = std::to_string(record.offset + 1)});
      out.reason = "answered before";
    }
    auto s = log_.append({}, writes);
    if (!s.ok()) return s.error();
    return out;
  }

  const bool read = !request->kind->event;
  Answer answer = handler_.handle(*request, [&](const Answer& a) {
    std::optional<std::string> reason;
    if (dead_letter_code(a.code)) reason = std::string(answer_code_name(a.code)) + ": " + a.message;
    return answer_writes(record, a, read, /*remember=*/true, reason);
  });
  if (answer.code == AnswerCode::unavailable) return retriable_error("the store is unavailable: " + answer.message);
  ProcessedRecord out{.outcome = dead_letter_code(answer.code) ? RecordOutcome::dead_lettered : RecordOutcome::answered,
                      .topic = std::string(record.topic),
                      .action = action,
                      .code = answer.code,
                      .reason = answer.message,
                      .events_appended = answer.events.size()};
  return out;
}

}  // namespace cs
