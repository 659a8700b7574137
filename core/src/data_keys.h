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

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cs/error.h"
#include "cs/personal_data.h"
#include "cs/uuid.h"

namespace cs {

// Unwrapped keys kept in memory; past it the cache starts over.
inline constexpr std::size_t data_key_cache_entries_max = 1 << 16;

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
  Result<Lookup> load(const Uuid& customer);  // from the family; caller holds mu_
  // The lookup of a stored value (`preloaded`, or read from the family when
  // nullopt); needs no lock.
  Result<Lookup> unwrap(const Uuid& customer, std::optional<std::optional<std::string>> preloaded) const;
  // The preloaded stored value (nullopt: nothing preloaded, look it up);
  // caller holds mu_.
  std::optional<std::optional<std::string>> preloaded_value(const Uuid& customer) const;
  void remember(const Uuid& customer, const Lookup& lookup);  // caller holds mu_

  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle* family_;
  std::optional<MasterKey> master_;
  std::mutex mu_;
  std::unordered_map<Uuid, Lookup> cache_;  // guarded by mu_
  // Counts erasures and stored keys, which a key unwrapped outside the lock
  // must not overwrite in the cache (for_reading).
  std::uint64_t cache_changes_ = 0;  // guarded by mu_
  // for_reading's unwraps outside the lock before it unwraps under it.
  static constexpr int unlocked_unwrap_attempts_max = 3;
  // After preload(): every stored value (a customer absent has no key).
  bool preloaded_ = false;                                   // guarded by mu_
  std::unordered_map<Uuid, std::string> preloaded_values_;  // guarded by mu_
  // Keys made and not stored yet, with their value; never evicted (a second
  // key made for the same customer would make the first one's events unreadable).
  std::unordered_map<Uuid, std::pair<DataKey, std::string>> unstored_;  // guarded by mu_
};

}  // namespace cs
