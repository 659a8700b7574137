// Crypto-shredding through the tools, as an operator runs them: a generated
// history appended by csctl leaves no name or email in any file of the data
// dir, publishing leaves none on any topic; `csctl forget` makes a customer
// read as erased through every reader while verify passes, the token audit's
// figures and the other customers stay as they were; a restore from Kafka
// agrees; a wrong or missing master key is refused with nothing written.
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cs/event_types.h"
#include "daemon_harness.h"
#include "test_support.h"

namespace cs {
namespace {

struct CommandRun {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CryptoShreddingTest : public ::testing::Test {
 protected:
  CommandRun csctl(const std::string& args, const std::string& input = "") {
    const auto in = dir_ / "stdin", out = dir_ / "stdout", err = dir_ / "stderr";
    std::ofstream(in) << input;
    const std::string command = std::string(CS_BIN_DIR) + "/csctl " + args + " < " + in.string() + " > " +
                                out.string() + " 2> " + err.string();
    CommandRun r;
    r.exit_code = WEXITSTATUS(std::system(command.c_str()));
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  // Names and emails of the generated history, read back in plaintext.
  void collect_personal_data() {
    auto read = csctl("read " + d_);
    ASSERT_EQ(read.exit_code, 0) << read.err;
    std::istringstream lines(read.out);
    for (std::string line; std::getline(lines, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["type"] == "customer.created") {
        customers_.push_back(j["data"]["customerId"]);
        personal_.insert(j["data"]["name"].get<std::string>());
        personal_.insert(j["data"]["email"].get<std::string>());
      }
      if (j["type"] == "user.created") personal_.insert(j["data"]["email"].get<std::string>());
    }
    ASSERT_GT(customers_.size(), 10u);
  }
  // Every file of the data dir that holds one of the values (raw bytes).
  // Where one of the values is stored in the (closed) data dir: every key and
  // value of every family, and the raw bytes of every file.
  std::vector<std::string> plaintext_found(const std::filesystem::path& dir) {
    std::vector<std::string> found;
    for (const auto& value : personal_) {
      for (const auto& where : test::stored_anywhere(dir, value)) found.push_back(where + ": " + value);
    }
    return found;
  }
  nlohmann::json json_of(const CommandRun& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  test::TempDir dir_;
  std::filesystem::path data_ = dir_ / "data";
  std::string d_ = "--data-dir " + data_.string();
  std::vector<std::string> customers_;
  std::set<std::string> personal_;
};

TEST_F(CryptoShreddingTest, NoPlaintextAtRestAndAForgottenCustomerReadsErasedEverywhere) {
  auto appended = csctl("append " + d_, csctl("generate --customers 40 --seed 12").out);
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  const auto key = default_master_key_file(data_);
  ASSERT_TRUE(std::filesystem::exists(key)) << "created beside the data dir, not in it";
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  collect_personal_data();
  // The projections too, once they are folded.
  ASSERT_EQ(csctl("list customers " + d_).exit_code, 0);
  EXPECT_EQ(plaintext_found(data_), std::vector<std::string>{});

  const std::string victim = customers_[5], bystander = customers_[6];
  auto victim_before = json_of(csctl("state view " + victim + " " + d_));
  auto bystander_before = json_of(csctl("state view " + bystander + " " + d_));
  ASSERT_FALSE(victim_before["customer"]["name"].is_null());
  ASSERT_FALSE(victim_before["users"].empty());
  auto audit_before = json_of(csctl("audit tokens --format json " + d_));
  const std::string victim_name = victim_before["customer"]["name"], victim_email = victim_before["customer"]["email"];

  auto forgotten = csctl("forget customer " + victim + " " + d_);
  ASSERT_EQ(forgotten.exit_code, 0) << forgotten.err;
  EXPECT_EQ(json_of(forgotten)["erased"], true);

  // The read models: the customer, its users; its tokens untouched.
  auto victim_after = json_of(csctl("state view " + victim + " " + d_));
  EXPECT_TRUE(victim_after["customer"]["name"].is_null());
  EXPECT_TRUE(victim_after["customer"]["email"].is_null());
  EXPECT_EQ(victim_after["customer"]["erased"], true);
  EXPECT_EQ(victim_after["customer"]["status"], victim_before["customer"]["status"]) << "everything else unchanged";
  EXPECT_EQ(victim_after["tokens"], victim_before["tokens"]);
  for (const auto& u : victim_after["users"]) {
    EXPECT_TRUE(u["email"].is_null());
    EXPECT_EQ(u["erased"], true);
  }
  EXPECT_EQ(json_of(csctl("state view " + bystander + " " + d_)), bystander_before) << "other customers untouched";
  // The events, read and exported in plaintext.
  for (const std::string& command : {"read --stream customer-" + victim + " " + d_, "export --decrypt " + d_}) {
    auto r = csctl(command);
    ASSERT_EQ(r.exit_code, 0) << command << ": " << r.err;
    // (Another customer may bear the same generated name: look at the victim's lines.)
    std::istringstream lines(r.out);
    std::size_t erased_lines = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.find(victim) == std::string::npos) continue;
      EXPECT_EQ(line.find(victim_name), std::string::npos) << command << ": " << line;
      EXPECT_EQ(line.find(victim_email), std::string::npos) << command << ": " << line;
      erased_lines += line.find("\"erased\":true") != std::string::npos ? 1 : 0;
    }
    EXPECT_GT(erased_lines, 0u) << command;
  }
  // A replay, even as of a moment before the erasure: the key is gone.
  auto replayed = json_of(csctl("replay " + d_ + " --to-seq 400 --customer " + victim));
  EXPECT_TRUE(replayed["customer"]["name"].is_null());
  EXPECT_EQ(replayed["customer"]["erased"], true);
  // The chain covers the sealed bytes: nothing to rewrite, nothing broken.
  auto verified = csctl("verify --projections " + d_);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // The token figures are the same (the erasure is not a token event).
  auto audit_after = json_of(csctl("audit tokens --format json " + d_));
  EXPECT_EQ(audit_after["totals"], audit_before["totals"]);
  EXPECT_EQ(audit_after["findings"], audit_before["findings"]);
  // Nothing of the customer can be written again.
  auto again = csctl("append " + d_, R"({"type":"customer.updated","data":{"customerId":")" + victim +
                                         R"(","updatedFields":["name"],"changes":{"name":"Back"}}})" "\n");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("was erased"), std::string::npos) << again.err;
  EXPECT_EQ(csctl("forget customer " + victim + " " + d_).exit_code, 0) << "forgetting twice is harmless";
  EXPECT_EQ(plaintext_found(data_), std::vector<std::string>{});
}

TEST_F(CryptoShreddingTest, AWrongOrMissingMasterKeyIsRefusedAndNothingIsWritten) {
  ASSERT_EQ(csctl("append " + d_, csctl("generate --customers 5 --seed 3").out).exit_code, 0);
  const std::string line = csctl("generate --customers 1 --seed 99").out.substr(0, csctl("generate --customers 1 --seed 99").out.find('\n') + 1);
  auto head = [&] { return json_of(csctl("stats " + d_))["headSeq"].get<std::uint64_t>(); };
  const auto before = head();
  std::ofstream(dir_ / "other.key") << std::string(64, 'a') << "\n";
  auto wrong = csctl("append " + d_ + " --master-key " + (dir_ / "other.key").string(), line);
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("is not the key this log's personal data was sealed with"), std::string::npos) << wrong.err;
  auto missing = csctl("append " + d_ + " --master-key " + (dir_ / "gone.key").string(), line);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "gone.key")) << "no new key for a log that has sealed data";
  std::ofstream(dir_ / "bad.key") << "not a key\n";
  auto bad = csctl("read " + d_ + " --master-key " + (dir_ / "bad.key").string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("64 hex digits"), std::string::npos) << bad.err;
  EXPECT_EQ(head(), before);
  // A reader without the key gets the stored form, and a clear word when it asks for more.
  auto stored = csctl("read --stored " + d_ + " --master-key " + (dir_ / "gone.key").string());
  EXPECT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_NE(stored.out.find("\"sealed\":true"), std::string::npos);
  auto opened = csctl("read " + d_ + " --master-key " + (dir_ / "gone.key").string());
  EXPECT_EQ(opened.exit_code, 2);
  EXPECT_NE(opened.err.find("master key"), std::string::npos) << opened.err;
}

TEST_F(CryptoShreddingTest, KafkaCarriesNoPlaintextAndARestoreFromItAgrees) {
  const std::string brokers = test::kafka_brokers();
  ASSERT_FALSE(brokers.empty()) << "set CS_KAFKA_BROKERS";
  ASSERT_EQ(csctl("append " + d_, csctl("generate --customers 30 --seed 21").out).exit_code, 0);
  collect_personal_data();
  const std::string p = "cs" + std::to_string(::getpid()) + "x" + std::to_string(std::random_device{}() % 100000) + ".";
  const std::string topics = " --brokers " + brokers + " --topic-template '" + p + "{event}' --full-log-topic " + p +
                             "events --keys-topic " + p + "keys --checkpoint-topic " + p + "checkpoints" +
                             " --transactional-id " + p + "tx";
  const std::string victim = customers_[2], bystander = customers_[3];
  // Published while the customer is live, then its erasure.
  ASSERT_EQ(csctl("publish --once " + d_ + topics).exit_code, 0);
  ASSERT_EQ(csctl("forget customer " + victim + " " + d_).exit_code, 0);
  auto published = csctl("publish --once " + d_ + topics);
  ASSERT_EQ(published.exit_code, 0) << published.err;

  std::vector<std::string> all = {p + "events", p + "keys"};
  for (EventType t : all_event_types) all.push_back(p + std::string(event_type_name(t)));
  auto records = test::consume_all_of(brokers, all);
  ASSERT_GT(records.size(), 100u);
  std::size_t keys = 0, tombstones = 0;
  for (const auto& r : records) {
    for (const auto& value : personal_) {
      ASSERT_EQ(r.value.find(value), std::string::npos) << r.topic << " carries " << value;
    }
    if (r.topic == p + "keys") {
      ++keys;
      if (r.value.empty() && r.key == victim) ++tombstones;
    }
  }
  EXPECT_EQ(keys, customers_.size() + 1) << "one key a customer, and the erased one's tombstone";
  EXPECT_EQ(tombstones, 1u);

  // A fresh machine: the master key, and Kafka.
  const auto restored = dir_ / "restored";
  const std::string r_ = "--data-dir " + restored.string() + " --master-key " + default_master_key_file(data_).string();
  auto restore = csctl("restore --from-kafka --brokers " + brokers + " " + r_ + " --full-log-topic " + p +
                       "events --keys-topic " + p + "keys");
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_EQ(json_of(csctl("stats " + r_))["headHash"], json_of(csctl("stats " + d_))["headHash"]);
  EXPECT_EQ(csctl("verify " + r_).exit_code, 0);
  auto victim_restored = json_of(csctl("state view " + victim + " " + r_));
  EXPECT_TRUE(victim_restored["customer"]["name"].is_null()) << "forgotten stays forgotten";
  EXPECT_EQ(victim_restored["customer"]["erased"], true);
  EXPECT_EQ(json_of(csctl("state view " + bystander + " " + r_)), json_of(csctl("state view " + bystander + " " + d_)));
  EXPECT_EQ(plaintext_found(restored), std::vector<std::string>{});
  // Without the master key nothing is restored.
  auto keyless = csctl("restore --from-kafka --brokers " + brokers + " --data-dir " + (dir_ / "keyless").string() +
                       " --full-log-topic " + p + "events --keys-topic " + p + "keys");
  EXPECT_EQ(keyless.exit_code, 2);
  EXPECT_NE(keyless.err.find("master key"), std::string::npos) << keyless.err;
}

}  // namespace
}  // namespace cs
