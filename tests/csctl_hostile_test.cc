// Proves that csctl holds against hostile input and hostile surroundings, as
// found in review (issue 13): every case ends with an exit code and a message
// naming what is wrong, never a signal; read commands never write; what
// export vouches for, import checks. Each case failed on the code before it.
#include <sys/wait.h>

#include <rocksdb/db.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cs/json_codec.h"
#include "cs/storage_codec.h"
#include "test_support.h"

namespace cs {
namespace {

struct CommandRun {
  int exit_code;  // -1: ended by a signal
  std::string out;
  std::string err;
};

// Runs csctl with `args`, feeding `input` on stdin; `env` prefixes the command.
CommandRun csctl(const std::string& args, const std::string& input = "", const std::string& env = "") {
  test::TempDir io;
  std::ofstream(io / "in") << input;
  std::string command = env + " " + std::string(CS_BIN_DIR) + "/csctl " + args + " < " + (io / "in").string() +
                        " > " + (io / "out").string() + " 2> " + (io / "err").string();
  int status = std::system(command.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(io / "out"), slurp(io / "err")};
}

#define EXPECT_REFUSED(run, code, text)                                                   \
  do {                                                                                    \
    const CommandRun& r_ = (run);                                                               \
    EXPECT_EQ(r_.exit_code, code) << r_.err;                                              \
    EXPECT_NE(r_.err.find(text), std::string::npos) << "stderr: " << r_.err;              \
    EXPECT_EQ(r_.err.find("terminate"), std::string::npos) << r_.err;                     \
  } while (0)

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Every file under `dir` with its size and modification time.
std::set<std::string> listing(const std::filesystem::path& dir) {
  std::set<std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    out.insert(entry.path().string() + " " + std::to_string(entry.is_regular_file() ? entry.file_size() : 0) + " " +
               std::to_string(entry.last_write_time().time_since_epoch().count()));
  }
  return out;
}

class HostileTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::string d_ = "--data-dir " + (dir_ / "log").string();
  void fill(int customers = 5) {
    auto r = csctl("append " + d_, csctl("generate --customers " + std::to_string(customers) + " --seed 4").out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
};

TEST_F(HostileTest, DeeplyNestedLinesAreRefusedNotACrash) {
  std::string deep = R"({"type":"customer.created","data":)" + std::string(100'000, '[') + "}\n";
  EXPECT_REFUSED(csctl("append " + d_, deep), 1, "line 1: JSON nests deeper than");
  std::string in_changes = R"({"type":"customer.updated","data":{"customerId":"12345678-9abc-4ef0-8000-000000000001",)"
                           R"("updatedFields":["x"],"changes":{"x":)" + std::string(100'000, '[') + "}}}\n";
  EXPECT_REFUSED(csctl("append " + d_, in_changes), 1, "line 1: JSON nests deeper than");
  EXPECT_REFUSED(csctl("import --data-dir " + (dir_ / "imp").string(), deep), 1, "line 1: JSON nests deeper than");
}

TEST_F(HostileTest, ANegativeCountOrAVanishedReaderEndsGenerateCleanly) {
  EXPECT_REFUSED(csctl("generate --customers -1"), 2, "--customers must be 0 to");
  // A reader that stops early: a failed write, not SIGPIPE.
  std::string command = "set -o pipefail; " + std::string(CS_BIN_DIR) +
                        "/csctl generate --customers 3000 2>/dev/null | head -c 100 > /dev/null";
  int status = std::system(("bash -c '" + command + "'").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << "exit 141 would be death by SIGPIPE";
}

TEST_F(HostileTest, UnusableDataDirsAreErrorsNotTerminate) {
  EXPECT_REFUSED(csctl("append --data-dir /" + std::string(5000, 'x'), "{}\n"), 2, "csctl append");
  EXPECT_REFUSED(csctl("stats --data-dir /" + std::string(5000, 'x')), 2, "csctl stats");
  std::ofstream(dir_ / "a-file") << "x";
  EXPECT_REFUSED(csctl("append --data-dir " + (dir_ / "a-file" / "log").string(), "{}\n"), 2, "cannot open");
}

TEST_F(HostileTest, AReplayStoreIsRefusedByRebuildAndVerifyWithoutAnAssertion) {
  fill();
  std::string r = (dir_ / "replayed").string();
  ASSERT_EQ(csctl("replay " + d_ + " --to-seq 40 --out " + r).exit_code, 0);
  EXPECT_REFUSED(csctl("rebuild -d " + r + " --projection tokens"), 2, "replay store");
  EXPECT_REFUSED(csctl("verify -d " + r + " --projections"), 2, "replay store");
}

TEST_F(HostileTest, VerifyPastTheHeadIsAUsageErrorNotCorruption) {
  fill();
  EXPECT_REFUSED(csctl("verify " + d_ + " --from-seq 100000"), 2, "past the head");
}

TEST_F(HostileTest, AKnownIdWithOtherContentIsAConflictNamingTheId) {
  fill(2);
  auto first = lines(csctl("read " + d_ + " --type token.purchased --limit 1").out);
  ASSERT_EQ(first.size(), 1u);
  auto j = nlohmann::json::parse(first[0]);
  j["data"]["amount"] = j["data"]["amount"].get<std::int64_t>() * 100;
  auto r = csctl("append " + d_, j.dump() + "\n");
  EXPECT_REFUSED(r, 1, j["id"].get<std::string>());
  EXPECT_NE(r.err.find("other data"), std::string::npos) << r.err;
}

// A history saved by a Windows editor: a byte order mark, CRLF line ends.
TEST_F(HostileTest, AHistoryOpeningWithAByteOrderMarkIsAppendedAndImported) {
  const std::string history = csctl("generate --customers 2 --seed 4").out;
  std::string windows = "\xEF\xBB\xBF";
  for (const auto& line : lines(history)) windows += line + "\r\n";
  auto appended = csctl("append " + d_, windows);
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  EXPECT_EQ(lines(csctl("read " + d_).out).size(), lines(history).size());
  const auto exported = csctl("export " + d_).out;
  auto imported = csctl("import --data-dir " + (dir_ / "imp").string(), "\xEF\xBB\xBF" + exported);
  EXPECT_EQ(imported.exit_code, 0) << imported.err;
}

TEST_F(HostileTest, ControlBytesFromTheDataAreEscapedInMessages) {
  std::string line = R"({"type":"customer.created","data":{"customerId":"12345678-9abc-4ef0-8000-000000000001",)"
                     R"("customerType":"sme","name":"A","email":"\u001b[31mred"}})"
                     "\n";
  auto r = csctl("append " + d_, line);
  EXPECT_REFUSED(r, 1, "\\x1b[31mred");
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
}

TEST_F(HostileTest, ReadCommandsNeverWriteAndForeignDatabasesAreRefused) {
  fill();
  auto before = listing(dir_ / "log");
  for (const char* sub : {"read", "stats", "export", "verify"}) EXPECT_EQ(csctl(std::string(sub) + " " + d_).exit_code, 0) << sub;
  EXPECT_EQ(csctl("replay " + d_ + " --to-seq 10 --customer 12345678-9abc-4ef0-8000-000000000001").exit_code, 0);
  EXPECT_EQ(listing(dir_ / "log"), before) << "a read command changed the data dir";

  // An empty directory stays empty.
  std::filesystem::create_directories(dir_ / "empty");
  EXPECT_REFUSED(csctl("read --data-dir " + (dir_ / "empty").string()), 2, "no log");
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "empty"));

  // Another application's RocksDB database: refused by readers and writers.
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, (dir_ / "foreign").string(), &db).ok());
    ASSERT_TRUE(db->Put({}, "k", "v").ok());
    delete db;
  }
  std::string f = "--data-dir " + (dir_ / "foreign").string();
  EXPECT_REFUSED(csctl("read " + f), 2, "not a customer-service log");
  EXPECT_REFUSED(csctl("append " + f, ""), 2, "not a customer-service log");
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, (dir_ / "foreign").string(), &families).ok());
  EXPECT_EQ(families, std::vector<std::string>{"default"});
}

TEST_F(HostileTest, ReplayScratchSpaceIsPrivateAndAlwaysRemoved) {
  fill();
  const std::string customer = "--customer 12345678-9abc-4ef0-8000-000000000001";
  // A customer through the index needs no scratch space at all.
  test::TempDir tmp;
  EXPECT_EQ(csctl("replay " + d_ + " --to-seq 10 " + customer, "", "TMPDIR=" + (tmp / "missing").string()).exit_code, 0);
  // A log from before the index, opened read-only, is folded into scratch space.
  test::remove_customer_index(dir_ / "log");
  std::filesystem::create_directories(tmp / ("csctl-replay-" + std::to_string(::getpid())));  // a bystander
  auto r = csctl("replay " + d_ + " --to-seq 10 " + customer, "", "TMPDIR=" + tmp.path().string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto bad = csctl("replay " + d_ + " --to-seq 10 --customer not-a-uuid", "", "TMPDIR=" + tmp.path().string());
  EXPECT_EQ(bad.exit_code, 2);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"csctl-replay-" + std::to_string(::getpid())});
  // No temporary directory at all: a clear error.
  auto none = csctl("replay " + d_ + " --to-seq 10 " + customer, "", "TMPDIR=" + (tmp / "missing").string());
  EXPECT_REFUSED(none, 2, "scratch directory");
}

// An export whose event was edited, every hash after it recomputed: it
// chains perfectly, and only the head hash export printed can tell.
std::string edited_and_rehashed(const std::string& exported) {
  std::string out;
  Hash previous{};
  bool edited = false;
  for (const auto& text : lines(exported)) {
    if (text.starts_with(R"({"dataKey")") || text.starts_with(R"({"masterKeyCheck")")) {
      out += text + "\n";  // the keys that open the sealed fields, as they were
      continue;
    }
    auto parsed = parse_event_line(text);
    EXPECT_TRUE(parsed.ok());
    RecordedEvent e;
    e.seq = *parsed->seq;
    e.id = *parsed->id;
    e.stream = payload_stream(parsed->payload);
    e.version = *parsed->version;
    e.timestamp = *parsed->timestamp;
    e.recorded_at = *parsed->recorded_at;
    e.meta = parsed->meta;
    e.stored_schema_version = parsed->schema_version;
    e.payload = parsed->payload;
    e.sealed = parsed->sealed;
    if (auto* p = std::get_if<TokenPurchased>(&e.payload); p && !edited) {
      p->amount += 1000;
      edited = true;
    }
    std::string stored;
    encode_canonical(e, stored);
    e.hash = chain_hash(previous, stored);
    previous = e.hash;
    out += format_event_line(e) + "\n";
  }
  EXPECT_TRUE(edited);
  return out;
}

TEST_F(HostileTest, ImportChecksTheHeadHashThatExportPrints) {
  fill();
  auto exported = csctl("export " + d_);
  ASSERT_EQ(exported.exit_code, 0);
  auto at = exported.err.find("head hash ");
  ASSERT_NE(at, std::string::npos) << exported.err;
  std::string head = exported.err.substr(at + 10, 64);

  std::string good = (dir_ / "good").string();
  auto ok = csctl("import --data-dir " + good + " --expect-head-hash " + head, exported.out);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(csctl("verify --data-dir " + good).exit_code, 0);

  std::string bad = (dir_ / "bad").string();
  auto refused = csctl("import --data-dir " + bad + " --expect-head-hash " + head, edited_and_rehashed(exported.out));
  EXPECT_REFUSED(refused, 1, "not the expected " + head);
  EXPECT_FALSE(std::filesystem::exists(bad));
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find(".bad.importing"), std::string::npos) << "staging left behind";
  }
}

TEST_F(HostileTest, ImportRefusesRecordedAtFinerThanAMillisecond) {
  fill(1);
  auto exported = lines(csctl("export " + d_).out);
  auto first_event = std::find_if(exported.begin(), exported.end(), [](const auto& l) { return l.starts_with(R"({"seq")"); });
  ASSERT_NE(first_event, exported.end());
  auto j = nlohmann::json::parse(*first_event);
  std::string recorded = j["recordedAt"];
  j["recordedAt"] = recorded.substr(0, recorded.size() - 1) + "456Z";  // .123Z -> .123456Z
  EXPECT_REFUSED(csctl("import --data-dir " + (dir_ / "imp").string(), j.dump() + "\n"), 1,
                 "line 1: recordedAt");
}

}  // namespace
}  // namespace cs
