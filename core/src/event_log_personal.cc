// EventLog: personal data opened for readers, data keys for export and
// import, and the purge that follows an erasure.
#include <rocksdb/db.h>

#include "cs/event_log.h"
#include "cs/personal_data.h"
#include "data_keys.h"
#include "keys.h"
#include "rocks_status.h"

namespace cs {
namespace {

void empty_personal_fields(Payload& payload) {
  for_each_personal_field(payload, [](std::string_view, std::string& value) { value.clear(); });
}

}  // namespace

bool EventLog::seals_personal_data() const { return data_keys_->has_master_key(); }

Status EventLog::prepare_unseal(const ReadQuery& query) const {
  // A scan of this many events meets a large share of the customers; a
  // stream read meets one.
  constexpr std::size_t preload_read_events_min = 4'096;
  if (!options_.read_only || !query.decrypt || query.stream || query.limit < preload_read_events_min) return {};
  return data_keys_->preload(data_key_cache_entries_max);
}

Status EventLog::unseal(RecordedEvent& e) const {
  if (!e.sealed && (e.erased || !has_personal_fields(e.payload))) return {};
  const Uuid& customer = payload_customer_id(e.payload);
  auto where = [&] { return "seq " + std::to_string(e.seq.value) + ": "; };
  if (!e.sealed) {
    // Stored in plaintext before sealing: hidden once the customer is erased.
    auto erased = data_keys_->erased(customer);
    if (!erased.ok()) return Error(erased.error().code(), where() + erased.error().message());
    if (*erased) {
      empty_personal_fields(e.payload);
      e.erased = true;
    }
    return {};
  }
  auto lookup = data_keys_->for_reading(customer);
  if (!lookup.ok()) return Error(lookup.error().code(), where() + lookup.error().message());
  switch (lookup->state) {
    case DataKeys::State::none:
      return corruption_error(where() + "customer " + customer.to_string() +
                              " has no data key in this log, so its personal data cannot be read "
                              "(import its key: csctl import of an export, or csctl restore)");
    case DataKeys::State::erased:
      empty_personal_fields(e.payload);
      e.sealed = false;
      e.erased = true;
      return {};
    case DataKeys::State::live: break;
  }
  Status failure;
  for_each_personal_field(e.payload, [&](std::string_view path, std::string& value) {
    if (!failure.ok()) return;
    auto opened = open_field(lookup->key, e.id, path, value);
    if (!opened.ok()) {
      failure = corruption_error(where() + opened.error().message());
      return;
    }
    value = std::move(*opened);
  });
  if (!failure.ok()) return failure;
  e.sealed = false;
  return {};
}

Result<bool> EventLog::open_personal(const Uuid& customer, PersonalText& text) const {
  if (!text.sealed()) {
    auto erased = data_keys_->erased(customer);
    if (!erased.ok()) return erased.error();
    if (*erased) text = PersonalText{};
    return *erased;
  }
  auto lookup = data_keys_->for_reading(customer);
  if (!lookup.ok()) return lookup.error();
  if (lookup->state == DataKeys::State::none) {
    return corruption_error("customer " + customer.to_string() + " has no data key in this log");
  }
  if (lookup->state == DataKeys::State::erased) {
    text = PersonalText{};
    return true;
  }
  auto opened = open_field(lookup->key, text.sealed_in, text.field, text.value);
  if (!opened.ok()) return opened.error();
  text = PersonalText{std::move(*opened), Uuid(), {}};
  return false;
}

Result<bool> EventLog::customer_erased(const Uuid& customer) const { return data_keys_->erased(customer); }

Status EventLog::scan_data_keys(const DataKeyVisitor& visit) const {
  if (data_keys_cf_ == nullptr) return {};
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, data_keys_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 16) return corruption_error("data keys: a key of " + std::to_string(it->key().size()) + " bytes");
    Uuid::Bytes b{};
    std::copy_n(it->key().data(), 16, b.begin());
    if (!visit(Uuid(b), it->value().ToStringView())) break;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "scan the data keys");
  return {};
}

Result<std::optional<std::string>> EventLog::stored_data_key(const Uuid& customer) const {
  return data_keys_->stored(customer);
}

Status EventLog::import_data_key(const Uuid& customer, std::string_view stored) {
  if (options_.read_only) return invalid_argument("the log is open read-only");
  return data_keys_->put_stored(customer, stored);
}

bool EventLog::is_erased_marker(std::string_view stored) { return stored == DataKeys::erased_value(); }

Result<std::optional<std::string>> EventLog::stored_master_key_check() const {
  std::string check;
  auto s = db_->Get({}, std::string(keys::meta_master_key_check), &check);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "read the master key check");
  return std::optional<std::string>(std::move(check));
}

Status EventLog::adopt_master_key_check(std::string_view check) {
  auto own = stored_master_key_check();
  if (!own.ok()) return own.error();
  if (*own) {
    if (**own == check) return {};
    return invalid_argument("the export's personal data is sealed under another master key than this log's: give "
                            "that key (--master-key)");
  }
  if (options_.read_only) return invalid_argument("the log is open read-only");
  auto s = db_->Put(rocksdb::WriteOptions{}, std::string(keys::meta_master_key_check),
                    rocksdb::Slice(check.data(), check.size()));
  if (!s.ok()) return from_rocks(s, "store the master key check");
  sealed_log_ = true;
  return {};
}

Status EventLog::purge_erased_key(const Uuid& customer) {
  if (options_.read_only || data_keys_cf_ == nullptr) return invalid_argument("the log is open read-only");
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  {
    std::lock_guard lock(families_mu_);
    for (auto& [name, handle] : families_) handles.push_back(handle);
  }
  // Every family flushed: no write-ahead log file is needed any more, so the
  // ones that held the key when it was written are deleted.
  rocksdb::FlushOptions flush;
  flush.wait = true;
  auto s = db_->Flush(flush, handles);
  if (!s.ok()) return from_rocks(s, "purge: flush");
  const rocksdb::Slice key(reinterpret_cast<const char*>(customer.bytes().data()), 16);
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  s = db_->CompactRange(compact, data_keys_cf_, &key, &key);
  if (!s.ok()) return from_rocks(s, "purge: compact the data keys");
  return {};
}

}  // namespace cs
