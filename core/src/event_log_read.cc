// EventLog reads: the whole log, one stream, one type, one category.
#include <rocksdb/db.h>

#include <cstring>

#include "cs/event_log.h"
#include "cs/personal_data.h"
#include "cs/storage_codec.h"
#include "index_cursor.h"
#include "keys.h"
#include "log_iterator.h"
#include "rocks_status.h"

namespace cs {
namespace {

Status check_query(const ReadQuery& q) {
  int scopes = (q.stream ? 1 : 0) + (q.type ? 1 : 0) + (q.category ? 1 : 0);
  if (scopes > 1) return invalid_argument("read: give at most one of stream, type and category");
  if (q.stream && (q.from_seq || q.to_seq)) {
    return invalid_argument("read: a stream read starts at a stream version, not a sequence");
  }
  if (q.verify_chain && (q.backward || q.stream || q.type || q.category)) {
    return invalid_argument("read: the chain can be verified on forward reads of the whole log only");
  }
  if (!q.stream && q.from_version) {
    return invalid_argument("read: a stream version only applies to a stream read");
  }
  if (q.stream && (q.stream->empty() || q.stream->size() > limits::stream_name_bytes_max ||
                   q.stream->find('\0') != std::string::npos)) {
    return invalid_argument("read: stream name must be 1 to " +
                            std::to_string(limits::stream_name_bytes_max) + " bytes with no NUL");
  }
  return {};
}

// Is `seq` past where a forward read with `to_seq` stops?
bool past_end(const ReadQuery& q, Sequence seq) { return !q.backward && q.to_seq && seq > *q.to_seq; }

}  // namespace

rocksdb::Status EventLog::get_stored(Sequence seq, std::optional<Category> category, std::string& value) const {
  if (category) return db_->Get({}, events_cf_, keys::event_key(*category, seq), &value);
  // One call for the four places it can be: each category's run is a key
  // range of its own, so a key that is not there costs a block or none.
  constexpr std::size_t n = keys::all_categories.size();
  std::array<std::string, n> key_bytes;
  std::array<rocksdb::Slice, n> key_slices;
  for (std::size_t i = 0; i < n; ++i) {
    key_bytes[i] = keys::event_key(keys::all_categories[i], seq);
    key_slices[i] = key_bytes[i];
  }
  std::array<rocksdb::PinnableSlice, n> values;
  std::array<rocksdb::Status, n> statuses;
  db_->MultiGet({}, events_cf_, n, key_slices.data(), values.data(), statuses.data(), /*sorted_input=*/true);
  for (std::size_t i = 0; i < n; ++i) {
    if (statuses[i].ok()) {
      value.assign(values[i].data(), values[i].size());
      return statuses[i];
    }
    if (!statuses[i].IsNotFound()) return statuses[i];
  }
  return rocksdb::Status::NotFound();
}

Result<Hash> EventLog::stored_hash(Sequence seq) const {
  std::string value;
  auto s = get_stored(seq, std::nullopt, value);
  if (s.IsNotFound()) return not_found_error("no event at seq " + std::to_string(seq.value));
  if (!s.ok()) return from_rocks(s, "read seq " + std::to_string(seq.value));
  if (value.size() < sizeof(Hash)) return corruption_error("seq " + std::to_string(seq.value) + ": truncated");
  return stored_chain_hash(value);
}

namespace {

Result<RecordedEvent> decode_read(Sequence seq, const rocksdb::Status& s, const std::string& value) {
  if (s.IsNotFound()) return not_found_error("no event at seq " + std::to_string(seq.value));
  if (!s.ok()) return from_rocks(s, "read seq " + std::to_string(seq.value));
  auto e = decode_stored(value);
  if (!e.ok()) return corruption_error("seq " + std::to_string(seq.value) + ": " + e.error().message());
  if (e->seq != seq) {
    return corruption_error("seq " + std::to_string(seq.value) + " holds an event stamped seq " +
                            std::to_string(e->seq.value));
  }
  return e;
}

}  // namespace

Result<RecordedEvent> EventLog::read_event(Sequence seq) const {
  std::string value;
  auto s = get_stored(seq, std::nullopt, value);
  return decode_read(seq, s, value);
}

Result<RecordedEvent> EventLog::read_event(Sequence seq, Category category) const {
  std::string value;
  auto s = get_stored(seq, category, value);
  auto e = decode_read(seq, s, value);
  if (e.ok() && category_of(e->type()) != category) {
    return corruption_error("seq " + std::to_string(seq.value) + " is stored among the " +
                            std::string(category_name(category)) + " events but is a " +
                            std::string(event_type_name(e->type())));
  }
  return e;
}

Result<std::optional<RecordedEvent>> EventLog::find_event(const Uuid& id) const {
  std::string value;
  auto s = db_->Get({}, event_ids_cf_, rocksdb::Slice(reinterpret_cast<const char*>(id.bytes().data()), 16), &value);
  if (s.IsNotFound()) return std::optional<RecordedEvent>();
  if (!s.ok()) return from_rocks(s, "look up event id " + id.to_string());
  if (value.size() != 8) return corruption_error("event id " + id.to_string() + ": malformed index entry");
  auto e = read_event(Sequence(keys::get_u64(value)));
  if (!e.ok()) return e.error();
  return std::optional<RecordedEvent>(std::move(*e));
}

Result<std::optional<std::vector<StreamKey>>> EventLog::customer_streams(const Uuid& customer) const {
  if (!customer_index_complete_ || customer_streams_cf_ == nullptr) return std::optional<std::vector<StreamKey>>();
  const std::string prefix(reinterpret_cast<const char*>(customer.bytes().data()), 16);
  std::vector<StreamKey> streams;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, customer_streams_cf_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto key = it->key().ToStringView();
    const auto category = static_cast<Category>(key.size() == keys::customer_stream_key_bytes ? key[16] : 0);
    if (!keys::owned_through_first_event(category)) {
      return corruption_error("customer index of " + customer.to_string() + ": malformed key");
    }
    Uuid::Bytes id{};
    std::memcpy(id.data(), key.data() + 17, 16);
    streams.push_back(StreamKey{category, Uuid(id)});
  }
  if (!it->status().ok()) return from_rocks(it->status(), "read the customer index");
  return std::optional<std::vector<StreamKey>>(std::move(streams));
}

Status EventLog::read(const ReadQuery& q, const Visitor& visit) const {
  if (q.decrypt) {
    if (auto p = prepare_unseal(q); !p.ok()) return p;
    // Events with personal data are opened in a copy: readers below reuse
    // their decoded event.
    ReadQuery stored = q;
    stored.decrypt = false;
    Status failure;
    RecordedEvent opened;
    auto s = read(stored, [&](const RecordedEvent& e) {
      if (!e.sealed && !has_personal_fields(e.payload)) return visit(e);
      opened = e;
      if (auto u = unseal(opened); !u.ok()) {
        failure = u;
        return false;
      }
      return visit(opened);
    });
    return s.ok() ? failure : s;
  }
  RecordedEvent e;
  Status failure;
  auto s = read_stored(q, [&](Sequence seq, std::string_view value) {
    if (failure = decode_stored_at(seq, value, e); !failure.ok()) return false;
    return visit(e);
  });
  return s.ok() ? failure : s;
}

Status EventLog::read_stored(const ReadQuery& q, const StoredVisitor& visit) const {
  // Whole-log reads pass over each block once (export, rebuild, audit) or
  // read the newest events, still in the memtable (the distributor,
  // catch-ups): caching blocks would only evict others. Verify calls
  // read_stored_at with the snapshot it checks the indexes against.
  rocksdb::ReadOptions once;
  once.fill_cache = false;
  return read_stored_at(q, visit, once);
}

Status EventLog::read_stored_at(const ReadQuery& q, const StoredVisitor& visit, const rocksdb::ReadOptions& at) const {
  if (auto s = check_query(q); !s.ok()) return s;
  if (q.limit == 0) return {};
  if (q.stream || q.type) return read_index(q, visit);
  if (q.category) return read_category(q, visit);
  LogIterator it(*db_, events_cf_, at);
  Sequence expected = std::max(q.from_seq.value_or(Sequence(1)), Sequence(1));
  Hash previous{};
  if (q.verify_chain && expected.value > 1) {
    auto before = stored_hash(expected.prev());
    if (!before.ok()) return before.error();
    previous = *before;
  }
  if (q.backward) {
    it.seek_for_prev(q.from_seq.value_or(Sequence(UINT64_MAX)));
  } else {
    it.seek(expected);
  }
  std::size_t visited = 0;
  for (; it.valid() && visited < q.limit; it.step()) {
    const Sequence seq = it.seq();
    if (past_end(q, seq)) break;
    auto value = it.value();
    if (q.verify_chain) {
      if (auto s = check_next_seq(expected, seq); !s.ok()) return s;
      if (auto s = check_chain_link(seq, value, previous); !s.ok()) return s;
      previous = stored_chain_hash(value);
      expected = expected.next();
    }
    ++visited;
    if (!visit(seq, value)) return {};
  }
  return it.status("read log");
}

// The events an index names are fetched with one iterator over their
// category's run of the events family, in the index's order: a seq a few
// keys past the iterator is reached by stepping (usually inside the block
// already read), a farther one by a seek. Batched MultiGet cost a full seek
// per event: 44% of a token-category read, where most wanted events were a
// step or two apart.
Status EventLog::visit_seqs(Category category, const std::function<std::optional<std::uint64_t>()>& next_seq,
                            std::size_t limit, bool fill_cache, bool backward, const StoredVisitor& visit) const {
  // About a data block of events (4 KiB, ~400-byte events): past that a seek
  // skips blocks that stepping would read and decompress.
  constexpr std::uint64_t steps_instead_of_seek_max = 8;
  rocksdb::ReadOptions options;
  options.fill_cache = fill_cache;
  const Category run[] = {category};
  LogIterator it(*db_, events_cf_, options, run);
  // Is the iterator before `seq` in the read's direction?
  auto before = [&](std::uint64_t seq) { return backward ? it.seq().value > seq : it.seq().value < seq; };
  for (std::size_t visited = 0; visited < limit; ++visited) {
    auto seq = next_seq();
    if (!seq) break;
    if (it.valid() && before(*seq)) {
      for (std::uint64_t step = 0; step < steps_instead_of_seek_max && it.valid() && before(*seq); ++step) it.step();
    }
    if (!it.valid() || it.seq().value != *seq) {
      backward ? it.seek_for_prev(Sequence(*seq)) : it.seek(Sequence(*seq));
    }
    if (auto s = it.status("read seq " + std::to_string(*seq)); !s.ok()) return s;
    if (!it.valid() || it.seq().value != *seq) {
      return corruption_error("seq " + std::to_string(*seq) + " is in an index but not in the log (not among its " +
                              std::string(category_name(category)) + " events)");
    }
    if (!visit(Sequence(*seq), it.value())) return {};
  }
  return {};
}

Status EventLog::read_index(const ReadQuery& q, const StoredVisitor& visit) const {
  std::optional<Category> category;
  if (q.type) {
    category = category_of(*q.type);
  } else {
    for (Category c : keys::all_categories) {
      if (q.stream->starts_with(stream_prefix(c))) category = c;
    }
    if (!category) return {};  // a name no stream can have: no events
  }
  std::optional<std::uint64_t> from;
  if (q.stream && q.from_version) from = q.from_version->value;
  if (q.type && q.from_seq) from = q.from_seq->value;
  IndexCursor cursor(*db_, q.stream ? stream_index_cf_ : type_index_cf_,
                     q.stream ? keys::stream_prefix_key(*q.stream) : keys::type_prefix_key(*q.type),
                     q.stream ? IndexCursor::Kind::stream : IndexCursor::Kind::type);
  cursor.seek(from.value_or(q.backward ? UINT64_MAX : 0), q.backward);
  auto next_seq = [&]() -> std::optional<std::uint64_t> {
    if (!cursor.valid() || past_end(q, Sequence(cursor.seq()))) return std::nullopt;
    std::uint64_t seq = cursor.seq();
    cursor.next();
    return seq;
  };
  // A type read visits each block of events about once (the type's events
  // are spread over the log): caching the blocks costs an insert and an
  // eviction each and saves nothing. A stream's few events may be read again.
  if (auto s = visit_seqs(*category, next_seq, q.limit, /*fill_cache=*/q.stream.has_value(), q.backward, visit);
      !s.ok()) {
    return s;
  }
  return cursor.status();
}

// A category is a run of the events family of its own: read straight
// through, without its types' indexes.
Status EventLog::read_category(const ReadQuery& q, const StoredVisitor& visit) const {
  rocksdb::ReadOptions once;
  once.fill_cache = false;
  const Category run[] = {*q.category};
  LogIterator it(*db_, events_cf_, once, run);
  if (q.backward) {
    it.seek_for_prev(q.from_seq.value_or(Sequence(UINT64_MAX)));
  } else {
    it.seek(q.from_seq.value_or(Sequence(0)));
  }
  for (std::size_t visited = 0; it.valid() && visited < q.limit; it.step(), ++visited) {
    if (past_end(q, it.seq())) break;
    if (!visit(it.seq(), it.value())) return {};
  }
  return it.status("read the " + std::string(category_name(*q.category)) + " events");
}

Result<std::vector<RecordedEvent>> EventLog::read_all(const ReadQuery& q) const {
  std::vector<RecordedEvent> out;
  auto s = read(q, [&](const RecordedEvent& e) {
    out.push_back(e);
    return true;
  });
  if (!s.ok()) return s.error();
  return out;
}

}  // namespace cs
