// csctl replay, export and import.
#include <iostream>

#include "command.h"
#include "cs/replay.h"
#include "progress.h"

namespace cs::csctl {

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
  auto source = open_log_or_report("replay", vm, /*create_if_missing=*/false);
  if (!source) return exit_error;

  std::filesystem::path target;
  std::optional<std::filesystem::path> scratch;
  if (vm.count("out")) {
    target = vm["out"].as<std::string>();
  } else {
    scratch = std::filesystem::temp_directory_path() / ("csctl-replay-" + std::to_string(::getpid()));
    target = *scratch;
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
    }
  }
  if (scratch) std::filesystem::remove_all(*scratch);
  return code;
}

int run_export(const Args& args) {
  po::options_description options("export options");
  add_data_dir_option(options);
  options.add_options()("from-seq", po::value<std::uint64_t>()->default_value(1), "first sequence")(
      "to-seq", po::value<std::uint64_t>(), "last sequence (default: the head)");
  po::variables_map vm;
  if (auto code = parse_options("export", "--data-dir D [--from-seq A] [--to-seq B] > log.jsonl", options, args, vm)) {
    return *code;
  }
  auto log = open_log_or_report("export", vm, /*create_if_missing=*/false);
  if (!log) return exit_error;
  std::optional<Sequence> to;
  if (vm.count("to-seq")) to = Sequence(vm["to-seq"].as<std::uint64_t>());
  ProgressReporter progress("exporting");
  auto n = export_events(*log, Sequence(std::max<std::uint64_t>(1, vm["from-seq"].as<std::uint64_t>())), to,
                         std::cout, progress.callback());
  if (!n.ok()) {
    std::cerr << "csctl export: " << n.error().to_string() << "\n";
    return exit_error;
  }
  std::cerr << "exported " << *n << " events\n";
  return exit_ok;
}

int run_import(const Args& args) {
  po::options_description options("import options");
  add_data_dir_option(options);
  po::variables_map vm;
  if (auto code = parse_options("import", "--data-dir D < log.jsonl", options, args, vm)) return *code;
  auto log = open_log_or_report("import", vm, /*create_if_missing=*/true);
  if (!log) return exit_error;
  ProgressReporter progress("importing");
  auto report = import_events(*log, std::cin, progress.callback());
  if (!report.ok()) {
    std::cerr << "csctl import: " << report.error().to_string() << "\n";
    return report.error().code() == ErrorCode::fatal || report.error().code() == ErrorCode::retriable
               ? exit_error
               : exit_findings;
  }
  std::cerr << "imported " << report->imported << " events; head seq " << report->head.value << ", head hash "
            << hash_to_hex(report->head_hash) << "\n";
  return exit_ok;
}

}  // namespace cs::csctl
