#include "cs/personal_data.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "cs/assert.h"
#include "hex_digits.h"

namespace cs {
namespace {

constexpr std::uint8_t sealed_scheme = 1;
constexpr std::size_t nonce_bytes = 12;
constexpr std::size_t tag_bytes = 16;
constexpr std::size_t sealed_overhead_bytes = 1 + nonce_bytes + tag_bytes;
constexpr std::string_view data_key_aad = "customer-service data key v1";
constexpr std::string_view master_check_text = "customer-service master key check v1";

void random_bytes(std::uint8_t* out, std::size_t n) {
  CS_ASSERT(RAND_bytes(out, static_cast<int>(n)) == 1, "the system's random generator failed");
}

// Nonces from the system's generator, drawn a block at a time per thread:
// one RAND_bytes call per field cost more than sealing a short field.
constexpr std::size_t nonce_block_bytes = 4096;
void fresh_nonce(std::uint8_t* out) {
  thread_local std::array<std::uint8_t, nonce_block_bytes> block;
  thread_local std::size_t used = nonce_block_bytes;
  if (used + 12 > block.size()) {
    random_bytes(block.data(), block.size());
    used = 0;
  }
  std::memcpy(out, block.data() + used, 12);
  // Never handed out twice: wiped as it leaves the block.
  std::memset(block.data() + used, 0, 12);
  used += 12;
}

// The cipher, fetched once: EVP_aes_256_gcm() makes every init look it up.
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    CS_ASSERT(c != nullptr, "OpenSSL has no AES-256-GCM");
    return c;
  }();
  return cipher;
}

// A thread's AES-256-GCM context for one direction, its cipher and nonce
// length set once: each message then sets its nonce, and its key only when
// it is not the last message's (a customer's fields are sealed one after
// the other). Re-initialising the whole context per field, key schedule
// included, was a quarter of sealing an append's fields.
class KeyedCipher {
 public:
  explicit KeyedCipher(bool encrypt) : encrypt_(encrypt ? 1 : 0), ctx_(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free) {
    CS_ASSERT(ctx_ != nullptr, "EVP_CIPHER_CTX_new failed");
    const bool ok = EVP_CipherInit_ex(ctx_.get(), aes_256_gcm(), nullptr, nullptr, nullptr, encrypt_) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_bytes, nullptr) == 1;
    CS_ASSERT(ok, "AES-256-GCM context set-up failed");
  }
  ~KeyedCipher() { OPENSSL_cleanse(last_key_.data(), last_key_.size()); }

  // The context, ready for one message under `key` (32 bytes) and `nonce`;
  // nullptr when OpenSSL refuses.
  EVP_CIPHER_CTX* start(const std::uint8_t* key, const std::uint8_t* nonce) {
    const bool same_key = keyed_ && std::memcmp(key, last_key_.data(), last_key_.size()) == 0;
    keyed_ = false;  // until the init below succeeds
    if (EVP_CipherInit_ex(ctx_.get(), nullptr, nullptr, same_key ? nullptr : key, nonce, encrypt_) != 1) return nullptr;
    std::memcpy(last_key_.data(), key, last_key_.size());
    keyed_ = true;
    return ctx_.get();
  }

 private:
  int encrypt_;
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx_;
  std::array<std::uint8_t, 32> last_key_{};
  bool keyed_ = false;
};

// What a context's key is: the master key (wrapping data keys) or one
// customer's data key (fields). Each has its contexts: a read that meets a
// new customer unwraps its key, then opens its fields; with one context the
// master key's schedule was redone for every customer.
enum class KeyKind { master, data };

EVP_CIPHER_CTX* sealing_context(KeyKind kind, const std::uint8_t* key, const std::uint8_t* nonce) {
  thread_local KeyedCipher master(/*encrypt=*/true), data(/*encrypt=*/true);
  return (kind == KeyKind::master ? master : data).start(key, nonce);
}

EVP_CIPHER_CTX* opening_context(KeyKind kind, const std::uint8_t* key, const std::uint8_t* nonce) {
  thread_local KeyedCipher master(/*encrypt=*/false), data(/*encrypt=*/false);
  return (kind == KeyKind::master ? master : data).start(key, nonce);
}

// AES-256-GCM of `plaintext` with the two parts of associated data.
std::string seal(KeyKind kind, const std::uint8_t* key, std::string_view aad_a, std::string_view aad_b,
                 std::string_view plaintext) {
  std::string out(sealed_overhead_bytes + plaintext.size(), '\0');
  auto* bytes = reinterpret_cast<std::uint8_t*>(out.data());
  bytes[0] = sealed_scheme;
  std::uint8_t* nonce = bytes + 1;
  std::uint8_t* body = nonce + nonce_bytes;
  static_assert(nonce_bytes == 12);
  fresh_nonce(nonce);
  EVP_CIPHER_CTX* ctx = sealing_context(kind, key, nonce);
  int len = 0;
  bool ok = ctx != nullptr &&
            EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const std::uint8_t*>(aad_a.data()),
                              static_cast<int>(aad_a.size())) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const std::uint8_t*>(aad_b.data()),
                              static_cast<int>(aad_b.size())) == 1 &&
            EVP_EncryptUpdate(ctx, body, &len, reinterpret_cast<const std::uint8_t*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, body + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, tag_bytes, body + plaintext.size()) == 1;
  CS_ASSERT(ok, "AES-256-GCM encryption failed");
  return out;
}

std::optional<std::string> open(KeyKind kind, const std::uint8_t* key, std::string_view aad_a, std::string_view aad_b,
                                std::string_view sealed) {
  if (sealed.size() < sealed_overhead_bytes || static_cast<std::uint8_t>(sealed[0]) != sealed_scheme) {
    return std::nullopt;
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(sealed.data());
  const std::uint8_t* nonce = bytes + 1;
  const std::uint8_t* body = nonce + nonce_bytes;
  const std::size_t body_size = sealed.size() - sealed_overhead_bytes;
  std::string out(body_size, '\0');
  int len = 0;
  std::uint8_t tag[tag_bytes];
  std::memcpy(tag, body + body_size, tag_bytes);
  EVP_CIPHER_CTX* ctx = opening_context(kind, key, nonce);
  bool ok = ctx != nullptr &&
            EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const std::uint8_t*>(aad_a.data()),
                              static_cast<int>(aad_a.size())) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const std::uint8_t*>(aad_b.data()),
                              static_cast<int>(aad_b.size())) == 1 &&
            EVP_DecryptUpdate(ctx, reinterpret_cast<std::uint8_t*>(out.data()), &len, body,
                              static_cast<int>(body_size)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, tag_bytes, tag) == 1 &&
            EVP_DecryptFinal_ex(ctx, reinterpret_cast<std::uint8_t*>(out.data()) + len, &len) == 1;
  if (!ok) return std::nullopt;
  return out;
}

std::string_view uuid_bytes(const Uuid& id) { return {reinterpret_cast<const char*>(id.bytes().data()), 16}; }

constexpr std::string_view base64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Which `changes` fields of an update are not personal (the read models fold them).
bool plain_change(EventType type, std::string_view field) {
  if (type == EventType::user_updated) return field == "role";
  if (type == EventType::subscription_updated) return field == "planId" || field == "periodEnd";
  return false;
}

template <class P, class Visit>
void visit_personal(P& payload, Visit&& visit) {
  using T = std::remove_const_t<P>;
  if constexpr (std::is_same_v<T, CustomerCreated>) {
    visit("name", payload.name);
    visit("email", payload.email);
  } else if constexpr (std::is_same_v<T, UserCreated>) {
    visit("email", payload.email);
  } else if constexpr (requires { payload.changes; }) {
    for (auto& [field, value] : payload.changes) {
      if (plain_change(T::type, field)) continue;
      thread_local std::string path;
      path.assign("changes.").append(field);
      visit(std::string_view(path), value);
    }
  } else if constexpr (requires { payload.reason; }) {
    visit("reason", payload.reason);
  }
}

}  // namespace

Result<MasterKey> read_master_key(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return not_found_error("master key file " + file.string() + " does not exist");
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid_argument("cannot read the master key file " + file.string());
  std::string text(128, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (!text.empty() && text.back() == '\n') text.pop_back();
  MasterKey key{};
  bool ok = text.size() == 2 * key.size();
  for (std::size_t i = 0; ok && i < key.size(); ++i) {
    const int hi = hex_digit_values[static_cast<unsigned char>(text[2 * i])];
    const int lo = hex_digit_values[static_cast<unsigned char>(text[2 * i + 1])];
    ok = hi >= 0 && lo >= 0;
    key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (!ok) return invalid_argument("the master key file " + file.string() + " must hold 64 hex digits and nothing else");
  return key;
}

Result<MasterKey> create_master_key(const std::filesystem::path& file) {
  MasterKey key{};
  random_bytes(key.data(), key.size());
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  for (auto b : key) {
    text.push_back(digits[b >> 4]);
    text.push_back(digits[b & 0xF]);
  }
  text.push_back('\n');
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return invalid_argument("cannot create the master key file " + file.string() + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(file.c_str());
    return fatal_error("cannot write the master key file " + file.string() + ": " + std::strerror(errno));
  }
  return key;
}

std::filesystem::path default_master_key_file(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(data_dir, ec).lexically_normal();
  if (ec) dir = data_dir.lexically_normal();
  while (dir.has_relative_path() && dir.filename().empty()) dir = dir.parent_path();
  return std::filesystem::path(dir.string() + ".master-key");
}

std::array<std::uint8_t, 32> master_key_check(const MasterKey& key) {
  std::array<std::uint8_t, 32> out{};
  unsigned int size = 0;
  unsigned char* done = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                             reinterpret_cast<const unsigned char*>(master_check_text.data()), master_check_text.size(),
                             out.data(), &size);
  CS_ASSERT(done != nullptr && size == out.size(), "HMAC-SHA256 failed");
  return out;
}

void prepare_personal_data_crypto() {
  aes_256_gcm();
  // The HMAC of the key check, through the same calls (and OpenSSL's
  // implicit fetches of HMAC and SHA-256) as master_key_check.
  (void)master_key_check(MasterKey{});
}

DataKey side_data_key(const MasterKey& master) {
  static constexpr std::string_view text = "customer-service side data key v1";
  DataKey out{};
  unsigned int size = 0;
  unsigned char* done = HMAC(EVP_sha256(), master.data(), static_cast<int>(master.size()),
                             reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data(), &size);
  CS_ASSERT(done != nullptr && size == out.size(), "HMAC-SHA256 failed");
  return out;
}

DataKey random_data_key() {
  DataKey key{};
  random_bytes(key.data(), key.size());
  return key;
}

std::string wrap_data_key(const MasterKey& master, const Uuid& customer, const DataKey& key) {
  return seal(KeyKind::master, master.data(), data_key_aad, uuid_bytes(customer),
              std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

Result<DataKey> unwrap_data_key(const MasterKey& master, const Uuid& customer, std::string_view wrapped) {
  auto opened = open(KeyKind::master, master.data(), data_key_aad, uuid_bytes(customer), wrapped);
  if (!opened || opened->size() != secret_key_bytes) {
    return invalid_argument("the data key of customer " + customer.to_string() +
                            " does not unwrap with this master key");
  }
  DataKey key{};
  std::memcpy(key.data(), opened->data(), key.size());
  return key;
}

std::string seal_field(const DataKey& key, const Uuid& event_id, std::string_view field, std::string_view plaintext) {
  return seal(KeyKind::data, key.data(), uuid_bytes(event_id), field, plaintext);
}

Result<std::string> open_field(const DataKey& key, const Uuid& event_id, std::string_view field,
                               std::string_view sealed) {
  auto opened = open(KeyKind::data, key.data(), uuid_bytes(event_id), field, sealed);
  if (!opened) {
    return corruption_error("field " + std::string(field) + " of event " + event_id.to_string() +
                            " does not open with its customer's data key");
  }
  return std::move(*opened);
}

bool has_personal_fields(const Payload& payload) {
  bool found = false;
  for_each_personal_field(payload, [&](std::string_view, const std::string&) { found = true; });
  return found;
}

void for_each_personal_field(Payload& payload, const std::function<void(std::string_view, std::string&)>& visit) {
  std::visit([&](auto& p) { visit_personal(p, visit); }, payload);
}

void for_each_personal_field(const Payload& payload,
                             const std::function<void(std::string_view, const std::string&)>& visit) {
  std::visit([&](const auto& p) { visit_personal(p, visit); }, payload);
}

bool is_personal_field(EventType type, std::string_view path) {
  switch (type) {
    case EventType::customer_created: return path == "name" || path == "email";
    case EventType::user_created: return path == "email";
    case EventType::customer_updated:
    case EventType::user_updated:
    case EventType::subscription_updated:
      return path.starts_with("changes.") && !plain_change(type, path.substr(8));
    case EventType::customer_suspended:
    case EventType::customer_deleted:
    case EventType::subscription_cancelled:
    case EventType::token_allocated: return path == "reason";
    default: return false;
  }
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(base64_alphabet[(v >> shift) & 0x3F]);
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
    out.push_back(base64_alphabet[(v >> 18) & 0x3F]);
    out.push_back(base64_alphabet[(v >> 12) & 0x3F]);
    out.push_back(rest == 2 ? base64_alphabet[(v >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      auto pos = base64_alphabet.find(c);
      if (pos == std::string_view::npos) return std::nullopt;
      v = v << 6 | static_cast<std::uint32_t>(pos);
    }
    out.push_back(static_cast<char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<char>(v >> 8 & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xFF));
    // Canonical only: the bits padding drops must be zero.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) return std::nullopt;
  }
  return out;
}

}  // namespace cs
