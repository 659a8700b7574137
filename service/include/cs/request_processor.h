// One request record → its outcome, stored exactly once (design.md,
// "Exactly-once", boundary 1). The Kafka consumer hands each record here; no
// Kafka of its own, so tests drive it with a real log and no broker.
//
// For every record, one RocksDB batch holds what it caused: the events, the
// consumed offset (`consumer_offsets`: "<topic>/<partition>" → next offset),
// the answer in the outbox (customer.request.result for commands,
// customer.data.response for reads), the first answer under its requestId
// (`request_answers`), and for what cannot be served a dead letter
// (customer-service.dlq: the original bytes, headers reason, topic,
// partition, offset). A record below its partition's stored offset was
// applied before and is skipped.
//
// Dead-lettered: a record without a value or over request_bytes_max, not a
// request (not JSON, fields missing or ill-typed: `invalid`), unsigned or
// wrongly signed (`unauthenticated`), outside the matrix (`forbidden`). A
// rule refusing a well-formed request (conflict, not_found,
// insufficient_tokens) is an answer, not a dead letter.
//
// A requestId answered before (a client's retry) gets its first answer again
// and applies nothing; used by another service, a conflict. Only
// authenticated requests are remembered, so a forged record cannot take a
// requestId from its rightful sender.
//
// NestJS request-response: a request carrying `kafka_replyTopic` and
// `kafka_correlationId` headers (ClientKafka.send) also gets its answer on
// the reply topic with the correlation id, as a NestJS microservice replies.
// Only the request topic's own reply topic ("<topic>.reply", NestJS's
// naming) is written to: a record cannot steer answers into another topic.
//
// Not thread-safe: one thread processes records.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cs/command_handler.h"
#include "cs/event_log.h"
#include "cs/outbox.h"
#include "cs/service_credentials.h"

namespace cs {

inline constexpr const char* consumer_offsets_family = "consumer_offsets";
// Requests stored in one append at most, and the side writes one request
// makes at most (answer, NestJS reply, first answer, dead letter, offset).
inline constexpr std::size_t wave_requests_max = 256;
inline constexpr std::size_t request_side_writes_max = 5;

// One record as Kafka delivered it; views valid during process().
struct ConsumedRecord {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;  // nullopt: a tombstone
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

enum class RecordOutcome : std::uint8_t {
  answered,       // applied or refused by a rule; answer stored
  dead_lettered,  // refused as bad input; dead letter (and an answer when a requestId was read) stored
  replayed,       // a requestId answered before: its first answer stored again
  skipped,        // below the stored offset: applied before
};
std::string_view record_outcome_name(RecordOutcome outcome);

struct ProcessedRecord {
  RecordOutcome outcome = RecordOutcome::answered;
  std::string topic;
  std::string action;           // empty when it could not be read
  AnswerCode code = AnswerCode::accepted;
  std::string reason;           // the dead letter's reason, or the answer's message
  std::size_t events_appended = 0;  // newly appended (0 for a request applied before)
  std::optional<EventType> event_type;
  std::optional<Uuid> customer_id;  // of the event appended
};

class RequestProcessor {
 public:
  // `log` and `handler` are borrowed and must outlive the processor.
  // `credentials` null: insecure mode, sourceService is trusted.
  // `topic_prefix` is on every topic read and written (--topic-prefix).
  RequestProcessor(EventLog& log, CommandHandler& handler, const ServiceCredentials* credentials,
                   std::string topic_prefix = {});

  // The next offset to consume on (topic, partition), nullopt when none was
  // stored. Errors: corruption (a stored offset that is not a number), I/O.
  Result<std::optional<std::int64_t>> stored_offset(std::string_view topic, std::int32_t partition) const;

  // Applies one record and stores its outcome with its offset. Stored means
  // visible and safe from a crash of this process, durable against a power
  // loss only after the next EventLog::sync_wal (Durability::deferred): the
  // outcome leaves the process through the distributor, which syncs first.
  // Errors:
  // retriable / fatal when the store could not be read or written (nothing
  // was stored: give the same record again, or stop). Never fails on the
  // record's content.
  Result<ProcessedRecord> process(const ConsumedRecord& record);
  // The same for records in the order Kafka gave them, one outcome each.
  // Consecutive records that touch different customers and requestIds are
  // decided on the same state and stored in one append (one batch: a "wave"); a record touching a customer already in the wave starts
  // the next one, so each decision sees the ones before it. A wave the log
  // refuses is decided again record by record. On an error, the outcomes of
  // the waves before it are stored: give the records again (the stored ones
  // are skipped).
  Result<std::vector<ProcessedRecord>> process_batch(std::span<const ConsumedRecord> records);

  // Decisions of other transports (HTTP) serialize with this processor's on
  // `decisions` (held for a whole batch). Borrowed; set before processing.
  void set_decisions_mutex(std::mutex* decisions) { decisions_ = decisions; }
  // Called with the seconds each wave's append took. Set before processing.
  void set_append_observer(std::function<void(double seconds)> observer) { append_observer_ = std::move(observer); }

 private:
  struct Decision {
    ProcessedRecord out;
    std::vector<SideWrite> writes;  // without an event: everything to store
    std::optional<NewEvent> event;  // with one: its answer's writes are made once its seq is known
    Answer answer;
    bool read = false;
    bool skipped = false;
  };
  struct Screened {
    std::optional<Decision> decided;  // decided without the read models
    std::optional<Request> request;   // otherwise
  };
  Result<Screened> screen(const ConsumedRecord& record) const;
  static std::vector<std::string> conflict_keys(const Request& request);
  Result<Decision> decide(const ConsumedRecord& record, const Request& request);
  Status commit_wave(const std::vector<const ConsumedRecord*>& records, std::vector<Decision>& wave);
  Result<ProcessedRecord> process_alone(const ConsumedRecord& record);
  Decision dead_letter(const ConsumedRecord& record, std::string reason, const std::optional<Answer>& answer) const;
  // Without `with_values`, the answer's values are left empty: the writes'
  // families, keys and order, for values made later (SideWrite::value_after).
  std::vector<SideWrite> writes_for(const ConsumedRecord& record, const Answer& answer, bool read,
                                    bool with_values = true) const;
  std::vector<SideWrite> answer_writes(const ConsumedRecord& record, const Answer& answer, bool read,
                                       bool remember, std::optional<std::string> dead_letter_reason,
                                       bool with_values = true) const;

  EventLog& log_;
  CommandHandler& handler_;
  const ServiceCredentials* credentials_;
  std::string topic_prefix_;
  std::mutex* decisions_ = nullptr;
  std::function<void(double)> append_observer_;
};

}  // namespace cs
