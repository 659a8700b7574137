// Personal data and the keys that seal it (crypto-shredding).
//
// Personal fields are stored sealed with their customer's data key:
// AES-256-GCM (OpenSSL EVP), a fresh 12-byte nonce per field, the event id
// and the field's path as associated data, so a sealed value cannot be moved
// to another event or field unnoticed. Data keys are random, one per
// customer, stored wrapped by the master key (AES-256-GCM again, the
// customer id as associated data). Destroying a customer's data key makes
// every sealed value of that customer unreadable for good, while the
// hash-chained log, which covers the sealed bytes, stays intact.
//
// Which fields are personal (their paths):
//   customer.created     name, email
//   user.created         email
//   customer.updated     changes.<every field>
//   user.updated         changes.<every field but role>
//   subscription.updated changes.<every field but planId and periodEnd>
//   customer.suspended, customer.deleted, subscription.cancelled,
//   token.allocated      reason
// A deployment's own fields in `changes` count as personal: nothing tells
// they are not. The read models fold role, planId and periodEnd, which are not.
//
// Thread safety: every function here is pure or thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>

#include "cs/error.h"
#include "cs/payloads.h"

namespace cs {

inline constexpr std::size_t secret_key_bytes = 32;  // AES-256
using MasterKey = std::array<std::uint8_t, secret_key_bytes>;
using DataKey = std::array<std::uint8_t, secret_key_bytes>;

// The master key file: 64 hex digits (a trailing newline allowed), nothing
// else. Errors: not_found when the file does not exist; invalid_argument
// naming the file when it cannot be read or holds anything else.
Result<MasterKey> read_master_key(const std::filesystem::path& file);
// Writes a fresh random key into a new file, mode 0600 (refused when the
// file exists). invalid_argument / fatal naming the file on failure.
Result<MasterKey> create_master_key(const std::filesystem::path& file);
// Where a log's master key file is unless told: beside the data directory,
// never in it ("/srv/cs/data" -> "/srv/cs/data.master-key"), so that a copy
// of the data alone does not carry its key.
std::filesystem::path default_master_key_file(const std::filesystem::path& data_dir);
// A fingerprint of the key that is safe to store beside the data:
// HMAC-SHA256(key, "customer-service master key check v1").
std::array<std::uint8_t, 32> master_key_check(const MasterKey& key);

// Makes OpenSSL build the algorithms that sealing, opening and the key
// check use (AES-256-GCM, HMAC, SHA-256) now rather than at their first use.
// OpenSSL 3 constructs every cipher (or MAC, digest) of its provider at the
// first fetch of one: about 0.5 ms each, most of a short read command's
// crypto. A command runs this on a second thread while its log opens.
// Thread-safe; idempotent; asserts only if OpenSSL lacks the algorithms.
void prepare_personal_data_crypto();

DataKey random_data_key();
// The key that seals the log's side values (outbox records, remembered
// answers): HMAC-SHA256(master, "customer-service side data key v1").
DataKey side_data_key(const MasterKey& master);
// The data key sealed under the master key (61 bytes: scheme, nonce,
// ciphertext, tag; the customer id as associated data).
std::string wrap_data_key(const MasterKey& master, const Uuid& customer, const DataKey& key);
// invalid_argument when the bytes do not unwrap with this master key for
// this customer (another master key, another customer's key, altered bytes).
Result<DataKey> unwrap_data_key(const MasterKey& master, const Uuid& customer, std::string_view wrapped);

// One field sealed: 1 scheme byte, 12 nonce bytes, the ciphertext, 16 tag
// bytes. The associated data is the event id and the field path.
std::string seal_field(const DataKey& key, const Uuid& event_id, std::string_view field, std::string_view plaintext);
// corruption when the bytes are not a sealed value of this event and field
// under this key.
Result<std::string> open_field(const DataKey& key, const Uuid& event_id, std::string_view field,
                               std::string_view sealed);

// Does this payload carry a personal field (by its type, and for updates by
// what `changes` holds)?
bool has_personal_fields(const Payload& payload);
// Calls `visit(path, value)` for each personal field, in table order;
// `changes` values in key order. The value may be replaced (sealed, opened).
void for_each_personal_field(Payload& payload, const std::function<void(std::string_view, std::string&)>& visit);
void for_each_personal_field(const Payload& payload,
                             const std::function<void(std::string_view, const std::string&)>& visit);
// Is `path` of an event of `type` personal ("name", "changes.email", …)?
bool is_personal_field(EventType type, std::string_view path);

// Standard base64 with padding, as sealed values travel in JSON.
std::string base64_encode(std::string_view bytes);
// nullopt for anything but canonical padded base64.
std::optional<std::string> base64_decode(std::string_view text);

// A personal value in a read model: plaintext (an event stored before
// personal data was sealed), or the sealed bytes with what opens them.
struct PersonalText {
  std::string value;    // plaintext, or the sealed bytes
  Uuid sealed_in;       // the event whose field sealed it; nil: plaintext
  std::string field;    // the path it was sealed under ("name", "changes.email")

  bool sealed() const { return !sealed_in.is_nil(); }
  bool operator==(const PersonalText&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, sealed_in, field);
  }
};

}  // namespace cs
