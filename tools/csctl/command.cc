#include "command.h"

#include "cs/personal_data.h"

namespace cs::csctl {

std::optional<int> parse_options(const std::string& name, const std::string& usage,
                                 po::options_description& options, const Args& args,
                                 po::variables_map& vm, const po::positional_options_description* positional) {
  options.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(args);
    parser.options(options);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: csctl " << name << " " << usage << "\n\n" << options << "\n";
      return exit_ok;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "csctl " << name << ": " << e.what() << "\n(csctl " << name << " --help lists the options)\n";
    return exit_error;
  }
  return std::nullopt;
}

void add_data_dir_option(po::options_description& options) {
  options.add_options()("data-dir,d", po::value<std::string>()->required(), "the log's directory")(
      "master-key", po::value<std::string>(),
      "the master key file that seals personal data (64 hex digits; default: <data-dir>.master-key, created with "
      "mode 0600 when the log has sealed nothing yet)");
}

void add_chunk_bytes_option(po::options_description& options) {
  options.add_options()("chunk-bytes", po::value<std::size_t>()->default_value(limits::bulk_chunk_bytes_max),
                        "bytes of events held in memory and committed as one atomic step (ingested table files); "
                        "each chunk but the last is committed while the next is read");
}

bool chunk_bytes_valid(const std::string& command, const po::variables_map& vm) {
  const std::size_t bytes = vm["chunk-bytes"].as<std::size_t>();
  if (bytes >= chunk_bytes_min && bytes <= chunk_bytes_max) return true;
  std::cerr << "csctl " << command << ": --chunk-bytes must be " << chunk_bytes_min << " to " << chunk_bytes_max
            << "\n";
  return false;
}

std::filesystem::path master_key_file(const po::variables_map& vm) {
  if (vm.count("master-key")) return vm["master-key"].as<std::string>();
  return default_master_key_file(vm["data-dir"].as<std::string>());
}

std::unique_ptr<EventLog> open_log_or_report(const std::string& command, const po::variables_map& vm,
                                             bool create_if_missing, bool sync, bool read_only,
                                             bool create_master_key, bool appends) {
  std::string dir = vm["data-dir"].as<std::string>();
  EventLogOptions options;
  options.create_if_missing = create_if_missing && !read_only;
  options.read_only = read_only;
  options.sync_each_group = sync;
  options.master_key_file = master_key_file(vm);
  options.create_master_key = create_master_key;
  options.appends = appends;
  if (vm.count("chunk-bytes")) options.bulk_chunk_bytes_max = vm["chunk-bytes"].as<std::size_t>();
  std::error_code ec;
  const bool key_existed = std::filesystem::exists(options.master_key_file, ec);
  auto log = EventLog::open(dir, options);
  if (!log.ok()) {
    std::cerr << "csctl " << command << ": cannot open " << dir << ": " << log.error().to_string() << "\n";
    return nullptr;
  }
  if (!key_existed && std::filesystem::exists(options.master_key_file, ec)) {
    std::cerr << "csctl " << command << ": created the master key " << options.master_key_file.string()
              << " (keep it apart from the data and backed up: without it no personal data can be read)\n";
  }
  return std::move(log).value();
}

std::unique_ptr<ProjectionEngine> open_engine_or_report(const std::string& command, EventLog& log) {
  auto engine = ProjectionEngine::open(log);
  if (!engine.ok()) {
    std::cerr << "csctl " << command << ": " << engine.error().to_string() << "\n";
    return nullptr;
  }
  return std::move(engine).value();
}

}  // namespace cs::csctl
