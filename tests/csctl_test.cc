// Proves csctl end to end, as an operator runs it: generate is deterministic,
// append reports bad lines by number and keeps the valid ones, read prints
// lines that append takes back, stats and verify tell the truth.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_support.h"

namespace cs {
namespace {

struct Run {
  int exit_code;
  std::string out;
  std::string err;
};

// Runs csctl with `args`, feeding `input` on stdin.
Run csctl(const std::string& args, const std::string& input = "") {
  test::TempDir io;
  std::ofstream(io / "in") << input;
  std::string command = std::string(CS_BIN_DIR) + "/csctl " + args + " < " + (io / "in").string() + " > " +
                        (io / "out").string() + " 2> " + (io / "err").string();
  int status = std::system(command.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(io / "out"), slurp(io / "err")};
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(CsctlTest, EverySubcommandHasHelp) {
  for (const char* sub : {"append", "read", "stats", "verify", "generate"}) {
    auto r = csctl(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("usage: csctl " + std::string(sub)), std::string::npos) << sub;
  }
  EXPECT_EQ(csctl("frobnicate").exit_code, 2);
  auto missing = csctl("read");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("data-dir"), std::string::npos);
}

TEST(CsctlTest, PublishRefusesTransactionLimitsItCannotKeep) {
  test::TempDir dir;
  std::string d = "--data-dir " + (dir / "log").string() + " --brokers 127.0.0.1:1";
  auto zero = csctl("publish " + d + " --transaction-events 0");
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("--transaction-events must be at least 1"), std::string::npos) << zero.err;
  auto forever = csctl("publish " + d + " --transaction-ms 600000");
  EXPECT_EQ(forever.exit_code, 2);
  EXPECT_NE(forever.err.find("--transaction-ms must be between 1 and 59999"), std::string::npos) << forever.err;
  auto help = csctl("publish --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--transaction-ms"), std::string::npos);
}

// The commands on the log run in a csctl that does not load librdkafka (nor
// the TLS and SASL libraries behind it): their start-up cost is most of a
// short read command's (docs/performance.md). The Kafka commands run in
// csctl-kafka beside it, whichever of the two is called.
TEST(CsctlTest, KafkaCommandsRunInTheirOwnBinaryAndTheOthersDoNotLoadKafka) {
  test::TempDir io;
  const std::string bin = CS_BIN_DIR;
  // glibc's loader lists what it loads and stops there (what ldd does).
  auto loaded = [&](const std::string& binary) {
    const std::string listing = (io / "loaded").string();
    const std::string command = "LD_TRACE_LOADED_OBJECTS=1 " + bin + "/" + binary + " > " + listing + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    std::ifstream in(listing);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  const std::string csctl_libraries = loaded("csctl");
  EXPECT_NE(csctl_libraries.find("libcrypto"), std::string::npos) << csctl_libraries;  // the listing works
  EXPECT_EQ(csctl_libraries.find("librdkafka"), std::string::npos) << csctl_libraries;
  EXPECT_EQ(csctl_libraries.find("libsasl2"), std::string::npos) << csctl_libraries;
  EXPECT_NE(loaded("csctl-kafka").find("librdkafka"), std::string::npos);

  // Either binary runs every command: csctl hands the Kafka ones over, and
  // csctl-kafka the others.
  auto request_help = csctl("request --help");
  EXPECT_EQ(request_help.exit_code, 0) << request_help.err;
  EXPECT_NE(request_help.out.find("usage: csctl request"), std::string::npos) << request_help.out;
  const std::string read_help = (io / "read_help").string();
  ASSERT_EQ(std::system((bin + "/csctl-kafka read --help > " + read_help + " 2>&1").c_str()), 0);
  std::ifstream read_help_in(read_help);
  EXPECT_NE(std::string((std::istreambuf_iterator<char>(read_help_in)), {}).find("usage: csctl read"),
            std::string::npos);

  // A csctl copied away from its helper says what is missing, and fails
  // like any other command (exit 2), not by a signal.
  std::filesystem::copy_file(bin + "/csctl", io / "csctl");
  const std::string err = (io / "err").string();
  const int status = std::system(((io / "csctl").string() + " publish --help > /dev/null 2> " + err).c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream err_in(err);
  const std::string message((std::istreambuf_iterator<char>(err_in)), {});
  EXPECT_NE(message.find("csctl publish: cannot run " + (io / "csctl-kafka").string()), std::string::npos)
      << message;
}

TEST(CsctlTest, GenerateIsDeterministicAndRealistic) {
  auto a = csctl("generate --customers 30 --seed 7");
  auto b = csctl("generate --customers 30 --seed 7");
  auto c = csctl("generate --customers 30 --seed 8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);

  std::map<std::string, int> types;
  std::string previous_time;
  std::map<std::string, std::int64_t> balance;
  for (const auto& l : lines(a.out)) {
    auto j = nlohmann::json::parse(l);
    ++types[j["type"]];
    EXPECT_GE(j["timestamp"].get<std::string>(), previous_time) << "not in time order";
    previous_time = j["timestamp"];
    std::string customer = j["data"]["customerId"];
    if (j["type"] == "token.purchased" || j["type"] == "token.allocated") balance[customer] += j["data"]["amount"].get<std::int64_t>();
    if (j["type"] == "token.used") {
      balance[customer] -= j["data"]["amount"].get<std::int64_t>();
      EXPECT_GE(balance[customer], 0) << "overdrawn: " << l;
    }
  }
  for (const char* t : {"customer.created", "customer.validated", "user.created", "subscription.created",
                        "subscription.renewed", "token.purchased", "token.used"}) {
    EXPECT_GT(types[t], 0) << t;
  }
  EXPECT_GT(types.size(), 12u) << "a realistic history uses most event types";
}

TEST(CsctlTest, AppendReadStatsVerifyRoundTrip) {
  test::TempDir dir;
  std::string d = "--data-dir " + (dir / "log").string();
  auto history = csctl("generate --customers 20 --seed 3").out;
  auto appended = csctl("append " + d, history);
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  std::size_t n = lines(history).size();
  EXPECT_NE(appended.err.find("appended " + std::to_string(n) + " events (seq 1.." + std::to_string(n) + ")"),
            std::string::npos)
      << appended.err;

  auto stats = csctl("stats " + d);
  ASSERT_EQ(stats.exit_code, 0);
  auto s = nlohmann::json::parse(stats.out);
  EXPECT_EQ(s["events"], n);
  EXPECT_EQ(s["headSeq"], n);
  EXPECT_EQ(s["headHash"].get<std::string>().size(), 64u);
  EXPECT_GT(s["streams"].get<int>(), 20);
  EXPECT_EQ(csctl("verify " + d).exit_code, 0);

  // Everything read back appends again as a no-op (same ids) ...
  auto all = csctl("read " + d);
  ASSERT_EQ(all.exit_code, 0);
  EXPECT_EQ(lines(all.out).size(), n);
  auto again = csctl("append " + d, all.out);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find(std::to_string(n) + " already in the log"), std::string::npos) << again.err;
  // ... and into an empty log, the same events in the same order.
  std::string d2 = "--data-dir " + (dir / "copy").string();
  ASSERT_EQ(csctl("append " + d2, all.out).exit_code, 0);
  auto copy = lines(csctl("read " + d2).out);
  auto original = lines(all.out);
  ASSERT_EQ(copy.size(), original.size());
  for (std::size_t i = 0; i < copy.size(); ++i) {
    auto x = nlohmann::json::parse(copy[i]), y = nlohmann::json::parse(original[i]);
    EXPECT_EQ(x["id"], y["id"]);
    EXPECT_EQ(x["data"], y["data"]);
  }

  auto tokens = lines(csctl("read " + d + " --category token.* --limit 5 --backward").out);
  ASSERT_EQ(tokens.size(), 5u);
  std::uint64_t last = UINT64_MAX;
  for (const auto& l : tokens) {
    auto j = nlohmann::json::parse(l);
    EXPECT_EQ(j["type"].get<std::string>().rfind("token.", 0), 0u);
    EXPECT_LT(j["seq"].get<std::uint64_t>(), last);
    last = j["seq"];
  }
  auto first = nlohmann::json::parse(original[0]);
  auto stream = lines(csctl("read " + d + " --stream " + first["stream"].get<std::string>()).out);
  ASSERT_FALSE(stream.empty());
  EXPECT_EQ(nlohmann::json::parse(stream[0])["version"], 1);
}

TEST(CsctlTest, MalformedLinesAreNamedByNumberAndNothingOfThemIsWritten) {
  test::TempDir dir;
  std::string d = "--data-dir " + (dir / "log").string();
  auto good = lines(csctl("generate --customers 2 --seed 1").out);
  ASSERT_GE(good.size(), 6u);
  std::string input = good[0] + "\n" + good[1] + "\n" + "{\"type\":\"token.used\",\"data\":{\"amount\":-1}}\n" +
                      good[2] + "\n" + "not json at all\n" + good[3] + "\n";

  auto strict = csctl("append " + d, input);
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("line 3: data.customerId is missing"), std::string::npos) << strict.err;
  EXPECT_EQ(strict.err.find("line 5"), std::string::npos) << "strict mode stops at the first bad line";
  EXPECT_NE(strict.err.find("appended 2 events (seq 1..2)"), std::string::npos) << strict.err;
  EXPECT_EQ(lines(csctl("read " + d).out).size(), 2u);

  auto lenient = csctl("append --skip-invalid " + d, input);
  EXPECT_EQ(lenient.exit_code, 1);
  EXPECT_NE(lenient.err.find("line 3: data.customerId is missing"), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.err.find("line 5: not valid JSON"), std::string::npos) << lenient.err;
  EXPECT_NE(lenient.err.find("appended 2 events (seq 3..4), 2 already in the log, 2 lines rejected"),
            std::string::npos)
      << lenient.err;
  EXPECT_EQ(csctl("verify " + d).exit_code, 0);

  // A conflict is found at append time and named by line too.
  auto j = nlohmann::json::parse(good[0]);
  j.erase("id");
  j["expectedVersion"] = "no-stream";
  auto conflict = csctl("append " + d, j.dump() + "\n");
  EXPECT_EQ(conflict.exit_code, 1);
  EXPECT_NE(conflict.err.find("line 1: stream " + j["stream"].get<std::string>() + ": expected version no-stream"),
            std::string::npos)
      << conflict.err;
}

TEST(CsctlTest, AppendFromAPipeCommitsWhatHasArrivedWhenItsWriterPauses) {
  test::TempDir dir;
  const std::string d = "--data-dir " + (dir / "log").string();
  auto history = lines(csctl("generate --customers 2 --seed 1").out);
  ASSERT_GE(history.size(), 5u);
  const std::string command = std::string(CS_BIN_DIR) + "/csctl append " + d + " 2> " + (dir / "err").string();
  FILE* feed = ::popen(command.c_str(), "w");
  ASSERT_NE(feed, nullptr);
  for (std::size_t i = 0; i < 3; ++i) std::fprintf(feed, "%s\n", history[i].c_str());
  std::fflush(feed);
  // The feed stays open: what arrived must be readable beside the writer
  // before any more comes (a reader opens the log read-only).
  std::size_t visible = 0;
  for (int attempt = 0; attempt < 600 && visible < 3; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto read = csctl("read " + d);
    if (read.exit_code == 0) visible = lines(read.out).size();
  }
  EXPECT_EQ(visible, 3u) << "lines written to a paused pipe were not committed";
  for (std::size_t i = 3; i < history.size(); ++i) std::fprintf(feed, "%s\n", history[i].c_str());
  const int status = ::pclose(feed);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(lines(csctl("read " + d).out).size(), history.size());
  EXPECT_EQ(csctl("verify " + d).exit_code, 0);
}

TEST(CsctlTest, AppendOfAnUnreadableInputSaysWhyAndExitsTwo) {
  test::TempDir dir;
  const std::string command = std::string(CS_BIN_DIR) + "/csctl append --data-dir " + (dir / "log").string() +
                              " < " + dir.path().string() + " 2> " + (dir / "err").string();
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(dir / "err");
  const std::string err((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(err.find("read standard input: Is a directory"), std::string::npos) << err;
}

TEST(CsctlTest, AChunkSizeOutOfRangeIsRefusedBeforeAnythingIsWritten) {
  test::TempDir dir;
  for (const std::string command : {"append", "import"}) {
    for (const std::string bytes : {"0", "1000", "2000000000"}) {
      auto r = csctl(command + " --chunk-bytes " + bytes + " --data-dir " + (dir / "log").string(), "");
      EXPECT_EQ(r.exit_code, 2) << command << " " << bytes;
      EXPECT_NE(r.err.find("--chunk-bytes must be 65536 to 1073741824"), std::string::npos) << r.err;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "log"));
}

TEST(CsctlTest, VerifyExitsNonZeroOnAMissingLog) {
  test::TempDir dir;
  auto r = csctl("verify --data-dir " + (dir / "nothing").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no log in"), std::string::npos);
}

}  // namespace
}  // namespace cs
