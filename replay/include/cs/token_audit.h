// "Where did this customer's tokens go?" and "is every balance right?",
// answered from the log alone.
//
// One forward pass over the whole history (the chain verified as it goes):
// the figures cover the window [from, to) by event timestamp, the checks
// cover everything. Each finding names the event sequence and the rule:
//
//   negative-balance      a use takes the balance below zero
//   use-without-credit    a use before any purchase or allocation
//   duplicate-usage-id    a usageId already used (the finding names both)
//   missing-payment-reference   a purchase without paymentReference (schema v1)
//   missing-admin-id      an allocation without adminId (schema v1)
//   use-while-suspended   tokens used while the customer was suspended
//   use-after-deletion    tokens used after the customer was deleted
//   projection-mismatch   the stored token account differs from the log's
//   broken-chain          the hash chain does not hold at that sequence
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cs/event_log.h"
#include "cs/projection_engine.h"

namespace cs {

struct AuditOptions {
  std::optional<Uuid> customer;  // default: every customer with token events
  std::optional<Timestamp> from;  // window start (inclusive)
  std::optional<Timestamp> to;    // window end (exclusive)
};

struct TokenFigures {
  std::int64_t balance_start = 0;
  std::int64_t purchased = 0;
  std::int64_t allocated = 0;
  std::int64_t used = 0;
  std::int64_t balance_end = 0;
};

struct DayFigures {
  std::int64_t purchased = 0;
  std::int64_t allocated = 0;
  std::int64_t used = 0;
  std::int64_t balance_end = 0;
};

struct CustomerAudit {
  Uuid customer;
  TokenFigures figures;
  // Tokens used in the window by feature and by user, in key order, each key
  // once (vectors: built once, only walked).
  std::vector<std::pair<std::string, std::int64_t>> used_by_feature;
  std::vector<std::pair<Uuid, std::int64_t>> used_by_user;
  // (day, figures) for each day of the window with token events, in date
  // order; a day counts from 1970-01-01 UTC (audit_day_name prints it). A
  // vector of numbers, not a map of names: hundreds of thousands of days in a
  // big audit, built in order as the scan meets them and only ever walked.
  std::vector<std::pair<std::int64_t, DayFigures>> days;
  // (timestamp, balance after the event, seq) for every token event in the window.
  struct Point {
    Timestamp at;
    std::int64_t balance;
    Sequence seq;
  };
  std::vector<Point> balance_points;
};

struct AuditFinding {
  Sequence seq;
  std::string rule;
  std::optional<Uuid> customer;
  std::string message;
};

struct AuditReport {
  AuditOptions options;
  std::vector<CustomerAudit> customers;  // ordered by customer id
  TokenFigures totals;
  std::vector<AuditFinding> findings;    // in sequence order
  std::uint64_t events_scanned = 0;
  Sequence head;
};

// The day of `t` (days since 1970-01-01, UTC), and its name, "2026-03-01".
std::int64_t audit_day_of(Timestamp t);
std::string audit_day_name(std::int64_t day);

// Points kept per customer for the chart; past it, every other one is dropped.
inline constexpr std::size_t audit_balance_points_max = 2'000;

// Audits the log. `projections`, when given, is caught up and its stored token
// accounts compared with the balances recomputed from the log. Errors are
// operating errors only (I/O); what is wrong in the data is a finding.
Result<AuditReport> audit_tokens(const EventLog& log, ProjectionEngine* projections, const AuditOptions& options,
                                 const Progress& progress = {});

// Writes the report as JSON (see docs/audit.md) to `out`, indented two
// spaces, with a final newline; the caller checks the stream.
void write_audit_json(const AuditReport& report, std::ostream& out);
// The report as long-format CSV rows, and as a plain-text table.
std::string audit_to_csv(const AuditReport& report);
std::string audit_to_table(const AuditReport& report);
// One self-contained HTML page: an inline SVG chart of each audited
// customer's balance (up to `charts_max`, customers with findings first) and
// the findings beside it. No script, no network.
std::string audit_to_html(const AuditReport& report, std::size_t charts_max = 200);

}  // namespace cs
