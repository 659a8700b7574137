#include "test_support.h"

namespace cs::test {

std::vector<Payload> one_of_each_type() {
  Uuid c = uuid(1), u = uuid(2), s = uuid(3), admin = uuid(4);
  Timestamp end = at_seconds(86400 * 30);
  return {
      CustomerCreated{c, CustomerType::institution, "Banque Exemple", "ops@banque.example"},
      CustomerUpdated{c, {"email", "name"}, {{"email", "\"new@banque.example\""}, {"name", "\"Banque 2\""}}},
      CustomerValidated{c, admin},
      CustomerSuspended{c, admin, "unpaid invoices"},
      CustomerReactivated{c, admin},
      CustomerDeleted{c, admin, "customer asked"},
      UserCreated{u, c, "jane@banque.example", "owner"},
      UserUpdated{u, c, {"role"}, {{"role", "\"viewer\""}}},
      UserDeleted{u, c},
      UserPasswordReset{u, c},
      SubscriptionCreated{s, c, "pro-monthly", end},
      SubscriptionUpdated{s, c, {"planId"}, {{"planId", "\"pro-yearly\""}}},
      SubscriptionRenewed{s, c, at_seconds(86400 * 60)},
      SubscriptionCancelled{s, c, "too expensive"},
      SubscriptionExpired{s, c},
      TokenPurchased{c, 100, 4900, "EUR", "pay-001"},
      TokenUsed{c, 5, uuid(6), u, "export"},
      TokenAllocated{c, 20, admin, "goodwill"},
  };
}

}  // namespace cs::test
