// Proves export and import: an exported log imported into an empty directory
// has the original's head hash; a range continues a log; an altered line is
// refused with its line number; and the CLI does the same end to end.
#include <sys/wait.h>

#include <sstream>

#include "cs/json_codec.h"
#include "cs/replay.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

void fill(EventLog& log, std::uint64_t customers, std::uint64_t seed) {
  test::append_generated(log, customers, seed, 700);
}

TEST(ReplayTest, ExportThenImportReproducesTheHeadHash) {
  test::TempDir dir;
  auto original = test::open_log(dir / "a");
  fill(*original, 50, 9);
  std::stringstream exported;
  auto n = export_events(*original, Sequence(1), std::nullopt, exported);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->events, original->head().value);
  EXPECT_EQ(n->last_hash, original->head_hash());

  auto copy = test::open_log(dir / "b");
  auto report = import_events(*copy, exported);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->imported, original->head().value);
  EXPECT_EQ(copy->head(), original->head());
  EXPECT_EQ(copy->head_hash(), original->head_hash());
  EXPECT_TRUE(copy->verify().ok());
  // Indexes work on the imported log as on the original.
  auto stats_a = original->stats().value(), stats_b = copy->stats().value();
  EXPECT_EQ(stats_a.streams, stats_b.streams);
  EXPECT_EQ(stats_a.events_by_type, stats_b.events_by_type);
}

TEST(ReplayTest, RangesContinueALogAndAlteredLinesAreRefused) {
  test::TempDir dir;
  auto original = test::open_log(dir / "a");
  fill(*original, 20, 4);
  Sequence half(original->head().value / 2);
  std::stringstream first, second;
  ASSERT_TRUE(export_events(*original, Sequence(1), half, first).ok());
  ASSERT_TRUE(export_events(*original, half.next(), std::nullopt, second).ok());

  auto copy = test::open_log(dir / "b");
  // The second half cannot start an empty log.
  std::stringstream second_copy(second.str());
  auto early = import_events(*copy, second_copy);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message().find("line 1: import: seq " + std::to_string(half.value + 1) +
                                         ": the log continues at seq 1"),
            std::string::npos)
      << early.error().message();

  ASSERT_TRUE(import_events(*copy, first).ok());
  // Alter the amount of one token event in the second half.
  std::string text = second.str();
  std::istringstream lines(text);
  std::string altered, line;
  int number = 0, changed_line = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (changed_line == 0 && line.find("\"amount\":") != std::string::npos) {
      auto j = nlohmann::ordered_json::parse(line);
      j["data"]["amount"] = j["data"]["amount"].get<std::int64_t>() + 1;
      line = j.dump();
      changed_line = number;
    }
    altered += line + "\n";
  }
  ASSERT_GT(changed_line, 0);
  std::stringstream tampered(altered);
  auto refused = import_events(*copy, tampered);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::corruption);
  EXPECT_NE(refused.error().message().find("line " + std::to_string(changed_line) + ": "), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("does not match the recomputed"), std::string::npos);
  // Everything before the altered line went in; the rest imports after it.
  EXPECT_EQ(copy->head().value, half.value + static_cast<std::uint64_t>(changed_line) - 1);
  EXPECT_TRUE(copy->verify().ok());
}

TEST(ReplayTest, CsctlExportImportAndReplayFromTheCommandLine) {
  test::TempDir dir;
  std::string csctl = std::string(CS_BIN_DIR) + "/csctl";
  std::string a = (dir / "a").string(), b = (dir / "b").string(), out = (dir / "out").string();
  auto run = [](const std::string& command) { return WEXITSTATUS(std::system(command.c_str())); };
  ASSERT_EQ(run(csctl + " generate --customers 30 --seed 2 | " + csctl + " append --data-dir " + a + " 2>/dev/null"), 0);
  ASSERT_EQ(run(csctl + " export --data-dir " + a + " 2>/dev/null | " + csctl + " import --data-dir " + b + " 2>/dev/null"), 0);
  // b took a's sealed data and wrapped keys; without a's master key it opens read-only.
  auto la = test::open_log(a), lb = test::open_log(b, {.read_only = true});
  EXPECT_EQ(la->head_hash(), lb->head_hash());
  EXPECT_TRUE(lb->verify().ok());
  la.reset();
  lb.reset();
  ASSERT_EQ(run(csctl + " replay --data-dir " + a + " --to-seq 100 --out " + out + " 2>/dev/null"), 0);
  ASSERT_EQ(run(csctl + " list customers --data-dir " + out + " > " + (dir / "list").string() + " 2>/dev/null"), 0);
  EXPECT_GT(std::filesystem::file_size(dir / "list"), 100u);
  EXPECT_EQ(run(csctl + " replay --data-dir " + a + " 2>/dev/null"), 2) << "replay needs --as-of or --to-seq";
}

}  // namespace
}  // namespace cs
