// The daemon's per-request work without Kafka: signed allocate_tokens
// records given to RequestProcessor::process_batch in batches as the
// consumer polls them (512), over 64 customers, against the raw RocksDB
// writes of the same bytes in the same run.
//   BM_LogProcessRequests  screen (parse, HMAC, stored offset), decide
//                    (projections, rules), store (event, answer, remembered
//                    answer, offset; Durability::deferred) and fold, as the
//                    daemon's consumer thread does; one sync_wal per batch, as
//                    the distributor does beside it.
//   BM_RawProcessRequests  each record's value under its requestId and its
//                    offset, one WriteBatch per 64 records (the wave the
//                    processor makes over 64 customers), unsynced, one
//                    SyncWAL per 512.
// The ratio says how much of the consumer thread's time is ours, not
// RocksDB's: the end-to-end figure with a broker is daemon_bench's.
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <nlohmann/json.hpp>

#include "bench_support.h"
#include "cs/authorization.h"
#include "cs/command_handler.h"
#include "cs/projection_engine.h"
#include "cs/request_processor.h"
#include "cs/service_credentials.h"

namespace cs {
namespace {

using bench::ScratchDir;

constexpr std::size_t requests_per_iteration = 20'000;
constexpr std::size_t consumer_batch_records = 512;
constexpr std::size_t customer_count = 64;
constexpr std::size_t raw_wave_records = 64;
constexpr int partitions = 3;
constexpr const char* secret = "bench-admin-secret-0123456789";
const std::string topic = "admin.customer.action";

struct Record {
  std::string value, signature;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
};

ConsumedRecord view(const Record& r, const std::string& on_topic) {
  ConsumedRecord c{.topic = on_topic, .partition = r.partition, .offset = r.offset, .value = r.value};
  c.headers = {{"x-service", "admin-service"}, {"x-signature", r.signature}};
  return c;
}

std::vector<Record> allocations(const std::vector<std::string>& customers, std::uint64_t first, std::int64_t& offset) {
  std::vector<Record> out;
  out.reserve(requests_per_iteration);
  for (std::uint64_t i = first; i < first + requests_per_iteration; ++i) {
    Record r;
    r.value = nlohmann::json{{"requestId", Uuid::from_words(0xbe11'0000ULL, i + 1).to_string()},
                             {"sourceService", "admin-service"},
                             {"action", "allocate_tokens"},
                             {"customerId", customers[i % customers.size()]},
                             {"amount", 1 + i % 9},
                             {"adminId", Uuid::from_words(5, 5).to_string()},
                             {"reason", "benchmark"}}
                  .dump();
    r.signature = hmac_sha256_hex(secret, r.value);
    r.partition = static_cast<std::int32_t>(i % partitions);
    r.offset = offset++;
    out.push_back(std::move(r));
  }
  return out;
}

void BM_LogProcessRequests(benchmark::State& state) {
  ScratchDir dir("processor");
  auto log = std::move(EventLog::open(dir.path() / "log")).value();
  auto engine = std::move(ProjectionEngine::open(*log)).value();
  AuthorizationMatrix matrix = AuthorizationMatrix::defaults();
  CommandHandler handler(*log, *engine, matrix);
  auto credentials = std::move(ServiceCredentials::from_json_text(
                                   std::string(R"({"services":{"admin-service":{"secret":")") + secret + "\"}}}"))
                         .value();
  RequestProcessor processor(*log, handler, &credentials);

  const std::string create_topic = "customer.update.request";
  std::vector<std::string> customers;
  std::int64_t offset = 0;
  for (std::size_t c = 0; c < customer_count; ++c) {
    const Uuid request = Uuid::from_words(0xc0de'0000ULL, c + 1);
    Record r;
    r.value = nlohmann::json{{"requestId", request.to_string()}, {"sourceService", "admin-service"},
                             {"action", "create"}, {"customerType", "sme"}, {"name", "Bench " + std::to_string(c)},
                             {"email", "bench@example.com"}}
                  .dump();
    r.signature = hmac_sha256_hex(secret, r.value);
    r.offset = static_cast<std::int64_t>(c);
    ConsumedRecord one = view(r, create_topic);
    auto out = processor.process_batch(std::span(&one, 1));
    if (!out.ok() || out->front().code != AnswerCode::accepted || !out->front().customer_id) {
      state.SkipWithError("creating the customers failed");
      return;
    }
    customers.push_back(out->front().customer_id->to_string());
  }

  std::uint64_t next = 0;
  offset = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto records = allocations(customers, next, offset);
    next += requests_per_iteration;
    std::vector<ConsumedRecord> views;
    views.reserve(records.size());
    for (const auto& r : records) views.push_back(view(r, topic));
    state.ResumeTiming();
    for (std::size_t at = 0; at < views.size(); at += consumer_batch_records) {
      const std::size_t n = std::min(consumer_batch_records, views.size() - at);
      auto out = processor.process_batch(std::span(views).subspan(at, n));
      if (!out.ok() || out->size() != n || !log->sync_wal().ok()) {
        state.SkipWithError("process_batch failed");
        return;
      }
      for (const auto& p : *out) {
        if (p.events_appended != 1) {
          state.SkipWithError(("a request was not applied: " + p.reason).c_str());
          return;
        }
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * requests_per_iteration));
}

void BM_RawProcessRequests(benchmark::State& state) {
  ScratchDir dir("processor-raw");
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, (dir.path() / "raw").string(), &raw).ok()) {
    state.SkipWithError("open failed");
    return;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<std::string> customers;
  for (std::size_t c = 0; c < customer_count; ++c) customers.push_back(Uuid::from_words(7, c + 1).to_string());
  std::uint64_t next = 0;
  std::int64_t offset = 0;
  rocksdb::WriteOptions unsynced;
  for (auto _ : state) {
    state.PauseTiming();
    auto records = allocations(customers, next, offset);
    next += requests_per_iteration;
    state.ResumeTiming();
    for (std::size_t at = 0; at < records.size(); at += raw_wave_records) {
      rocksdb::WriteBatch batch;
      for (std::size_t i = at; i < std::min(at + raw_wave_records, records.size()); ++i) {
        const Record& r = records[i];
        batch.Put(Uuid::from_words(0xbe11'0000ULL, next - requests_per_iteration + i + 1).to_string(), r.value);
        batch.Put(topic + "/" + std::to_string(r.partition), std::to_string(r.offset + 1));
      }
      if (!db->Write(unsynced, &batch).ok()) {
        state.SkipWithError("write failed");
        return;
      }
      if ((at + raw_wave_records) % consumer_batch_records == 0 && !db->SyncWAL().ok()) {
        state.SkipWithError("sync failed");
        return;
      }
    }
    if (!db->SyncWAL().ok()) state.SkipWithError("sync failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * requests_per_iteration));
}

BENCHMARK(BM_RawProcessRequests)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_LogProcessRequests)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace
}  // namespace cs

BENCHMARK_MAIN();
