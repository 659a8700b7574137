// csctl forget customer ID: crypto-shredding. Records customer.erased (its
// data key destroyed in the same batch), folds it into the projections, then
// flushes and compacts so the key's bytes leave the disk.
#include <iostream>

#include "command.h"
#include "cs/personal_data.h"

namespace cs::csctl {

int run_forget(const Args& args) {
  po::options_description options("forget options");
  add_data_dir_option(options);
  options.add_options()("what", po::value<std::string>()->required(), "customer")(
      "id", po::value<std::string>()->required(), "the customer's UUID")(
      "admin-id", po::value<std::string>(), "who asked (a UUID, recorded in customer.erased; default: none)");
  po::positional_options_description positional;
  positional.add("what", 1).add("id", 1);
  po::variables_map vm;
  if (auto code = parse_options("forget", "customer ID --data-dir DIR [--admin-id UUID]", options, args, vm,
                                &positional)) {
    return *code;
  }
  if (vm["what"].as<std::string>() != "customer") {
    std::cerr << "csctl forget: only a customer can be forgotten (csctl forget customer ID)\n";
    return exit_error;
  }
  const std::string id_text = vm["id"].as<std::string>();
  auto customer = Uuid::parse(id_text);
  if (!customer || customer->is_nil()) {
    std::cerr << "csctl forget: \"" << printable(id_text) << "\" is not a customer id (a UUID)\n";
    return exit_error;
  }
  Uuid admin;
  if (vm.count("admin-id")) {
    auto parsed = Uuid::parse(vm["admin-id"].as<std::string>());
    if (!parsed) {
      std::cerr << "csctl forget: --admin-id must be a UUID\n";
      return exit_error;
    }
    admin = *parsed;
  }
  auto log = open_log_or_report("forget", vm, /*create_if_missing=*/false);
  if (!log) return exit_error;
  if (!log->seals_personal_data()) {
    std::cerr << "csctl forget: this log has no master key, so its personal data was never sealed and cannot be "
                 "forgotten by destroying a key\n";
    return exit_error;
  }
  auto version = log->stream_version("customer-" + customer->to_string());
  if (!version.ok()) {
    std::cerr << "csctl forget: " << version.error().to_string() << "\n";
    return exit_error;
  }
  if (version->value == 0) {
    std::cerr << "csctl forget: no customer " << customer->to_string() << "\n";
    return exit_findings;
  }
  auto erased = log->customer_erased(*customer);
  if (!erased.ok()) {
    std::cerr << "csctl forget: " << erased.error().to_string() << "\n";
    return exit_error;
  }
  std::optional<Sequence> seq;
  if (!*erased) {
    NewEvent e;
    e.id = Uuid::random();
    e.timestamp = Timestamp{Timestamp::now().micros / 1000 * 1000};
    e.meta.source_service = "csctl";
    e.expected = ExpectedVersion::exactly(*version);
    e.payload = CustomerErased{*customer, admin};
    auto appended = log->append(std::span(&e, 1));
    if (!appended.ok()) {
      std::cerr << "csctl forget: " << appended.error().to_string() << "\n";
      return appended.error().code() == ErrorCode::conflict ? exit_findings : exit_error;
    }
    seq = appended->positions.front().seq;
  }
  // The projections drop what they kept of it (sealed, but now noise).
  auto engine = open_engine_or_report("forget", *log);
  if (!engine) return exit_error;
  if (auto caught = engine->catch_up(); !caught.ok()) {
    std::cerr << "csctl forget: " << caught.error().to_string() << "\n";
    return exit_error;
  }
  if (auto purged = log->purge_erased_key(*customer); !purged.ok()) {
    std::cerr << "csctl forget: " << purged.error().to_string() << "\n";
    return exit_error;
  }
  nlohmann::ordered_json out = {{"customerId", customer->to_string()}, {"erased", true}};
  out["seq"] = seq ? nlohmann::ordered_json(seq->value) : nlohmann::ordered_json(nullptr);
  if (!seq) out["note"] = "already erased; its key's range compacted again";
  std::cout << out.dump() << "\n";
  return exit_ok;
}

}  // namespace cs::csctl
