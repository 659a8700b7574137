// Who is asking: each service's secret (Kafka requests carry an HMAC-SHA256
// of their value bytes made with it) and bearer token (HTTP), read from the
// `--services` file:
//
//   {"services":{"admin-service":{"secret":"…","token":"…"},
//                "accounting-service":{"secret":"…"}}}
//
// A request's `sourceService` is only a claim; the `x-service` header names
// the service whose secret signed the record (`x-signature`: lowercase hex
// HMAC-SHA256 of the value bytes), and must equal the claim.
// Thread safety: immutable after construction; any thread may ask.
#pragma once

#include <openssl/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cs/error.h"

namespace cs {

// A secret or a token shorter than this is refused when the file is read:
// 16 bytes of entropy at the very least.
inline constexpr std::size_t service_secret_bytes_min = 16;

// Lowercase hex HMAC-SHA256 of `message` under `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

class ServiceCredentials {
 public:
  static Result<ServiceCredentials> from_file(const std::string& path);
  static Result<ServiceCredentials> from_json_text(std::string_view text);
  static Result<ServiceCredentials> from_json(const nlohmann::json& doc);

  // Ok when `service` is known and `signature_hex` is the HMAC of `value`
  // under its secret (compared in constant time). unauthorized otherwise,
  // saying which of the two failed; never echoes a secret or a signature.
  Status verify_signature(std::string_view service, std::string_view value, std::string_view signature_hex) const;

  // The service whose bearer token this is (constant-time comparisons), or
  // nullopt.
  std::optional<std::string> service_for_token(std::string_view token) const;

  bool knows(std::string_view service) const { return services_.find(service) != services_.end(); }

 private:
  struct Credentials {
    std::string secret;
    std::optional<std::string> token;
    // HMAC-SHA256 keyed with `secret`, never updated: each check hashes a
    // duplicate of it (OpenSSL's dup only reads the source, so threads may
    // share it).
    std::shared_ptr<const EVP_MAC_CTX> keyed;
  };
  std::map<std::string, Credentials, std::less<>> services_;
};

}  // namespace cs
