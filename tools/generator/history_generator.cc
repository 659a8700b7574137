#include "history_generator.h"

#include <algorithm>
#include <array>
#include <string>

namespace cs {
namespace {

constexpr std::int64_t minute = 60, hour = 3600, day = 86400;

// splitmix64: tiny, fast and the same everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::int64_t between(std::int64_t lo, std::int64_t hi) {  // inclusive
    return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  bool chance(int percent) { return static_cast<int>(next() % 100) < percent; }
  Uuid uuid() { return Uuid::from_words(next(), next()); }
  template <class T, std::size_t N>
  const T& pick(const std::array<T, N>& items) { return items[next() % N]; }

 private:
  std::uint64_t state_;
};

constexpr std::array<const char*, 12> name_words = {"Atlas", "Baobab", "Cobalt", "Delta", "Etoile", "Faro",
                                                    "Granit", "Horizon", "Iroko", "Jade", "Kora", "Lumen"};
constexpr std::array<const char*, 6> sme_suffixes = {"SARL", "SAS", "Services", "Trading", "Labs", "& Fils"};
constexpr std::array<const char*, 5> institution_suffixes = {"Bank", "Microfinance", "Capital", "Fund", "Mutual"};
constexpr std::array<const char*, 4> plans = {"starter-monthly", "pro-monthly", "pro-yearly", "enterprise-yearly"};
constexpr std::array<const char*, 5> features = {"export", "credit-scoring", "report", "api-call", "ocr"};
constexpr std::array<const char*, 3> roles = {"admin", "member", "viewer"};
constexpr std::array<const char*, 3> currencies = {"EUR", "USD", "XOF"};
constexpr std::array<const char*, 4> suspension_reasons = {"unpaid invoices", "documents expired",
                                                           "suspected fraud", "compliance review"};

// One customer's whole life, in time order.
class CustomerLife {
 public:
  CustomerLife(std::uint64_t seed, Timestamp start) : rng_(seed), now_(start) {}

  std::vector<NewEvent> run() {
    create();
    if (!rng_.chance(90)) {  // never validated; some are deleted as stale
      if (rng_.chance(50)) delete_customer("never validated");
      return std::move(events_);
    }
    advance(hour, 3 * day);
    emit(CustomerValidated{customer_, admin_}, "admin-service");
    status_ = Status::validated;
    add_user("owner");
    start_subscription();
    purchase();
    if (rng_.chance(40)) allocate("welcome bonus", 10, 200);
    const std::int64_t steps = rng_.between(5, 40);
    for (std::int64_t i = 0; i < steps && status_ != Status::deleted; ++i) {
      advance(30 * minute, 6 * day);
      subscription_due();
      step();
    }
    if (status_ != Status::deleted && rng_.chance(5)) delete_customer("account closed on request");
    return std::move(events_);
  }

 private:
  enum class Status { pending, validated, suspended, deleted };

  template <class P>
  void emit(P payload, const char* service) {
    NewEvent e;
    e.id = rng_.uuid();
    e.timestamp = now_;
    e.meta.source_service = service;
    e.meta.correlation_id = rng_.uuid();
    e.payload = std::move(payload);
    events_.push_back(std::move(e));
  }

  void advance(std::int64_t lo_seconds, std::int64_t hi_seconds) {
    now_.micros += rng_.between(lo_seconds, hi_seconds) * 1'000'000;
  }

  void create() {
    customer_ = rng_.uuid();
    admin_ = rng_.uuid();
    type_ = rng_.chance(60) ? CustomerType::sme : CustomerType::institution;
    std::string name = std::string(rng_.pick(name_words)) + " " +
                       (type_ == CustomerType::sme ? rng_.pick(sme_suffixes) : rng_.pick(institution_suffixes));
    domain_ = std::string(rng_.pick(name_words)) + std::to_string(rng_.between(1, 999)) + ".example";
    for (auto& c : domain_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    emit(CustomerCreated{customer_, type_, name, "contact@" + domain_}, "admin-service");
  }

  void add_user(const char* role) {
    Uuid user = rng_.uuid();
    users_.push_back(user);
    emit(UserCreated{user, customer_, "user" + std::to_string(users_.size()) + "@" + domain_, role},
         "app-mobile-service");
  }

  void start_subscription() {
    subscription_ = rng_.uuid();
    plan_ = rng_.pick(plans);
    period_days_ = std::string(plan_).ends_with("yearly") ? 365 : 30;
    period_end_ = Timestamp{now_.micros + period_days_ * day * 1'000'000};
    renewals_left_ = rng_.between(0, 8);
    subscription_active_ = true;
    emit(SubscriptionCreated{subscription_, customer_, plan_, period_end_}, "accounting-service");
  }

  // At each period end: renew, or let it expire.
  void subscription_due() {
    while (subscription_active_ && period_end_ <= now_) {
      Timestamp saved = now_;
      now_ = period_end_;
      if (renewals_left_-- > 0 && status_ == Status::validated) {
        period_end_.micros += period_days_ * day * 1'000'000;
        emit(SubscriptionRenewed{subscription_, customer_, period_end_}, "accounting-service");
      } else {
        emit(SubscriptionExpired{subscription_, customer_}, "accounting-service");
        subscription_active_ = false;
      }
      now_ = std::max(saved, now_);
    }
  }

  void purchase() {
    std::int64_t amount = rng_.between(1, 50) * 100;
    emit(TokenPurchased{customer_, amount, amount * rng_.between(2, 9), rng_.pick(currencies),
                        "pay_" + rng_.uuid().to_string().substr(0, 18)},
         "accounting-service");
    balance_ += amount;
  }

  void allocate(const char* reason, std::int64_t lo, std::int64_t hi) {
    std::int64_t amount = rng_.between(lo, hi);
    emit(TokenAllocated{customer_, amount, admin_, reason}, "admin-service");
    balance_ += amount;
  }

  void use_tokens() {
    std::int64_t amount = rng_.between(1, 40);
    if (users_.empty() || amount > balance_) return purchase();
    emit(TokenUsed{customer_, amount, rng_.uuid(), users_[rng_.next() % users_.size()], rng_.pick(features)},
         "app-mobile-service");
    balance_ -= amount;
  }

  void step() {
    std::int64_t roll = rng_.between(0, 99);
    if (status_ == Status::suspended) {
      if (roll < 70) {
        emit(CustomerReactivated{customer_, admin_}, "admin-service");
        status_ = Status::validated;
      }
      return;
    }
    if (roll < 45) return use_tokens();
    if (roll < 55) return purchase();
    if (roll < 61) return add_user(rng_.pick(roles));
    if (roll < 65 && users_.size() > 1) {
      emit(UserUpdated{users_.back(), customer_, {"role"}, {{"role", "\"" + std::string(rng_.pick(roles)) + "\""}}},
           "app-mobile-service");
      return;
    }
    if (roll < 69 && !users_.empty()) {
      return emit(UserPasswordReset{users_[rng_.next() % users_.size()], customer_}, "app-mobile-service");
    }
    if (roll < 71 && users_.size() > 1) {
      emit(UserDeleted{users_.back(), customer_}, "admin-service");
      users_.pop_back();
      return;
    }
    if (roll < 74) {
      std::string email = "\"billing" + std::to_string(rng_.between(1, 99)) + "@" + domain_ + "\"";
      return emit(CustomerUpdated{customer_, {"email"}, {{"email", email}}}, "admin-service");
    }
    if (roll < 76 && subscription_active_) {
      emit(SubscriptionCancelled{subscription_, customer_, "customer asked"}, "accounting-service");
      subscription_active_ = false;
      return;
    }
    if (roll < 78 && !subscription_active_) return start_subscription();
    if (roll < 80 && subscription_active_) {
      plan_ = rng_.pick(plans);
      return emit(SubscriptionUpdated{subscription_, customer_, {"planId"}, {{"planId", "\"" + std::string(plan_) + "\""}}},
                  "accounting-service");
    }
    if (roll < 81) {
      emit(CustomerSuspended{customer_, admin_, rng_.pick(suspension_reasons)}, "admin-service");
      status_ = Status::suspended;
      return;
    }
    if (roll < 84) return allocate("support gesture", 5, 100);
    use_tokens();
  }

  void delete_customer(const char* reason) {
    advance(day, 20 * day);
    if (subscription_active_) {
      emit(SubscriptionCancelled{subscription_, customer_, "customer deleted"}, "accounting-service");
      subscription_active_ = false;
    }
    emit(CustomerDeleted{customer_, admin_, reason}, "admin-service");
    status_ = Status::deleted;
  }

  Rng rng_;
  Timestamp now_;
  std::vector<NewEvent> events_;
  Uuid customer_, admin_, subscription_;
  CustomerType type_ = CustomerType::sme;
  std::string domain_;
  std::vector<Uuid> users_;
  Status status_ = Status::pending;
  const char* plan_ = "";
  std::int64_t period_days_ = 30;
  Timestamp period_end_;
  std::int64_t renewals_left_ = 0;
  bool subscription_active_ = false;
  std::int64_t balance_ = 0;
};

}  // namespace

struct HistoryGenerator::Pending {
  std::uint64_t customer_index;
  std::vector<NewEvent> events;
  std::size_t next = 0;
  Timestamp time() const { return events[next].timestamp; }
};

namespace {
bool later(const std::unique_ptr<HistoryGenerator::Pending>& a,
           const std::unique_ptr<HistoryGenerator::Pending>& b) {
  if (a->time() != b->time()) return a->time() > b->time();
  return a->customer_index > b->customer_index;
}
}  // namespace

HistoryGenerator::HistoryGenerator(GeneratorOptions options)
    : options_(options), next_start_(options.start), start_rng_state_(options.seed) {}

HistoryGenerator::~HistoryGenerator() = default;

// Starts every customer whose life begins at or before `t`.
void HistoryGenerator::activate_until(Timestamp t) {
  while (next_customer_ < options_.customers && next_start_ <= t) {
    Rng seeds(start_rng_state_ ^ (next_customer_ * 0xD1B54A32D192ED03ULL));
    auto pending = std::make_unique<Pending>();
    pending->customer_index = next_customer_;
    pending->events = CustomerLife(seeds.next(), next_start_).run();
    heap_.push_back(std::move(pending));
    std::push_heap(heap_.begin(), heap_.end(), later);
    ++next_customer_;
    std::int64_t gap = options_.customer_spacing_seconds;
    next_start_.micros += (gap / 2 + static_cast<std::int64_t>(seeds.next() % static_cast<std::uint64_t>(gap + 1))) * 1'000'000;
  }
}

std::optional<NewEvent> HistoryGenerator::next() {
  activate_until(heap_.empty() ? next_start_ : heap_.front()->time());
  if (heap_.empty()) return std::nullopt;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  auto& top = heap_.back();
  NewEvent e = std::move(top->events[top->next++]);
  if (top->next == top->events.size()) {
    heap_.pop_back();
  } else {
    std::push_heap(heap_.begin(), heap_.end(), later);
  }
  return e;
}

}  // namespace cs
