#include "cs/storage_codec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/optional.hpp>

#include "cs/span_input_archive.h"
#include "cs/string_output_archive.h"

namespace cs {
namespace {

// Saves a string_view exactly as cereal saves a std::string.
template <class Archive>
void save_text(Archive& ar, std::string_view text) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(text.size())));
  ar(cereal::binary_data(text.data(), text.size()));
}

// The envelope as stored. Version 1 is the first layout; add fields with a
// version check like the payloads do.
struct StoredEnvelope {
  std::uint8_t format = record_format_version;
  std::uint64_t seq = 0;
  Uuid id;
  std::string stream;
  std::uint64_t version = 0;
  Timestamp timestamp;
  Timestamp recorded_at;
  std::string source_service;
  std::optional<Uuid> correlation_id;
  std::optional<Uuid> causation_id;
  std::uint32_t schema_version = 0;
  std::uint16_t type_code = 0;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*class_version*/) {
    ar(format, seq, id, stream, version, timestamp, recorded_at, source_service, correlation_id,
       causation_id, schema_version, type_code);
  }
};

template <std::size_t I = 0>
bool load_payload(SpanInputArchive& ar, std::uint16_t code,
                  std::uint32_t version, Payload& out) {
  if constexpr (I < std::variant_size_v<Payload>) {
    if (code == I + 1) {
      // Same type as before: load over it, its strings keep their buffers.
      auto& payload = out.index() == I ? std::get<I>(out) : out.template emplace<I>();
      // Fields missing at an older version must read as defaults.
      if (version < std::variant_alternative_t<I, Payload>::schema_version) payload = {};
      serialize_fields(ar, payload, version);
      return true;
    }
    return load_payload<I + 1>(ar, code, version, out);
  } else {
    return false;
  }
}

// The save side of StoredEnvelope, over borrowed fields: the same bytes,
// without copying the stream name and meta into a StoredEnvelope first.
struct StoredEnvelopeView {
  const CanonicalFields& f;

  template <class Archive>
  void save(Archive& ar, const std::uint32_t /*class_version*/) const {
    ar(f.sealed ? record_format_sealed : record_format_version, f.seq.value, f.id);
    save_text(ar, f.stream);
    ar(f.version.value, f.timestamp, f.recorded_at);
    save_text(ar, f.meta.source_service);
    ar(f.meta.correlation_id, f.meta.causation_id, f.schema_version,
       static_cast<std::uint16_t>(payload_type(f.payload)));
  }
};

}  // namespace
}  // namespace cs

// Both describe the same layout, so both carry the same class version.
CEREAL_CLASS_VERSION(cs::StoredEnvelope, 1)
CEREAL_CLASS_VERSION(cs::StoredEnvelopeView, 1)

namespace cs {

void encode_canonical(const CanonicalFields& f, std::string& out) {
  // An archive per event: it writes the byte order byte that starts the
  // record, and each class's version once.
  StringOutputArchive ar(out);
  StoredEnvelopeView env{f};
  ar(env);
  std::visit([&](const auto& p) { serialize_fields(ar, p, f.schema_version); }, f.payload);
}

void encode_canonical(const RecordedEvent& e, std::string& out) {
  CS_ASSERT(!e.erased, "an erased event's stored bytes cannot be made again from its emptied fields");
  encode_canonical(CanonicalFields{e.seq, e.id, e.stream, e.version, e.timestamp, e.recorded_at, e.meta,
                                   e.stored_schema_version, e.payload, e.sealed},
                   out);
}

namespace {

Status decode_canonical_into(std::string_view bytes, RecordedEvent& e) {
  // Reused per thread: its strings keep their buffers from event to event.
  thread_local StoredEnvelope env;
  std::size_t trailing_bytes = 0;
  try {
    SpanInputArchive ar(bytes);
    ar(env);
    if (env.format != record_format_version && env.format != record_format_sealed) {
      return corruption_error("unknown record format " + std::to_string(env.format));
    }
    auto type = static_cast<EventType>(env.type_code);
    if (env.type_code == 0 || env.type_code > event_type_count) {
      return corruption_error("unknown event type code " + std::to_string(env.type_code));
    }
    if (env.schema_version == 0 || env.schema_version > current_schema_version(type)) {
      return corruption_error("event of type " + std::string(event_type_name(type)) +
                              " has schema version " + std::to_string(env.schema_version) +
                              ", this build reads up to " +
                              std::to_string(current_schema_version(type)));
    }
    if (!load_payload(ar, env.type_code, env.schema_version, e.payload)) {
      return corruption_error("unknown event type code " + std::to_string(env.type_code));
    }
    e.seq = Sequence(env.seq);
    e.id = env.id;
    e.stream.swap(env.stream);
    e.version = StreamVersion(env.version);
    e.timestamp = env.timestamp;
    e.recorded_at = env.recorded_at;
    e.meta.source_service.swap(env.source_service);
    e.meta.correlation_id = env.correlation_id;
    e.meta.causation_id = env.causation_id;
    e.stored_schema_version = env.schema_version;
    e.sealed = env.format == record_format_sealed;
    e.erased = false;
    trailing_bytes = ar.remaining();
  } catch (const std::exception& ex) {
    return corruption_error(std::string("event bytes do not decode: ") + ex.what());
  }
  if (trailing_bytes != 0) return corruption_error("event bytes have trailing data after the payload");
  return {};
}

}  // namespace

Result<RecordedEvent> decode_canonical(std::string_view bytes) {
  RecordedEvent e;
  if (auto s = decode_canonical_into(bytes, e); !s.ok()) return s.error();
  return e;
}

Status decode_stored_into(std::string_view value, RecordedEvent& out) {
  if (value.size() < sizeof(Hash)) {
    return corruption_error("stored value of " + std::to_string(value.size()) + " bytes is shorter than its hash");
  }
  if (auto s = decode_canonical_into(value.substr(0, value.size() - sizeof(Hash)), out); !s.ok()) return s;
  std::copy_n(value.end() - sizeof(Hash), sizeof(Hash), out.hash.begin());
  return {};
}

Status decode_stored_at(Sequence seq, std::string_view value, RecordedEvent& out) {
  if (auto d = decode_stored_into(value, out); !d.ok()) {
    return corruption_error("seq " + std::to_string(seq.value) + ": " + d.error().message());
  }
  if (out.seq != seq) {
    return corruption_error("seq " + std::to_string(seq.value) + " holds an event stamped seq " +
                            std::to_string(out.seq.value));
  }
  return {};
}

Result<RecordedEvent> decode_stored(std::string_view value) {
  RecordedEvent e;
  if (auto s = decode_stored_into(value, e); !s.ok()) return s.error();
  return e;
}

namespace {

// Fetched once: with EVP_sha256(), OpenSSL 3 looks the implementation up
// again at every init, and a context was allocated per event; together they
// cost as much as hashing the event's few hundred bytes.
const EVP_MD* sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  CS_ASSERT(md != nullptr, "OpenSSL has no SHA-256");
  return md;
}

struct DigestContext {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  DigestContext() { CS_ASSERT(ctx != nullptr, "EVP_MD_CTX_new failed"); }
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;
};

}  // namespace

Hash chain_hash(const Hash& previous, std::string_view canonical) {
  thread_local DigestContext context;  // reused: reinitialised by each init
  Hash out{};
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(context.ctx, sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(context.ctx, previous.data(), previous.size()) == 1 &&
            EVP_DigestUpdate(context.ctx, canonical.data(), canonical.size()) == 1 &&
            EVP_DigestFinal_ex(context.ctx, out.data(), &len) == 1;
  CS_ASSERT(ok && len == out.size(), "SHA-256 failed");
  return out;
}

Status check_chain_link(Sequence seq, std::string_view value, const Hash& previous) {
  if (value.size() < sizeof(Hash)) return corruption_error("seq " + std::to_string(seq.value) + ": truncated");
  const Hash computed = chain_hash(previous, value.substr(0, value.size() - sizeof(Hash)));
  if (std::memcmp(computed.data(), value.data() + value.size() - sizeof(Hash), sizeof(Hash)) != 0) {
    return broken_chain_error("seq " + std::to_string(seq.value) + ": hash chain broken");
  }
  return {};
}

Hash stored_chain_hash(std::string_view value) {
  Hash out{};
  if (value.size() >= sizeof(Hash)) std::copy_n(value.end() - sizeof(Hash), sizeof(Hash), out.begin());
  return out;
}

Status check_next_seq(Sequence expected, Sequence seq) {
  if (seq == expected) return {};
  return corruption_error("seq " + std::to_string(expected.value) + " is missing: the next stored event is seq " +
                          std::to_string(seq.value));
}

}  // namespace cs
