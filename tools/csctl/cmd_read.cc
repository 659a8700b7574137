// csctl read: events as JSON lines, in the form `csctl append` takes back
// (personal fields opened), or as stored (--stored).
#include <iostream>

#include "command.h"
#include "cs/event_line_writer.h"
#include "cs/read_ahead.h"

namespace cs::csctl {

int run_read(const Args& args) {
  po::options_description options("read options");
  add_data_dir_option(options);
  options.add_options()("stream", po::value<std::string>(), "one stream (customer-<id>, tokens-<id>, ...)")(
      "type", po::value<std::string>(), "one event type (token.used)")(
      "category", po::value<std::string>(), "one category (token or token.*)")(
      "from", po::value<std::uint64_t>(), "first sequence (stream version with --stream); backward: the last")(
      "limit", po::value<std::size_t>(), "at most this many events")("backward", "newest first")(
      "stored", "print personal fields as stored (sealed, base64) instead of opening them with the master key");
  po::variables_map vm;
  if (auto code = parse_options("read", "--data-dir DIR [--stream S|--type T|--category C] [--from N] [--limit N] [--backward] [--stored]",
                                options, args, vm)) {
    return *code;
  }
  ReadQuery q;
  if (vm.count("stream")) q.stream = vm["stream"].as<std::string>();
  if (vm.count("type")) {
    q.type = parse_event_type(vm["type"].as<std::string>());
    if (!q.type) {
      std::cerr << "csctl read: --type " << vm["type"].as<std::string>() << " is not one of the 19 event types\n";
      return exit_error;
    }
  }
  if (vm.count("category")) {
    q.category = parse_category(vm["category"].as<std::string>());
    if (!q.category) {
      std::cerr << "csctl read: --category must be customer, user, subscription or token\n";
      return exit_error;
    }
  }
  if (vm.count("from")) {
    auto from = vm["from"].as<std::uint64_t>();
    if (q.stream) q.from_version = StreamVersion(from);
    else q.from_seq = Sequence(from);
  }
  if (vm.count("limit")) q.limit = vm["limit"].as<std::size_t>();
  q.backward = vm.count("backward") > 0;
  // Personal fields in plaintext (null with "erased": true for an erased customer).
  q.decrypt = vm.count("stored") == 0;

  auto log = open_log_read_only("read", vm);
  if (!log) return exit_error;
  // Events are fetched and opened on a second thread while this one formats them.
  EventLineWriter lines(std::cout);
  auto s = read_ahead(*log, q, [&](const RecordedEvent& e) { return lines.add(e); });
  const bool written = lines.finish();
  if (!s.ok()) {
    std::cerr << "csctl read: " << s.error().to_string() << "\n";
    return exit_error;
  }
  if (!written) {
    std::cerr << "csctl read: the output could not be written\n";
    return exit_error;
  }
  return exit_ok;
}

}  // namespace cs::csctl
