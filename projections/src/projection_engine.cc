#include "cs/projection_engine.h"

#include <algorithm>

#include "cs/read_ahead.h"
#include "rocks_error.h"
#include "cs/table_ingest.h"

namespace cs {
namespace {

std::string u64_bytes(std::uint64_t v) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  return out;
}

std::uint64_t read_u64(std::string_view in, std::size_t at = 0) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(in[at + i]);
  return v;
}

std::string pointer_key(std::string_view name) { return "projection/" + std::string(name); }
std::string family_name(std::string_view name, std::uint64_t generation) {
  return "proj." + std::string(name) + "." + std::to_string(generation);
}
std::string scratch_family_name(std::string_view name) { return "proj." + std::string(name) + ".verify"; }
// Where fold batches for empty families are staged as table files.
std::filesystem::path ingest_staging_dir(const EventLog& log) { return log.dir() / "projection-ingest"; }

std::string describe_key(std::string_view key) {
  if (key == projection_keys::checkpoint) return "checkpoint";
  if (key.size() == 17 && key[0] == projection_keys::entity_tag) {
    Uuid::Bytes b{};
    std::copy_n(key.begin() + 1, 16, b.begin());
    return "entity " + Uuid(b).to_string();
  }
  if (key.size() == 33 && key[0] == projection_keys::owner_tag) return "owner index entry";
  return "key of " + std::to_string(key.size()) + " bytes";
}

bool selected(const FoldRange& range, const RecordedEvent& e) {
  if (range.as_of && e.timestamp > *range.as_of) return false;
  if (range.customer && payload_customer_id(e.payload) != *range.customer) return false;
  return true;
}

}  // namespace

Result<std::unique_ptr<ProjectionEngine>> ProjectionEngine::open(EventLog& log) {
  return open(log, make_domain_projections());
}

Result<std::unique_ptr<ProjectionEngine>> ProjectionEngine::open(EventLog& log,
                                                                 std::vector<std::unique_ptr<Projection>> projections) {
  std::unique_ptr<ProjectionEngine> engine(new ProjectionEngine(log));
  rocksdb::DB& db = log.db();
  std::vector<std::string> live_families;
  for (auto& projection : projections) {
    Slot slot;
    std::string pointer;
    auto s = db.Get({}, pointer_key(projection->name()), &pointer);
    if (s.IsNotFound()) {
      slot.generation = 1;
      rocksdb::WriteOptions sync;
      sync.sync = true;
      s = db.Put(sync, pointer_key(projection->name()),
                 u64_bytes(1) + u64_bytes(projection->version()));
      if (!s.ok()) return projection_store_error(s, "projections: write pointer of " + std::string(projection->name()));
    } else if (!s.ok()) {
      return projection_store_error(s, "projections: read pointer of " + std::string(projection->name()));
    } else if (pointer.size() != 16) {
      return corruption_error("projections: malformed pointer of " + std::string(projection->name()));
    } else {
      slot.generation = read_u64(pointer);
      slot.stale = read_u64(pointer, 8) != projection->version();
    }
    std::string family = family_name(projection->name(), slot.generation);
    auto handle = log.column_family(family);
    if (!handle.ok()) return handle.error();
    slot.family = *handle;
    auto checkpoint = StateReader(db, slot.family).get(projection_keys::checkpoint);
    if (!checkpoint.ok()) return checkpoint.error();
    if (*checkpoint) slot.checkpoint = Sequence(read_u64(**checkpoint));
    // A replay store folds another log, so its checkpoints are that log's.
    if (slot.checkpoint > log.head() && !db.Get({}, std::string(replay_marker_key), &pointer).ok()) {
      return corruption_error("projection " + std::string(projection->name()) + " is at seq " +
                              std::to_string(slot.checkpoint.value) + " but the log ends at seq " +
                              std::to_string(log.head().value) + ": it was not folded from this log");
    }
    slot.projection = std::move(projection);
    live_families.push_back(family);
    engine->slots_.push_back(std::move(slot));
  }
  // Leftovers of interrupted rebuilds and verifications.
  std::vector<std::string> leftovers;
  for (const auto& name : log.column_family_names()) {
    if (name.starts_with("proj.") &&
        std::find(live_families.begin(), live_families.end(), name) == live_families.end()) {
      leftovers.push_back(name);
    }
  }
  if (auto s = log.drop_column_families(leftovers); !s.ok()) return s.error();
  if (auto s = clear_ingest_staging(ingest_staging_dir(log)); !s.ok()) return s.error();
  return engine;
}

std::vector<std::string> ProjectionEngine::names() const {
  std::vector<std::string> out;
  for (const auto& s : slots_) out.emplace_back(s.projection->name());
  return out;
}

std::vector<ProjectionStatus> ProjectionEngine::status() const {
  std::shared_lock lock(swap_mu_);
  std::vector<ProjectionStatus> out;
  for (const auto& s : slots_) {
    out.push_back({std::string(s.projection->name()), s.projection->version(), s.generation, s.checkpoint});
  }
  return out;
}

std::vector<ProjectionEngine::Slot*> ProjectionEngine::select(const std::vector<std::string>& names, Status& error) {
  std::vector<Slot*> out;
  for (auto& s : slots_) {
    if (names.empty() || std::find(names.begin(), names.end(), s.projection->name()) != names.end()) {
      out.push_back(&s);
    }
  }
  for (const auto& n : names) {
    if (n != "all" && std::none_of(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.projection->name() == n; })) {
      error = invalid_argument("no projection named \"" + n + "\" (there are customers, users, subscriptions, tokens)");
    }
  }
  if (std::find(names.begin(), names.end(), "all") != names.end()) {
    out.clear();
    for (auto& s : slots_) out.push_back(&s);
  }
  return out;
}

const ProjectionEngine::Slot* ProjectionEngine::slot(std::string_view name) const {
  for (const auto& s : slots_) {
    if (s.projection->name() == name) return &s;
  }
  CS_UNREACHABLE("queried a projection that is not registered");
}

// The fold loop shared by catch-up, rebuild, verify and replay.
Status ProjectionEngine::fold(const EventLog& source, std::vector<Slot*> slots, const FoldRange& range,
                              const Progress& progress, Into into) {
  if (slots.empty()) return {};
  Sequence to = range.to_seq ? std::min(*range.to_seq, source.head()) : source.head();
  Sequence from = range.from_seq;
  Sequence lowest_checkpoint = slots.front()->checkpoint;
  for (const Slot* s : slots) lowest_checkpoint = std::min(lowest_checkpoint, s->checkpoint);
  from = std::max(from, lowest_checkpoint.next());
  if (from > to) return {};
  const std::uint64_t total = to.value - from.value + 1;

  rocksdb::DB& db = log_.db();
  std::vector<StateReader> readers;
  for (Slot* s : slots) readers.emplace_back(db, s->family);
  // Nobody reads an empty family being filled before the end, so larger
  // batches write busy entities less often.
  const std::size_t batch_events_max = into == Into::empty_families ? build_batch_events_max : fold_batch_events_max;
  std::uint64_t done = 0, in_batch = 0;
  Sequence last_read;
  Status failure;

  auto write = [&]() -> Status {
    if (into == Into::empty_families) {
      // One table file per family: state and checkpoint land together, and
      // all families in one step. Each projection flushes on a writer
      // thread of its own: they share nothing.
      std::vector<FamilyTable> tables;
      for (Slot* s : slots) {
        tables.push_back({s->family, [s, last_read](rocksdb::WriteBatch& batch) {
                            s->projection->flush(batch, s->family);
                            if (last_read > s->checkpoint) {
                              batch.Put(s->family, projection_keys::checkpoint, u64_bytes(last_read.value));
                            }
                          }});
      }
      if (auto st = ingest_tables(db, ingest_staging_dir(log_), tables); !st.ok()) {
        return Error(st.error().code(), "projections: " + st.error().message());
      }
      return {};
    }
    rocksdb::WriteBatch batch;
    for (Slot* s : slots) {
      s->projection->flush(batch, s->family);
      if (last_read > s->checkpoint) batch.Put(s->family, projection_keys::checkpoint, u64_bytes(last_read.value));
    }
    // No fsync: projections are rebuilt from the log, and state and
    // checkpoint share the batch, so a lost batch is simply folded again.
    auto st = db.Write(rocksdb::WriteOptions{}, &batch);
    if (!st.ok()) return projection_store_error(st, "projections: write fold batch");
    return {};
  };
  auto flush = [&]() -> Status {
    if (auto st = write(); !st.ok()) {
      for (Slot* s : slots) s->projection->discard();
      return st;
    }
    for (Slot* s : slots) s->checkpoint = std::max(s->checkpoint, last_read);
    in_batch = 0;
    return {};
  };

  auto apply = [&](const RecordedEvent& e) -> bool {
    CS_ASSERT(e.seq > last_read, "the log hands out growing sequences");
    if (selected(range, e)) {
      for (std::size_t i = 0; i < slots.size(); ++i) {
        Slot* s = slots[i];
        if (e.seq <= s->checkpoint || !s->projection->handles(e.type())) continue;
        if (auto st = s->projection->apply(e, readers[i]); !st.ok()) {
          failure = st;
          return false;
        }
      }
    }
    last_read = e.seq;
    if (++done % 4096 == 0 && progress) progress(done, total);
    if (++in_batch >= batch_events_max) {
      failure = flush();
      if (!failure.ok()) return false;
    }
    return true;
  };
  // This thread folds while another reads and decodes ahead, unless there
  // is too little to read for a second thread to pay for its start.
  const ReadQuery range_read{.from_seq = from, .to_seq = to};
  Status read = total <= fold_inline_read_events_max ? source.read(range_read, apply)
                                                     : read_ahead(source, range_read, apply);
  if (!failure.ok()) {
    for (Slot* s : slots) s->projection->discard();
    return failure;
  }
  if (!read.ok()) {
    for (Slot* s : slots) s->projection->discard();
    return read;
  }
  if (in_batch > 0) {
    if (auto st = flush(); !st.ok()) return st;
  }
  if (progress) progress(done, total);
  return {};
}

Result<std::uint64_t> ProjectionEngine::catch_up(const Progress& progress) {
  std::lock_guard lock(fold_mu_);
  std::vector<Slot*> current, stale;
  for (auto& s : slots_) (s.stale ? stale : current).push_back(&s);
  if (!stale.empty()) {
    auto built = build(stale, /*scratch=*/false, std::nullopt, progress);
    if (!built.ok()) return built.error();
    if (auto st = swap_in(stale, std::move(*built)); !st.ok()) return st.error();
  }
  Sequence before = log_.head();
  for (Slot* s : current) before = std::min(before, s->checkpoint);
  if (auto st = fold(log_, current, {}, progress); !st.ok()) return st.error();
  return log_.head().value - before.value;
}

Result<std::vector<ProjectionEngine::Slot>> ProjectionEngine::build(const std::vector<Slot*>& live, bool scratch,
                                                                    std::optional<Sequence> to_seq,
                                                                    const Progress& progress) {
  std::vector<Slot> built(live.size());
  std::vector<std::string> families;
  for (std::size_t i = 0; i < live.size(); ++i) {
    built[i].projection = live[i]->projection->clone_empty();
    built[i].generation = scratch ? 0 : live[i]->generation + 1;
    families.push_back(scratch ? scratch_family_name(live[i]->projection->name())
                               : family_name(live[i]->projection->name(), built[i].generation));
  }
  // A family of one of those names can only be a leftover: start it afresh.
  if (auto st = log_.drop_column_families(families); !st.ok()) return st.error();
  auto handles = log_.column_families(families);
  if (!handles.ok()) return handles.error();
  std::vector<Slot*> targets;
  for (std::size_t i = 0; i < live.size(); ++i) {
    built[i].family = (*handles)[i];
    built[i].projection->start_from_empty_store();
    targets.push_back(&built[i]);
  }
  FoldRange range;
  range.to_seq = to_seq;
  if (auto st = fold(log_, targets, range, progress, Into::empty_families); !st.ok()) return st.error();
  return built;
}

Status ProjectionEngine::swap_in(const std::vector<Slot*>& live, std::vector<Slot>&& built) {
  CS_ASSERT(live.size() == built.size(), "one built slot per live one");
  // Every pointer moves in one durable batch: readers switch to all the
  // rebuilt projections at once, and a crash leaves all old or all new.
  rocksdb::WriteBatch pointers;
  std::vector<std::string> old_families;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const std::string name(live[i]->projection->name());
    pointers.Put(pointer_key(name), u64_bytes(built[i].generation) + u64_bytes(built[i].projection->version()));
    old_families.push_back(family_name(name, live[i]->generation));
  }
  {
    std::unique_lock lock(swap_mu_);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    auto s = log_.db().Write(sync, &pointers);
    if (!s.ok()) return projection_store_error(s, "projections: move the pointers of the rebuilt projections");
    for (std::size_t i = 0; i < live.size(); ++i) *live[i] = std::move(built[i]);
  }
  return log_.drop_column_families(old_families);
}

// A live store's projections never pass its log's head. A replay store
// (`csctl replay --out`) holds projections without their log: rebuilding it
// would erase them, and verifying it has nothing to compare against.
Status ProjectionEngine::check_within_head() const {
  const Sequence head = log_.head();
  for (const Slot& slot : slots_) {
    if (slot.checkpoint > head) {
      return invalid_argument("projection " + std::string(slot.projection->name()) + " is at seq " +
                              std::to_string(slot.checkpoint.value) + ", past the head of the log here (seq " +
                              std::to_string(head.value) +
                              "): this is a replay store, which has no log to rebuild or verify from");
    }
  }
  return {};
}

Status ProjectionEngine::rebuild(const std::vector<std::string>& names, const Progress& progress) {
  std::lock_guard lock(fold_mu_);
  Status error;
  auto slots = select(names, error);
  if (!error.ok()) return error;
  if (auto st = check_within_head(); !st.ok()) return st;
  auto built = build(slots, /*scratch=*/false, std::nullopt, progress);
  if (!built.ok()) return built.error();
  // Events appended while it was building.
  std::vector<Slot*> targets;
  for (auto& b : *built) targets.push_back(&b);
  if (auto st = fold(log_, targets, {}, {}); !st.ok()) return st;
  return swap_in(slots, std::move(*built));
}

Status ProjectionEngine::verify(const std::vector<std::string>& names, const Progress& progress) {
  std::lock_guard lock(fold_mu_);
  Status error;
  auto slots = select(names, error);
  if (!error.ok()) return error;
  if (auto st = check_within_head(); !st.ok()) return st;
  if (auto st = fold(log_, slots, {}, progress); !st.ok()) return st;
  Sequence upto = slots.empty() ? Sequence() : slots.front()->checkpoint;
  for (const Slot* live : slots) {
    if (live->checkpoint != upto) {
      return corruption_error("projection " + std::string(live->projection->name()) + " is at seq " +
                              std::to_string(live->checkpoint.value) + " after catching up, projection " +
                              std::string(slots.front()->projection->name()) + " at seq " +
                              std::to_string(upto.value) + ": they should both be at the head");
    }
  }
  auto scratches = build(slots, /*scratch=*/true, upto, progress);
  if (!scratches.ok()) return scratches.error();
  Status result;
  for (std::size_t i = 0; i < slots.size() && result.ok(); ++i) {
    Slot* live = slots[i];
    Slot* scratch = &(*scratches)[i];
    std::unique_ptr<rocksdb::Iterator> a(log_.db().NewIterator({}, live->family));
    std::unique_ptr<rocksdb::Iterator> b(log_.db().NewIterator({}, scratch->family));
    for (a->SeekToFirst(), b->SeekToFirst();; a->Next(), b->Next()) {
      if (!a->Valid() && !b->Valid()) break;
      bool same = a->Valid() && b->Valid() && a->key() == b->key() && a->value() == b->value();
      if (same) continue;
      std::string key = !a->Valid() ? b->key().ToString()
                        : !b->Valid() ? a->key().ToString()
                                      : std::min(a->key().ToString(), b->key().ToString());
      auto shown = [&](rocksdb::Iterator& it) {
        return it.Valid() && it.key().ToString() == key
                   ? live->projection->describe(key, it.value().ToStringView())
                   : std::string("(absent)");
      };
      result = corruption_error("projection " + std::string(live->projection->name()) +
                                " differs from a rebuild at " + describe_key(key) + ": live " + shown(*a) +
                                ", rebuilt " + shown(*b));
      break;
    }
    if (result.ok() && (!a->status().ok() || !b->status().ok())) {
      result = fatal_error("projections: compare: " + (a->status().ok() ? b->status() : a->status()).ToString());
    }
  }
  std::vector<std::string> scratch_families;
  for (const Slot* live : slots) scratch_families.push_back(scratch_family_name(live->projection->name()));
  if (auto st = log_.drop_column_families(scratch_families); !st.ok()) return st;
  return result;
}

Status ProjectionEngine::fold_from(const EventLog& source, const FoldRange& range, const Progress& progress) {
  std::lock_guard lock(fold_mu_);
  auto marked = log_.db().Put({}, std::string(replay_marker_key), source.dir().string());
  if (!marked.ok()) return projection_store_error(marked, "projections: mark replay store");
  std::vector<Slot*> slots;
  for (auto& s : slots_) {
    if (s.checkpoint.value != 0) {
      return invalid_argument("replay target already holds projection state: use an empty directory");
    }
    slots.push_back(&s);
  }
  for (Slot* s : slots) s->projection->start_from_empty_store();
  return fold(source, slots, range, progress, Into::empty_families);
}

// --- queries ------------------------------------------------------------

template <class State>
Result<std::optional<State>> ProjectionEngine::find(std::string_view projection, const Uuid& id,
                                                    PersonalFields fields) const {
  std::shared_lock lock(swap_mu_);
  auto value = StateReader(log_.db(), slot(projection)->family).get(projection_keys::entity(id));
  if (!value.ok()) return value.error();
  if (!*value) return std::optional<State>();
  auto state = decode_state<State>(**value);
  if (!state.ok()) return state.error();
  if (fields == PersonalFields::opened) {
    if (auto s = open_personal(log_, *state); !s.ok()) return s.error();
  }
  return std::optional<State>(std::move(*state));
}

template <class State>
Result<std::vector<State>> ProjectionEngine::owned_by(std::string_view projection, const Uuid& customer) const {
  std::vector<Uuid> ids;
  {
    std::shared_lock lock(swap_mu_);
    std::string prefix = projection_keys::owner_prefix(customer);
    std::unique_ptr<rocksdb::Iterator> it(log_.db().NewIterator({}, slot(projection)->family));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      Uuid::Bytes b{};
      std::copy_n(it->key().data() + prefix.size(), 16, b.begin());
      ids.emplace_back(b);
    }
    if (!it->status().ok()) return fatal_error("projections: scan owners: " + it->status().ToString());
  }
  std::vector<State> out;
  for (const auto& id : ids) {
    auto state = find<State>(projection, id);
    if (!state.ok()) return state.error();
    if (*state) out.push_back(std::move(**state));
  }
  return out;
}

Result<std::optional<CustomerState>> ProjectionEngine::customer(const Uuid& id, PersonalFields fields) const {
  return find<CustomerState>("customers", id, fields);
}
Result<std::optional<UserState>> ProjectionEngine::user(const Uuid& id) const { return find<UserState>("users", id); }
Result<std::optional<SubscriptionState>> ProjectionEngine::subscription(const Uuid& id) const {
  return find<SubscriptionState>("subscriptions", id);
}
Result<std::optional<TokenAccount>> ProjectionEngine::token_account(const Uuid& customer_id) const {
  return find<TokenAccount>("tokens", customer_id);
}
Result<std::vector<UserState>> ProjectionEngine::users_of(const Uuid& customer_id) const {
  return owned_by<UserState>("users", customer_id);
}
Result<std::vector<SubscriptionState>> ProjectionEngine::subscriptions_of(const Uuid& customer_id) const {
  return owned_by<SubscriptionState>("subscriptions", customer_id);
}

Result<CustomerView> ProjectionEngine::view(const Uuid& customer_id) const {
  CustomerView view;
  auto c = customer(customer_id);
  if (!c.ok()) return c.error();
  view.customer = std::move(*c);
  auto t = token_account(customer_id);
  if (!t.ok()) return t.error();
  view.tokens = std::move(*t);
  auto subs = subscriptions_of(customer_id);
  if (!subs.ok()) return subs.error();
  view.subscriptions = std::move(*subs);
  auto users = users_of(customer_id);
  if (!users.ok()) return users.error();
  view.users = std::move(*users);
  return view;
}

Result<std::vector<CustomerState>> ProjectionEngine::customers(std::optional<CustomerStatus> status,
                                                               std::optional<CustomerType> type) const {
  std::shared_lock lock(swap_mu_);
  std::vector<CustomerState> out;
  std::unique_ptr<rocksdb::Iterator> it(log_.db().NewIterator({}, slot("customers")->family));
  std::string prefix(1, projection_keys::entity_tag);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto state = decode_state<CustomerState>(it->value().ToStringView());
    if (!state.ok()) return state.error();
    if (status && state->status != *status) continue;
    if (type && state->customer_type != *type) continue;
    if (auto s = open_personal(log_, *state); !s.ok()) return s.error();
    out.push_back(std::move(*state));
  }
  if (!it->status().ok()) return fatal_error("projections: scan customers: " + it->status().ToString());
  return out;
}

Result<std::vector<TokenAccount>> ProjectionEngine::token_accounts() const {
  std::shared_lock lock(swap_mu_);
  std::vector<TokenAccount> out;
  rocksdb::ReadOptions once;
  once.fill_cache = false;  // one pass: its blocks would only evict others
  std::unique_ptr<rocksdb::Iterator> it(log_.db().NewIterator(once, slot("tokens")->family));
  std::string prefix(1, projection_keys::entity_tag);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto state = decode_state<TokenAccount>(it->value().ToStringView());
    if (!state.ok()) return state.error();
    out.push_back(std::move(*state));
  }
  if (!it->status().ok()) return fatal_error("projections: scan token accounts: " + it->status().ToString());
  return out;
}

}  // namespace cs
