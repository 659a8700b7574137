// Proves the token audit: one hand-written history per rule, each finding
// checked for its sequence, rule and customer; the window figures of a small
// history worked out by hand; a clean generated history with no finding; and
// the CLI's exit codes with its CSV and JSON parsed back.
#include <rocksdb/db.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "cs/storage_codec.h"
#include "cs/token_audit.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

using test::uuid;

const Uuid customer = uuid(1), admin = uuid(4), user_a = uuid(20), user_b = uuid(21);

Timestamp day_hour(int day, int hour) { return test::at_seconds(day * 86400 + hour * 3600); }

class AuditTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::unique_ptr<EventLog> log_ = test::open_log(dir_ / "log");
  std::uint64_t next_id_ = 1;

  Sequence add(Payload p, Timestamp at) {
    NewEvent e = test::make_event(std::move(p), next_id_++);
    e.timestamp = at;
    auto r = log_->append(std::vector{e});
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? r->positions[0].seq : Sequence();
  }
  Sequence purchase(std::int64_t n, Timestamp at) { return add(TokenPurchased{customer, n, n * 5, "EUR", "pay"}, at); }
  Sequence use(std::int64_t n, Timestamp at, Uuid usage, Uuid user = user_a, std::string feature = "export") {
    return add(TokenUsed{customer, n, usage, user, feature}, at);
  }
  void open_customer() {
    add(CustomerCreated{customer, CustomerType::sme, "Atlas", "a@atlas.example"}, day_hour(0, 0));
    add(CustomerValidated{customer, admin}, day_hour(0, 1));
  }
  // An event written by an older schema, arriving through an import (as from
  // the previous system's export): its chain continues this log's.
  Sequence add_legacy(Payload p, Timestamp at) {
    RecordedEvent e;
    e.seq = log_->head().next();
    e.id = uuid(9000 + next_id_++);
    e.stream = payload_stream(p);
    e.version = log_->stream_version(e.stream)->next();
    e.timestamp = at;
    e.recorded_at = at;
    e.stored_schema_version = 1;
    e.payload = std::move(p);
    std::string canonical;
    encode_canonical(e, canonical);
    e.hash = chain_hash(log_->head_hash(), canonical);
    auto r = log_->import(std::vector{e});
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return e.seq;
  }
  AuditReport audit(AuditOptions options = {}, bool with_projections = true) {
    auto engine = ProjectionEngine::open(*log_);
    EXPECT_TRUE(engine.ok());
    auto r = audit_tokens(*log_, with_projections ? engine->get() : nullptr, options);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : AuditReport{};
  }
  static void expect_single(const AuditReport& r, Sequence seq, const std::string& rule, const std::string& text) {
    ASSERT_EQ(r.findings.size(), 1u) << (r.findings.empty() ? "none" : r.findings[0].rule + ", " + r.findings.back().rule);
    EXPECT_EQ(r.findings[0].seq, seq);
    EXPECT_EQ(r.findings[0].rule, rule);
    EXPECT_EQ(r.findings[0].customer, customer);
    EXPECT_NE(r.findings[0].message.find(text), std::string::npos) << r.findings[0].message;
  }
};

TEST_F(AuditTest, WindowFiguresByFeatureUserAndDay) {
  open_customer();
  purchase(100, day_hour(1, 9));
  use(30, day_hour(1, 10), uuid(100));
  add(TokenAllocated{customer, 20, admin, "goodwill"}, day_hour(2, 9));
  use(10, day_hour(3, 9), uuid(101), user_a, "export");
  use(5, day_hour(3, 15), uuid(102), user_b, "report");
  use(1, day_hour(4, 9), uuid(103));  // after the window
  auto r = audit({.from = day_hour(2, 0), .to = day_hour(4, 0)});
  EXPECT_TRUE(r.findings.empty());
  ASSERT_EQ(r.customers.size(), 1u);
  const auto& c = r.customers[0];
  EXPECT_EQ(c.customer, customer);
  EXPECT_EQ(c.figures.balance_start, 70);
  EXPECT_EQ(c.figures.purchased, 0);
  EXPECT_EQ(c.figures.allocated, 20);
  EXPECT_EQ(c.figures.used, 15);
  EXPECT_EQ(c.figures.balance_end, 75);
  EXPECT_EQ(c.used_by_feature, (std::vector<std::pair<std::string, std::int64_t>>{{"export", 10}, {"report", 5}}));
  EXPECT_EQ(c.used_by_user, (std::vector<std::pair<Uuid, std::int64_t>>{{user_a, 10}, {user_b, 5}}));
  ASSERT_EQ(c.days.size(), 2u);
  EXPECT_EQ(audit_day_name(c.days[0].first), "2026-01-03");
  EXPECT_EQ(c.days[0].second.allocated, 20);
  EXPECT_EQ(c.days[0].second.balance_end, 90);
  EXPECT_EQ(audit_day_name(c.days[1].first), "2026-01-04");
  EXPECT_EQ(c.days[1].second.used, 15);
  EXPECT_EQ(c.days[1].second.balance_end, 75);
  EXPECT_EQ(r.totals.balance_end, 75);
  EXPECT_EQ(c.balance_points.size(), 3u);
}

TEST_F(AuditTest, NegativeBalance) {
  open_customer();
  purchase(10, day_hour(1, 0));
  auto seq = use(15, day_hour(1, 1), uuid(100));
  expect_single(audit(), seq, "negative-balance", "from 10 to -5");
}

TEST_F(AuditTest, UseWithoutCredit) {
  open_customer();
  auto seq = use(5, day_hour(1, 0), uuid(100));
  expect_single(audit(), seq, "use-without-credit", "before any purchase or allocation");
}

TEST_F(AuditTest, DuplicateUsageId) {
  open_customer();
  purchase(100, day_hour(1, 0));
  auto first = use(5, day_hour(1, 1), uuid(100));
  auto second = use(3, day_hour(1, 2), uuid(100));
  expect_single(audit(), second, "duplicate-usage-id", "already used at seq " + std::to_string(first.value));
}

TEST_F(AuditTest, PurchaseWithoutPaymentReference) {
  open_customer();
  auto seq = add_legacy(TokenPurchased{customer, 50, 250, "EUR", ""}, day_hour(1, 0));
  expect_single(audit(), seq, "missing-payment-reference", "no paymentReference (schema v1)");
}

TEST_F(AuditTest, AllocationWithoutAdmin) {
  open_customer();
  auto seq = add_legacy(TokenAllocated{customer, 50, Uuid(), "migration"}, day_hour(1, 0));
  expect_single(audit(), seq, "missing-admin-id", "no adminId (schema v1)");
}

TEST_F(AuditTest, UseWhileSuspendedAndAfterDeletion) {
  open_customer();
  purchase(100, day_hour(1, 0));
  add(CustomerSuspended{customer, admin, "unpaid"}, day_hour(1, 1));
  auto suspended = use(5, day_hour(1, 2), uuid(100));
  add(CustomerReactivated{customer, admin}, day_hour(1, 3));
  use(5, day_hour(1, 4), uuid(101));  // fine
  add(CustomerDeleted{customer, admin, "closed"}, day_hour(1, 5));
  auto deleted = use(5, day_hour(1, 6), uuid(102));
  auto r = audit();
  ASSERT_EQ(r.findings.size(), 2u);
  EXPECT_EQ(r.findings[0].seq, suspended);
  EXPECT_EQ(r.findings[0].rule, "use-while-suspended");
  EXPECT_EQ(r.findings[1].seq, deleted);
  EXPECT_EQ(r.findings[1].rule, "use-after-deletion");
}

TEST_F(AuditTest, StoredProjectionBalanceDifferentFromTheLog) {
  open_customer();
  purchase(100, day_hour(1, 0));
  auto last = use(30, day_hour(1, 1), uuid(100));
  {
    auto engine = ProjectionEngine::open(*log_);
    ASSERT_TRUE((*engine)->catch_up().ok());
    TokenAccount forged = *(*engine)->token_account(customer).value();
    forged.balance = 999;
    ASSERT_TRUE(log_->db().Put({}, *log_->column_family("proj.tokens.1"), projection_keys::entity(customer),
                               encode_state(forged)).ok());
  }
  expect_single(audit(), last, "projection-mismatch", "stored account says balance 999");
}

// Many customers' accounts are compared in one pass beside the log's: a
// forged one and a missing one are each found and named, wherever they sit
// in key order, and the others are not.
TEST_F(AuditTest, EveryStoredAccountIsComparedAndEachMismatchNamesItsCustomer) {
  std::vector<Uuid> customers;
  std::vector<Sequence> last_use;
  for (int i = 0; i < 40; ++i) {
    customers.push_back(test::uuid(5'000 + 7 * i));
    add(TokenPurchased{customers.back(), 50 + i, 100, "EUR", "pay"}, day_hour(1, 0));
    last_use.push_back(add(TokenUsed{customers.back(), 10, test::uuid(7'000 + i), user_a, "export"}, day_hour(1, 1)));
  }
  const std::size_t forged_at = 11, missing_at = 27;
  {
    auto engine = ProjectionEngine::open(*log_);
    ASSERT_TRUE((*engine)->catch_up().ok());
    TokenAccount forged = *(*engine)->token_account(customers[forged_at]).value();
    forged.used = 3;
    auto family = *log_->column_family("proj.tokens.1");
    ASSERT_TRUE(log_->db().Put({}, family, projection_keys::entity(customers[forged_at]), encode_state(forged)).ok());
    ASSERT_TRUE(log_->db().Delete({}, family, projection_keys::entity(customers[missing_at])).ok());
  }
  auto r = audit();
  ASSERT_EQ(r.findings.size(), 2u);
  EXPECT_EQ(r.findings[0].rule, "projection-mismatch");
  EXPECT_EQ(r.findings[0].customer, customers[forged_at]);
  EXPECT_EQ(r.findings[0].seq, last_use[forged_at]);
  EXPECT_NE(r.findings[0].message.find("used 3), the log gives"), std::string::npos) << r.findings[0].message;
  EXPECT_EQ(r.findings[1].rule, "projection-mismatch");
  EXPECT_EQ(r.findings[1].customer, customers[missing_at]);
  EXPECT_EQ(r.findings[1].seq, last_use[missing_at]);
  EXPECT_NE(r.findings[1].message.find("no stored token account"), std::string::npos) << r.findings[1].message;
}

// A customer's sums by feature and by user are right however many keys the
// log names: a few (kept in a small vector) or many (past 16, a map), each
// key summed over all its uses.
TEST_F(AuditTest, UsageIsSummedByFeatureAndByUserHoweverManyThereAre) {
  open_customer();
  purchase(100'000, day_hour(1, 0));
  std::map<std::string, std::int64_t> by_feature;
  std::map<Uuid, std::int64_t> by_user;
  for (int i = 0; i < 200; ++i) {
    // 3 features and 2 users for the first 60 uses, then 40 and 25.
    const int features = i < 60 ? 3 : 40, users = i < 60 ? 2 : 25;
    const std::string feature = "feature-" + std::to_string(i * 7 % features);
    const Uuid user = uuid(30 + i * 11 % users);
    const std::int64_t amount = 1 + i % 5;
    use(amount, day_hour(2, i % 24), uuid(1'000 + i), user, feature);
    by_feature[feature] += amount;
    by_user[user] += amount;
  }
  auto r = audit();
  ASSERT_EQ(r.customers.size(), 1u);
  EXPECT_EQ(r.customers[0].used_by_feature,
            (std::vector<std::pair<std::string, std::int64_t>>(by_feature.begin(), by_feature.end())));
  EXPECT_EQ(r.customers[0].used_by_user, (std::vector<std::pair<Uuid, std::int64_t>>(by_user.begin(), by_user.end())));
  EXPECT_EQ(by_feature.size(), 40u);
  EXPECT_EQ(by_user.size(), 25u);
}

TEST_F(AuditTest, BrokenChainIsNamedAndTheAuditGoesOn) {
  open_customer();
  purchase(100, day_hour(1, 0));
  auto tampered = use(30, day_hour(1, 1), uuid(100));
  use(10, day_hour(1, 2), uuid(101));
  log_.reset();
  {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, (dir_ / "log").string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open({}, (dir_ / "log").string(), families, &handles, &raw).ok());
    auto events = handles[std::find(names.begin(), names.end(), "events") - names.begin()];
    const std::string key = EventLog::event_key(Category::token, tampered);
    std::string value;
    ASSERT_TRUE(raw->Get({}, events, key, &value).ok());
    auto pos = value.find(std::string("\x1e\x00\x00\x00\x00\x00\x00\x00", 8));  // amount 30
    ASSERT_NE(pos, std::string::npos);
    value[pos] = 3;  // 30 -> 3
    ASSERT_TRUE(raw->Put({}, events, key, value).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  log_ = test::open_log(dir_ / "log");
  auto r = audit({}, /*with_projections=*/false);
  expect_single(r, tampered, "broken-chain", "altered after it was written");
  EXPECT_EQ(r.events_scanned, log_->head().value) << "every event was still read";
  EXPECT_EQ(r.customers[0].figures.used, 13);  // the event as stored
}

TEST_F(AuditTest, ACleanGeneratedHistoryHasNoFinding) {
  test::append_generated(*log_, 80, 21);
  auto r = audit();
  EXPECT_TRUE(r.findings.empty()) << r.findings[0].rule << " at seq " << r.findings[0].seq.value << ": "
                                  << r.findings[0].message;
  EXPECT_GT(r.customers.size(), 60u);
  EXPECT_EQ(r.events_scanned, log_->head().value);
  EXPECT_GT(r.totals.used, 0);
}

// The JSON report as the nlohmann document csctl printed before it was
// written out directly: the direct writer must give the same bytes.
std::string reference_audit_json(const AuditReport& r) {
  using ojson = nlohmann::ordered_json;
  auto figures = [](ojson& j, const TokenFigures& f) {
    j["balanceStart"] = f.balance_start;
    j["purchased"] = f.purchased;
    j["allocated"] = f.allocated;
    j["used"] = f.used;
    j["balanceEnd"] = f.balance_end;
  };
  ojson out;
  out["window"] = {{"from", r.options.from ? ojson(format_timestamp(*r.options.from)) : ojson(nullptr)},
                   {"to", r.options.to ? ojson(format_timestamp(*r.options.to)) : ojson(nullptr)}};
  out["eventsScanned"] = r.events_scanned;
  out["headSeq"] = r.head.value;
  out["customers"] = ojson::array();
  for (const auto& c : r.customers) {
    ojson j;
    j["customerId"] = c.customer.to_string();
    figures(j, c.figures);
    j["usedByFeature"] = ojson::object();
    for (const auto& [feature, n] : c.used_by_feature) j["usedByFeature"][feature] = n;
    j["usedByUser"] = ojson::object();
    for (const auto& [user, n] : c.used_by_user) j["usedByUser"][user.to_string()] = n;
    j["days"] = ojson::array();
    for (const auto& [day, d] : c.days) {
      j["days"].push_back({{"date", audit_day_name(day)}, {"purchased", d.purchased}, {"allocated", d.allocated},
                           {"used", d.used}, {"balanceEnd", d.balance_end}});
    }
    out["customers"].push_back(std::move(j));
  }
  out["totals"] = ojson::object();
  figures(out["totals"], r.totals);
  out["findings"] = ojson::array();
  for (const auto& f : r.findings) {
    out["findings"].push_back({{"seq", f.seq.value},
                               {"rule", f.rule},
                               {"customerId", f.customer ? ojson(f.customer->to_string()) : ojson(nullptr)},
                               {"message", f.message}});
  }
  return out.dump(2) + "\n";
}

std::string written_audit_json(const AuditReport& r) {
  std::ostringstream out;
  write_audit_json(r, out);
  EXPECT_TRUE(out.good());
  return out.str();
}

TEST_F(AuditTest, JsonReportIsByteIdenticalToNlohmannsIndentedDump) {
  // Empty: no customers, no findings, no window.
  AuditReport empty;
  EXPECT_EQ(written_audit_json(empty), reference_audit_json(empty));

  // Hand-made edge cases: a customer with nothing by feature, user or day,
  // names that need escaping, negative figures, a finding without a customer.
  AuditReport edges;
  edges.options.from = day_hour(1, 0);
  edges.options.to = day_hour(30, 12);
  edges.events_scanned = 12;
  edges.head = Sequence(12);
  edges.customers.push_back({customer, {-5, 0, 0, 5, -10}, {}, {}, {}, {}});
  CustomerAudit busy{uuid(2), {1, 2, 3, 4, 2}, {}, {}, {}, {}};
  busy.used_by_feature = {{"caf\xc3\xa9 \"quoted\" \\ \t\x01", 3}, {"export", 1}};
  busy.used_by_user = {{user_a, 3}, {user_b, 1}};
  busy.days = {{audit_day_of(*parse_timestamp("2026-01-02T00:00:00Z")), {2, 0, 1, 1}},
               {audit_day_of(*parse_timestamp("2026-01-03T00:00:00Z")), {0, 3, 3, 1}}};
  edges.customers.push_back(busy);
  edges.totals = {-4, 2, 3, 9, -8};
  edges.findings.push_back({Sequence(3), "negative-balance", customer, "use of 5 tokens takes the balance \"below\" 0"});
  edges.findings.push_back({Sequence(9), "broken-chain", std::nullopt, "line\nbreak"});
  EXPECT_EQ(written_audit_json(edges), reference_audit_json(edges));

  // A real report, several times the writer's block: every customer of a
  // generated history, with a window.
  test::append_generated(*log_, 300, 7);
  auto report = audit_tokens(*log_, nullptr, {.from = day_hour(0, 0)});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  ASSERT_GT(report->customers.size(), 100u);
  std::string written = written_audit_json(*report);
  EXPECT_GT(written.size(), 4u << 16);
  EXPECT_EQ(written, reference_audit_json(*report));
}

TEST_F(AuditTest, CommandLineExitCodesCsvJsonAndHtml) {
  open_customer();
  purchase(10, day_hour(1, 0));
  auto negative = use(15, day_hour(1, 1), uuid(100));
  log_.reset();
  std::string csctl = std::string(CS_BIN_DIR) + "/csctl audit tokens --data-dir " + (dir_ / "log").string();
  auto run = [&](const std::string& args, const std::string& out) {
    return WEXITSTATUS(std::system((csctl + " " + args + " > " + out + " 2>/dev/null").c_str()));
  };
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  std::string json_path = (dir_ / "a.json").string(), csv_path = (dir_ / "a.csv").string();
  std::string html_path = (dir_ / "a.html").string();
  EXPECT_EQ(run("--format json --html " + html_path, json_path), 1);
  auto j = nlohmann::json::parse(slurp(json_path));
  ASSERT_EQ(j["findings"].size(), 1u);
  EXPECT_EQ(j["findings"][0]["seq"], negative.value);
  EXPECT_EQ(j["findings"][0]["rule"], "negative-balance");
  EXPECT_EQ(j["findings"][0]["customerId"], customer.to_string());
  EXPECT_EQ(j["customers"][0]["balanceEnd"], -5);
  EXPECT_EQ(j["totals"]["used"], 15);

  EXPECT_EQ(run("--format csv", csv_path), 1);
  std::istringstream csv(slurp(csv_path));
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "kind,customerId,key,seq,rule,balanceStart,purchased,allocated,used,balanceEnd,message");
  std::map<std::string, std::vector<std::vector<std::string>>> rows;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream fields(line);
    while (std::getline(fields, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    ASSERT_EQ(cells.size(), 11u) << line;
    rows[cells[0]].push_back(cells);
  }
  ASSERT_EQ(rows["customer"].size(), 1u);
  EXPECT_EQ(rows["customer"][0][1], customer.to_string());
  EXPECT_EQ(rows["customer"][0][6], "10");
  EXPECT_EQ(rows["customer"][0][8], "15");
  EXPECT_EQ(rows["customer"][0][9], "-5");
  ASSERT_EQ(rows["finding"].size(), 1u);
  EXPECT_EQ(rows["finding"][0][3], std::to_string(negative.value));
  EXPECT_EQ(rows["finding"][0][4], "negative-balance");
  EXPECT_EQ(rows["feature"][0][2], "export");

  std::string html = slurp(html_path);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_NE(html.find("negative-balance"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg")) << "no network references";

  EXPECT_EQ(run("--format xml", json_path), 2);
  EXPECT_EQ(run("--customer " + uuid(77).to_string(), json_path), 0) << "another customer has no findings";
}

}  // namespace
}  // namespace cs
