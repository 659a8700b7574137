// What the log's writers share inside core: the appends waiting in the
// group-commit queue, what a group (or a bulk writer's chunk) has staged, and
// what the leader knows of committed streams. Not part of the API.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <condition_variable>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cs/event_log.h"
#include "stream_rules.h"

namespace rocksdb {
class ColumnFamilyHandle;
}

namespace cs {

class TableStream;

// Open-addressing maps for the append path's per-event lookups (the node maps
// of std:: cost a cache miss per lookup, 4% of an append).
template <class K, class V>
using FlatMap = absl::flat_hash_map<K, V, std::hash<K>>;
template <class K>
using FlatSet = absl::flat_hash_set<K, std::hash<K>>;

inline constexpr const char* events_family = "events";
inline constexpr const char* stream_index_family = "stream_index";
inline constexpr const char* type_index_family = "type_index";
inline constexpr const char* event_ids_family = "event_ids";
inline constexpr const char* customer_streams_family = "customer_streams";
inline constexpr const char* data_keys_family = "data_keys";
// Where a bulk writer stages its table files, inside the data directory (so
// that ingesting them moves them), cleared by every writable open.
inline constexpr const char* bulk_ingest_staging = "log-ingest";
// The first byte of a side value stored sealed (SideWrite::seal).
inline constexpr char sealed_side_tag = static_cast<char>(0xE5);

struct EventLog::Writer {
  std::span<const NewEvent> events;
  // The events' payloads with their personal fields sealed, for those that
  // have any: the stored form; `events` keeps the plaintext the rules check.
  std::vector<Payload> sealed;
  std::vector<std::uint32_t> sealed_at;  // per event: index in `sealed`, or not_sealed
  static constexpr std::uint32_t not_sealed = UINT32_MAX;
  bool is_sealed(std::size_t i) const { return !sealed_at.empty() && sealed_at[i] != not_sealed; }
  // Data keys made for these events and not stored yet: written with them.
  std::vector<std::pair<Uuid, std::string>> unstored_keys;
  const Payload& stored(std::size_t i) const { return is_sealed(i) ? sealed[sealed_at[i]] : events[i].payload; }
  std::span<const SideWrite> side_writes;
  std::vector<rocksdb::ColumnFamilyHandle*> side_families;  // one per side write
  std::span<const RecordedEvent> imported;  // set instead of `events` by import()
  Durability durability = Durability::synced;
  std::size_t size() const { return events.size() + imported.size(); }
  Result<AppendResult> result{fatal_error("append was not run")};
  bool done = false;
  std::condition_variable cv;
};

struct EventLog::LeaderState {
  FlatMap<StreamKey, StreamFacts> streams;  // committed, bounded by stream_head_cache_entries_max
  // The last sequence taken in each sequenced side family (loaded on first
  // use; staged values count, since a failed write stops all appends).
  std::unordered_map<rocksdb::ColumnFamilyHandle*, std::uint64_t> side_sequences;
};

// What one group commit has staged so far, on top of what is in the database.
struct EventLog::GroupState {
  Sequence last_seq;
  Hash last_hash{};
  Timestamp recorded_at;
  FlatMap<StreamKey, StreamFacts> streams;  // staged facts
  std::uint64_t new_streams = 0;
  struct StagedId {
    Sequence seq;
    StreamVersion version;
    StreamKey stream;
    const Payload* payload;  // the staging writer's, alive until the group is done
  };
  FlatMap<Uuid, StagedId> ids;
  // One index block per stream and per type, written at the end of the group.
  struct StreamBlock {
    std::uint64_t first_version = 0;
    std::vector<std::uint64_t> seqs;
  };
  FlatMap<StreamKey, StreamBlock> stream_blocks;
  std::map<EventType, std::vector<std::uint64_t>> type_blocks;
  FlatSet<Uuid> erased;  // customers whose customer.erased is staged
  // A bulk chunk's events go here instead of into the batch (not owned).
  TableStream* events_table = nullptr;
  // A bulk chunk being committed while this one is staged (not owned): what
  // it staged counts as in the log. Its ids are not looked at here: the bulk
  // writer waits for its commit before staging an id it holds.
  const GroupState* before = nullptr;
  // The log stored no event when this group began, and nothing but this
  // group can add one before it is committed (a bulk writer's first chunk
  // on an empty log): no id or stream can be in the database, so their
  // lookups skip it (a fifth of staging a first chunk).
  bool nothing_stored = false;
  std::vector<Uuid> stored_keys;     // data keys whose value is staged
};

}  // namespace cs
