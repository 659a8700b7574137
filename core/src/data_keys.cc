#include "data_keys.h"

#include <algorithm>

#include "rocks_status.h"

namespace cs {
namespace {

rocksdb::Slice key_of(const Uuid& customer) {
  return {reinterpret_cast<const char*>(customer.bytes().data()), 16};
}

}  // namespace

void DataKeys::remember(Shard& shard, const Uuid& customer, const Lookup& lookup) {
  if (shard.cache.size() >= data_key_cache_entries_max / data_key_cache_shards) shard.cache.clear();
  shard.cache[customer] = lookup;
}

std::optional<std::optional<std::string>> DataKeys::preloaded_value(const Shard& shard, const Uuid& customer) {
  if (!shard.preloaded) return std::nullopt;
  auto it = shard.preloaded_values.find(customer);
  if (it == shard.preloaded_values.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Result<DataKeys::Lookup> DataKeys::load(const Shard& shard, const Uuid& customer) const {
  return unwrap(customer, preloaded_value(shard, customer));
}

Result<DataKeys::Lookup> DataKeys::unwrap(const Uuid& customer,
                                          std::optional<std::optional<std::string>> preloaded) const {
  Lookup lookup;
  auto stored_value = preloaded ? Result<std::optional<std::string>>(std::move(*preloaded)) : stored(customer);
  if (!stored_value.ok()) return stored_value.error();
  if (!*stored_value) return lookup;
  const std::string& value = **stored_value;
  if (value.size() == 1 && value[0] == erased_tag) {
    lookup.state = State::erased;
    return lookup;
  }
  if (value.empty() || value[0] != live_tag) {
    return corruption_error("the stored data key of customer " + customer.to_string() + " is malformed");
  }
  if (!master_) return invalid_argument("personal data is sealed in this log: open it with its master key");
  auto key = unwrap_data_key(*master_, customer, std::string_view(value).substr(1));
  if (!key.ok()) return corruption_error(key.error().message());
  lookup.state = State::live;
  lookup.key = *key;
  return lookup;
}

Result<DataKeys::ForWriting> DataKeys::for_writing(const Uuid& customer) {
  if (!master_) return invalid_argument("personal data is sealed in this log: open it with its master key");
  Shard& shard = shard_of(customer);
  std::lock_guard lock(shard.mu);
  if (auto u = shard.unstored.find(customer); u != shard.unstored.end()) {
    return ForWriting{u->second.first, u->second.second};
  }
  auto it = shard.cache.find(customer);
  Lookup lookup;
  if (it != shard.cache.end()) {
    lookup = it->second;
  } else {
    auto loaded = load(shard, customer);
    if (!loaded.ok()) return loaded.error();
    lookup = *loaded;
  }
  if (lookup.state == State::erased) {
    return conflict_error("customer " + customer.to_string() + " was erased: its personal data cannot be written again");
  }
  if (lookup.state == State::live) {
    remember(shard, customer, lookup);
    return ForWriting{lookup.key, std::nullopt};
  }
  if (family_ == nullptr) return invalid_argument("the log is open read-only");
  const DataKey key = random_data_key();
  std::string value(1, live_tag);
  value += wrap_data_key(*master_, customer, key);
  shard.unstored.emplace(customer, std::make_pair(key, value));
  return ForWriting{key, std::move(value)};
}

void DataKeys::mark_stored(const Uuid& customer) {
  Shard& shard = shard_of(customer);
  std::lock_guard lock(shard.mu);
  auto u = shard.unstored.find(customer);
  if (u == shard.unstored.end()) return;
  remember(shard, customer, Lookup{State::live, u->second.first});
  shard.unstored.erase(u);
}

Result<DataKeys::Lookup> DataKeys::for_reading(const Uuid& customer) {
  // The key is unwrapped outside the lock: the two threads of a read open
  // the keys of different customers at once instead of one waiting for the
  // other's AES. What it unwrapped is cached only if no erasure or stored
  // key changed the cache meanwhile; otherwise it looks again.
  Shard& shard = shard_of(customer);
  for (int attempt = 0;; ++attempt) {
    std::optional<std::optional<std::string>> preloaded;
    std::uint64_t changes_seen = 0;
    {
      std::lock_guard lock(shard.mu);
      if (auto it = shard.cache.find(customer); it != shard.cache.end()) return it->second;
      if (attempt == unlocked_unwrap_attempts_max) {
        auto loaded = load(shard, customer);
        if (!loaded.ok()) return loaded.error();
        remember(shard, customer, *loaded);
        return *loaded;
      }
      preloaded = preloaded_value(shard, customer);
      changes_seen = shard.changes;
    }
    auto loaded = unwrap(customer, std::move(preloaded));
    if (after_unlocked_unwrap_for_tests) after_unlocked_unwrap_for_tests(customer);
    std::lock_guard lock(shard.mu);
    if (shard.changes != changes_seen) continue;
    if (!loaded.ok()) return loaded.error();
    if (auto it = shard.cache.find(customer); it != shard.cache.end()) return it->second;
    remember(shard, customer, *loaded);
    return *loaded;
  }
}

Result<bool> DataKeys::erased(const Uuid& customer) {
  Shard& shard = shard_of(customer);
  std::optional<std::optional<std::string>> preloaded;
  {
    std::lock_guard lock(shard.mu);
    if (auto it = shard.cache.find(customer); it != shard.cache.end()) return it->second.state == State::erased;
    preloaded = preloaded_value(shard, customer);
  }
  auto value = preloaded ? Result<std::optional<std::string>>(*preloaded) : stored(customer);
  if (!value.ok()) return value.error();
  const bool is_erased = *value && **value == erased_value();
  // "None" and "erased" are cached (every write of the family updates the
  // cache); a live key is cached once it is unwrapped.
  if (!*value || is_erased) {
    std::lock_guard lock(shard.mu);
    if (!shard.cache.contains(customer)) remember(shard, customer, Lookup{is_erased ? State::erased : State::none, {}});
  }
  return is_erased;
}

Status DataKeys::preload(std::size_t keys_max) {
  {
    // preload() sets every shard's flag, this one last.
    Shard& last = shards_.back();
    std::lock_guard lock(last.mu);
    if (last.preloaded) return {};  // nothing changed under a read-only open
  }
  std::array<absl::flat_hash_map<Uuid, std::string, std::hash<Uuid>>, data_key_cache_shards> values;
  std::size_t count = 0;
  if (family_ != nullptr) {
    rocksdb::ReadOptions once;
    once.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(once, family_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 16) {
        return corruption_error("data keys: a key of " + std::to_string(it->key().size()) + " bytes");
      }
      if (count == keys_max) return {};
      Uuid::Bytes b{};
      std::copy_n(it->key().data(), 16, b.begin());
      const Uuid customer(b);
      values[shard_index(customer)].emplace(customer, it->value().ToString());
      ++count;
    }
    if (!it->status().ok()) return from_rocks(it->status(), "read the data keys");
  }
  for (std::size_t i = 0; i < data_key_cache_shards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    shards_[i].preloaded_values = std::move(values[i]);
    shards_[i].preloaded = true;
  }
  return {};
}

void DataKeys::mark_erased(const Uuid& customer) {
  Shard& shard = shard_of(customer);
  std::lock_guard lock(shard.mu);
  ++shard.changes;
  shard.unstored.erase(customer);
  remember(shard, customer, Lookup{State::erased, {}});
}

Result<std::optional<std::string>> DataKeys::stored(const Uuid& customer) const {
  if (family_ == nullptr) return std::optional<std::string>();
  std::string value;
  auto s = db_.Get({}, family_, key_of(customer), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "read the data key of customer " + customer.to_string());
  return std::optional<std::string>(std::move(value));
}

Status DataKeys::put_stored(const Uuid& customer, std::string_view value) {
  if (family_ == nullptr) return invalid_argument("the log is open read-only");
  const bool erasure = value == erased_value();
  if (!erasure) {
    if (value.size() < 2 || value[0] != live_tag) {
      return invalid_argument("the data key of customer " + customer.to_string() + " is malformed");
    }
    // Without the master key the wrapped key is kept as it came: the log's
    // check says which master key it needs, and that key opens it later.
    if (master_) {
      if (auto key = unwrap_data_key(*master_, customer, value.substr(1)); !key.ok()) {
        return invalid_argument(key.error().message() + " (it was wrapped under another master key)");
      }
    }
  }
  Shard& shard = shard_of(customer);
  std::lock_guard lock(shard.mu);
  auto current = stored(customer);
  if (!current.ok()) return current.error();
  if (*current && **current == erased_value()) return {};  // an erasure is for good
  if (*current && !erasure && **current != value) {
    if (!master_) return conflict_error("customer " + customer.to_string() + " already has another data key in this log");
    // Two wrappings of the same key differ (fresh nonces): compare the keys.
    auto mine = unwrap_data_key(*master_, customer, std::string_view(**current).substr(1));
    auto theirs = unwrap_data_key(*master_, customer, value.substr(1));
    if (!mine.ok() || !theirs.ok() || *mine != *theirs) {
      return conflict_error("customer " + customer.to_string() + " already has another data key in this log");
    }
    return {};
  }
  auto s = db_.Put(rocksdb::WriteOptions{}, family_, key_of(customer), rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) return from_rocks(s, "store the data key of customer " + customer.to_string());
  ++shard.changes;
  shard.cache.erase(customer);
  return {};
}

}  // namespace cs
