#include "cs/replay.h"

#include <istream>
#include <ostream>
#include <thread>

#include "cs/bounded_queue.h"

#include "cs/json_codec.h"
#include "cs/line_reader.h"

namespace cs {

Result<ExportReport> export_events(const EventLog& log, Sequence from, std::optional<Sequence> to,
                                   std::ostream& out, const Progress& progress) {
  Sequence last = to ? std::min(*to, log.head()) : log.head();
  std::uint64_t total = last >= from ? last.value - from.value + 1 : 0, written = 0;
  ExportReport report;
  auto s = log.read({.from_seq = from, .to_seq = last}, [&](const RecordedEvent& e) {
    out << format_event_line(e) << '\n';
    ++written;
    report.last_seq = e.seq;
    report.last_hash = e.hash;
    if (progress && written % 4096 == 0) progress(written, total);
    return static_cast<bool>(out);
  });
  if (!s.ok()) return s.error();
  out.flush();
  if (!out) return fatal_error("export: the output could not be written");
  if (progress) progress(written, total);
  report.events = written;
  return report;
}

namespace {

Result<RecordedEvent> to_recorded(const EventLine& line) {
  if (!line.seq || !line.version || !line.recorded_at || !line.hash || !line.id || !line.timestamp) {
    return invalid_argument("an imported line needs id, seq, version, timestamp, recordedAt and hash (as `csctl export` writes)");
  }
  if (line.recorded_at->micros % 1000 != 0) {
    return invalid_argument("recordedAt " + format_timestamp(*line.recorded_at) +
                            " has more than millisecond precision; the log records whole milliseconds");
  }
  RecordedEvent e;
  e.seq = *line.seq;
  e.id = *line.id;
  e.stream = payload_stream(line.payload);
  e.version = *line.version;
  e.timestamp = line.timestamp.value_or(Timestamp{});
  e.recorded_at = *line.recorded_at;
  e.meta = line.meta;
  e.stored_schema_version = line.schema_version;
  e.payload = line.payload;
  e.hash = *line.hash;
  e.sealed = line.sealed;
  return e;
}

}  // namespace

namespace {

// Parsed batches the parsing thread may hold ready.
constexpr std::size_t import_batches_ahead_max = 2;

// Lines parsed ahead of the log: up to import_batch_events_max events (or
// limits::append_pending_bytes_max of input), ending early at a bad line.
struct ImportBatch {
  std::vector<RecordedEvent> events;
  std::vector<std::uint64_t> line_numbers;
  std::optional<Error> bad;  // the line right after `events`, named
};

void parse_import_lines(std::istream& in, BoundedQueue<ImportBatch>& out) {
  LineReader reader(in, limits::json_line_bytes_max);
  std::string_view text;
  bool too_long = false;
  ImportBatch batch;
  std::size_t batch_bytes = 0;
  while (reader.next(text, too_long)) {
    if (!too_long && text.find_first_not_of(" \t") == std::string::npos) continue;
    auto bad = [&](const std::string& why) { batch.bad = invalid_argument("line " + std::to_string(reader.number()) + ": " + why); };
    if (too_long) {
      bad("longer than " + std::to_string(limits::json_line_bytes_max) + " bytes");
    } else if (auto line = parse_event_line(text); !line.ok()) {
      bad(line.error().message());
    } else if (auto event = to_recorded(*line); !event.ok()) {
      bad(event.error().message());
    } else {
      batch.events.push_back(std::move(*event));
      batch.line_numbers.push_back(reader.number());
      batch_bytes += text.size();
    }
    if (batch.bad || batch.events.size() >= import_batch_events_max || batch_bytes >= limits::append_pending_bytes_max) {
      const bool stop = batch.bad.has_value();
      if (!out.push(std::move(batch)) || stop) break;
      batch = ImportBatch{};
      batch_bytes = 0;
    }
  }
  if (!batch.events.empty()) out.push(std::move(batch));
  out.close();
}

}  // namespace

// Lines are parsed on a second thread while the log commits the batch before.
Result<ImportReport> import_events(EventLog& log, std::istream& in, const Progress& progress) {
  ImportReport report;
  auto flush = [&](const ImportBatch& batch) -> Status {
    if (batch.events.empty()) return {};
    auto r = log.import(batch.events);
    if (!r.ok()) {
      // Name the line: import again one by one up to the failing event.
      for (std::size_t i = 0; i < batch.events.size(); ++i) {
        auto one = log.import(std::span(&batch.events[i], 1));
        if (!one.ok()) {
          return Error(one.error().code(), "line " + std::to_string(batch.line_numbers[i]) + ": " + one.error().message());
        }
        ++report.imported;
      }
    } else {
      report.imported += batch.events.size();
    }
    if (progress) progress(report.imported, 0);
    return {};
  };
  BoundedQueue<ImportBatch> batches(import_batches_ahead_max);
  std::thread parser([&] { parse_import_lines(in, batches); });
  Status result;
  ImportBatch batch;
  while (result.ok() && batches.pop(batch)) {
    result = flush(batch);  // lines before a bad one go in first
    if (result.ok() && batch.bad) result = *batch.bad;
  }
  batches.cancel();
  parser.join();
  if (!result.ok()) return result.error();
  report.head = log.head();
  report.head_hash = log.head_hash();
  return report;
}

Result<ReplayStore> replay_into(const EventLog& source, const std::filesystem::path& target_dir,
                                const FoldRange& range, const Progress& progress) {
  std::error_code ec;
  if (std::filesystem::exists(target_dir / "CURRENT", ec)) {
    return invalid_argument("replay: " + target_dir.string() + " already holds a store; give a new directory");
  }
  if (std::filesystem::equivalent(target_dir, source.dir(), ec)) {
    return invalid_argument("replay: the target is the live data directory");
  }
  ReplayStore store;
  auto log = EventLog::open(target_dir, {.sync_each_group = false});
  if (!log.ok()) return log.error();
  store.log = std::move(*log);
  auto engine = ProjectionEngine::open(*store.log);
  if (!engine.ok()) return engine.error();
  store.engine = std::move(*engine);
  if (auto s = store.engine->fold_from(source, range, progress); !s.ok()) return s.error();
  return store;
}

Result<nlohmann::ordered_json> customer_view(const ProjectionEngine& engine, const Uuid& customer) {
  auto view = engine.view(customer);
  if (!view.ok()) return view.error();
  return to_json(*view);
}

Result<std::optional<CustomerView>> customer_view_at(const EventLog& log, const Uuid& customer,
                                                     const FoldRange& range) {
  const Sequence last = range.to_seq ? std::min(*range.to_seq, log.head()) : log.head();
  auto owned = log.customer_streams(customer);
  if (!owned.ok()) return owned.error();
  if (!*owned) return std::optional<CustomerView>();
  std::vector<StreamKey> streams = {{Category::customer, customer}, {Category::token, customer}};
  streams.insert(streams.end(), (*owned)->begin(), (*owned)->end());
  CustomerViewBuilder builder;
  for (const auto& stream : streams) {
    ReadQuery query;
    query.stream = stream.name();
    auto s = log.read(query, [&](const RecordedEvent& e) {
      if (e.seq > last) return false;  // a stream is in log order
      if (e.seq >= range.from_seq && (!range.as_of || e.timestamp <= *range.as_of)) builder.apply(e);
      return true;
    });
    if (!s.ok()) return s.error();
  }
  return std::optional<CustomerView>(std::move(builder).finish());
}

}  // namespace cs
