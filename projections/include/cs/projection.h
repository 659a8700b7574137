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

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cereal/archives/portable_binary.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cs/error.h"
#include "cs/event.h"

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
};

template <class State>
std::string encode_state(const State& state) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(state);
  }
  return std::move(out).str();
}

template <class State>
Result<State> decode_state(std::string_view bytes) {
  State state;
  try {
    std::istringstream in{std::string(bytes)};
    cereal::PortableBinaryInputArchive ar(in);
    ar(state);
  } catch (const std::exception& e) {
    return corruption_error(std::string("projection state does not decode: ") + e.what());
  }
  return state;
}

// A projection whose state is one record per entity (customer, user, …).
// Entities touched by a fold batch stay decoded in memory until the flush,
// so a busy entity is decoded and encoded once per batch, not per event.
template <class State>
class EntityProjection : public Projection {
 public:
  Status apply(const RecordedEvent& event, const StateReader& reader) override {
    const Uuid& id = entity_of(event);
    auto it = staged_.find(id);
    if (it == staged_.end()) {
      State state;
      auto stored = reader.get(projection_keys::entity(id));
      if (!stored.ok()) return stored.error();
      if (*stored) {
        auto decoded = decode_state<State>(**stored);
        if (!decoded.ok()) return decoded.error();
        state = std::move(*decoded);
      }
      it = staged_.emplace(id, std::move(state)).first;
    }
    fold(it->second, event);
    return {};
  }

  void flush(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family) override {
    for (const auto& [id, state] : staged_) {
      batch.Put(family, projection_keys::entity(id), encode_state(state));
      if (auto owner = owner_of(state)) {
        std::string key = projection_keys::owner_prefix(*owner);
        key.append(reinterpret_cast<const char*>(id.bytes().data()), 16);
        batch.Put(family, key, {});
      }
    }
    staged_.clear();
  }

  void discard() override { staged_.clear(); }

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
  std::unordered_map<Uuid, State> staged_;
};

// The four domain projections: "customers", "users", "subscriptions", "tokens".
std::vector<std::unique_ptr<Projection>> make_domain_projections();

}  // namespace cs
