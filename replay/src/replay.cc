#include "cs/replay.h"

#include <istream>
#include <ostream>
#include <thread>

#include "cs/bounded_queue.h"

#include "cs/event_line_writer.h"
#include "cs/json_codec.h"
#include "cs/read_ahead.h"
#include "cs/line_reader.h"
#include "cs/personal_data.h"

namespace cs {

namespace {

// The key lines of an export: the master key's fingerprint, then each data key.
Status export_data_keys(const EventLog& log, std::ostream& out, ExportReport& report) {
  auto check = log.stored_master_key_check();
  if (!check.ok()) return check.error();
  if (!*check) return {};  // nothing was ever sealed
  out << R"({"masterKeyCheck":")" << bytes_to_hex(**check) << "\"}\n";
  return log.scan_data_keys([&](const Uuid& customer, std::string_view stored) {
    out << R"({"dataKey":{"customerId":")" << customer.to_string() << '"';
    if (EventLog::is_erased_marker(stored)) {
      out << R"(,"erased":true}})";
    } else {
      out << R"(,"wrapped":")" << base64_encode(stored.substr(1)) << "\"}}";
    }
    out << '\n';
    ++report.data_keys;
    return static_cast<bool>(out);
  });
}

}  // namespace

Result<ExportReport> export_events(const EventLog& log, Sequence from, std::optional<Sequence> to,
                                   std::ostream& out, const Progress& progress, bool decrypt) {
  // The head first: every event up to it was appended after its key was stored.
  Sequence last = to ? std::min(*to, log.head()) : log.head();
  std::uint64_t total = last >= from ? last.value - from.value + 1 : 0, written = 0;
  ExportReport report;
  if (!decrypt) {
    if (auto s = export_data_keys(log, out, report); !s.ok()) return s.error();
  }
  ReadQuery query{.from_seq = from, .to_seq = last};
  query.decrypt = decrypt;
  // Events are read and decoded on a second thread while this one formats them.
  EventLineWriter lines(out);
  auto s = read_ahead(log, query, [&](const RecordedEvent& e) {
    ++written;
    report.last_seq = e.seq;
    report.last_hash = e.hash;
    if (progress && written % 4096 == 0) progress(written, total);
    return lines.add(e);
  });
  if (!s.ok()) return s.error();
  if (!lines.finish()) return fatal_error("export: the output could not be written");
  if (progress) progress(written, total);
  report.events = written;
  return report;
}

Result<RecordedEvent> recorded_event_from_line(const EventLine& line) {
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

namespace {

// Parsed batches the parsing thread may hold ready.
constexpr std::size_t import_batches_ahead_max = 2;

// Lines parsed ahead of the log: up to import_batch_events_max events (or
// limits::append_pending_bytes_max of input), ending early at a bad line.
struct ImportBatch {
  std::vector<RecordedEvent> events;
  std::vector<std::uint64_t> line_numbers;
  // Key lines read with these events, stored before them.
  struct KeyLine {
    std::uint64_t line = 0;
    std::optional<std::string> master_key_check;  // a fingerprint line
    Uuid customer;
    std::string stored;  // a data key line: as EventLog stores it
  };
  std::vector<KeyLine> keys;
  std::optional<Error> bad;  // the line right after `events`, named
  // `events` checked on the parsing thread (nullopt when that failed: the
  // importing thread names the line). Borrows them: a moved vector keeps them.
  std::optional<EventLog::Prepared> prepared;
};

// The first key of a JSON object line, when it is one of the key lines'.
std::string_view first_key(std::string_view text) {
  auto open = text.find_first_not_of(" \t");
  if (open == std::string_view::npos || text[open] != '{') return {};
  auto quote = text.find_first_not_of(" \t", open + 1);
  if (quote == std::string_view::npos || text[quote] != '"') return {};
  auto end = text.find('"', quote + 1);
  return end == std::string_view::npos ? std::string_view() : text.substr(quote + 1, end - quote - 1);
}

// {"masterKeyCheck":"<hex>"} or {"dataKey":{"customerId":"…","wrapped":"…"|"erased":true}}.
Result<ImportBatch::KeyLine> parse_key_line(std::string_view text) {
  auto doc = parse_json_document(text);
  if (!doc.ok()) return doc.error();
  ImportBatch::KeyLine key;
  if (doc->is_object() && doc->size() == 1 && doc->contains("masterKeyCheck")) {
    const auto& v = (*doc)["masterKeyCheck"];
    auto bytes = v.is_string() ? hash_from_hex(v.get<std::string>()) : std::nullopt;
    if (!bytes) return invalid_argument("masterKeyCheck must be 64 hex digits");
    key.master_key_check = std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    return key;
  }
  const nlohmann::json* k = doc->is_object() && doc->size() == 1 && doc->contains("dataKey") ? &(*doc)["dataKey"] : nullptr;
  if (k == nullptr || !k->is_object() || k->size() != 2 || !k->contains("customerId") || !(*k)["customerId"].is_string()) {
    return invalid_argument("a key line is {\"dataKey\":{\"customerId\":…,\"wrapped\":…}} or {\"masterKeyCheck\":…}");
  }
  auto customer = Uuid::parse((*k)["customerId"].get<std::string>());
  if (!customer) return invalid_argument("dataKey.customerId must be a UUID");
  key.customer = *customer;
  if (k->contains("erased") && (*k)["erased"] == true) {
    key.stored = std::string(1, '\0');
  } else if (k->contains("wrapped") && (*k)["wrapped"].is_string()) {
    auto wrapped = base64_decode((*k)["wrapped"].get<std::string>());
    if (!wrapped) return invalid_argument("dataKey.wrapped must be base64");
    key.stored = std::string(1, '\1') + *wrapped;
  } else {
    return invalid_argument("dataKey needs \"wrapped\" (base64) or \"erased\": true");
  }
  return key;
}

void parse_import_lines(std::istream& in, const EventLog& log, BoundedQueue<ImportBatch>& out) {
  auto hand_over = [&](ImportBatch& batch) {
    if (!batch.events.empty()) {
      if (auto prepared = log.prepare_import(batch.events); prepared.ok()) batch.prepared = std::move(*prepared);
    }
    return out.push(std::move(batch));
  };
  LineReader reader(in, limits::json_line_bytes_max);
  std::string_view text;
  bool too_long = false;
  ImportBatch batch;
  std::size_t batch_bytes = 0;
  while (reader.next(text, too_long)) {
    if (!too_long && text.find_first_not_of(" \t") == std::string::npos) continue;
    auto bad = [&](const std::string& why) { batch.bad = invalid_argument("line " + std::to_string(reader.number()) + ": " + why); };
    const std::string_view first = too_long ? std::string_view() : first_key(text);
    if (too_long) {
      bad("longer than " + std::to_string(limits::json_line_bytes_max) + " bytes");
    } else if (first == "dataKey" || first == "masterKeyCheck") {
      if (auto key = parse_key_line(text); !key.ok()) {
        bad(key.error().message());
      } else {
        key->line = reader.number();
        batch.keys.push_back(std::move(*key));
      }
    } else if (auto line = parse_event_line(text); !line.ok()) {
      bad(line.error().message());
    } else if (auto event = recorded_event_from_line(*line); !event.ok()) {
      bad(event.error().message());
    } else {
      batch.events.push_back(std::move(*event));
      batch.line_numbers.push_back(reader.number());
      batch_bytes += text.size();
    }
    if (batch.bad || batch.events.size() >= import_batch_events_max || batch_bytes >= limits::append_pending_bytes_max) {
      const bool stop = batch.bad.has_value();
      if (!hand_over(batch) || stop) break;
      batch = ImportBatch{};
      batch_bytes = 0;
    }
  }
  if (!batch.events.empty() || !batch.keys.empty()) hand_over(batch);
  out.close();
}

}  // namespace

// Lines are parsed on a second thread while this one stages the batch
// before; the log's bulk writer commits them in chunks (ingested tables).
Result<ImportReport> import_events(EventLog& log, std::istream& in, const Progress& progress) {
  ImportReport report;
  auto bulk = log.bulk_writer();
  if (!bulk.ok()) return bulk.error();
  EventLog::BulkWriter& writer = **bulk;
  auto store_keys = [&](const ImportBatch& batch) -> Status {
    for (const auto& key : batch.keys) {
      const std::string where = "line " + std::to_string(key.line) + ": ";
      if (key.master_key_check) {
        // Under the log's own key, or (a log without a key) the export's is taken.
        if (auto s = log.adopt_master_key_check(*key.master_key_check); !s.ok()) {
          return Error(s.error().code(), where + s.error().message());
        }
        continue;
      }
      if (auto s = log.import_data_key(key.customer, key.stored); !s.ok()) {
        return Error(s.error().code(), where + s.error().message());
      }
      ++report.data_keys;
    }
    return {};
  };
  auto flush = [&](const ImportBatch& batch) -> Status {
    if (auto s = store_keys(batch); !s.ok()) return s;
    if (batch.events.empty()) return {};
    auto r = batch.prepared ? writer.import(*batch.prepared) : writer.import(batch.events);
    if (!r.ok()) {
      // Name the line: import again one by one up to the failing event.
      for (std::size_t i = 0; i < batch.events.size(); ++i) {
        auto one = writer.import(std::span(&batch.events[i], 1));
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
  std::thread parser([&] { parse_import_lines(in, log, batches); });
  Status result;
  ImportBatch batch;
  while (result.ok() && batches.pop(batch)) {
    result = flush(batch);  // lines before a bad one go in first
    if (result.ok() && batch.bad) result = *batch.bad;
  }
  batches.cancel();
  parser.join();
  // What was staged before a bad line goes in: "everything before it".
  if (auto committed = writer.commit(); !committed.ok()) return committed.error();
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
  // The store keeps the source's sealed values: it gets its keys, under the
  // same master key.
  auto log = EventLog::open(target_dir, {.sync_each_group = false,
                                         .master_key_file = source.master_key_file(),
                                         .create_master_key = false});
  if (!log.ok()) return log.error();
  store.log = std::move(*log);
  Status copied;
  auto scanned = source.scan_data_keys([&](const Uuid& customer, std::string_view stored) {
    copied = store.log->import_data_key(customer, stored);
    return copied.ok();
  });
  if (!scanned.ok()) return scanned.error();
  if (!copied.ok()) return copied.error();
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
  CustomerView view = std::move(builder).finish();
  if (auto s = open_personal(log, view); !s.ok()) return s.error();
  return std::optional<CustomerView>(std::move(view));
}

}  // namespace cs
