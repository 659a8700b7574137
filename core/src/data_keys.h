// The customers' data keys, kept wrapped by the master key in the log's
// `data_keys` family (docs/storage.md), and cached unwrapped in memory.
//
//   data_keys: customer id (16) -> 0x01 ‖ wrapped key (61 bytes: scheme,
//              nonce, ciphertext, tag)   a live customer
//                               -> 0x00                    an erased one
//
// A key is created the first time a customer's personal data is sealed and
// stored in the same batch as the first events sealed with it: until that
// batch commits it is "unstored", and every append that uses it carries its
// value to write. An erased customer never gets a key again. Thread safety:
// every method may be called from any thread.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <absl/container/flat_hash_map.h>

#include "cs/error.h"
#include "cs/personal_data.h"
#include "cs/uuid.h"

namespace cs {

// Unwrapped keys kept in memory; past it a shard's cache starts over.
inline constexpr std::size_t data_key_cache_entries_max = 1 << 16;
// The cache is split by customer into shards of their own lock: the two
// threads of a read look up a key for nearly every event, and with one lock
// they queued on it (futex waits were a sixth of a customer-category read).
inline constexpr std::size_t data_key_cache_shards = 16;

class DataKeys {
 public:
  enum class State { none, live, erased };
  struct Lookup {
    State state = State::none;
    DataKey key{};  // when live
  };

  // Borrows `db` and `family` (null: a log without the family, read-only).
  DataKeys(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, std::optional<MasterKey> master)
      : db_(db), family_(family), master_(master) {}

  bool has_master_key() const { return master_.has_value(); }

  // The key to seal `customer`'s data with, created when it has none, and
  // its stored value when it is not stored yet (the caller's batch writes it).
  // conflict when the customer was erased; invalid_argument without a
  // master key; fatal on I/O errors.
  struct ForWriting {
    DataKey key{};
    std::optional<std::string> unstored;
  };
  Result<ForWriting> for_writing(const Uuid& customer);
  // A batch holding the key's value committed.
  void mark_stored(const Uuid& customer);
  // The key to open `customer`'s data with: none, live (with the key) or
  // erased. invalid_argument without a master key for a live one;
  // corruption when the stored key does not unwrap.
  Result<Lookup> for_reading(const Uuid& customer);
  // Erased or not, from the cache or the family (no master key needed).
  Result<bool> erased(const Uuid& customer);
  // After an erasure committed: the cache forgets the key.
  void mark_erased(const Uuid& customer);
  // Reads every stored key in one pass over the family (each is unwrapped
  // when first used), so that a scan meeting most customers does not make a
  // point read for each. Keeps nothing when the family holds more than
  // `keys_max` keys (lookups read the family as before). For a log nothing
  // writes to (a read-only open): what was preloaded is never refreshed.
  // fatal on I/O errors, corruption for a malformed key.
  Status preload(std::size_t keys_max);

  // The stored value, as export and the distributor carry it (nullopt: none).
  Result<std::optional<std::string>> stored(const Uuid& customer) const;
  // Stores a value read from an export or the keys topic: a wrapped key must
  // unwrap with this master key; an erasure always wins; a live key that
  // differs from the one stored is a conflict.
  Status put_stored(const Uuid& customer, std::string_view value);

  // Tests only: called by for_reading between a key unwrapped outside the
  // lock and its caching (where an erasure may commit). Set before use.
  std::function<void(const Uuid&)> after_unlocked_unwrap_for_tests;

  static constexpr char live_tag = 1;
  static constexpr char erased_tag = 0;
  static std::string erased_value() { return std::string(1, erased_tag); }

 private:
  // What one lock guards: the customers whose id hashes to it.
  struct Shard {
    std::mutex mu;
    absl::flat_hash_map<Uuid, Lookup, std::hash<Uuid>> cache;  // guarded by mu
    // Counts erasures and stored keys, which a key unwrapped outside the
    // lock must not overwrite in the cache (for_reading).
    std::uint64_t changes = 0;  // guarded by mu
    // After preload(): every stored value of this shard (a customer absent
    // has no key).
    bool preloaded = false;                                   // guarded by mu
    absl::flat_hash_map<Uuid, std::string, std::hash<Uuid>> preloaded_values;  // guarded by mu
    // Keys made and not stored yet, with their value; never evicted (a
    // second key made for the same customer would make the first one's
    // events unreadable).
    absl::flat_hash_map<Uuid, std::pair<DataKey, std::string>, std::hash<Uuid>> unstored;  // guarded by mu
  };
  // High bits of the hash: the maps inside a shard index by its low ones.
  static std::size_t shard_index(const Uuid& customer) {
    return (std::hash<Uuid>{}(customer) >> 32) % data_key_cache_shards;
  }
  Shard& shard_of(const Uuid& customer) { return shards_[shard_index(customer)]; }

  Result<Lookup> load(const Shard& shard, const Uuid& customer) const;  // from the family; caller holds shard.mu
  // The lookup of a stored value (`preloaded`, or read from the family when
  // nullopt); needs no lock.
  Result<Lookup> unwrap(const Uuid& customer, std::optional<std::optional<std::string>> preloaded) const;
  // The preloaded stored value (nullopt: nothing preloaded, look it up);
  // caller holds shard.mu.
  static std::optional<std::optional<std::string>> preloaded_value(const Shard& shard, const Uuid& customer);
  static void remember(Shard& shard, const Uuid& customer, const Lookup& lookup);  // caller holds shard.mu

  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle* family_;
  std::optional<MasterKey> master_;
  std::array<Shard, data_key_cache_shards> shards_;
  // for_reading's unwraps outside the lock before it unwraps under it.
  static constexpr int unlocked_unwrap_attempts_max = 3;
};

}  // namespace cs
