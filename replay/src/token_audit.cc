#include "cs/token_audit.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <map>

#include "cs/read_ahead.h"
#include "cs/read_models.h"

namespace cs {
namespace {

void add_saturating(std::int64_t& total, std::int64_t amount) {
  if (__builtin_add_overflow(total, amount, &total)) total = amount > 0 ? INT64_MAX : INT64_MIN;
}

constexpr std::int64_t micros_per_day = 86'400'000'000;


// Per-key sums of one customer (tokens by feature, by user): a handful of
// keys nearly always, so a vector searched in order, where a std::map per
// customer cost a cache miss per node on every use. Past small_sums_max
// keys (a log can name any number) it goes over to the map.
template <class Key>
class SmallSums {
 public:
  static constexpr std::size_t small_sums_max = 16;

  void add(const Key& key, std::int64_t amount) {
    if (!large_.empty()) {
      large_[key] += amount;
      return;
    }
    for (auto& [k, sum] : small_) {
      if (k == key) {
        sum += amount;
        return;
      }
    }
    if (small_.size() < small_sums_max) {
      small_.emplace_back(key, amount);
      return;
    }
    for (auto& [k, sum] : small_) large_.emplace(std::move(k), sum);
    small_.clear();
    large_[key] += amount;
  }

  // The sums in key order, each key once; leaves this empty.
  std::vector<std::pair<Key, std::int64_t>> take_sorted() {
    std::vector<std::pair<Key, std::int64_t>> out;
    if (large_.empty()) {
      out.swap(small_);
      std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    } else {
      out.reserve(large_.size());
      for (auto& [k, sum] : large_) out.emplace_back(k, sum);
      large_.clear();
    }
    return out;
  }

 private:
  std::vector<std::pair<Key, std::int64_t>> small_;
  std::map<Key, std::int64_t> large_;
};

// What the scan tracks per customer over the whole history.
struct Track {
  std::int64_t balance = 0;  // in log order, all events
  bool had_credit = false;
  CustomerStatus status = CustomerStatus::pending;
  Sequence last_token_seq;
  std::int64_t purchased = 0, allocated = 0, used = 0;  // whole history
  CustomerAudit* audit = nullptr;                       // in scope
  // (day number, figures) in the window, sorted; events come mostly in time
  // order, so this is nearly always an append.
  std::vector<std::pair<std::int64_t, DayFigures>> days;
  SmallSums<std::string> used_by_feature;  // in the window
  SmallSums<Uuid> used_by_user;            // in the window
};

class Auditor {
 public:
  explicit Auditor(const AuditOptions& options) : options_(options) {}

  void apply(const RecordedEvent& e) {
    ++report_.events_scanned;
    const Uuid& customer = payload_customer_id(e.payload);
    if (options_.customer && customer != *options_.customer) return;
    Category category = category_of(e.type());
    if (category == Category::customer) return track_status(e);
    if (category != Category::token) return;
    Track& t = track(customer);
    t.last_token_seq = e.seq;
    std::int64_t delta = 0;
    if (const auto* p = std::get_if<TokenPurchased>(&e.payload)) {
      if (p->payment_reference.empty()) {
        find(e.seq, "missing-payment-reference", customer,
             "purchase of " + std::to_string(p->amount) + " tokens has no paymentReference (schema v" +
                 std::to_string(e.stored_schema_version) + ")");
      }
      delta = credit(t, e, p->amount, &Track::purchased, &TokenFigures::purchased, &DayFigures::purchased);
    } else if (const auto* p = std::get_if<TokenAllocated>(&e.payload)) {
      if (p->admin_id.is_nil()) {
        find(e.seq, "missing-admin-id", customer,
             "allocation of " + std::to_string(p->amount) + " tokens has no adminId (schema v" +
                 std::to_string(e.stored_schema_version) + ")");
      }
      delta = credit(t, e, p->amount, &Track::allocated, &TokenFigures::allocated, &DayFigures::allocated);
    } else if (const auto* p = std::get_if<TokenUsed>(&e.payload)) {
      check_use(e, *p, t, customer);
      delta = -p->amount;
      t.used += p->amount;
      if (in_window(e)) {
        t.audit->figures.used += p->amount;
        day(t, e).used += p->amount;
        t.used_by_feature.add(p->feature, p->amount);
        t.used_by_user.add(p->user_id, p->amount);
      }
    }
    t.balance += delta;
    if (before_window(e)) t.audit->figures.balance_start += delta;
    if (in_window(e)) add_point(*t.audit, {e.timestamp, t.balance, e.seq});
  }

  void find(Sequence seq, std::string rule, std::optional<Uuid> customer, std::string message) {
    report_.findings.push_back({seq, std::move(rule), customer, std::move(message)});
  }

  // Stored token accounts against the log's.
  Status compare_projection(ProjectionEngine& projections) {
    // One pass over the stored accounts beside the tracks in the same
    // order: a point lookup per customer cost 1.7 us each.
    auto accounts = projections.token_accounts();
    if (!accounts.ok()) return accounts.error();
    std::vector<std::pair<Uuid, const Track*>> in_order;
    in_order.reserve(tracks_.size());
    for (const auto& [customer, t] : tracks_) in_order.emplace_back(customer, &t);
    std::sort(in_order.begin(), in_order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    auto next_account = accounts->cbegin();
    for (const auto& [customer, track] : in_order) {
      const Track& t = *track;
      while (next_account != accounts->cend() && next_account->customer_id < customer) ++next_account;
      std::optional<TokenAccount> stored;
      if (next_account != accounts->cend() && next_account->customer_id == customer) stored = *next_account;
      TokenAccount expected;
      expected.purchased = t.purchased;
      expected.allocated = t.allocated;
      expected.used = t.used;
      expected.balance = t.balance;
      if (!stored) {
        find(t.last_token_seq, "projection-mismatch", customer, "no stored token account, the log gives balance " +
                                                                    std::to_string(t.balance));
        continue;
      }
      const TokenAccount& s = *stored;
      if (s.purchased != expected.purchased || s.allocated != expected.allocated || s.used != expected.used ||
          s.balance != expected.balance) {
        find(t.last_token_seq, "projection-mismatch", customer,
             "stored account says balance " + std::to_string(s.balance) + " (purchased " +
                 std::to_string(s.purchased) + ", allocated " + std::to_string(s.allocated) + ", used " +
                 std::to_string(s.used) + "), the log gives " + std::to_string(expected.balance) + " (purchased " +
                 std::to_string(expected.purchased) + ", allocated " + std::to_string(expected.allocated) +
                 ", used " + std::to_string(expected.used) + ")");
      }
    }
    return {};
  }

  AuditReport finish(Sequence head) {
    report_.options = options_;
    report_.head = head;
    for (auto& [customer, t] : tracks_) {
      t.audit->days = std::move(t.days);
      t.audit->used_by_feature = t.used_by_feature.take_sorted();
      t.audit->used_by_user = t.used_by_user.take_sorted();
    }
    report_.customers.reserve(audits_.size());
    for (auto& [customer, audit] : audits_) {
      auto& f = audit.figures;
      f.balance_end = f.balance_start + f.purchased + f.allocated - f.used;
      std::int64_t running = f.balance_start;
      for (auto& [date, d] : audit.days) {
        running += d.purchased + d.allocated - d.used;
        d.balance_end = running;
      }
      // One account's figures stay under limits::token_total_max (the log
      // refuses more); their sum over every customer may not fit: it
      // saturates instead of overflowing.
      add_saturating(report_.totals.balance_start, f.balance_start);
      add_saturating(report_.totals.purchased, f.purchased);
      add_saturating(report_.totals.allocated, f.allocated);
      add_saturating(report_.totals.used, f.used);
      add_saturating(report_.totals.balance_end, f.balance_end);
      report_.customers.push_back(std::move(audit));
    }
    std::stable_sort(report_.findings.begin(), report_.findings.end(),
                     [](const AuditFinding& a, const AuditFinding& b) { return a.seq < b.seq; });
    return std::move(report_);
  }

 private:
  Track& track(const Uuid& customer) {
    Track& t = tracks_[customer];
    if (!t.audit) {
      CustomerAudit& audit = audits_[customer];
      audit.customer = customer;
      t.audit = &audit;
    }
    return t;
  }

  // A purchase or an allocation: the same bookkeeping on different fields.
  std::int64_t credit(Track& t, const RecordedEvent& e, std::int64_t amount, std::int64_t Track::*total,
                      std::int64_t TokenFigures::*figure, std::int64_t DayFigures::*day_figure) {
    t.*total += amount;
    t.had_credit = true;
    if (in_window(e)) {
      t.audit->figures.*figure += amount;
      day(t, e).*day_figure += amount;
    }
    return amount;
  }

  void track_status(const RecordedEvent& e) {
    CustomerStatus& status = statuses_[payload_customer_id(e.payload)];
    switch (e.type()) {
      case EventType::customer_created: status = CustomerStatus::pending; break;
      case EventType::customer_validated:
      case EventType::customer_reactivated: status = CustomerStatus::validated; break;
      case EventType::customer_suspended: status = CustomerStatus::suspended; break;
      case EventType::customer_deleted: status = CustomerStatus::deleted; break;
      default: break;
    }
  }

  void check_use(const RecordedEvent& e, const TokenUsed& p, Track& t, const Uuid& customer) {
    if (!t.had_credit) {
      find(e.seq, "use-without-credit", customer,
           "use of " + std::to_string(p.amount) + " tokens before any purchase or allocation");
    } else if (t.balance - p.amount < 0) {
      find(e.seq, "negative-balance", customer,
           "use of " + std::to_string(p.amount) + " tokens takes the balance from " + std::to_string(t.balance) +
               " to " + std::to_string(t.balance - p.amount));
    }
    auto [it, first] = usage_ids_.emplace(p.usage_id, e.seq);
    if (!first) {
      find(e.seq, "duplicate-usage-id", customer,
           "usageId " + p.usage_id.to_string() + " was already used at seq " + std::to_string(it->second.value));
    }
    auto status = statuses_.find(customer);
    if (status != statuses_.end() && status->second == CustomerStatus::suspended) {
      find(e.seq, "use-while-suspended", customer, "use of " + std::to_string(p.amount) + " tokens while suspended");
    }
    if (status != statuses_.end() && status->second == CustomerStatus::deleted) {
      find(e.seq, "use-after-deletion", customer,
           "use of " + std::to_string(p.amount) + " tokens after the customer was deleted");
    }
  }

  bool before_window(const RecordedEvent& e) const { return options_.from && e.timestamp < *options_.from; }
  bool in_window(const RecordedEvent& e) const {
    return !before_window(e) && !(options_.to && e.timestamp >= *options_.to);
  }
  static DayFigures& day(Track& t, const RecordedEvent& e) {
    std::int64_t number = audit_day_of(e.timestamp);
    if (t.days.empty() || t.days.back().first < number) return t.days.emplace_back(number, DayFigures{}).second;
    if (t.days.back().first == number) return t.days.back().second;
    auto it = std::lower_bound(t.days.begin(), t.days.end(), number,
                               [](const auto& entry, std::int64_t n) { return entry.first < n; });
    if (it == t.days.end() || it->first != number) it = t.days.emplace(it, number, DayFigures{});
    return it->second;
  }

  static void add_point(CustomerAudit& audit, CustomerAudit::Point point) {
    audit.balance_points.push_back(point);
    if (audit.balance_points.size() > audit_balance_points_max) {
      // Keep the chart's shape: drop every other point, the last one stays.
      std::vector<CustomerAudit::Point> kept;
      for (std::size_t i = 0; i < audit.balance_points.size(); i += 2) kept.push_back(audit.balance_points[i]);
      if (kept.back().seq != point.seq) kept.push_back(point);
      audit.balance_points = std::move(kept);
    }
  }

  AuditOptions options_;
  AuditReport report_;
  absl::flat_hash_map<Uuid, Track, std::hash<Uuid>> tracks_;  // values point into audits_
  std::map<Uuid, CustomerAudit> audits_;  // ordered for the report; nodes never move
  absl::flat_hash_map<Uuid, CustomerStatus, std::hash<Uuid>> statuses_;
  absl::flat_hash_map<Uuid, Sequence, std::hash<Uuid>> usage_ids_;
};

}  // namespace

std::int64_t audit_day_of(Timestamp t) {
  return t.micros >= 0 ? t.micros / micros_per_day : (t.micros - micros_per_day + 1) / micros_per_day;
}

std::string audit_day_name(std::int64_t day) {
  char stamp[timestamp_chars_max];
  const std::size_t length = write_timestamp(Timestamp{day * micros_per_day}, stamp);
  return std::string(stamp, static_cast<std::size_t>(std::find(stamp, stamp + length, 'T') - stamp));
}

Result<AuditReport> audit_tokens(const EventLog& log, ProjectionEngine* projections, const AuditOptions& options,
                                 const Progress& progress) {
  Auditor auditor(options);
  const Sequence head = log.head();
  Sequence next(1);
  std::uint64_t done = 0;
  auto visit = [&](const RecordedEvent& e) {
    auditor.apply(e);
    next = e.seq.next();
    if (++done % 8192 == 0 && progress) progress(done, head.value);
    return true;
  };
  // Read with the chain verified; where it breaks, report it, take the event
  // as stored, and go on verifying from the stored hash.
  while (next <= head) {
    auto s = read_ahead(log, {.from_seq = next, .to_seq = head, .verify_chain = true}, visit);
    if (s.ok()) break;
    if (s.error().cause() != ErrorCause::broken_chain) {
      return s.error();
    }
    auto broken = log.read_event(next);
    if (!broken.ok()) return broken.error();
    auditor.find(next, "broken-chain", payload_customer_id(broken->payload),
                 "the stored hash does not match the event's bytes: it was altered after it was written");
    visit(*broken);
  }
  if (progress) progress(done, head.value);
  if (projections) {
    auto caught = projections->catch_up();
    if (!caught.ok()) return caught.error();
    if (auto s = auditor.compare_projection(*projections); !s.ok()) return s.error();
  }
  return auditor.finish(head);
}

}  // namespace cs
