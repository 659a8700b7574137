// csctl state, list and rebuild: the read models.
#include <iostream>

#include "command.h"
#include "cs/projection_engine.h"
#include "cs/replay.h"
#include "progress.h"

namespace cs::csctl {
namespace {

// A rebuilt engine lives until the process ends: freeing its projections'
// entity caches (one allocation or more per customer, user, subscription
// and account) took 4% of a rebuild of 102k events, after everything was
// stored, for memory the exit gives back at once. Still reachable, so not
// a leak for LeakSanitizer. The engine has no threads of its own.
const ProjectionEngine* engine_kept_until_exit = nullptr;

// Opens the log and its projections, brought up to the head.
struct Store {
  std::unique_ptr<EventLog> log;
  std::unique_ptr<ProjectionEngine> engine;
};

std::optional<Store> open_store(const std::string& command, const po::variables_map& vm) {
  Store store;
  store.log = open_log_or_report(command, vm, /*create_if_missing=*/false);
  if (!store.log) return std::nullopt;
  store.engine = open_engine_or_report(command, *store.log);
  if (!store.engine) return std::nullopt;
  ProgressReporter progress("catching up projections");
  auto caught = store.engine->catch_up(progress.callback());
  if (!caught.ok()) {
    std::cerr << "csctl " << command << ": " << caught.error().to_string() << "\n";
    return std::nullopt;
  }
  return store;
}

template <class T>
int print_or_not_found(const Result<std::optional<T>>& found, const std::string& what, const std::string& id) {
  if (!found.ok()) {
    std::cerr << "csctl state: " << found.error().to_string() << "\n";
    return exit_error;
  }
  if (!*found) {
    std::cerr << "csctl state: no " << what << " " << id << "\n";
    return exit_findings;
  }
  std::cout << to_json(**found).dump(2) << "\n";
  return exit_ok;
}

}  // namespace

int run_state(const Args& args) {
  po::options_description options("state options");
  add_data_dir_option(options);
  options.add_options()("kind", po::value<std::string>()->required(), "customer, tokens, subscription, user or view")(
      "id", po::value<std::string>()->required(), "the entity's UUID (a customer's for tokens and view)");
  po::positional_options_description positional;
  positional.add("kind", 1).add("id", 1);
  po::variables_map vm;
  if (auto code = parse_options("state", "customer|tokens|subscription|user|view ID --data-dir DIR", options, args, vm,
                                &positional)) {
    return *code;
  }
  std::string kind = vm["kind"].as<std::string>(), id_text = vm["id"].as<std::string>();
  auto id = Uuid::parse(id_text);
  if (!id) {
    std::cerr << "csctl state: \"" << id_text << "\" is not a UUID\n";
    return exit_error;
  }
  if (kind != "customer" && kind != "tokens" && kind != "subscription" && kind != "user" && kind != "view") {
    std::cerr << "csctl state: the kind must be customer, tokens, subscription, user or view, not \"" << kind << "\"\n";
    return exit_error;
  }
  auto store = open_store("state", vm);
  if (!store) return exit_error;
  const auto& engine = *store->engine;
  if (kind == "customer") return print_or_not_found(engine.customer(*id), "customer", id_text);
  if (kind == "tokens") return print_or_not_found(engine.token_account(*id), "token account for customer", id_text);
  if (kind == "subscription") return print_or_not_found(engine.subscription(*id), "subscription", id_text);
  if (kind == "user") return print_or_not_found(engine.user(*id), "user", id_text);
  auto view = customer_view(engine, *id);
  if (!view.ok()) {
    std::cerr << "csctl state: " << view.error().to_string() << "\n";
    return exit_error;
  }
  std::cout << view->dump(2) << "\n";
  return (*view)["customer"].is_null() ? exit_findings : exit_ok;
}

int run_list(const Args& args) {
  po::options_description options("list options");
  add_data_dir_option(options);
  options.add_options()("what", po::value<std::string>()->required(), "customers")(
      "status", po::value<std::string>(), "pending, validated, suspended or deleted")(
      "type", po::value<std::string>(), "sme or institution");
  po::positional_options_description positional;
  positional.add("what", 1);
  po::variables_map vm;
  if (auto code = parse_options("list", "customers [--status S] [--type T] --data-dir DIR", options, args, vm,
                                &positional)) {
    return *code;
  }
  if (vm["what"].as<std::string>() != "customers") {
    std::cerr << "csctl list: only \"customers\" can be listed\n";
    return exit_error;
  }
  std::optional<CustomerStatus> status;
  std::optional<CustomerType> type;
  if (vm.count("status") && !(status = parse_customer_status(vm["status"].as<std::string>()))) {
    std::cerr << "csctl list: --status must be pending, validated, suspended or deleted\n";
    return exit_error;
  }
  if (vm.count("type") && !(type = parse_customer_type(vm["type"].as<std::string>()))) {
    std::cerr << "csctl list: --type must be sme or institution\n";
    return exit_error;
  }
  auto store = open_store("list", vm);
  if (!store) return exit_error;
  auto customers = store->engine->customers(status, type);
  if (!customers.ok()) {
    std::cerr << "csctl list: " << customers.error().to_string() << "\n";
    return exit_error;
  }
  for (const auto& c : *customers) std::cout << to_json(c).dump() << '\n';
  return exit_ok;
}

int run_rebuild(const Args& args) {
  po::options_description options("rebuild options");
  add_data_dir_option(options);
  options.add_options()("projection", po::value<std::string>()->default_value("all"),
                        "customers, users, subscriptions, tokens or all");
  po::variables_map vm;
  if (auto code = parse_options("rebuild", "--data-dir DIR [--projection NAME|all]", options, args, vm)) return *code;
  auto log = open_log_without_appends("rebuild", vm);
  if (!log) return exit_error;
  auto engine = open_engine_or_report("rebuild", *log);
  if (!engine) return exit_error;
  ProgressReporter progress("rebuilding");
  auto s = engine->rebuild({vm["projection"].as<std::string>()}, progress.callback());
  if (!s.ok()) {
    std::cerr << "csctl rebuild: " << s.error().to_string() << "\n";
    return exit_error;
  }
  for (const auto& p : engine->status()) {
    if (vm["projection"].as<std::string>() != "all" && vm["projection"].as<std::string>() != p.name) continue;
    std::cerr << "rebuilt " << p.name << ": generation " << p.generation << ", up to seq " << p.checkpoint.value << "\n";
  }
  engine_kept_until_exit = engine.release();
  return exit_ok;
}

}  // namespace cs::csctl
