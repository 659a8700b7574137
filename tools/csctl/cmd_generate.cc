// csctl generate: a deterministic demo history on stdout.
#include <iostream>

#include "command.h"
#include "cs/json_codec.h"
#include "history_generator.h"

namespace cs::csctl {

// A generated history holds about 26 events per customer.
constexpr std::uint64_t generate_customers_max = 10'000'000;

int run_generate(const Args& args) {
  po::options_description options("generate options");
  options.add_options()("customers", po::value<std::uint64_t>()->default_value(100), "customers to simulate")(
      "seed", po::value<std::uint64_t>()->default_value(1), "same seed, same bytes")(
      "start", po::value<std::string>()->default_value("2026-01-01T00:00:00Z"), "when the first customer appears");
  po::variables_map vm;
  if (auto code = parse_options("generate", "--customers N --seed S > history.jsonl", options, args, vm)) return *code;
  if (vm["customers"].as<std::uint64_t>() > generate_customers_max) {
    std::cerr << "csctl generate: --customers must be 0 to " << generate_customers_max << "\n";
    return exit_error;
  }
  auto start = parse_timestamp(vm["start"].as<std::string>());
  if (!start) {
    std::cerr << "csctl generate: --start must be an ISO-8601 UTC timestamp\n";
    return exit_error;
  }
  HistoryGenerator generator({.customers = vm["customers"].as<std::uint64_t>(),
                              .seed = vm["seed"].as<std::uint64_t>(),
                              .start = *start});
  while (auto e = generator.next()) {
    std::cout << format_new_event_line(*e) << '\n';
    if (!std::cout) break;  // the reader went away
  }
  std::cout.flush();
  return std::cout ? exit_ok : exit_error;
}

}  // namespace cs::csctl
