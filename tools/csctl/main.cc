// csctl: the operator's tool for the customer-service event store.
#include <openssl/crypto.h>

#include <csignal>
#include <iostream>

#include "command.h"
#include "cs/error.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const cs::csctl::Args&);
};

constexpr Subcommand subcommands[] = {
    {"append", "append JSON event lines from stdin", cs::csctl::run_append},
    {"read", "print events as JSON lines (whole log, a stream, a type or a category)", cs::csctl::run_read},
    {"stats", "event count, streams, head sequence and hash, size on disk", cs::csctl::run_stats},
    {"verify", "recompute the hash chain and check the indexes (and the projections)", cs::csctl::run_verify},
    {"state", "one customer, token account, subscription or user as JSON", cs::csctl::run_state},
    {"list", "customers, filtered by status and type, as JSON lines", cs::csctl::run_list},
    {"rebuild", "rebuild projections from the log and swap them in atomically", cs::csctl::run_rebuild},
    {"replay", "state as of a moment or a sequence, without touching the live data", cs::csctl::run_replay},
    {"export", "write the log (or a range) as JSON lines", cs::csctl::run_export},
    {"import", "read an export into an empty log, checking every hash", cs::csctl::run_import},
    {"forget", "erase a customer's personal data for good (destroys its data key)", cs::csctl::run_forget},
    {"audit", "audit token usage and balances from the log (audit tokens)", cs::csctl::run_audit},
    {"publish", "publish the log to Kafka, exactly once (to the head, or continuously)", cs::csctl::run_publish},
    {"republish", "send a range of the log again, on purpose", cs::csctl::run_republish},
    {"restore", "rebuild a log from what was published to Kafka (the keys, then the full log)", cs::csctl::run_restore},
    {"generate", "print a deterministic demo history as JSON lines", cs::csctl::run_generate},
    {"request", "send one signed request to the daemon over Kafka and print its answer", cs::csctl::run_request},
};

void print_usage(std::ostream& out) {
  out << "usage: csctl <command> [options]   (csctl <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : subcommands) out << "  " << c.name << std::string(11 - std::string(c.name).size(), ' ') << c.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  // A reader that goes away (`csctl read | head`) makes writes fail with
  // EPIPE, which commands report, instead of ending csctl by a signal.
  signal(SIGPIPE, SIG_IGN);
  // OpenSSL's default initialisation, at the first use of a cipher or MAC,
  // fills its legacy by-name tables of every cipher and digest: 1-1.5 ms of
  // a read command's ~10. The log fetches what it uses from the provider,
  // and name lookups fall back to the provider too. The configuration file
  // is still loaded (FIPS and provider settings apply).
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS, nullptr);
  std::ios::sync_with_stdio(false);
  std::cin.tie(nullptr);  // reading stdin must not flush stdout
  if (argc < 2) {
    print_usage(std::cerr);
    return cs::csctl::exit_error;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return cs::csctl::exit_ok;
  }
  for (const auto& c : subcommands) {
    if (name != c.name) continue;
    // Commands report their errors as values; an exception that still gets
    // here (a library's, the file system's) ends the command cleanly too.
    try {
      return c.run(cs::csctl::Args(argv + 2, argv + argc));
    } catch (const std::exception& e) {
      std::cerr << "csctl " << name << ": " << cs::printable(e.what()) << "\n";
    } catch (...) {
      std::cerr << "csctl " << name << ": unexpected error\n";
    }
    return cs::csctl::exit_error;
  }
  std::cerr << "csctl: unknown command \"" << name << "\"\n";
  print_usage(std::cerr);
  return cs::csctl::exit_error;
}
