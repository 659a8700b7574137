// csctl stats and csctl verify.
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "cs/projection_engine.h"
#include "progress.h"

namespace cs::csctl {

int run_stats(const Args& args) {
  po::options_description options("stats options");
  add_data_dir_option(options);
  po::variables_map vm;
  if (auto code = parse_options("stats", "--data-dir DIR", options, args, vm)) return *code;
  auto log = open_log_read_only("stats", vm);
  if (!log) return exit_error;
  auto stats = log->stats();
  if (!stats.ok()) {
    std::cerr << "csctl stats: " << stats.error().to_string() << "\n";
    return exit_error;
  }
  nlohmann::ordered_json out;
  out["events"] = stats->events;
  out["streams"] = stats->streams;
  out["headSeq"] = stats->head.value;
  out["headHash"] = hash_to_hex(stats->head_hash);
  out["sizeOnDiskBytes"] = stats->size_on_disk_bytes;
  nlohmann::ordered_json by_type = nlohmann::ordered_json::object();
  for (EventType t : all_event_types) {
    auto it = stats->events_by_type.find(t);
    by_type[std::string(event_type_name(t))] = it == stats->events_by_type.end() ? 0 : it->second;
  }
  out["eventsByType"] = std::move(by_type);
  std::cout << out.dump(2) << "\n";
  return exit_ok;
}

int run_verify(const Args& args) {
  po::options_description options("verify options");
  add_data_dir_option(options);
  options.add_options()("from-seq", po::value<std::uint64_t>()->default_value(1), "first sequence to check")(
      "to-seq", po::value<std::uint64_t>(), "last sequence to check (default: the head)")(
      "projections", "also rebuild the projections into scratch space and compare with the live state");
  po::variables_map vm;
  if (auto code = parse_options("verify", "--data-dir DIR [--from-seq A] [--to-seq B]", options, args, vm)) {
    return *code;
  }
  auto log = open_log_or_report("verify", vm, /*create_if_missing=*/false, /*sync=*/true,
                                /*read_only=*/vm.count("projections") == 0);
  if (!log) return exit_error;
  VerifyOptions verify;
  verify.from_seq = Sequence(vm["from-seq"].as<std::uint64_t>());
  if (vm.count("to-seq")) verify.to_seq = Sequence(vm["to-seq"].as<std::uint64_t>());
  auto report = log->verify(verify);
  if (!report.ok()) {
    std::cerr << "csctl verify: " << report.error().to_string() << "\n";
    return report.error().code() == ErrorCode::corruption ? exit_findings : exit_error;
  }
  std::cout << "ok: " << report->events_checked << " events checked, chain intact up to seq "
            << report->last_checked.value << ", hash " << hash_to_hex(report->last_hash) << "\n";
  if (!vm.count("projections")) return exit_ok;
  auto engine = open_engine_or_report("verify", *log);
  if (!engine) return exit_error;
  ProgressReporter progress("verifying projections");
  auto s = engine->verify({}, progress.callback());
  if (!s.ok()) {
    std::cerr << "csctl verify: " << s.error().to_string() << "\n";
    return s.error().code() == ErrorCode::corruption ? exit_findings : exit_error;
  }
  for (const auto& p : engine->status()) {
    std::cout << "ok: projection " << p.name << " equals its rebuild up to seq " << p.checkpoint.value << "\n";
  }
  return exit_ok;
}

}  // namespace cs::csctl
