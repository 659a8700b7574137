// Fold batches for empty projection families go in as ingested table files
// (cs/table_ingest.h): what is read back must be what writing
// the same batches would have left.
#include "cs/table_ingest.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "test_support.h"

namespace cs {
namespace {

using test::TempDir;

// A fill that puts what `batch` holds.
std::function<void(rocksdb::WriteBatch&)> copy_of(const rocksdb::WriteBatch& batch) {
  return [&batch](rocksdb::WriteBatch& out) { out = batch; };
}

// A database with two families besides the default one.
class Store {
 public:
  explicit Store(const std::filesystem::path& dir) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"proj.a", {}}, {"proj.b", {}}};
    rocksdb::DB* db = nullptr;
    auto s = rocksdb::DB::Open(options, dir.string(), families, &handles_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~Store() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  }
  rocksdb::DB& db() { return *db_; }
  rocksdb::ColumnFamilyHandle* a() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* b() { return handles_[2]; }

  std::map<std::string, std::string> contents(rocksdb::ColumnFamilyHandle* family) {
    std::map<std::string, std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    return out;
  }

 private:
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

TEST(TableIngestTest, UnsortedPutsWithRepeatedKeysReadBackAsTheLastValuePutPerKey) {
  TempDir dir;
  Store store(dir / "db");
  rocksdb::WriteBatch batch_a;
  rocksdb::WriteBatch batch_b;
  std::map<std::string, std::string> expected_a;
  std::map<std::string, std::string> expected_b;
  std::mt19937 random(7);
  for (int i = 0; i < 5000; ++i) {
    // 300 distinct keys for 5000 puts: most keys are put many times, in
    // no particular order, as a fold overwrites an entity's state.
    const std::string key = "k" + std::to_string(random() % 300);
    const std::string value = "v" + std::to_string(i);
    batch_a.Put(store.a(), key, value);
    expected_a[key] = value;
    if (i % 3 == 0) {
      batch_b.Put(store.b(), key, value + "b");
      expected_b[key] = value + "b";
    }
  }
  auto st = ingest_tables(store.db(), dir / "staging", {{store.a(), copy_of(batch_a)}, {store.b(), copy_of(batch_b)}});
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(store.contents(store.a()), expected_a);
  EXPECT_EQ(store.contents(store.b()), expected_b);
  EXPECT_FALSE(std::filesystem::exists(dir / "staging")) << "the staging directory is removed after an ingest";
}

TEST(TableIngestTest, ALaterIngestOverwritesWhatAnEarlierOneLeft) {
  // A long fold goes in several chunks: the second chunk's file overlaps
  // the first's keys and must win.
  TempDir dir;
  Store store(dir / "db");
  rocksdb::WriteBatch first;
  first.Put(store.a(), "x", "1");
  first.Put(store.a(), "y", "1");
  ASSERT_TRUE(ingest_tables(store.db(), dir / "staging", {{store.a(), copy_of(first)}}).ok());
  rocksdb::WriteBatch second;
  second.Put(store.a(), "y", "2");
  second.Put(store.a(), "z", "2");
  ASSERT_TRUE(ingest_tables(store.db(), dir / "staging", {{store.a(), copy_of(second)}}).ok());
  const std::map<std::string, std::string> expected = {{"x", "1"}, {"y", "2"}, {"z", "2"}};
  EXPECT_EQ(store.contents(store.a()), expected);
}

TEST(TableIngestTest, EmptyBatchesAreSkippedAndNothingAtAllIsNoError) {
  TempDir dir;
  Store store(dir / "db");
  rocksdb::WriteBatch empty;
  rocksdb::WriteBatch one;
  one.Put(store.b(), "k", "v");
  ASSERT_TRUE(ingest_tables(store.db(), dir / "staging", {{store.a(), copy_of(empty)}, {store.b(), copy_of(one)}}).ok());
  EXPECT_TRUE(store.contents(store.a()).empty());
  EXPECT_EQ(store.contents(store.b()).size(), 1u);
  EXPECT_TRUE(ingest_tables(store.db(), dir / "staging", {{store.a(), copy_of(empty)}}).ok());
  EXPECT_TRUE(ingest_tables(store.db(), dir / "staging", {}).ok());
}

TEST(TableIngestTest, AStagingDirectoryThatCannotBeMadeIsAnErrorNamingItAndChangesNothing) {
  TempDir dir;
  Store store(dir / "db");
  const auto blocked = dir / "not-a-directory";
  std::ofstream(blocked) << "a regular file where the staging directory should go";
  rocksdb::WriteBatch batch;
  batch.Put(store.a(), "k", "v");
  auto st = ingest_tables(store.db(), blocked / "staging", {{store.a(), copy_of(batch)}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::fatal);
  EXPECT_NE(st.error().to_string().find("not-a-directory"), std::string::npos) << st.error().to_string();
  EXPECT_TRUE(store.contents(store.a()).empty());
}

// A streamed family's keys go to one file per first byte, each run in order
// on its own, all ingested together; a key out of order in its run fails the
// ingest naming that run's file (not the one opened last), and nothing goes in.
TEST(TableIngestTest, AStreamedFamilyGetsAFilePerFirstKeyByteAndAKeyOutOfOrderNamesItsFile) {
  TempDir dir;
  Store store(dir / "db");
  {
    TableStream stream(store.db(), store.a(), dir / "staging-ok");
    stream.start();
    for (const char* key : {"\1a", "\2a", "\1b", "\2b"}) stream.put(key, "v");
    rocksdb::WriteBatch none;
    auto st = ingest_batch(store.db(), stream.staging_dir(), none, {store.a()}, &stream);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
  }
  EXPECT_EQ(store.contents(store.a()).size(), 4u);

  TableStream stream(store.db(), store.b(), dir / "staging-bad");
  stream.start();
  for (const char* key : {"\1b", "\2a", "\1a"}) stream.put(key, "v");  // "\1a" after "\1b"
  rocksdb::WriteBatch none;
  auto st = ingest_batch(store.db(), stream.staging_dir(), none, {store.b()}, &stream);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("proj.b-1.sst"), std::string::npos) << st.error().message();
  EXPECT_TRUE(store.contents(store.b()).empty());
}

TEST(TableIngestTest, EachFillRunsOnceAndFamiliesGoInAllOrNothing) {
  TempDir dir;
  Store store(dir / "db");
  std::atomic<int> fills_a{0};
  std::atomic<int> fills_b{0};
  auto fill = [&](rocksdb::ColumnFamilyHandle* family, std::atomic<int>& count) {
    return [family, &count](rocksdb::WriteBatch& batch) {
      ++count;
      batch.Put(family, "k", "v");
    };
  };
  // Family b is dropped: its file cannot go in, so neither may a's.
  ASSERT_TRUE(store.db().DropColumnFamily(store.b()).ok());
  auto st = ingest_tables(store.db(), dir / "staging",
                          {{store.a(), fill(store.a(), fills_a)}, {store.b(), fill(store.b(), fills_b)}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::fatal);
  EXPECT_NE(st.error().to_string().find("ingest"), std::string::npos) << st.error().to_string();
  EXPECT_EQ(fills_a.load(), 1);
  EXPECT_EQ(fills_b.load(), 1);
  EXPECT_TRUE(store.contents(store.a()).empty()) << "one family's file went in without the other's";
  EXPECT_FALSE(std::filesystem::exists(dir / "staging")) << "staged files are removed after a failure";
}

TEST(TableIngestTest, ClearingRemovesWhatAnInterruptedIngestLeftAndAcceptsNoDirectory) {
  TempDir dir;
  const auto staging = dir / "staging";
  std::filesystem::create_directories(staging);
  std::ofstream(staging / "proj.a.sst") << "half a table file";
  ASSERT_TRUE(clear_ingest_staging(staging).ok());
  EXPECT_FALSE(std::filesystem::exists(staging));
  EXPECT_TRUE(clear_ingest_staging(staging).ok());
}

}  // namespace
}  // namespace cs
