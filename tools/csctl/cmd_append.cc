// csctl append: JSON lines from stdin into the log.
//
// Lines are checked in batches of --batch-size (a batch is staged as one
// append: all of it or, when the log refuses it, line by line to name the
// bad one) and committed in chunks (EventLog::BulkWriter): up to
// limits::bulk_chunk_bytes_max at a time, and whatever is staged when the
// input pauses (a pipe whose writer is idle) or ends. A bad line (it does
// not parse, or the log refuses it: a conflict, a partial duplicate) is
// reported on stderr with its line number; without --skip-invalid the
// command stops there: every line before it is in the log, nothing from it
// on. With --skip-invalid it goes on and appends the rest.
#include <unistd.h>

#include <iostream>
#include <thread>

#include "command.h"
#include "cs/bounded_queue.h"
#include "cs/json_codec.h"
#include "cs/line_reader.h"

namespace cs::csctl {
namespace {

class Appender {
 public:
  Appender(EventLog& log, EventLog::BulkWriter& bulk, bool skip_invalid)
      : log_(log), bulk_(bulk), skip_invalid_(skip_invalid), head_before_(log.head().value) {}

  // Stages the batch. Returns false when the command must stop (a bad line
  // in strict mode, or an operating error).
  bool flush() {
    if (events_.empty()) return true;
    auto r = prepared_ ? bulk_.append(*prepared_) : bulk_.append(events_);
    prepared_.reset();
    if (r.ok()) {
      record(*r);
      clear();
      return true;
    }
    if (!is_about_the_input(r.error())) return operating_error(r.error());
    // Find the offending line(s): the batch again, one line at a time.
    for (std::size_t i = 0; i < events_.size(); ++i) {
      auto one = bulk_.append(std::span(&events_[i], 1));
      if (one.ok()) {
        record(*one);
        continue;
      }
      if (!is_about_the_input(one.error())) return operating_error(one.error());
      reject(line_numbers_[i], one.error().message());
      if (!skip_invalid_) {
        clear();
        return false;
      }
    }
    clear();
    return true;
  }

  // Commits what is staged. Returns false after an operating error (now or
  // before: a log that failed a write refuses the rest).
  bool commit() {
    if (broken_) return false;
    if (auto s = bulk_.commit(); !s.ok()) return operating_error(s.error());
    return true;
  }

  // The next batch's events, taken whole (staged by flush()), and what was
  // prepared of them (borrowing them: a vector moved keeps its elements).
  void take(std::vector<NewEvent>&& events, std::vector<std::uint64_t>&& line_numbers,
            std::optional<EventLog::Prepared>&& prepared) {
    events_ = std::move(events);
    line_numbers_ = std::move(line_numbers);
    prepared_ = std::move(prepared);
  }
  // The events staged last, for the caller to free where it costs least.
  std::vector<NewEvent> spent() { return std::move(spent_); }

  void reject(std::uint64_t line_number, const std::string& why) {
    std::cerr << "line " << line_number << ": " << why << "\n";
    ++rejected_;
  }

  void input_failed(const std::string& why) {
    std::cerr << "csctl append: read standard input: " << why << "\n";
    failed_ = true;
  }

  // What went in is what the head moved by: a chunk that failed to commit
  // is not counted.
  int finish() const {
    const std::uint64_t head = log_.head().value;
    const std::uint64_t appended = head - head_before_;
    std::cerr << "appended " << appended << " events";
    if (appended > 0) std::cerr << " (seq " << head_before_ + 1 << ".." << head << ")";
    if (duplicates_ > 0) std::cerr << ", " << duplicates_ << " already in the log";
    if (rejected_ > 0) std::cerr << ", " << rejected_ << " lines rejected";
    std::cerr << "\n";
    if (failed_) return exit_error;
    return rejected_ > 0 ? exit_findings : exit_ok;
  }

 private:
  static bool is_about_the_input(const Error& e) {
    return e.code() == ErrorCode::invalid_argument || e.code() == ErrorCode::conflict;
  }
  bool operating_error(const Error& e) {
    std::cerr << "csctl append: " << e.to_string() << "\n";
    failed_ = broken_ = true;
    return false;
  }
  void record(const AppendResult& r) {
    if (r.duplicate) duplicates_ += r.positions.size();
  }

  void clear() {
    spent_ = std::move(events_);
    events_.clear();
    line_numbers_.clear();
  }

  EventLog& log_;
  EventLog::BulkWriter& bulk_;
  bool skip_invalid_;
  const std::uint64_t head_before_;
  // The batch, appended as it is (no copy); line_numbers_[i] is events_[i]'s.
  std::vector<NewEvent> events_;
  std::vector<std::uint64_t> line_numbers_;
  std::vector<NewEvent> spent_;
  std::optional<EventLog::Prepared> prepared_;
  std::uint64_t duplicates_ = 0, rejected_ = 0;
  bool failed_ = false;  // exit 2
  bool broken_ = false;  // an operating error: nothing more is written
};

// Batches of parsed lines the parsing thread may hold ready, and staged
// ones it may be given back to free (freeing a batch's strings and payloads
// was a tenth of the staging thread's time).
constexpr std::size_t parsed_batches_ahead_max = 2;
constexpr std::size_t spent_batches_max = 2;

struct BadLine {
  std::uint64_t line_number;
  std::string message;
};

// What the parsing thread hands over: parsed lines up to --batch-size (or
// limits::append_pending_bytes_max of input), ending early at a bad line.
struct ParsedBatch {
  std::vector<NewEvent> events;
  std::vector<std::uint64_t> line_numbers;  // one per event
  std::optional<BadLine> bad;  // the line right after `events`
  bool input_paused = false;   // nothing more had arrived: commit what is staged
  // `events` checked and sealed on the parsing thread (nullopt when that
  // failed: the staging thread finds the bad line).
  std::optional<EventLog::Prepared> prepared;
};

// Reads and parses lines into `out` until the input ends or `out` is
// cancelled, freeing the batches that come back through `spent`.
void parse_lines(LineReader& reader, std::size_t batch_size, EventLog& log, BoundedQueue<ParsedBatch>& out,
                 BoundedQueue<std::vector<NewEvent>>& spent) {
  auto hand_over = [&](ParsedBatch& batch) {
    if (!batch.events.empty()) {
      if (auto prepared = log.prepare(batch.events); prepared.ok()) batch.prepared = std::move(*prepared);
    }
    return out.push(std::move(batch));
  };
  std::string_view line;
  bool too_long = false;
  const Timestamp now = Timestamp::now();
  ParsedBatch batch;
  std::size_t batch_bytes = 0;
  while (reader.next(line, too_long)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos && !too_long) continue;  // blank
    if (too_long) {
      batch.bad = BadLine{reader.number(), "line is longer than " + std::to_string(limits::json_line_bytes_max) + " bytes"};
    } else if (auto parsed = parse_event_line(line); !parsed.ok()) {
      batch.bad = BadLine{reader.number(), parsed.error().message()};
    } else if (parsed->sealed) {
      batch.bad = BadLine{reader.number(), "a sealed line (the stored form csctl export writes) is for csctl import; "
                                           "append takes events in plaintext (csctl read, export --decrypt)"};
    } else {
      batch.events.push_back(to_new_event(*parsed, now));
      batch.line_numbers.push_back(reader.number());
      batch_bytes += line.size();
    }
    batch.input_paused = !batch.events.empty() && reader.input_paused();
    if (batch.bad || batch.input_paused || batch.events.size() >= batch_size ||
        batch_bytes >= limits::append_pending_bytes_max) {
      if (!hand_over(batch)) return;
      batch = ParsedBatch{};
      batch_bytes = 0;
      for (std::vector<NewEvent> done; spent.try_pop(done);) done.clear();
    }
  }
  if (!batch.events.empty()) hand_over(batch);
  out.close();
}

}  // namespace

int run_append(const Args& args) {
  po::options_description options("append options");
  add_data_dir_option(options);
  add_chunk_bytes_option(options);
  options.add_options()("skip-invalid", "report bad lines and append the valid ones")(
      "batch-size", po::value<std::size_t>()->default_value(1000),
      "lines checked as one append (all of them or, when one is refused, line by line to name it)")(
      "no-sync", "do not fsync the write-ahead log after small chunks (a power loss may lose the last of them)");
  po::variables_map vm;
  if (auto code = parse_options("append", "--data-dir DIR [--skip-invalid] < events.jsonl", options, args, vm)) {
    return *code;
  }
  std::size_t batch_size = vm["batch-size"].as<std::size_t>();
  if (batch_size == 0 || batch_size > limits::append_events_max) {
    std::cerr << "csctl append: --batch-size must be 1 to " << limits::append_events_max << "\n";
    return exit_error;
  }
  if (!chunk_bytes_valid("append", vm)) return exit_error;
  auto log = open_log_or_report("append", vm, /*create_if_missing=*/true, vm.count("no-sync") == 0);
  if (!log) return exit_error;

  const bool skip_invalid = vm.count("skip-invalid") > 0;
  auto bulk = log->bulk_writer();
  if (!bulk.ok()) {
    std::cerr << "csctl append: " << bulk.error().to_string() << "\n";
    return exit_error;
  }
  // Destroyed before the log, declared after it.
  const std::unique_ptr<EventLog::BulkWriter> writer = std::move(*bulk);
  Appender appender(*log, *writer, skip_invalid);
  // Lines are parsed, checked and sealed on a second thread while this one
  // stages the batch before: the two halves of the work overlap on two cores.
  LineReader reader(STDIN_FILENO, limits::json_line_bytes_max);
  BoundedQueue<ParsedBatch> batches(parsed_batches_ahead_max);
  BoundedQueue<std::vector<NewEvent>> spent(spent_batches_max);
  std::thread parser([&] { parse_lines(reader, batch_size, *log, batches, spent); });
  ParsedBatch batch;
  bool stopped = false;
  while (!stopped && batches.pop(batch)) {
    appender.take(std::move(batch.events), std::move(batch.line_numbers), std::move(batch.prepared));
    // Lines before a bad one go in first, so "everything before it" holds.
    if (!appender.flush()) stopped = true;
    spent.try_push(appender.spent());  // freed here when the parser is behind
    if (!stopped && batch.bad) {
      appender.reject(batch.bad->line_number, batch.bad->message);
      stopped = !skip_invalid;
    }
    if (!stopped && batch.input_paused && !appender.commit()) stopped = true;
  }
  batches.cancel();
  parser.join();
  if (!reader.read_error().empty()) appender.input_failed(reader.read_error());
  appender.commit();
  return appender.finish();
}

}  // namespace cs::csctl
