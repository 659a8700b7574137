// Personal data sealed at rest: the primitives (AES-256-GCM fields, wrapped
// data keys, base64, the master key file), then the log: no plaintext name or
// email in any file of the data dir, reads that open what was sealed, a wrong
// or missing master key refused before anything is written, and an erasure
// that empties a customer's fields for every reader and takes its key's
// bytes off the disk.
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "cs/json_codec.h"
#include "data_keys.h"
#include "cs/personal_data.h"
#include "cs/read_ahead.h"
#include "generated_history.h"
#include "test_support.h"

namespace cs {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every file under `dir` that holds `needle` (raw bytes).
std::vector<std::string> files_holding(const std::filesystem::path& dir, std::string_view needle) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    if (slurp(entry.path()).find(needle) != std::string::npos) out.push_back(entry.path().filename().string());
  }
  return out;
}

TEST(PersonalDataTest, FieldsSealAndOpenOnlyWithTheirKeyEventAndField) {
  const DataKey key = random_data_key(), other = random_data_key();
  const Uuid event = test::uuid(1);
  const std::string sealed = seal_field(key, event, "email", "jane@example.org");
  EXPECT_EQ(sealed.size(), std::string("jane@example.org").size() + 29);
  EXPECT_EQ(sealed.find("jane"), std::string::npos);
  EXPECT_NE(seal_field(key, event, "email", "jane@example.org"), sealed) << "a fresh nonce each time";
  auto opened = open_field(key, event, "email", sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "jane@example.org");
  EXPECT_EQ(open_field(other, event, "email", sealed).error().code(), ErrorCode::corruption);
  EXPECT_FALSE(open_field(key, test::uuid(2), "email", sealed).ok()) << "moved to another event";
  EXPECT_FALSE(open_field(key, event, "name", sealed).ok()) << "moved to another field";
  std::string altered = sealed;
  altered[20] = static_cast<char>(altered[20] ^ 1);
  EXPECT_FALSE(open_field(key, event, "email", altered).ok());
  EXPECT_FALSE(open_field(key, event, "email", "short").ok());
  EXPECT_EQ(open_field(key, event, "reason", seal_field(key, event, "reason", "")).value(), "");
}

// A thread keeps its cipher contexts and their last key from field to field:
// what it seals under keys that alternate, repeat and follow a failed open
// must be what a fresh context (another thread's) opens, and the reverse.
TEST(PersonalDataTest, FieldsSealedUnderAlternatingKeysOpenOnAFreshThreadAndBack) {
  const DataKey a = random_data_key(), b = random_data_key();
  const std::vector<const DataKey*> order = {&a, &a, &b, &a, &b, &b, &a};
  std::vector<std::string> sealed;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 3) {
      EXPECT_FALSE(open_field(b, test::uuid(1), "name", sealed[0]).ok()) << "a's field under b";
    }
    sealed.push_back(seal_field(*order[i], test::uuid(i + 1), "name", "field " + std::to_string(i)));
  }
  std::vector<std::string> opened(order.size());
  std::vector<std::string> sealed_there;
  std::thread fresh([&] {
    for (std::size_t i = 0; i < order.size(); ++i) {
      auto o = open_field(*order[i], test::uuid(i + 1), "name", sealed[i]);
      opened[i] = o.ok() ? *o : "not opened: " + o.error().message();
    }
    for (std::size_t i = 0; i < order.size(); ++i) {
      sealed_there.push_back(seal_field(*order[i], test::uuid(i + 1), "name", "there " + std::to_string(i)));
    }
  });
  fresh.join();
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(opened[i], "field " + std::to_string(i));
    auto back = open_field(*order[i], test::uuid(i + 1), "name", sealed_there[i]);
    ASSERT_TRUE(back.ok()) << i << ": " << back.error().message();
    EXPECT_EQ(*back, "there " + std::to_string(i));
    EXPECT_FALSE(open_field(order[i] == &a ? b : a, test::uuid(i + 1), "name", sealed_there[i]).ok());
  }
}

// A thread keeps one cipher context per kind of key (the master key that
// wraps data keys, the data keys that seal fields), each with its last key:
// wrapping, unwrapping, sealing and opening in turn, under alternating
// master keys, must give what a fresh thread gives, in any order.
TEST(PersonalDataTest, KeysUnwrappedAndFieldsOpenedInTurnAgreeOnAnyThread) {
  MasterKey first{}, second{};
  first[0] = 1;
  second[0] = 2;
  struct Sealed {
    const MasterKey* master;
    Uuid customer;
    DataKey key;
    std::string wrapped, field;
  };
  std::vector<Sealed> all;
  for (int i = 0; i < 6; ++i) {
    Sealed s{i % 3 == 0 ? &second : &first, test::uuid(100 + i), random_data_key(), {}, {}};
    s.wrapped = wrap_data_key(*s.master, s.customer, s.key);
    s.field = seal_field(s.key, test::uuid(200 + i), "email", "mail " + std::to_string(i));
    all.push_back(std::move(s));
  }
  auto check = [&](const Sealed& s, int i) {
    auto key = unwrap_data_key(*s.master, s.customer, s.wrapped);
    ASSERT_TRUE(key.ok()) << i << ": " << key.error().to_string();
    EXPECT_EQ(*key, s.key) << i;
    EXPECT_FALSE(unwrap_data_key(s.master == &first ? second : first, s.customer, s.wrapped).ok()) << i;
    auto opened = open_field(*key, test::uuid(200 + i), "email", s.field);
    ASSERT_TRUE(opened.ok()) << i << ": " << opened.error().to_string();
    EXPECT_EQ(*opened, "mail " + std::to_string(i));
  };
  for (int i = 0; i < 6; ++i) check(all[i], i);
  std::thread fresh([&] {
    for (int i = 5; i >= 0; --i) check(all[i], i);
  });
  fresh.join();
}

// csctl prepares OpenSSL's algorithms on a second thread while the command
// already seals, opens and checks keys on its own: same results, any order.
TEST(PersonalDataTest, PreparingTheCryptoBesideItsFirstUsesChangesNoResult) {
  MasterKey master{};
  master[0] = 7;
  std::thread first(prepare_personal_data_crypto);
  const auto check = master_key_check(master);
  const DataKey key = random_data_key();
  const std::string sealed = seal_field(key, test::uuid(1), "email", "jane@example.org");
  std::thread second(prepare_personal_data_crypto);
  first.join();
  second.join();
  prepare_personal_data_crypto();
  EXPECT_EQ(master_key_check(master), check);
  EXPECT_NE(master_key_check(MasterKey{}), check);
  auto opened = open_field(key, test::uuid(1), "email", sealed);
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  EXPECT_EQ(*opened, "jane@example.org");
}

TEST(PersonalDataTest, DataKeysUnwrapOnlyWithTheirMasterKeyAndCustomer) {
  MasterKey master{}, other{};
  master[0] = 1;
  other[0] = 2;
  const DataKey key = random_data_key();
  const std::string wrapped = wrap_data_key(master, test::uuid(1), key);
  EXPECT_EQ(wrapped.size(), 61u);
  EXPECT_EQ(unwrap_data_key(master, test::uuid(1), wrapped).value(), key);
  EXPECT_FALSE(unwrap_data_key(other, test::uuid(1), wrapped).ok());
  EXPECT_FALSE(unwrap_data_key(master, test::uuid(2), wrapped).ok()) << "another customer's key";
  EXPECT_NE(master_key_check(master), master_key_check(other));
}

TEST(PersonalDataTest, Base64IsRfc4648AndCanonical) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"}, {std::string("\0\xff\x10", 3), "AP8Q"}};
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(base64_encode(bytes), text);
    EXPECT_EQ(base64_decode(text), bytes) << text;
  }
  for (const char* bad : {"Zg=", "Zh==", "Zm9=", "Z===", "Zm9v\n", "Zm 9", "=Zm9", "Zg==Zg==", "Zm9v!"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

TEST(PersonalDataTest, TheMasterKeyFileIsCreatedPrivateAndReadStrictly) {
  test::TempDir dir;
  const auto file = dir / "master.key";
  EXPECT_EQ(read_master_key(file).error().code(), ErrorCode::not_found);
  auto created = create_master_key(file);
  ASSERT_TRUE(created.ok()) << created.error().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read_master_key(file).value(), *created);
  EXPECT_FALSE(create_master_key(file).ok()) << "never overwritten";
  for (const char* bad : {"", "abc", "zz", "not hex at all"}) {
    std::ofstream(dir / "bad.key") << bad;
    auto r = read_master_key(dir / "bad.key");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("64 hex digits"), std::string::npos) << r.error().message();
  }
}

TEST(PersonalDataTest, PersonalFieldsAreTheOnesOfTheTable) {
  std::set<std::string> found;
  for (auto payload : test::one_of_each_type()) {
    for_each_personal_field(payload, [&](std::string_view path, std::string&) {
      found.insert(std::string(event_type_name(payload_type(payload))) + " " + std::string(path));
    });
  }
  const std::set<std::string> expected = {
      "customer.created name",       "customer.created email",        "customer.updated changes.email",
      "customer.updated changes.name", "customer.suspended reason",   "customer.deleted reason",
      "user.created email",          "subscription.cancelled reason", "token.allocated reason"};
  EXPECT_EQ(found, expected) << "user.updated changes.role and subscription.updated changes.planId stay plain";
}

struct Generated {
  std::vector<std::string> names, emails;
  std::vector<Uuid> customers;
};

// A generated history through a log with a master key; what it said.
Generated append_with_key(const std::filesystem::path& data, const std::filesystem::path& key_file,
                          std::uint64_t customers = 30) {
  Generated g;
  auto log = test::open_log(data, {.master_key_file = key_file});
  HistoryGenerator generator({.customers = customers, .seed = 5});
  std::vector<NewEvent> batch;
  while (auto e = generator.next()) {
    if (const auto* c = std::get_if<CustomerCreated>(&e->payload)) {
      g.names.push_back(c->name);
      g.emails.push_back(c->email);
      g.customers.push_back(c->customer_id);
    }
    if (const auto* u = std::get_if<UserCreated>(&e->payload)) g.emails.push_back(u->email);
    batch.push_back(std::move(*e));
    if (batch.size() == 256) {
      EXPECT_TRUE(log->append(batch).ok());
      batch.clear();
    }
  }
  if (!batch.empty()) {
    EXPECT_TRUE(log->append(batch).ok());
  }
  return g;
}

TEST(PersonalDataTest, NoNameOrEmailIsStoredInPlaintextAndReadsOpenThem) {
  test::TempDir dir;
  const auto data = dir / "data", key = dir / "master.key";
  const Generated g = append_with_key(data, key);
  ASSERT_GT(g.names.size(), 10u);
  ASSERT_TRUE(std::filesystem::exists(key)) << "created on the first writable open";
  // Every file of the data dir, memtables flushed by the close and not.
  for (const auto& text : g.emails) ASSERT_EQ(test::stored_anywhere(data, text), std::vector<std::string>{}) << text;
  for (const auto& text : g.names) ASSERT_EQ(test::stored_anywhere(data, text), std::vector<std::string>{}) << text;

  auto log = test::open_log(data, {.master_key_file = key});
  std::set<std::string> read_names;
  std::size_t sealed = 0;
  ASSERT_TRUE(log->read({}, [&](const RecordedEvent& e) {
                   sealed += e.sealed ? 1 : 0;
                   return true;
                 }).ok());
  EXPECT_GT(sealed, g.names.size());
  ReadQuery opened{.type = EventType::customer_created};
  opened.decrypt = true;
  ASSERT_TRUE(log->read(opened, [&](const RecordedEvent& e) {
                   EXPECT_FALSE(e.sealed);
                   read_names.insert(std::get<CustomerCreated>(e.payload).name);
                   return true;
                 }).ok());
  EXPECT_EQ(read_names, std::set<std::string>(g.names.begin(), g.names.end()));
  auto verified = log->verify();
  EXPECT_TRUE(verified.ok()) << verified.error().to_string();
}

TEST(PersonalDataTest, AWrongOrMissingMasterKeyIsRefusedBeforeAnythingIsWritten) {
  test::TempDir dir;
  const auto data = dir / "data", key = dir / "master.key";
  append_with_key(data, key, 5);
  ASSERT_TRUE(create_master_key(dir / "other.key").ok());
  auto wrong = EventLog::open(data, {.master_key_file = dir / "other.key"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(wrong.error().message().find("is not the key this log's personal data was sealed with"), std::string::npos)
      << wrong.error().message();
  auto wrong_read_only = EventLog::open(data, {.read_only = true, .master_key_file = dir / "other.key"});
  EXPECT_FALSE(wrong_read_only.ok()) << "read-only too";
  auto missing = EventLog::open(data, {.master_key_file = dir / "gone.key"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("does not exist"), std::string::npos) << missing.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir / "gone.key")) << "no new key for a log that has sealed data";
  auto none = EventLog::open(data);
  EXPECT_FALSE(none.ok()) << "a writable open of a sealed log needs its key";

  // Read-only without the key: the stored form only.
  auto read_only = test::open_log(data, {.read_only = true, .master_key_file = dir / "gone.key"});
  ReadQuery opened{.type = EventType::customer_created};
  opened.decrypt = true;
  auto s = read_only->read(opened, [](const RecordedEvent&) { return true; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("master key"), std::string::npos) << s.error().message();
  EXPECT_TRUE(read_only->verify().ok()) << "the chain covers the sealed bytes: no key needed";
  // The right key reads it all.
  auto log = test::open_log(data, {.master_key_file = key});
  EXPECT_TRUE(log->read(opened, [](const RecordedEvent&) { return true; }).ok());
}

TEST(PersonalDataTest, ARetryOfASealedEventIsADuplicateAndOtherDataAConflict) {
  test::TempDir dir;
  auto log = test::open_log(dir / "data", {.master_key_file = dir / "master.key"});
  std::vector<NewEvent> first = {test::make_event(test::customer_created(1), 1)};
  auto a = log->append(first);
  ASSERT_TRUE(a.ok());
  auto again = log->append(first);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_TRUE(again->duplicate);
  auto changed = first;
  std::get<CustomerCreated>(changed[0].payload).email = "other@acme.example";
  auto conflict = log->append(changed);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code(), ErrorCode::conflict);
}

TEST(PersonalDataTest, ADataKeyIsStoredWithTheFirstEventSealedWithItAndOnlyThen) {
  test::TempDir dir;
  auto log = test::open_log(dir / "data", {.master_key_file = dir / "master.key"});
  // Refused as a whole (the second event expects a version the stream does not have): no key either.
  std::vector<NewEvent> refused = {test::make_event(test::customer_created(1), 1),
                                   test::make_event(CustomerValidated{test::uuid(1), test::uuid(9)}, 2,
                                                    ExpectedVersion::exactly(StreamVersion(5)))};
  ASSERT_FALSE(log->append(refused).ok());
  EXPECT_FALSE(log->stored_data_key(test::uuid(1)).value().has_value());
  // The same customer again: its key goes with its first stored event, once.
  ASSERT_TRUE(log->append(std::vector{test::make_event(test::customer_created(1), 1)}).ok());
  auto stored = log->stored_data_key(test::uuid(1)).value();
  ASSERT_TRUE(stored.has_value());
  ASSERT_TRUE(log->append(std::vector{test::make_event(CustomerSuspended{test::uuid(1), test::uuid(9), "late"}, 3)}).ok());
  EXPECT_EQ(log->stored_data_key(test::uuid(1)).value(), stored) << "one key for life";
  log.reset();
  auto reopened = test::open_log(dir / "data", {.master_key_file = dir / "master.key"});
  ReadQuery all;
  all.decrypt = true;
  std::vector<std::string> reasons;
  ASSERT_TRUE(reopened->read(all, [&](const RecordedEvent& e) {
                        if (auto* p = std::get_if<CustomerSuspended>(&e.payload)) reasons.push_back(p->reason);
                        return true;
                      }).ok());
  EXPECT_EQ(reasons, std::vector<std::string>{"late"});
}

// read_ahead (what csctl read and export print through) opens personal
// fields when asked, on whole-log reads too, exactly as read() does.
TEST(PersonalDataTest, ReadAheadOpensPersonalFieldsAsReadDoes) {
  test::TempDir dir;
  const auto data = dir / "data", key = dir / "master.key";
  append_with_key(data, key, 12);
  auto log = test::open_log(data, {.master_key_file = key});
  for (bool decrypt : {true, false}) {
    for (std::optional<Category> category : {std::optional<Category>(), std::optional<Category>(Category::customer)}) {
      ReadQuery q;
      q.category = category;
      q.decrypt = decrypt;
      std::vector<std::string> direct, ahead;
      std::size_t sealed = 0;
      ASSERT_TRUE(log->read(q, [&](const RecordedEvent& e) {
                       direct.push_back(format_event_line(e));
                       return true;
                     }).ok());
      ASSERT_TRUE(read_ahead(*log, q, [&](const RecordedEvent& e) {
                    sealed += e.sealed ? 1 : 0;
                    ahead.push_back(format_event_line(e));
                    return true;
                  }).ok());
      EXPECT_EQ(ahead, direct) << "decrypt " << decrypt << ", category " << category.has_value();
      EXPECT_GT(direct.size(), 12u);
      if (decrypt) EXPECT_EQ(sealed, 0u) << "category " << category.has_value();
      else EXPECT_GT(sealed, 0u) << "category " << category.has_value();
    }
  }
}

// A read-only open reads every data key in one pass before a large read
// that opens personal data (EventLog::prepare_unseal): what it prints is
// what the writable open, which looks each key up, prints, erased customers
// included.
TEST(PersonalDataTest, AReadOnlyScanThatPreloadsTheDataKeysOpensWhatPointLookupsOpen) {
  test::TempDir dir;
  const auto data = dir / "data", key = dir / "master.key";
  const Generated g = append_with_key(data, key, 240);
  const Uuid victim = g.customers[7];
  std::map<std::string, std::vector<std::string>> looked_up;
  std::vector<std::pair<std::string, ReadQuery>> queries = {
      {"whole log", {}}, {"customer category", {.category = Category::customer}},
      {"token.allocated", {.type = EventType::token_allocated}}};
  {
    auto log = test::open_log(data, {.master_key_file = key});
    ASSERT_TRUE(log->append(std::vector{test::make_event(CustomerErased{victim, test::uuid(9)}, 900)}).ok());
    for (auto& [name, q] : queries) {
      q.decrypt = true;
      ASSERT_TRUE(log->read(q, [&, &name = name](const RecordedEvent& e) {
                       looked_up[name].push_back(format_event_line(e));
                       return true;
                     }).ok());
    }
  }
  ASSERT_GE(looked_up["whole log"].size(), 4'096u) << "large enough to preload";
  auto read_only = test::open_log(data, {.read_only = true, .master_key_file = key});
  for (const auto& [name, q] : queries) {
    std::vector<std::string> direct, ahead;
    std::size_t victim_erased = 0, opened = 0;
    ASSERT_TRUE(read_only->read(q, [&](const RecordedEvent& e) {
                     direct.push_back(format_event_line(e));
                     return true;
                   }).ok());
    ASSERT_TRUE(read_ahead(*read_only, q, [&](const RecordedEvent& e) {
                  if (payload_customer_id(e.payload) == victim && e.erased) ++victim_erased;
                  if (!e.erased && has_personal_fields(e.payload)) ++opened;
                  ahead.push_back(format_event_line(e));
                  return true;
                }).ok());
    EXPECT_EQ(direct, looked_up[name]) << name;
    EXPECT_EQ(ahead, looked_up[name]) << name;
    EXPECT_GT(opened, 0u) << name;
    if (name != "token.allocated") {
      EXPECT_GT(victim_erased, 0u) << name;
    }
  }
}

TEST(PersonalDataTest, AnErasedCustomerReadsErasedEverywhereAndItsKeyLeavesTheDisk) {
  test::TempDir dir;
  const auto data = dir / "data", key = dir / "master.key";
  const Generated g = append_with_key(data, key, 12);
  const Uuid victim = g.customers[3], bystander = g.customers[4];
  auto log = test::open_log(data, {.master_key_file = key});
  const std::string wrapped = log->stored_data_key(victim).value().value();
  ASSERT_EQ(wrapped.size(), 62u);
  ASSERT_FALSE(log->customer_erased(victim).value());
  const Hash head_before = log->head_hash();

  NewEvent erase = test::make_event(CustomerErased{victim, test::uuid(9)}, 900);
  ASSERT_TRUE(log->append(std::vector{erase}).ok());
  EXPECT_TRUE(log->customer_erased(victim).value());
  EXPECT_FALSE(log->customer_erased(bystander).value());
  EXPECT_NE(log->head_hash(), head_before);

  std::size_t erased_events = 0, bystander_events = 0;
  ReadQuery all;
  all.decrypt = true;
  ASSERT_TRUE(log->read(all, [&](const RecordedEvent& e) {
                   const Uuid& c = payload_customer_id(e.payload);
                   if (c == victim && has_personal_fields(e.payload)) {
                     EXPECT_TRUE(e.erased) << "seq " << e.seq.value;
                     for_each_personal_field(e.payload, [&](std::string_view, const std::string& v) { EXPECT_EQ(v, ""); });
                     ++erased_events;
                     const std::string line = format_event_line(e);
                     EXPECT_NE(line.find("\"erased\":true"), std::string::npos) << line;
                   }
                   if (c == bystander && has_personal_fields(e.payload)) {
                     EXPECT_FALSE(e.erased);
                     ++bystander_events;
                   }
                   return true;
                 }).ok());
  EXPECT_GT(erased_events, 0u);
  EXPECT_GT(bystander_events, 0u);
  EXPECT_TRUE(log->verify().ok()) << "the chain covers the sealed bytes, which did not change";

  // Nothing more is written for the erased customer; the others go on.
  auto more = log->append(std::vector{test::make_event(
      CustomerUpdated{victim, {"email"}, {{"email", "\"back@acme.example\""}}}, 901)});
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.error().code(), ErrorCode::conflict);
  EXPECT_NE(more.error().message().find("was erased"), std::string::npos) << more.error().message();
  EXPECT_TRUE(log->append(std::vector{test::make_event(
                              CustomerUpdated{bystander, {"email"}, {{"email", "\"new@acme.example\""}}}, 902)})
                  .ok());

  ASSERT_TRUE(log->purge_erased_key(victim).ok());
  log.reset();
  EXPECT_EQ(files_holding(data, wrapped), std::vector<std::string>{}) << "the wrapped key's bytes are gone";
  EXPECT_EQ(files_holding(data, wrapped.substr(1, 40)), std::vector<std::string>{});
  EXPECT_EQ(test::stored_anywhere(data, wrapped.substr(1, 40)), std::vector<std::string>{});
  // Reopened: still erased.
  auto reopened = test::open_log(data, {.master_key_file = key});
  EXPECT_TRUE(reopened->customer_erased(victim).value());
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// The key cache unwraps a reader's key outside its lock (the two threads of
// a read open different customers' keys at once). An erasure that lands in
// that window must win: the reader answers erased, and so does every read
// after it, never the live key it had just unwrapped.
TEST(PersonalDataTest, AnErasureDuringAReadersUnwrapWins) {
  test::TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {{"default", {}}, {"data_keys", {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, (dir / "db").string(), families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  MasterKey master{};
  master[3] = 1;
  const Uuid erased_while_stored = test::uuid(1), erased_while_cached = test::uuid(2), untouched = test::uuid(3);
  for (const Uuid& c : {erased_while_stored, erased_while_cached, untouched}) {
    DataKeys writer(*db, handles[1], master);
    ASSERT_TRUE(writer.put_stored(c, std::string(1, DataKeys::live_tag) + wrap_data_key(master, c, random_data_key()))
                    .ok());
  }
  {
    DataKeys keys(*db, handles[1], master);
    // An erasure stored (an import's, or the keys topic's): the cache entry goes.
    int unwraps = 0;
    keys.after_unlocked_unwrap_for_tests = [&](const Uuid& c) {
      if (++unwraps == 1) {
        ASSERT_TRUE(keys.put_stored(c, DataKeys::erased_value()).ok());
      }
    };
    EXPECT_EQ(keys.for_reading(erased_while_stored).value().state, DataKeys::State::erased);
    EXPECT_EQ(keys.for_reading(erased_while_stored).value().state, DataKeys::State::erased);
    // An erasure committed by this process's log: the cache says erased.
    unwraps = 0;
    keys.after_unlocked_unwrap_for_tests = [&](const Uuid& c) {
      if (++unwraps == 1) keys.mark_erased(c);
    };
    EXPECT_EQ(keys.for_reading(erased_while_cached).value().state, DataKeys::State::erased);
    EXPECT_EQ(keys.for_reading(erased_while_cached).value().state, DataKeys::State::erased);
    EXPECT_EQ(keys.for_reading(untouched).value().state, DataKeys::State::live);
    EXPECT_GE(unwraps, 2) << "the window was reached";
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Logs on disk hold these bytes: the master key's check, data keys wrapped
// under the master key, fields sealed under a data key. Sealed by the code
// of fd5fc3b (the format every version since sealing began writes, nonces
// drawn at random then); any later change to the cipher calls must still
// open them, or every existing log becomes unreadable.
TEST(PersonalDataTest, WhatEarlierVersionsSealedStillOpens) {
  MasterKey master{};
  DataKey key{};
  for (int i = 0; i < 32; ++i) {
    master[i] = static_cast<std::uint8_t>(i);
    key[i] = static_cast<std::uint8_t>(0x20 + i);
  }
  const Uuid customer = Uuid::parse("12345678-9abc-4ef0-8000-000000000007").value();
  const Uuid event = Uuid::parse("12345678-9abc-4ef0-8000-000000000008").value();
  const std::string check = from_hex("e823ee887c2b369a92ac4c19903b1fc21cea4853c0be6b553d5adf79697539a0");
  const auto computed = master_key_check(master);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(computed.data()), computed.size()), check);
  const std::string wrapped = from_hex(
      "01008fb9a88c98cf895a44e458e02346a98d59d4ff638b72d8515a304b8e1240e076fce5ccbec82164c1d3ccd7218e151565958c9e30b1"
      "2568fd225049");
  auto unwrapped = unwrap_data_key(master, customer, wrapped);
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.error().to_string();
  EXPECT_EQ(*unwrapped, key);
  const std::string field =
      from_hex("016a091767881ac6ea4a512fb113491d82b5ba21444e75ae76fb04164d5d3a056e827f328ad5027c9427927ea7");
  auto opened = open_field(key, event, "email", field);
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  EXPECT_EQ(*opened, "jane@example.org");
  EXPECT_FALSE(open_field(key, event, "name", field).ok()) << "bound to its field";
  EXPECT_FALSE(unwrap_data_key(master, event, wrapped).ok()) << "bound to its customer";
}

}  // namespace
}  // namespace cs
