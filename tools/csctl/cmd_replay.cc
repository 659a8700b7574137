// csctl replay, export and import.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "command.h"
#include "cs/personal_data.h"
#include "cs/replay.h"
#include "progress.h"

namespace cs::csctl {
namespace {

// A private scratch directory (mkdtemp: a fresh name, mode 0700), removed
// with everything in it when the guard goes, on every return and exception.
// It holds personal data for the time of one command.
class ScratchDir {
 public:
  static Result<ScratchDir> create(const std::string& name_prefix) {
    std::error_code ec;
    auto base = std::filesystem::temp_directory_path(ec);
    if (ec) return fatal_error("cannot create a scratch directory: no temporary directory: " + ec.message());
    std::string pattern = (base / (name_prefix + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return fatal_error("cannot create a scratch directory in " + base.string() + ": " + std::strerror(errno));
    }
    return ScratchDir(pattern);
  }
  ScratchDir(ScratchDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace

namespace {

int import_failed(const Error& e) {
  std::cerr << "csctl import: " << e.to_string() << "\n";
  return e.code() == ErrorCode::fatal || e.code() == ErrorCode::retriable ? exit_error : exit_findings;
}

// Imports stdin into `log`; prints the outcome.
int import_into(EventLog& log, ImportReport* out = nullptr) {
  ProgressReporter progress("importing");
  auto report = import_events(log, std::cin, progress.callback());
  if (!report.ok()) return import_failed(report.error());
  std::cerr << "imported " << report->imported << " events";
  if (report->data_keys > 0) std::cerr << " and " << report->data_keys << " data keys";
  std::cerr << "; head seq " << report->head.value << ", head hash "
            << hash_to_hex(report->head_hash) << "\n";
  if (out) *out = *report;
  return exit_ok;
}

// Imports into a staging directory beside the target, which takes the
// target's name only when the head hash is the expected one: an export whose
// events were edited and re-hashed leaves nothing behind.
int import_expecting(const po::variables_map& vm, const Hash& expected) {
  std::filesystem::path target = vm["data-dir"].as<std::string>();
  std::error_code ec;
  if (std::filesystem::exists(target, ec) && !std::filesystem::is_empty(target, ec)) {
    std::cerr << "csctl import: with --expect-head-hash the data dir must be new or empty; " << target.string()
              << " is not\n";
    return exit_error;
  }
  std::filesystem::path parent = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string pattern = (parent / ("." + target.filename().string() + ".importing-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::cerr << "csctl import: cannot create a staging directory beside " << target.string() << ": "
              << std::strerror(errno) << "\n";
    return exit_error;
  }
  std::filesystem::path staging = pattern;
  int code = exit_ok;
  {
    // The import is built under the target's master key, which stays where it is.
    auto log = EventLog::open(staging, {.bulk_chunk_bytes_max = vm["chunk-bytes"].as<std::size_t>(),
                                        .master_key_file = master_key_file(vm),
                                        .create_master_key = false});
    if (!log.ok()) {
      code = import_failed(log.error());
    } else {
      ImportReport report;
      code = import_into(**log, &report);
      if (code == exit_ok && report.head_hash != expected) {
        std::cerr << "csctl import: the imported log ends with hash " << hash_to_hex(report.head_hash)
                  << ", not the expected " << hash_to_hex(expected) << ": nothing imported\n";
        code = exit_findings;
      }
    }
  }
  if (code == exit_ok) {
    std::filesystem::remove(target, ec);  // an empty directory, if any
    std::filesystem::rename(staging, target, ec);
    if (ec) {
      std::cerr << "csctl import: cannot move the imported log into " << target.string() << ": " << ec.message()
                << "\n";
      code = exit_error;
    }
  }
  if (code != exit_ok) std::filesystem::remove_all(staging, ec);
  return code;
}

}  // namespace

int run_replay(const Args& args) {
  po::options_description options("replay options");
  add_data_dir_option(options);
  options.add_options()("as-of", po::value<std::string>(), "fold events whose timestamp is at or before this moment")(
      "to-seq", po::value<std::uint64_t>(), "fold events up to this sequence")(
      "from-seq", po::value<std::uint64_t>()->default_value(1), "start folding at this sequence (a window)")(
      "customer", po::value<std::string>(), "print this customer's state (JSON)")(
      "out", po::value<std::string>(), "write the whole projection store into this new directory");
  po::variables_map vm;
  if (auto code = parse_options("replay", "--data-dir D --as-of T|--to-seq N [--from-seq M] [--customer ID] [--out DIR]",
                                options, args, vm)) {
    return *code;
  }
  if (!vm.count("as-of") && !vm.count("to-seq")) {
    std::cerr << "csctl replay: give --as-of TIMESTAMP or --to-seq N\n";
    return exit_error;
  }
  if (!vm.count("customer") && !vm.count("out")) {
    std::cerr << "csctl replay: give --customer ID to print, or --out DIR to write a store\n";
    return exit_error;
  }
  FoldRange range;
  range.from_seq = Sequence(vm["from-seq"].as<std::uint64_t>());
  if (range.from_seq.value == 0) range.from_seq = Sequence(1);
  if (vm.count("to-seq")) range.to_seq = Sequence(vm["to-seq"].as<std::uint64_t>());
  if (vm.count("as-of")) {
    range.as_of = parse_timestamp(vm["as-of"].as<std::string>());
    if (!range.as_of) {
      std::cerr << "csctl replay: --as-of must be an ISO-8601 UTC timestamp (2026-03-01T00:00:00Z)\n";
      return exit_error;
    }
  }
  std::optional<Uuid> customer;
  if (vm.count("customer")) {
    customer = Uuid::parse(vm["customer"].as<std::string>());
    if (!customer) {
      std::cerr << "csctl replay: --customer must be a UUID\n";
      return exit_error;
    }
    // Printing one customer needs only its events; a store written to --out gets everything.
    if (!vm.count("out")) range.customer = customer;
  }
  auto source = open_log_read_only("replay", vm);
  if (!source) return exit_error;
  if (customer && !vm.count("out")) {
    // One customer: its streams through the indexes, folded in memory.
    auto view = customer_view_at(*source, *customer, range);
    if (!view.ok()) {
      std::cerr << "csctl replay: " << view.error().to_string() << "\n";
      return exit_error;
    }
    if (*view) {
      std::cout << to_json(**view).dump(2) << "\n";
      return exit_ok;
    }
    // A log from before the customer index, opened read-only: fold it all.
  }

  std::filesystem::path target;
  std::optional<ScratchDir> scratch;
  if (vm.count("out")) {
    target = vm["out"].as<std::string>();
  } else {
    auto made = ScratchDir::create("csctl-replay-");
    if (!made.ok()) {
      std::cerr << "csctl replay: " << made.error().to_string() << "\n";
      return exit_error;
    }
    scratch.emplace(std::move(made).value());
    // The store goes in a subdirectory: the scratch dir itself exists already.
    target = scratch->path() / "store";
  }
  int code = exit_ok;
  {
    ProgressReporter progress("replaying");
    auto store = replay_into(*source, target, range, progress.callback());
    if (!store.ok()) {
      std::cerr << "csctl replay: " << store.error().to_string() << "\n";
      code = exit_error;
    } else if (customer) {
      auto view = customer_view(*store->engine, *customer);
      if (!view.ok()) {
        std::cerr << "csctl replay: " << view.error().to_string() << "\n";
        code = exit_error;
      } else {
        std::cout << view->dump(2) << "\n";
      }
    }
    if (code == exit_ok && vm.count("out")) {
      std::cerr << "replay: projection store written to " << target.string() << "\n";
      // The store keeps the source's sealed values under its master key; a
      // copy of the key goes beside it, where csctl looks for it.
      const auto key = source->master_key_file();
      const auto beside = default_master_key_file(target);
      std::error_code ec;
      if (source->seals_personal_data() && !std::filesystem::exists(beside, ec) &&
          std::filesystem::copy_file(key, beside, ec)) {
        std::filesystem::permissions(beside, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     ec);
        std::cerr << "replay: its master key copied to " << beside.string() << "\n";
      }
    }
  }
  return code;
}

int run_export(const Args& args) {
  po::options_description options("export options");
  add_data_dir_option(options);
  options.add_options()("from-seq", po::value<std::uint64_t>()->default_value(1), "first sequence")(
      "to-seq", po::value<std::uint64_t>(), "last sequence (default: the head)")(
      "decrypt", "personal fields in plaintext (null for erased customers), without key lines: not for import");
  po::variables_map vm;
  if (auto code = parse_options("export", "--data-dir D [--from-seq A] [--to-seq B] [--decrypt] > log.jsonl", options,
                                args, vm)) {
    return *code;
  }
  auto log = open_log_read_only("export", vm);
  if (!log) return exit_error;
  std::optional<Sequence> to;
  if (vm.count("to-seq")) to = Sequence(vm["to-seq"].as<std::uint64_t>());
  ProgressReporter progress("exporting");
  auto n = export_events(*log, Sequence(std::max<std::uint64_t>(1, vm["from-seq"].as<std::uint64_t>())), to,
                         std::cout, progress.callback(), vm.count("decrypt") > 0);
  if (!n.ok()) {
    std::cerr << "csctl export: " << n.error().to_string() << "\n";
    return exit_error;
  }
  // The last hash commits to every event before it: keep it, and give it to
  // `import --expect-head-hash` so that an edited export cannot pass.
  std::cerr << "exported " << n->events << " events";
  if (n->events > 0) std::cerr << "; head seq " << n->last_seq.value << ", head hash " << hash_to_hex(n->last_hash);
  std::cerr << "\n";
  return exit_ok;
}

int run_import(const Args& args) {
  po::options_description options("import options");
  add_data_dir_option(options);
  options.add_options()("expect-head-hash", po::value<std::string>(),
                        "the head hash `csctl export` printed: the import is kept only if it ends there (the data "
                        "dir must then be new)");
  add_chunk_bytes_option(options);
  po::variables_map vm;
  if (auto code = parse_options("import", "--data-dir D [--expect-head-hash HEX] < log.jsonl", options, args, vm)) {
    return *code;
  }
  if (!chunk_bytes_valid("import", vm)) return exit_error;
  std::optional<Hash> expected;
  if (vm.count("expect-head-hash")) {
    expected = hash_from_hex(vm["expect-head-hash"].as<std::string>());
    if (!expected) {
      std::cerr << "csctl import: --expect-head-hash must be 64 hex digits\n";
      return exit_error;
    }
    return import_expecting(vm, *expected);
  }
  // An export of sealed data comes with the fingerprint of its master key:
  // the import needs that key, and no new one.
  auto log = open_log_or_report("import", vm, /*create_if_missing=*/true, /*sync=*/true, /*read_only=*/false,
                                /*create_master_key=*/false);
  if (!log) return exit_error;
  return import_into(*log);
}

}  // namespace cs::csctl
