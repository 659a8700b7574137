// Operators' tools over the log: export and import as JSON lines, and replay
// of history into a separate projection store (state as of a moment).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>

#include "cs/event_log.h"
#include "cs/json_codec.h"
#include "cs/projection_engine.h"

namespace cs {

// Events imported per atomic import call.
inline constexpr std::size_t import_batch_events_max = 1'000;

struct ExportReport {
  std::uint64_t events = 0;
  std::uint64_t data_keys = 0;  // key lines written before the events
  Sequence last_seq;  // of the last event written (0: none)
  Hash last_hash{};   // its chain hash, which commits to every event before it
};

// Writes every event of [from, to] (to: the head) as one JSON line each.
// The stored form by default: sealed personal fields as they are (base64),
// preceded by what an import needs to read them again — the master key's
// fingerprint and every customer's data key, wrapped by the master key (or
// marked erased):
//   {"masterKeyCheck":"<hex>"}
//   {"dataKey":{"customerId":"…","wrapped":"<base64>"}}   {"dataKey":{"customerId":"…","erased":true}}
// `decrypt`: personal fields opened (null and "erased" for erased
// customers), no key lines: for people and `csctl append`, not for import.
Result<ExportReport> export_events(const EventLog& log, Sequence from, std::optional<Sequence> to,
                                    std::ostream& out, const Progress& progress = {}, bool decrypt = false);

struct ImportReport {
  std::uint64_t imported = 0;
  std::uint64_t data_keys = 0;
  Sequence head;
  Hash head_hash{};
};

// Reads exported lines from `in` into `log`, which they must continue (an
// empty log takes an export that starts at seq 1). Every event line needs its
// seq, version, recordedAt and hash; key lines are stored as they come (a
// fingerprint of another master key than the log's is refused). Stops at the
// first bad line with an invalid_argument / corruption error that names the
// line; what came before it is imported.
Result<ImportReport> import_events(EventLog& log, std::istream& in, const Progress& progress = {});

// An exported line (parsed) as the event import takes: it needs its id, seq,
// version, timestamp, recordedAt and hash. invalid_argument naming what lacks.
Result<RecordedEvent> recorded_event_from_line(const EventLine& line);

// A projection store built by replay: its own log directory (holding no
// events) and the engine over it. Owns both.
struct ReplayStore {
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ProjectionEngine> engine;
};

// Folds `range` of `source` into a new projection store in `target_dir`, which
// must not hold a store yet. The source is only read.
Result<ReplayStore> replay_into(const EventLog& source, const std::filesystem::path& target_dir,
                                const FoldRange& range, const Progress& progress = {});

// Everything the projections know of one customer, as one JSON object:
// {"customer": …, "tokens": …, "subscriptions": […], "users": […]}.
Result<nlohmann::ordered_json> customer_view(const ProjectionEngine& engine, const Uuid& customer);

// One customer as of `range` (its from_seq, to_seq and as_of; its customer
// field is ignored), folded in memory from that customer's streams only,
// found through the log's indexes: time and memory in proportion to the
// customer's events, whatever the size of the log. The same view a replay of
// the whole log into a store gives for that customer. nullopt when the log
// has no customer index (an old log opened read-only: replay_into then).
// Reads a consistent cut: nothing past the head at the call's start.
Result<std::optional<CustomerView>> customer_view_at(const EventLog& log, const Uuid& customer,
                                                     const FoldRange& range);

}  // namespace cs
