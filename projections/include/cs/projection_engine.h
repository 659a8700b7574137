// Drives the projections over a log: folds new events (catch-up), rebuilds
// from scratch behind the readers' backs, and checks that a rebuild equals
// what was folded incrementally.
//
// Storage: projection P lives in column family "proj.P.<generation>"; the key
// "projection/P" in the default family names the live generation and the
// projection version it was built with. A rebuild folds into generation g+1,
// then one write moves the pointer and the old family is dropped: readers see
// the old state or the new, and a crash before the pointer moves leaves the
// old state serving (the half-built family is dropped at the next open).
//
// Exactly once (log -> projection): each fold batch writes the state it
// produced and the checkpoint in one WriteBatch, so after a crash the fold
// resumes after the checkpoint: no event applied twice, none skipped.
//
// Thread safety: queries may run from any thread at any time; catch_up,
// rebuild and verify serialize among themselves.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cs/event_log.h"
#include "cs/folds.h"
#include "cs/projection.h"
#include "cs/read_models.h"

namespace cs {

// In a store built by fold_from (replay): the source log's directory.
inline constexpr std::string_view replay_marker_key = "replay/source";

// Events read and folded per write batch when catching up live projections.
inline constexpr std::size_t fold_batch_events_max = 20'000;
// The same when building a fresh family (rebuild, verify, replay), whose
// batches are ingested as table files.
inline constexpr std::size_t build_batch_events_max = 500'000;
// Up to this many events, a fold reads them on its own thread: a second
// thread to decode ahead pays off over long reads, not over the few events
// a live catch-up meets (the daemon's, after each wave of requests).
inline constexpr std::size_t fold_inline_read_events_max = 256;

// Called now and then with events done and events to do in this run.
using Progress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// What to fold from a source log (replay): a sequence range, and optionally
// only events up to a timestamp or of one customer.
struct FoldRange {
  Sequence from_seq{1};
  std::optional<Sequence> to_seq;        // default: the source's head
  std::optional<Timestamp> as_of;        // only events with timestamp <= as_of
  std::optional<Uuid> customer;          // only this customer's events
};

struct ProjectionStatus {
  std::string name;
  std::uint32_t version = 0;
  std::uint64_t generation = 0;
  Sequence checkpoint;
};

class ProjectionEngine {
 public:
  // Opens the domain projections over `log` (borrowed; must outlive the
  // engine), creating their families on first use and dropping leftovers of
  // interrupted rebuilds. Projections stored under another version are
  // rebuilt by the next catch_up.
  static Result<std::unique_ptr<ProjectionEngine>> open(EventLog& log);
  static Result<std::unique_ptr<ProjectionEngine>> open(EventLog& log,
                                                        std::vector<std::unique_ptr<Projection>> projections);

  // Folds every event after each projection's checkpoint up to the head.
  // Returns how many events were read.
  Result<std::uint64_t> catch_up(const Progress& progress = {});

  // Rebuilds the named projections (empty: all) from sequence 1 into a shadow
  // generation and swaps it in atomically.
  Status rebuild(const std::vector<std::string>& names = {}, const Progress& progress = {});

  // Catches up, rebuilds each projection into a scratch family and compares
  // it with the live one byte for byte. Returns corruption naming the
  // projection, the first differing key and both values.
  Status verify(const std::vector<std::string>& names = {}, const Progress& progress = {});

  // Folds events of `source` (another log) into these projections, which
  // must be empty: the as-of and bounded replay. Checkpoints end at the last
  // sequence read.
  Status fold_from(const EventLog& source, const FoldRange& range, const Progress& progress = {});

  std::vector<ProjectionStatus> status() const;
  std::vector<std::string> names() const;

  // Queries of the live state. nullopt when the entity is unknown.
  // Personal fields come opened (plaintext, or null and `erased` when the
  // customer's key is gone); a caller that needs none of them (a command's
  // rules: status, type, version) asks kept_sealed and pays no decryption.
  enum class PersonalFields { opened, kept_sealed };
  Result<std::optional<CustomerState>> customer(const Uuid& id,
                                                PersonalFields fields = PersonalFields::opened) const;
  Result<std::optional<UserState>> user(const Uuid& id) const;
  Result<std::optional<SubscriptionState>> subscription(const Uuid& id) const;
  Result<std::optional<TokenAccount>> token_account(const Uuid& customer_id) const;
  Result<std::vector<UserState>> users_of(const Uuid& customer_id) const;
  Result<std::vector<SubscriptionState>> subscriptions_of(const Uuid& customer_id) const;
  // The customer, its token account, subscriptions and users.
  Result<CustomerView> view(const Uuid& customer_id) const;
  // Every customer, filtered; ordered by customer id.
  Result<std::vector<CustomerState>> customers(std::optional<CustomerStatus> status,
                                               std::optional<CustomerType> type) const;
  // Every token account, ordered by customer id: one pass over the family,
  // for callers that want most of them (an audit) rather than a lookup each.
  Result<std::vector<TokenAccount>> token_accounts() const;

 private:
  struct Slot {
    std::unique_ptr<Projection> projection;
    rocksdb::ColumnFamilyHandle* family = nullptr;
    std::uint64_t generation = 0;
    Sequence checkpoint;
    bool stale = false;  // stored under another projection version
  };

  explicit ProjectionEngine(EventLog& log) : log_(log) {}
  // What the slots' families hold when a fold starts: live state (written
  // through batches), or nothing (a fresh build: ingested as table files).
  enum class Into { live_families, empty_families };
  Status fold(const EventLog& source, std::vector<Slot*> slots, const FoldRange& range, const Progress& progress,
              Into into = Into::live_families);
  // Folds fresh copies of `live` into new families (the next generation, or
  // scratch ones) in one pass over the log.
  Result<std::vector<Slot>> build(const std::vector<Slot*>& live, bool scratch, std::optional<Sequence> to_seq,
                                  const Progress& progress);
  // Points readers at `built` instead of `live` (one durable write for all)
  // and drops the families they replace.
  Status swap_in(const std::vector<Slot*>& live, std::vector<Slot>&& built);
  Status check_within_head() const;
  std::vector<Slot*> select(const std::vector<std::string>& names, Status& error);
  const Slot* slot(std::string_view name) const;
  template <class State>
  Result<std::optional<State>> find(std::string_view projection, const Uuid& id,
                                    PersonalFields fields = PersonalFields::opened) const;
  template <class State>
  Result<std::vector<State>> owned_by(std::string_view projection, const Uuid& customer) const;

  EventLog& log_;
  std::vector<Slot> slots_;
  std::mutex fold_mu_;                 // one fold, rebuild or verify at a time
  mutable std::shared_mutex swap_mu_;  // readers shared, a generation swap exclusive
};

}  // namespace cs
