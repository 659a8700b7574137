// csctl: the operator's tool for the customer-service event store.
//
// Two binaries from this file. `csctl` runs the commands on the log; the
// commands that talk to Kafka (publish, republish, restore, request) live in
// `csctl-kafka` beside it, which csctl executes in its place, the way git
// runs its sub-programs. librdkafka and the TLS and SASL libraries it loads
// cost a read command about 1.5 ms of its ~10 at start-up (symbol lookups and
// page mapping, docs/performance.md); a command that never talks to Kafka no
// longer pays for them.
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <system_error>
#include <thread>

#include "command.h"
#include "cs/error.h"
#include "cs/personal_data.h"

#ifdef CSCTL_KAFKA_HELPER
#define CSCTL_LOG_COMMAND(run) nullptr
#define CSCTL_KAFKA_COMMAND(run) run
#else
#define CSCTL_LOG_COMMAND(run) run
#define CSCTL_KAFKA_COMMAND(run) nullptr
#endif

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  // Null: the command is the other binary's.
  int (*run)(const cs::csctl::Args&);
};

constexpr Subcommand subcommands[] = {
    {"append", "append JSON event lines from stdin", CSCTL_LOG_COMMAND(cs::csctl::run_append)},
    {"read", "print events as JSON lines (whole log, a stream, a type or a category)",
     CSCTL_LOG_COMMAND(cs::csctl::run_read)},
    {"stats", "event count, streams, head sequence and hash, size on disk", CSCTL_LOG_COMMAND(cs::csctl::run_stats)},
    {"verify", "recompute the hash chain and check the indexes (and the projections)",
     CSCTL_LOG_COMMAND(cs::csctl::run_verify)},
    {"state", "one customer, token account, subscription or user as JSON", CSCTL_LOG_COMMAND(cs::csctl::run_state)},
    {"list", "customers, filtered by status and type, as JSON lines", CSCTL_LOG_COMMAND(cs::csctl::run_list)},
    {"rebuild", "rebuild projections from the log and swap them in atomically",
     CSCTL_LOG_COMMAND(cs::csctl::run_rebuild)},
    {"replay", "state as of a moment or a sequence, without touching the live data",
     CSCTL_LOG_COMMAND(cs::csctl::run_replay)},
    {"export", "write the log (or a range) as JSON lines", CSCTL_LOG_COMMAND(cs::csctl::run_export)},
    {"import", "read an export into an empty log, checking every hash", CSCTL_LOG_COMMAND(cs::csctl::run_import)},
    {"forget", "erase a customer's personal data for good (destroys its data key)",
     CSCTL_LOG_COMMAND(cs::csctl::run_forget)},
    {"audit", "audit token usage and balances from the log (audit tokens)", CSCTL_LOG_COMMAND(cs::csctl::run_audit)},
    {"publish", "publish the log to Kafka, exactly once (to the head, or continuously)",
     CSCTL_KAFKA_COMMAND(cs::csctl::run_publish)},
    {"republish", "send a range of the log again, on purpose", CSCTL_KAFKA_COMMAND(cs::csctl::run_republish)},
    {"restore", "rebuild a log from what was published to Kafka (the keys, then the full log)",
     CSCTL_KAFKA_COMMAND(cs::csctl::run_restore)},
    {"generate", "print a deterministic demo history as JSON lines", CSCTL_LOG_COMMAND(cs::csctl::run_generate)},
    {"request", "send one signed request to the daemon over Kafka and print its answer",
     CSCTL_KAFKA_COMMAND(cs::csctl::run_request)},
};

// Replaces this process by the binary that runs `name` (csctl-kafka beside
// csctl, or csctl beside csctl-kafka), with the same arguments, so that
// signals, the exit status and the standard streams are that command's own.
// Returns only on failure, with the exit status to end with.
int run_in_other_binary(const std::string& name, char** argv) {
#ifdef CSCTL_KAFKA_HELPER
  const char* other = "csctl";
#else
  const char* other = "csctl-kafka";
#endif
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    std::cerr << "csctl " << name << ": cannot find csctl's own directory to run " << other << ": "
              << error.message() << "\n";
    return cs::csctl::exit_error;
  }
  const std::string path = (self.parent_path() / other).string();
  argv[0] = const_cast<char*>(path.c_str());
  execv(path.c_str(), argv);
  std::cerr << "csctl " << name << ": cannot run " << path << " (which runs this command): " << std::strerror(errno)
            << "\n";
  return cs::csctl::exit_error;
}

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
  // Nor does csctl free OpenSSL's tables at exit (0.2 ms of every command):
  // the process ends there.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_ATEXIT,
                      nullptr);
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
    if (c.run == nullptr) return run_in_other_binary(name, argv);
    // Commands report their errors as values; an exception that still gets
    // here (a library's, the file system's) ends the command cleanly too.
    // OpenSSL's first fetches (~1.5 ms) on the second core, while the
    // command parses its options and opens its log (about as long); the
    // command's own first seal, open or key check then finds them built.
    std::jthread crypto_warm_up;
    try {
      crypto_warm_up = std::jthread(cs::prepare_personal_data_crypto);
    } catch (const std::system_error&) {
      // No second thread: the command's first uses fetch them, as before.
    }
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
