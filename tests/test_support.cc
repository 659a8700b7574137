#include "test_support.h"

#include <rocksdb/db.h>

#include <fstream>

namespace cs::test {

std::vector<std::string> stored_anywhere(const std::filesystem::path& dir, std::string_view needle) {
  std::vector<std::string> hits;
  rocksdb::Options options;
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(options, dir.string(), descriptors, &handles, &raw).ok());
  if (raw) {
    std::unique_ptr<rocksdb::DB> db(raw);
    for (std::size_t i = 0; i < handles.size(); ++i) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[i]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        if (it->key().ToStringView().find(needle) != std::string_view::npos ||
            it->value().ToStringView().find(needle) != std::string_view::npos) {
          hits.push_back(names[i]);
          break;
        }
      }
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  }
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.find(needle) != std::string::npos) hits.push_back(entry.path().filename().string());
  }
  return hits;
}

// What a log written before the customer index looks like: no family, no marker.
void change_family(const std::filesystem::path& dir, const std::string& family,
                   const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle*)>& change) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open({}, dir.string(), families, &handles, &raw).ok());
  const auto found = std::find(names.begin(), names.end(), family);
  EXPECT_NE(found, names.end()) << "no family " << family;
  if (found != names.end()) change(*raw, handles[found - names.begin()]);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

void remove_customer_index(const std::filesystem::path& dir) {
  rocksdb::Options options;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.string(), descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "customer_streams") {
      ASSERT_TRUE(db->DropColumnFamily(handles[i]).ok());
    }
  }
  ASSERT_TRUE(db->Delete({}, "customer_index").ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
}


std::vector<Payload> one_of_each_type() {
  Uuid c = uuid(1), u = uuid(2), s = uuid(3), admin = uuid(4);
  Timestamp end = at_seconds(86400 * 30);
  return {
      CustomerCreated{c, CustomerType::institution, "Banque Exemple", "ops@banque.example"},
      CustomerUpdated{c, {"email", "name"}, {{"email", "\"new@banque.example\""}, {"name", "\"Banque 2\""}}},
      CustomerValidated{c, admin},
      CustomerSuspended{c, admin, "unpaid invoices"},
      CustomerReactivated{c, admin},
      CustomerDeleted{c, admin, "customer asked"},
      UserCreated{u, c, "jane@banque.example", "owner"},
      UserUpdated{u, c, {"role"}, {{"role", "\"viewer\""}}},
      UserDeleted{u, c},
      UserPasswordReset{u, c},
      SubscriptionCreated{s, c, "pro-monthly", end},
      SubscriptionUpdated{s, c, {"planId"}, {{"planId", "\"pro-yearly\""}}},
      SubscriptionRenewed{s, c, at_seconds(86400 * 60)},
      SubscriptionCancelled{s, c, "too expensive"},
      SubscriptionExpired{s, c},
      TokenPurchased{c, 100, 4900, "EUR", "pay-001"},
      TokenUsed{c, 5, uuid(6), u, "export"},
      TokenAllocated{c, 20, admin, "goodwill"},
      CustomerErased{c, admin},
  };
}

}  // namespace cs::test
