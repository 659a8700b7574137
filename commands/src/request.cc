#include "cs/request.h"

#include <openssl/evp.h>

#include <set>

#include "cs/json_codec.h"
#include "cs/limits.h"

namespace cs {
namespace {

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

Result<Uuid> uuid_field(const nlohmann::json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end()) return invalid_argument(std::string(name) + " is missing");
  auto u = it->is_string() ? Uuid::parse(it->get_ref<const std::string&>()) : std::nullopt;
  if (!u || u->is_nil()) return invalid_argument(std::string(name) + " must be a UUID, got " + shown(*it));
  return *u;
}

}  // namespace

const std::vector<RequestKind>& request_kinds() {
  using E = EventType;
  using R = Resource;
  static const std::vector<RequestKind> kinds = {
      {"admin.customer.action", "validate", R::customer, "validate", E::customer_validated},
      {"admin.customer.action", "suspend", R::customer, "suspend", E::customer_suspended},
      {"admin.customer.action", "reactivate", R::customer, "reactivate", E::customer_reactivated},
      {"admin.customer.action", "delete", R::customer, "delete", E::customer_deleted},
      {"admin.customer.action", "allocate_tokens", R::token, "allocate", E::token_allocated},
      {"admin.customer.action", "erase", R::customer, "erase", E::customer_erased},
      {"customer.data.request", "read", R::customer, "read", std::nullopt},
      {"customer.update.request", "create", R::customer, "create", E::customer_created},
      {"customer.update.request", "update", R::customer, "update", E::customer_updated},
      {"accounting.customer.request", "billing_info", R::customer, "read", std::nullopt},
      {"accounting.customer.request", "record_purchase", R::token, "purchase", E::token_purchased},
      {"accounting.customer.request", "create_subscription", R::subscription, "create", E::subscription_created},
      {"accounting.customer.request", "renew_subscription", R::subscription, "renew", E::subscription_renewed},
      {"accounting.customer.request", "cancel_subscription", R::subscription, "cancel", E::subscription_cancelled},
      {"accounting.customer.request", "expire_subscription", R::subscription, "expire", E::subscription_expired},
      {"mobile.user.action", "create_user", R::user, "create", E::user_created},
      {"mobile.user.action", "update_user", R::user, "update", E::user_updated},
      {"mobile.user.action", "delete_user", R::user, "delete", E::user_deleted},
      {"mobile.user.action", "reset_password", R::user, "reset_password", E::user_password_reset},
      {"mobile.user.action", "use_tokens", R::token, "use", E::token_used},
      {"portfolio-sme.customer.update", "update", R::customer, "update", E::customer_updated},
      {"portfolio-institution.customer.update", "update", R::customer, "update", E::customer_updated},
  };
  return kinds;
}

std::vector<std::string> request_topics() {
  std::vector<std::string> out;
  for (const auto& k : request_kinds()) {
    if (std::find(out.begin(), out.end(), k.topic) == out.end()) out.emplace_back(k.topic);
  }
  return out;
}

const RequestKind* find_request_kind(std::string_view topic, std::string_view action) {
  const RequestKind* only = nullptr;
  std::size_t on_topic = 0;
  for (const auto& k : request_kinds()) {
    if (k.topic != topic) continue;
    ++on_topic;
    only = &k;
    if (k.action == action) return &k;
  }
  return action.empty() && on_topic == 1 ? only : nullptr;
}

Result<Request> parse_request(std::string_view topic, std::string_view value, std::optional<Uuid>* request_id) {
  if (value.size() > request_bytes_max) {
    return invalid_argument("request of " + std::to_string(value.size()) + " bytes is over the limit of " +
                            std::to_string(request_bytes_max));
  }
  if (auto s = check_json_depth(value); !s.ok()) return s.error();
  auto doc = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument("not valid JSON");
  if (!doc.is_object()) return invalid_argument("a request must be a JSON object");

  Request r;
  auto id = uuid_field(doc, "requestId");
  if (!id.ok()) return id.error();
  r.request_id = *id;
  if (request_id) *request_id = *id;

  auto source = doc.find("sourceService");
  if (source == doc.end()) return invalid_argument("sourceService is missing");
  if (!source->is_string() || source->get_ref<const std::string&>().empty() ||
      source->get_ref<const std::string&>().size() > limits::service_name_bytes_max) {
    return invalid_argument("sourceService must be a service name of 1 to " +
                            std::to_string(limits::service_name_bytes_max) + " bytes, got " + shown(*source));
  }
  r.source_service = source->get<std::string>();

  std::string action;
  if (auto a = doc.find("action"); a != doc.end()) {
    if (!a->is_string()) return invalid_argument("action must be a string, got " + shown(*a));
    action = a->get<std::string>();
  }
  r.kind = find_request_kind(topic, action);
  if (r.kind == nullptr) {
    std::string known;
    for (const auto& k : request_kinds()) {
      if (k.topic == topic) known += (known.empty() ? "" : ", ") + std::string(k.action);
    }
    if (known.empty()) return invalid_argument("topic " + std::string(topic) + " is not a request topic");
    return invalid_argument("action " + shown(action) + " is not an action of " + std::string(topic) + " (" +
                            known + ")");
  }

  if (doc.contains("customerId")) {
    auto c = uuid_field(doc, "customerId");
    if (!c.ok()) return c.error();
    r.customer_id = *c;
  } else if (r.kind->event != EventType::customer_created) {
    return invalid_argument("customerId is missing");
  }
  if (auto details = doc.find("details"); details != doc.end() && !details->is_object()) {
    return invalid_argument("details must be an object, got " + shown(*details));
  }
  if (!r.kind->event) {
    static const std::set<std::string> parts = {"customer", "users", "subscriptions", "tokens"};
    auto include = doc.find("include");
    if (include == doc.end()) {
      r.include = r.kind->action == "billing_info" ? std::vector<std::string>{"customer", "subscriptions", "tokens"}
                                                   : std::vector<std::string>{"customer"};
    } else {
      if (!include->is_array() || include->empty() || include->size() > parts.size()) {
        return invalid_argument("include must name 1 to 4 of customer, users, subscriptions, tokens");
      }
      for (const auto& part : *include) {
        if (!part.is_string() || !parts.contains(part.get<std::string>())) {
          return invalid_argument("include: " + shown(part) + " is not one of customer, users, subscriptions, tokens");
        }
        r.include.push_back(part.get<std::string>());
      }
    }
  }
  r.fields = std::move(doc);
  return r;
}

Uuid derived_uuid(const Uuid& request_id, std::string_view purpose) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // Fetched once: EVP_sha256() makes every EVP_DigestInit_ex look the
  // implementation up again. A fetched EVP_MD may be shared by threads.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  CS_ASSERT(sha256 != nullptr, "OpenSSL has no SHA-256");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  CS_ASSERT(ctx != nullptr, "EVP_MD_CTX_new failed");
  bool ok = EVP_DigestInit_ex(ctx, sha256, nullptr) == 1 &&
            EVP_DigestUpdate(ctx, request_id.bytes().data(), request_id.bytes().size()) == 1 &&
            EVP_DigestUpdate(ctx, purpose.data(), purpose.size()) == 1 && EVP_DigestFinal_ex(ctx, digest, &size) == 1;
  EVP_MD_CTX_free(ctx);
  CS_ASSERT(ok && size >= 16, "SHA-256 failed");
  Uuid::Bytes bytes{};
  std::copy_n(digest, 16, bytes.begin());
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x50);  // version 5 layout
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return Uuid(bytes);
}

}  // namespace cs
