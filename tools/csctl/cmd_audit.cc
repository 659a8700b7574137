// csctl audit tokens: where the tokens went, and whether every balance is
// right, from the log. Exit 0: no finding; 1: findings; 2: an error. Fit for
// cron and CI.
#include <fstream>
#include <iostream>

#include "command.h"
#include "cs/token_audit.h"
#include "progress.h"

namespace cs::csctl {
namespace {

// The report lives until the process ends: freeing a big one node by node
// (a 515k-event log's has some 200,000 allocations) took 5% of the audit,
// for memory the exit gives back at once. It stays reachable from this
// pointer, so LeakSanitizer counts it in use, not leaked; volatile, because
// a pointer nothing reads is otherwise optimised away, and the report with it
// becomes a leak.
const AuditReport* volatile report_kept_until_exit = nullptr;

}  // namespace

int run_audit(const Args& args) {
  po::options_description options("audit options");
  add_data_dir_option(options);
  options.add_options()("what", po::value<std::string>()->required(), "tokens")(
      "customer", po::value<std::string>(), "audit this customer only")(
      "from", po::value<std::string>(), "window start, ISO-8601 UTC (inclusive)")(
      "to", po::value<std::string>(), "window end, ISO-8601 UTC (exclusive)")(
      "format", po::value<std::string>()->default_value("table"), "table, csv or json (on stdout)")(
      "html", po::value<std::string>(), "also write a self-contained HTML page with charts to this file");
  po::positional_options_description positional;
  positional.add("what", 1);
  po::variables_map vm;
  if (auto code = parse_options("audit", "tokens --data-dir D [--customer ID] [--from T] [--to T] "
                                         "[--format table|csv|json] [--html FILE]",
                                options, args, vm, &positional)) {
    return *code;
  }
  if (vm["what"].as<std::string>() != "tokens") {
    std::cerr << "csctl audit: only \"tokens\" can be audited\n";
    return exit_error;
  }
  std::string format = vm["format"].as<std::string>();
  if (format != "table" && format != "csv" && format != "json") {
    std::cerr << "csctl audit: --format must be table, csv or json\n";
    return exit_error;
  }
  AuditOptions audit;
  if (vm.count("customer") && !(audit.customer = Uuid::parse(vm["customer"].as<std::string>()))) {
    std::cerr << "csctl audit: --customer must be a UUID\n";
    return exit_error;
  }
  for (const char* bound : {"from", "to"}) {
    if (!vm.count(bound)) continue;
    auto t = parse_timestamp(vm[bound].as<std::string>());
    if (!t) {
      std::cerr << "csctl audit: --" << bound << " must be an ISO-8601 UTC timestamp (2026-03-01T00:00:00Z)\n";
      return exit_error;
    }
    (std::string(bound) == "from" ? audit.from : audit.to) = t;
  }
  if (audit.from && audit.to && *audit.to <= *audit.from) {
    std::cerr << "csctl audit: --to must be after --from\n";
    return exit_error;
  }
  auto log = open_log_without_appends("audit", vm);
  if (!log) return exit_error;
  auto engine = open_engine_or_report("audit", *log);
  if (!engine) return exit_error;
  ProgressReporter progress("auditing");
  auto report = audit_tokens(*log, engine.get(), audit, progress.callback());
  if (!report.ok()) {
    std::cerr << "csctl audit: " << report.error().to_string() << "\n";
    return exit_error;
  }
  if (format == "json") write_audit_json(*report, std::cout);
  if (format == "csv") std::cout << audit_to_csv(*report);
  if (format == "table") std::cout << audit_to_table(*report);
  std::cout.flush();
  if (vm.count("html")) {
    std::ofstream html(vm["html"].as<std::string>());
    html << audit_to_html(*report);
    if (!html) {
      std::cerr << "csctl audit: cannot write " << vm["html"].as<std::string>() << "\n";
      return exit_error;
    }
  }
  const bool clean = report->findings.empty();
  report_kept_until_exit = new AuditReport(std::move(*report));
  return clean ? exit_ok : exit_findings;
}

}  // namespace cs::csctl
