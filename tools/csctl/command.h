// What every csctl subcommand shares: option parsing with --help, opening the
// log, and the exit codes.
//
// Exit codes: 0 done; 1 done, but something was found or refused (a rejected
// line, a broken chain); 2 usage or operating error (nothing trustworthy done).
#pragma once

#include <boost/program_options.hpp>

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cs/event_log.h"
#include "cs/projection_engine.h"

namespace cs::csctl {

namespace po = boost::program_options;

inline constexpr int exit_ok = 0;
inline constexpr int exit_findings = 1;
inline constexpr int exit_error = 2;

using Args = std::vector<std::string>;

// Parses `args` (after the subcommand name). On --help prints usage and the
// options and returns exit_ok; on a parse error prints it and returns
// exit_error; otherwise fills `vm` and returns nullopt.
std::optional<int> parse_options(const std::string& name, const std::string& usage,
                                 po::options_description& options, const Args& args,
                                 po::variables_map& vm,
                                 const po::positional_options_description* positional = nullptr);

// Adds --data-dir (required) and --master-key (default: beside the data dir).
void add_data_dir_option(po::options_description& options);
// The master key file --master-key names, or the default for --data-dir.
std::filesystem::path master_key_file(const po::variables_map& vm);
// --chunk-bytes of append and import (EventLogOptions::bulk_chunk_bytes_max),
// which open_log_or_report applies; valid: prints why not and returns false.
inline constexpr std::size_t chunk_bytes_min = 64 << 10;
inline constexpr std::size_t chunk_bytes_max = std::size_t{1} << 30;
void add_chunk_bytes_option(po::options_description& options);
bool chunk_bytes_valid(const std::string& command, const po::variables_map& vm);

// Opens the log in --data-dir; prints the error and returns null on failure.
// `read_only`: commands that only read never create or change anything there.
// `create_master_key`: a new log gets a master key file when none exists.
// `appends`: false for commands that write but never append (EventLogOptions).
std::unique_ptr<EventLog> open_log_or_report(const std::string& command, const po::variables_map& vm,
                                             bool create_if_missing, bool sync = true, bool read_only = false,
                                             bool create_master_key = true, bool appends = true);
// A writable open for commands that keep projections but never append.
inline std::unique_ptr<EventLog> open_log_without_appends(const std::string& command, const po::variables_map& vm) {
  return open_log_or_report(command, vm, /*create_if_missing=*/false, /*sync=*/true, /*read_only=*/false,
                            /*create_master_key=*/true, /*appends=*/false);
}
inline std::unique_ptr<EventLog> open_log_read_only(const std::string& command, const po::variables_map& vm) {
  return open_log_or_report(command, vm, /*create_if_missing=*/false, /*sync=*/true, /*read_only=*/true);
}

// Opens the projections over `log`; prints the error and returns null on failure.
std::unique_ptr<ProjectionEngine> open_engine_or_report(const std::string& command, EventLog& log);

int run_append(const Args& args);
int run_read(const Args& args);
int run_stats(const Args& args);
int run_verify(const Args& args);
int run_generate(const Args& args);
int run_state(const Args& args);
int run_list(const Args& args);
int run_rebuild(const Args& args);
int run_replay(const Args& args);
int run_export(const Args& args);
int run_request(const Args& args);
int run_import(const Args& args);
int run_audit(const Args& args);
int run_forget(const Args& args);
int run_restore(const Args& args);
int run_publish(const Args& args);
int run_republish(const Args& args);

}  // namespace cs::csctl
