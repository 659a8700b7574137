#include "kafka_errors.h"

namespace cs {

TxnError classify(rd_kafka_t* producer, rd_kafka_error_t* error, std::string_view context) {
  CS_ASSERT(error != nullptr, "classify() takes an error");
  std::string message = std::string(context) + ": " + rd_kafka_error_string(error);
  TxnErrorKind kind;
  if (rd_kafka_error_is_fatal(error)) {
    char reason[512];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(producer, reason, sizeof reason);
    bool fenced = code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                  code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
                  rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__FENCED ||
                  rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
    kind = fenced ? TxnErrorKind::fenced : TxnErrorKind::fatal;
  } else if (rd_kafka_error_txn_requires_abort(error)) {
    kind = TxnErrorKind::abortable;
  } else if (rd_kafka_error_is_retriable(error)) {
    kind = TxnErrorKind::retriable;
  } else {
    // Neither fatal, abortable nor retriable (a timeout on commit, a state
    // error): abort and rewind is the safe way on.
    kind = TxnErrorKind::abortable;
  }
  rd_kafka_error_destroy(error);
  return {kind, std::move(message)};
}

bool is_permanent_record_error(rd_kafka_resp_err_t code) {
  switch (code) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR__INVALID_ARG: return true;
    default: return false;
  }
}

Error to_error(const TxnError& e) {
  switch (e.kind) {
    case TxnErrorKind::retriable:
    case TxnErrorKind::abortable: return retriable_error(e.message);
    case TxnErrorKind::fatal: return fatal_error(e.message);
    case TxnErrorKind::fenced: return fenced_error("fenced: " + e.message);
  }
  CS_UNREACHABLE("transaction error kind");
}

}  // namespace cs
