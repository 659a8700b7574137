// librdkafka's transactional error contract, sorted in one place: every error
// a transactional call returns is retriable (call it again), abortable (abort
// the transaction, rewind to the checkpoint) or fatal (destroy the producer; a
// new one re-runs init_transactions). Fenced is the fatal case that means
// "another instance took over: stop".
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>

#include "cs/error.h"

namespace cs {

enum class TxnErrorKind { retriable, abortable, fatal, fenced };

// Takes ownership of `error` (destroys it). `producer` tells a fenced fatal
// error from the others.
struct TxnError {
  TxnErrorKind kind;
  std::string message;
};
TxnError classify(rd_kafka_t* producer, rd_kafka_error_t* error, std::string_view context);

// Errors of one record that no retry can mend: the broker refuses it (too
// large for the topic, invalid, not authorized). The others (timeouts, a
// leader moving, an unknown topic being created) may pass on a retry.
bool is_permanent_record_error(rd_kafka_resp_err_t code);

// As a cs::Error: retriable and abortable are `retriable`, fatal and fenced `fatal`.
Error to_error(const TxnError& e);

}  // namespace cs
