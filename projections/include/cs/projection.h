// A projection: a named, versioned fold of the events it handles into state
// kept in its own column family.
//
// Keys in a projection's family:
//   "\x00checkpoint"               last folded seq (8 bytes, big-endian)
//   'e' + entity id (16 bytes)     the entity's state (cereal portable binary)
//   'c' + customer id + entity id  empty: "this entity belongs to that customer"
//
// Contract: `apply` must be deterministic — the same events give the same
// bytes — so that a rebuild equals the incrementally folded state byte for
// byte. Projections are not thread-safe; the engine drives them from one
// thread at a time.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cereal/archives/portable_binary.hpp>
#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cs/error.h"
#include "cs/event.h"
#include "cs/span_input_archive.h"
#include "cs/string_output_archive.h"

namespace cs {

namespace projection_keys {
inline const std::string checkpoint("\0checkpoint", 11);
inline constexpr char entity_tag = 'e';
inline constexpr char owner_tag = 'c';
inline std::string entity(const Uuid& id) {
  std::string k(1, entity_tag);
  k.append(reinterpret_cast<const char*>(id.bytes().data()), 16);
  return k;
}
inline std::string owner_prefix(const Uuid& customer) {
  std::string k(1, owner_tag);
  k.append(reinterpret_cast<const char*>(customer.bytes().data()), 16);
  return k;
}
}  // namespace projection_keys

// Reads a projection's stored state (what is committed in its family).
class StateReader {
 public:
  StateReader(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family) : db_(db), family_(family) {}
  // The value at `key`, nullopt when absent; fatal/corruption on I/O errors.
  Result<std::optional<std::string>> get(std::string_view key) const;

 private:
  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle* family_;
};

class Projection {
 public:
  virtual ~Projection() = default;
  virtual std::string_view name() const = 0;
  // Bump when the fold or the state layout changes: a stored state of another
  // version is rebuilt before use.
  virtual std::uint32_t version() const = 0;
  virtual bool handles(EventType type) const = 0;
  // Folds one event into the staged state, reading through `reader` what is
  // not staged yet.
  virtual Status apply(const RecordedEvent& event, const StateReader& reader) = 0;
  // Moves everything staged into `batch` for `family`.
  virtual void flush(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family) = 0;
  // Forgets what is staged (the batch it went into was not written).
  virtual void discard() = 0;
  // A stored value as JSON text, for reports ("{...}" or a placeholder).
  virtual std::string describe(std::string_view key, std::string_view value) const = 0;
  // A fresh instance of the same projection (for a shadow rebuild).
  virtual std::unique_ptr<Projection> clone_empty() const = 0;
  // Told when this instance folds into a family known to be empty: until it
  // forgets something, what it has not seen is not stored either.
  virtual void start_from_empty_store() {}
};

// cereal portable binary of a state record, written and read in place
// (cereal's own archives go through streams, and reading copied the bytes
// into one first).
template <class State>
std::string encode_state(const State& state) {
  std::string out;
  StringOutputArchive ar(out);
  ar(state);
  return out;
}

template <class State>
Result<State> decode_state(std::string_view bytes) {
  State state;
  try {
    SpanInputArchive ar(bytes);
    ar(state);
  } catch (const std::exception& e) {
    return corruption_error(std::string("projection state does not decode: ") + e.what());
  }
  return state;
}

// Entities a projection keeps decoded between fold batches; past it, the
// clean ones are dropped after a flush.
inline constexpr std::size_t entity_cache_entries_max = 1 << 18;

// A projection whose state is one record per entity (customer, user, …).
// Entities stay decoded in memory across fold batches (up to
// entity_cache_entries_max); a flush writes only those changed since the
// last one. Only this instance writes its family, so the cache stays equal to
// what is stored.
template <class State>
class EntityProjection : public Projection {
 public:
  Status apply(const RecordedEvent& event, const StateReader& reader) override {
    const Uuid& id = entity_of(event);
    auto it = cache_.find(id);
    if (it == cache_.end() && knows_all_stored_) {
      it = cache_.emplace(id, Entry{}).first;
    } else if (it == cache_.end()) {
      Entry entry;
      auto stored = reader.get(projection_keys::entity(id));
      if (!stored.ok()) return stored.error();
      if (*stored) {
        auto decoded = decode_state<State>(**stored);
        if (!decoded.ok()) return decoded.error();
        entry.state = std::move(*decoded);
        entry.stored = true;
      }
      it = cache_.emplace(id, std::move(entry)).first;
    }
    fold(it->second.state, event);
    if (!it->second.dirty) {
      it->second.dirty = true;
      dirty_.push_back(id);
    }
    return {};
  }

  void flush(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family) override {
    // In key order: RocksDB's skiplist inserts are much cheaper in order.
    std::sort(dirty_.begin(), dirty_.end());
    for (const Uuid& id : dirty_) {
      Entry& entry = cache_.at(id);
      batch.Put(family, projection_keys::entity(id), encode_state(entry.state));
      // An entity's owner is set by its first event and never changes.
      if (auto owner = owner_of(entry.state); owner && !entry.stored) {
        std::string key = projection_keys::owner_prefix(*owner);
        key.append(reinterpret_cast<const char*>(id.bytes().data()), 16);
        batch.Put(family, key, {});
      }
      entry.dirty = false;
      entry.stored = true;
    }
    dirty_.clear();
    if (cache_.size() > entity_cache_entries_max) {
      cache_.clear();  // all clean now
      knows_all_stored_ = false;
    }
  }

  // The batch was not written: what the cache holds may be ahead of the store.
  void discard() override {
    cache_.clear();
    dirty_.clear();
    knows_all_stored_ = false;
  }

  void start_from_empty_store() override { knows_all_stored_ = cache_.empty(); }

  std::string describe(std::string_view key, std::string_view value) const override {
    if (key.empty() || key[0] != projection_keys::entity_tag) return "\"" + std::to_string(value.size()) + " bytes\"";
    auto state = decode_state<State>(value);
    return state.ok() ? to_json(*state).dump() : "\"undecodable\"";
  }

 protected:
  // The entity the event is about.
  virtual const Uuid& entity_of(const RecordedEvent& event) const = 0;
  virtual void fold(State& state, const RecordedEvent& event) const = 0;
  // The customer that owns the entity, when the projection lists entities per customer.
  virtual std::optional<Uuid> owner_of(const State&) const { return std::nullopt; }

 private:
  struct Entry {
    State state;
    bool dirty = false;   // changed since the last flush
    bool stored = false;  // the family holds a version of it
  };
  // Open addressing: a lookup per event per projection, over hundreds of
  // thousands of entities, is where node-based maps lose to cache misses.
  absl::flat_hash_map<Uuid, Entry, std::hash<Uuid>> cache_;
  std::vector<Uuid> dirty_;  // changed since the last flush
  // Every stored entity is in cache_ (the family started empty under this
  // instance and nothing was evicted): a miss needs no read.
  bool knows_all_stored_ = false;
};

// The four domain projections: "customers", "users", "subscriptions", "tokens".
std::vector<std::unique_ptr<Projection>> make_domain_projections();

}  // namespace cs
