#include "cs/service_credentials.h"

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cs/event.h"
#include "cs/json_codec.h"
#include "cs/limits.h"

namespace cs {
namespace {

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

namespace {

// Fetched once: OpenSSL 3's one-shot HMAC() looks the algorithm up on every
// call, which was most of a signature check's cost. A fetched EVP_MAC is
// immutable and may be shared by threads.
EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  CS_ASSERT(hmac != nullptr, "OpenSSL has no HMAC");
  return hmac;
}

// An HMAC-SHA256 context with `key` set and nothing hashed: duplicating it
// skips the digest's lookup and the key's padding and first hashing, a
// third of a signature check.
std::shared_ptr<EVP_MAC_CTX> keyed_hmac(std::string_view key) {
  std::shared_ptr<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(hmac_algorithm()), &EVP_MAC_CTX_free);
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                               OSSL_PARAM_construct_end()};
  // EVP_MAC_init reads a null key as "keep the key set before", and a fresh
  // context has none, so an empty view without a data pointer failed. HMAC
  // pads a key with zeros to the block size: one zero byte is the same key.
  if (key.empty()) key = std::string_view("\0", 1);
  const bool keyed =
      ctx && EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) == 1;
  CS_ASSERT(keyed, "HMAC-SHA256 init failed");
  return ctx;
}

// The hex HMAC of `message` under the key of `keyed`, which is left as it was.
std::string keyed_hmac_hex(const EVP_MAC_CTX* keyed, std::string_view message) {
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_dup(keyed), &EVP_MAC_CTX_free);
  Hash digest{};  // SHA-256 sized, so the log's hex form serves
  std::size_t size = 0;
  const bool done =
      ctx && EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1 &&
      EVP_MAC_final(ctx.get(), digest.data(), &size, digest.size()) == 1;
  CS_ASSERT(done && size == digest.size(), "HMAC-SHA256 failed");
  return hash_to_hex(digest);
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  return keyed_hmac_hex(keyed_hmac(key).get(), message);
}

Result<ServiceCredentials> ServiceCredentials::from_file(const std::string& path) {
  auto doc = read_json_file(path);
  if (!doc.ok()) return invalid_argument("services: " + doc.error().message());
  return from_json(*doc);
}

Result<ServiceCredentials> ServiceCredentials::from_json_text(std::string_view text) {
  auto doc = parse_json_document(text);
  if (!doc.ok()) return invalid_argument("services: " + doc.error().message());
  return from_json(*doc);
}

Result<ServiceCredentials> ServiceCredentials::from_json(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("services") || !doc.at("services").is_object() || doc.size() != 1) {
    return invalid_argument("services: expected {\"services\": {\"<service>\": {\"secret\": \"…\", \"token\": \"…\"}}}");
  }
  ServiceCredentials out;
  std::map<std::string, std::string> token_owner;
  for (const auto& [service, entry] : doc.at("services").items()) {
    const std::string at = "services." + service;
    if (service.empty() || service.size() > limits::service_name_bytes_max) {
      return invalid_argument("services: a service name must be 1 to " +
                              std::to_string(limits::service_name_bytes_max) + " bytes");
    }
    if (!entry.is_object()) return invalid_argument(at + " must be an object");
    Credentials c;
    for (const auto& [key, value] : entry.items()) {
      if (key != "secret" && key != "token") return invalid_argument(at + "." + key + " is not secret or token");
      if (!value.is_string() || value.get_ref<const std::string&>().size() < service_secret_bytes_min) {
        return invalid_argument(at + "." + key + " must be a string of at least " +
                                std::to_string(service_secret_bytes_min) + " bytes");
      }
      (key == "secret" ? c.secret : c.token.emplace()) = value.get<std::string>();
    }
    if (c.secret.empty()) return invalid_argument(at + ".secret is missing");
    c.keyed = keyed_hmac(c.secret);
    if (c.token) {
      auto [it, added] = token_owner.emplace(*c.token, service);
      if (!added) return invalid_argument(at + ".token is also " + it->second + "'s token");
    }
    out.services_.emplace(service, std::move(c));
  }
  return out;
}

Status ServiceCredentials::verify_signature(std::string_view service, std::string_view value,
                                            std::string_view signature_hex) const {
  auto it = services_.find(service);
  if (it == services_.end()) return unauthorized_error("x-service names no known service");
  if (!equal_in_constant_time(keyed_hmac_hex(it->second.keyed.get(), value), signature_hex)) {
    return unauthorized_error("x-signature is not the HMAC-SHA256 of the record with " + std::string(service) +
                              "'s secret");
  }
  return {};
}

std::optional<std::string> ServiceCredentials::service_for_token(std::string_view token) const {
  std::optional<std::string> found;
  // Every token is compared, so the time does not tell which one matched.
  for (const auto& [service, c] : services_) {
    if (c.token && equal_in_constant_time(*c.token, token)) found = service;
  }
  return found;
}

}  // namespace cs
