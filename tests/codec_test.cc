// Proves the event codecs: every type round-trips through JSON and through the
// stored binary form; bad input is refused with a message naming the field; and
// bytes stored by an older schema (a committed fixture) still decode.
#include <uuid/uuid.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "cs/event_line_writer.h"
#include "cs/json_codec.h"
#include "cs/json_writer.h"
#include "cs/pretty_json_writer.h"
#include "cs/storage_codec.h"
#include "history_generator.h"
#include "test_support.h"

namespace cs {
namespace {

RecordedEvent recorded(const Payload& payload, std::uint64_t n) {
  RecordedEvent e;
  e.seq = Sequence(n);
  e.id = test::uuid(100 + n);
  e.stream = payload_stream(payload);
  e.version = StreamVersion(n);
  e.timestamp = test::at_seconds(static_cast<std::int64_t>(n) * 60);
  e.recorded_at = Timestamp{e.timestamp.micros + 123'000};
  e.meta = {"admin-service", test::uuid(7), test::uuid(8)};
  e.stored_schema_version = current_schema_version(payload_type(payload));
  e.payload = payload;
  e.hash = chain_hash(Hash{}, "x");
  return e;
}

std::string read_hex_fixture(const std::string& name) {
  std::ifstream in(std::string(CS_TEST_DATA_DIR) + "/" + name);
  std::string hex;
  for (char c; in.get(c);) {
    if (!std::isspace(static_cast<unsigned char>(c))) hex.push_back(c);
  }
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

TEST(TimestampTest, ParsesAndFormatsIso8601Utc) {
  auto t = parse_timestamp("2026-03-01T10:15:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_timestamp(*t), "2026-03-01T10:15:00Z");
  EXPECT_EQ(t->micros, 1'772'360'100'000'000);
  EXPECT_EQ(format_timestamp(*parse_timestamp("2026-03-01T10:15:00.123+00:00")), "2026-03-01T10:15:00.123Z");
  EXPECT_EQ(format_timestamp(*parse_timestamp("2024-02-29T23:59:59.000001Z")), "2024-02-29T23:59:59.000001Z");
  EXPECT_EQ(format_timestamp_millis(*t), "2026-03-01T10:15:00.000Z");
  // The edges of the hand-written form, and years it hands to printf.
  EXPECT_EQ(format_timestamp(Timestamp{0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(Timestamp{-1}), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp_millis(Timestamp{-1'000}), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(Timestamp::from_seconds(-62'135'596'800)), "0001-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(Timestamp::from_seconds(253'402'300'799)), "9999-12-31T23:59:59Z");
  EXPECT_EQ(format_timestamp(Timestamp::from_seconds(253'402'300'800)), "10000-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(Timestamp::from_seconds(-62'167'219'201)), "-001-12-31T23:59:59Z");
  char buf[timestamp_chars_max];
  for (std::int64_t micros : {INT64_MIN, INT64_MAX}) {
    EXPECT_LE(write_timestamp(Timestamp{micros}, buf), timestamp_chars_max);
    EXPECT_LE(write_timestamp_millis(Timestamp{micros}, buf), timestamp_chars_max);
  }
  for (const char* bad : {"2026-02-30T00:00:00Z", "2026-03-01 10:15:00Z", "2026-03-01T10:15:00",
                          "2026-03-01T10:15:00+01:00", "2026-13-01T00:00:00Z", "2026-03-01T24:00:00Z",
                          "2026-03-01T10:15:00.Z", "yesterday", ""}) {
    EXPECT_FALSE(parse_timestamp(bad)) << bad;
  }
}

TEST(UuidTest, ParsesOnlyTheCanonicalForm) {
  auto u = Uuid::parse("0F8FAD5B-D9CB-469F-A165-70867728950E");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->to_string(), "0f8fad5b-d9cb-469f-a165-70867728950e");
  EXPECT_FALSE(Uuid::parse("0f8fad5bd9cb469fa16570867728950e"));
  EXPECT_FALSE(Uuid::parse("{0f8fad5b-d9cb-469f-a165-70867728950e}"));
  EXPECT_FALSE(Uuid::parse("0f8fad5b-d9cb-469f-a165-70867728950g"));
  EXPECT_EQ(Uuid::from_words(1, 2), Uuid::from_words(1, 2));
  EXPECT_NE(Uuid::random(), Uuid::random());
}

// The chain is SHA-256 over the previous hash then the stored bytes; the
// expected values come from Python's hashlib, not from our code. Hashed on
// two threads: the digest context is per thread.
TEST(ChainHashTest, IsSha256OfThePreviousHashThenTheEvent) {
  auto check = [] {
    const Hash first = chain_hash(Hash{}, "abc");
    EXPECT_EQ(hash_to_hex(first), "365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370");
    EXPECT_EQ(hash_to_hex(chain_hash(first, "second event")),
              "a047b88b25b47c7d7c5c9e2c9e21a00e616d7e24f1af0fec177152e2b3f10f61");
  };
  check();
  std::thread other(check);
  other.join();
  check();  // the reused context starts afresh
}

// Hashes in an export are read back by hash_from_hex: 64 hex digits of
// either case, every other byte at any place refused.
TEST(ChainHashTest, HexReadsBackWhatHashToHexWritesAndNothingElse) {
  Hash hash = chain_hash(Hash{}, "abc");
  for (int n = 0; n < 64; ++n) {
    hash = chain_hash(hash, std::to_string(n));
    std::string hex = hash_to_hex(hash);
    ASSERT_EQ(hash_from_hex(hex), hash) << hex;
    std::string upper = hex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ASSERT_EQ(hash_from_hex(upper), hash) << upper;
    const std::size_t at = static_cast<std::size_t>(n);
    for (char c : {'/', ':', '@', 'G', '`', 'g', ' ', '-', '\0', '\xff'}) {
      std::string bad = hex;
      bad[at] = c;
      ASSERT_FALSE(hash_from_hex(bad)) << "digit " << at << " = " << static_cast<int>(c);
    }
    ASSERT_FALSE(hash_from_hex(hex.substr(1)));
    ASSERT_FALSE(hash_from_hex(hex + "0"));
  }
  EXPECT_FALSE(hash_from_hex(""));
}

// Parsing and formatting are our own (libuuid's were a hot spot): they must
// accept, refuse and write exactly what libuuid does.
TEST(UuidTest, ParsesAndFormatsAsLibuuidDoes) {
  for (int n = 0; n < 2'000; ++n) {
    Uuid u = Uuid::random();
    char lower[37], upper[37];
    uuid_unparse_lower(u.bytes().data(), lower);
    uuid_unparse_upper(u.bytes().data(), upper);
    ASSERT_EQ(u.to_string(), lower);
    ASSERT_EQ(Uuid::parse(lower), u);
    ASSERT_EQ(Uuid::parse(upper), u);
    // One character changed anywhere: accepted exactly when libuuid accepts.
    const int at = n % 36;
    for (char c : {'-', '0', '9', 'a', 'f', 'A', 'F', 'g', 'G', ' ', '+', 'x', '\0'}) {
      std::string text = lower;
      text[static_cast<std::size_t>(at)] = c;
      uuid_t bytes;
      const bool libuuid_accepts = c != '\0' && uuid_parse(text.c_str(), bytes) == 0;
      auto ours = Uuid::parse(text);
      ASSERT_EQ(ours.has_value(), libuuid_accepts) << text;
      if (ours) {
        ASSERT_EQ(std::memcmp(ours->bytes().data(), bytes, 16), 0) << text;
      }
    }
  }
}

TEST(CodecTest, EveryTypeRoundTripsThroughJsonAndStorage) {
  auto payloads = test::one_of_each_type();
  ASSERT_EQ(payloads.size(), event_type_count);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_EQ(payload_type(payloads[i]), all_event_types[i]);
    RecordedEvent e = recorded(payloads[i], i + 1);

    std::string line = format_event_line(e);
    auto parsed = parse_event_line(line);
    ASSERT_TRUE(parsed.ok()) << line << "\n" << parsed.error().to_string();
    EXPECT_EQ(parsed->payload, e.payload) << line;
    EXPECT_EQ(*parsed->id, e.id);
    EXPECT_EQ(*parsed->timestamp, e.timestamp);
    EXPECT_EQ(*parsed->recorded_at, e.recorded_at);
    EXPECT_EQ(*parsed->seq, e.seq);
    EXPECT_EQ(*parsed->version, e.version);
    EXPECT_EQ(*parsed->hash, e.hash);
    EXPECT_EQ(parsed->meta, e.meta);

    std::string stored;
    encode_canonical(e, stored);
    stored.append(reinterpret_cast<const char*>(e.hash.data()), e.hash.size());
    auto decoded = decode_stored(stored);
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(decoded->payload, e.payload);
    EXPECT_EQ(decoded->stream, e.stream);
    EXPECT_EQ(decoded->meta, e.meta);
    EXPECT_EQ(decoded->hash, e.hash);
    EXPECT_EQ(format_event_line(*decoded), line);
  }
}

TEST(CodecTest, WireFormIsTheSeedsCamelCaseJson) {
  RecordedEvent e = recorded(CustomerSuspended{test::uuid(1), test::uuid(4), "fraud"}, 3);
  auto j = nlohmann::json::parse(format_event_line(e));
  EXPECT_EQ(j["type"], "customer.suspended");
  EXPECT_EQ(j["data"]["customerId"], test::uuid(1).to_string());
  EXPECT_EQ(j["data"]["adminId"], test::uuid(4).to_string());
  EXPECT_EQ(j["data"]["reason"], "fraud");
  EXPECT_EQ(j["stream"], "customer-" + test::uuid(1).to_string());
  EXPECT_EQ(j["timestamp"], "2026-01-01T00:03:00Z");
  EXPECT_EQ(j["recordedAt"], "2026-01-01T00:03:00.123Z");
  EXPECT_EQ(j["meta"]["sourceService"], "admin-service");
}

// The line as nlohmann builds it: the reference the text writer must match.
std::string reference_event_line(const RecordedEvent& e) {
  nlohmann::ordered_json out;
  out["seq"] = e.seq.value;
  out["id"] = e.id.to_string();
  out["type"] = std::string(event_type_name(e.type()));
  out["stream"] = e.stream;
  out["version"] = e.version.value;
  out["timestamp"] = format_timestamp(e.timestamp);
  out["recordedAt"] = format_timestamp_millis(e.recorded_at);
  out["schemaVersion"] = e.stored_schema_version;
  out["data"] = payload_to_json(e.payload, e.stored_schema_version);
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  if (!e.meta.source_service.empty()) meta["sourceService"] = e.meta.source_service;
  if (e.meta.correlation_id) meta["correlationId"] = e.meta.correlation_id->to_string();
  if (e.meta.causation_id) meta["causationId"] = e.meta.causation_id->to_string();
  out["meta"] = meta;
  out["hash"] = hash_to_hex(e.hash);
  return out.dump();
}

TEST(JsonWriterTest, EscapesEveryByteAsNlohmannDoes) {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  all += "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80";  // é ✓ 😀 stay UTF-8
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string one = all.substr(i, 1), quoted;
    if (static_cast<unsigned char>(one[0]) >= 0x80) break;
    JsonWriter::append_quoted(quoted, one);
    EXPECT_EQ(quoted, nlohmann::json(one).dump()) << "byte " << static_cast<int>(one[0]);
  }
  std::string quoted;
  JsonWriter::append_quoted(quoted, all);
  EXPECT_EQ(quoted, nlohmann::json(all).dump());
  // Strings are scanned 8 bytes at a time: every byte that needs an escape,
  // at every offset of a word, in strings longer than one.
  for (int c = 0; c < 0x80; ++c) {
    for (std::size_t at = 0; at < 20; ++at) {
      std::string text(21, 'a');
      text[at] = static_cast<char>(c);
      std::string q;
      JsonWriter::append_quoted(q, text);
      EXPECT_EQ(q, nlohmann::json(text).dump()) << "byte " << c << " at " << at;
    }
  }
}

TEST(JsonWriterTest, PlacesCommasInNestedObjectsAndArrays) {
  std::string out = "prefix ";
  JsonWriter w(out);
  w.begin_object();
  w.key("a");
  w.begin_array();
  w.integer(1);
  w.begin_object();
  w.end_object();
  w.begin_array();
  w.end_array();
  w.string("x");
  w.end_array();
  w.key("b");
  w.raw("{\"c\":null}");
  w.key("d");
  w.integer(std::int64_t{-7});
  w.end_object();
  EXPECT_EQ(out, R"(prefix {"a":[1,{},[],"x"],"b":{"c":null},"d":-7})");
}

TEST(CodecTest, EventLinesAreByteIdenticalToNlohmannsDump) {
  std::vector<RecordedEvent> events;
  std::uint64_t n = 0;
  for (const auto& p : test::one_of_each_type()) {
    events.push_back(recorded(p, ++n));
    if (events.back().stored_schema_version > 1) {
      events.push_back(recorded(p, ++n));
      events.back().stored_schema_version = 1;  // as stored before the last field was added
    }
  }
  // Text that needs escaping, and meta with parts missing.
  events.push_back(recorded(CustomerCreated{test::uuid(3), CustomerType::institution,
                                            "Quote \" back\\slash \n\t\x01\x1f caf\xc3\xa9 / \xe2\x9c\x93",
                                            "x@y.example"},
                            ++n));
  events.back().meta = {"", std::nullopt, std::nullopt};
  events.push_back(recorded(CustomerUpdated{test::uuid(3), {"email", "name"},
                                            {{"email", R"("new@y.example")"}, {"name", R"( "spaced \u00e9" )"}}},
                            ++n));
  events.back().meta = {"svc", test::uuid(9), std::nullopt};
  HistoryGenerator generator({.customers = 40, .seed = 11});
  while (auto e = generator.next()) events.push_back(recorded(e->payload, ++n));
  ASSERT_GT(events.size(), 500u);
  for (const auto& e : events) {
    EXPECT_EQ(format_event_line(e), reference_event_line(e)) << "seq " << e.seq.value;
  }
}

TEST(PrettyJsonWriterTest, LaysOutAsNlohmannsIndentedDump) {
  using ojson = nlohmann::ordered_json;
  // Each case: what the writer is told, and the same document for nlohmann.
  struct Case {
    std::function<void(PrettyJsonWriter&)> write;
    ojson expected;
  };
  std::vector<Case> cases;
  cases.push_back({[](PrettyJsonWriter& w) { w.begin_object(); w.end_object(); }, ojson::object()});
  cases.push_back({[](PrettyJsonWriter& w) { w.begin_array(); w.end_array(); }, ojson::array()});
  cases.push_back({[](PrettyJsonWriter& w) { w.integer(-42); }, ojson(-42)});
  cases.push_back({[](PrettyJsonWriter& w) {
                     w.begin_array();
                     w.begin_array();
                     w.end_array();
                     w.begin_object();
                     w.end_object();
                     w.begin_array();
                     w.integer(1);
                     w.null();
                     w.string("x");
                     w.end_array();
                     w.integer(INT64_MIN);
                     w.end_array();
                   },
                   ojson::array({ojson::array(), ojson::object(), ojson::array({1, nullptr, "x"}), INT64_MIN})});
  ojson nested;
  nested["quote \" back\\slash \n\x01 caf\xc3\xa9"] = "value \t\x1f";
  nested["empty"] = ojson::object();
  nested["list"] = ojson::array({ojson{{"a", 1}, {"b", ojson::array({2, 3})}}, ojson{{"c", nullptr}}});
  nested["max"] = UINT64_MAX;
  cases.push_back({[](PrettyJsonWriter& w) {
                     w.begin_object();
                     w.key("quote \" back\\slash \n\x01 caf\xc3\xa9");
                     w.string("value \t\x1f");
                     w.key("empty");
                     w.begin_object();
                     w.end_object();
                     w.key("list");
                     w.begin_array();
                     w.begin_object();
                     w.key("a");
                     w.integer(1);
                     w.key("b");
                     w.begin_array();
                     w.integer(2);
                     w.integer(3);
                     w.end_array();
                     w.end_object();
                     w.begin_object();
                     w.key("c");
                     w.null();
                     w.end_object();
                     w.end_array();
                     w.key("max");
                     w.integer(UINT64_MAX);
                     w.end_object();
                   },
                   nested});
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::string out = "kept ";
    PrettyJsonWriter w(out);
    cases[i].write(w);
    EXPECT_EQ(out, "kept " + cases[i].expected.dump(2)) << "case " << i;
  }
}

TEST(EventLineWriterTest, WritesFormatEventLinesAcrossBlocksAndReportsAFailedStream) {
  std::vector<RecordedEvent> events;
  std::uint64_t n = 0;
  HistoryGenerator generator({.customers = 120, .seed = 5});
  while (auto e = generator.next()) events.push_back(recorded(e->payload, ++n));
  std::string expected;
  for (const auto& e : events) expected += format_event_line(e) + "\n";
  ASSERT_GT(expected.size(), 3 * EventLineWriter::block_bytes);  // several full blocks and a partial one

  std::ostringstream out;
  {
    EventLineWriter lines(out);
    for (const auto& e : events) ASSERT_TRUE(lines.add(e));
    EXPECT_LT(out.str().size(), expected.size());  // the last block is still gathered
    EXPECT_TRUE(lines.finish());
  }
  EXPECT_EQ(out.str(), expected);

  std::ostringstream broken;
  broken.setstate(std::ios::badbit);
  EventLineWriter lines(broken);
  bool accepted = true;
  for (const auto& e : events) accepted = accepted && lines.add(e);
  EXPECT_FALSE(accepted);
  EXPECT_FALSE(lines.finish());
}

struct BadLine {
  const char* line;
  const char* message;  // a part of the error that names what is wrong
};

TEST(CodecTest, BadInputIsRefusedWithAMessageNamingTheField) {
  const std::string c = test::uuid(1).to_string();
  const std::string ok_data = R"({"customerId":")" + c + R"(","amount":5,"usageId":")" + c +
                              R"(","userId":")" + c + R"(","feature":"export"})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {R"({"data":{}})", "type is missing"},
      {R"({"type":"token.stolen","data":{}})", "type is not one of the 19 event types"},
      {R"({"type":"token.used"})", "data is missing"},
      {R"({"type":"token.used","data":{"customerId":"nope"}})", "data.customerId must be a UUID"},
      {R"({"type":"token.used","data":)" + ok_data.substr(0, ok_data.size() - 1) + R"(,"extra":1}})",
       "data.extra is not a field of token.used"},
      {R"({"type":"token.used","data":{"customerId":")" + c + R"(","amount":-5}})",
       "data.amount must be an integer > 0, got -5"},
      {R"({"type":"token.used","data":{"customerId":")" + c + R"(","amount":2.5}})",
       "data.amount must be an integer"},
      {R"({"type":"token.used","data":{"customerId":")" + c + R"(","amount":5}})", "data.usageId is missing"},
      {R"({"type":"token.used","timestamp":"tomorrow","data":)" + ok_data + "}", "timestamp must be an ISO-8601"},
      {R"({"type":"token.used","stream":"tokens-x","data":)" + ok_data + "}", "does not match the event's data"},
      {R"({"type":"token.used","expectedVersion":"soon","data":)" + ok_data + "}", "expectedVersion must be"},
      {R"({"type":"token.used","colour":"red","data":)" + ok_data + "}", "\"colour\" is not a field"},
      {R"({"type":"token.used","meta":{"who":"me"},"data":)" + ok_data + "}", "meta.who is not a meta field"},
      {R"({"type":"customer.created","data":{"customerId":")" + c +
           R"(","customerType":"bank","name":"A","email":"a@b.c"}})",
       "data.customerType must be \"sme\" or \"institution\""},
      {R"({"type":"customer.created","data":{"customerId":")" + c +
           R"(","customerType":"sme","name":"A","email":"nobody"}})",
       "data.email must be an e-mail address"},
      {R"({"type":"customer.updated","data":{"customerId":")" + c +
           R"(","updatedFields":["name"],"changes":{"email":"x@y.z"}}})",
       "data.updatedFields names \"name\" but data.changes has no value for it"},
      {R"({"type":"token.purchased","data":{"customerId":")" + c +
           R"(","amount":5,"price":100,"currency":"euro","paymentReference":"p"}})",
       "data.currency must be an ISO 4217 code"},
      {R"({"type":"token.purchased","data":{"customerId":")" + c +
           R"(","amount":5,"price":100,"currency":"EUR"}})",
       "data.paymentReference is missing"},
  };
  for (const auto& [line, message] : cases) {
    auto parsed = parse_event_line(line);
    ASSERT_FALSE(parsed.ok()) << line;
    EXPECT_EQ(parsed.error().code(), ErrorCode::invalid_argument);
    EXPECT_NE(parsed.error().message().find(message), std::string::npos)
        << "line:     " << line << "\nexpected: " << message << "\ngot:      " << parsed.error().message();
  }
}

TEST(CodecTest, NestingIsRefusedJustPastTheLimitWithWhereItPassed) {
  // The line itself is one level; `extra` holds the rest.
  auto nested = [](std::size_t levels) {
    return "{\"extra\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  auto at_limit = parse_event_line(nested(limits::json_depth_max));
  ASSERT_FALSE(at_limit.ok());
  EXPECT_EQ(at_limit.error().message().find("nests deeper"), std::string::npos) << at_limit.error().message();
  auto past = parse_event_line(nested(limits::json_depth_max + 1));
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().message(), "JSON nests deeper than " + std::to_string(limits::json_depth_max) +
                                        " levels (at byte " + std::to_string(9 + limits::json_depth_max) + ")");
  // Deep and broken at once: the depth is what is said, as before.
  auto broken = parse_event_line(std::string(10'000, '['));
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message().find("nests deeper"), std::string::npos) << broken.error().message();
  // A `changes` value is held to the same limit.
  const std::string deep_value = std::string(limits::json_depth_max + 1, '[') + std::string(limits::json_depth_max + 1, ']');
  auto change = validate_payload(CustomerUpdated{test::uuid(1), {"name"}, {{"name", deep_value}}}, 1);
  ASSERT_FALSE(change.ok());
  EXPECT_NE(change.error().message().find("data.changes.name: JSON nests deeper"), std::string::npos)
      << change.error().message();
}

TEST(CodecTest, AppendAcceptsWhatReadPrintsAndIgnoresLogAssignedFields) {
  RecordedEvent e = recorded(test::token_used(1, 5, 1), 9);
  auto parsed = parse_event_line(format_event_line(e));
  ASSERT_TRUE(parsed.ok());
  NewEvent n = to_new_event(*parsed, Timestamp::now());
  EXPECT_EQ(n.id, e.id);
  EXPECT_EQ(n.timestamp, e.timestamp);
  EXPECT_EQ(n.expected, ExpectedVersion::any());
  EXPECT_EQ(n.payload, e.payload);
}

// Schema growth: token.purchased v1 had no paymentReference. The fixture holds
// stored bytes written under v1; they must decode (upcast, with an empty
// reference), re-encode to the very same bytes, and print as schemaVersion 1.
TEST(CodecTest, EventStoredUnderAnOlderSchemaStillDecodes) {
  std::string bytes = read_hex_fixture("token_purchased_v1.hex");
  ASSERT_FALSE(bytes.empty()) << "fixture missing";
  auto e = decode_canonical(bytes);
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  EXPECT_EQ(e->stored_schema_version, 1u);
  ASSERT_EQ(e->type(), EventType::token_purchased);
  const auto& p = std::get<TokenPurchased>(e->payload);
  EXPECT_EQ(p.customer_id, test::uuid(1));
  EXPECT_EQ(p.amount, 100);
  EXPECT_EQ(p.price, 4900);
  EXPECT_EQ(p.currency, "EUR");
  EXPECT_EQ(p.payment_reference, "");  // did not exist in v1
  std::string again;
  encode_canonical(*e, again);
  EXPECT_EQ(again, bytes);
  auto j = nlohmann::json::parse(format_event_line(*e));
  EXPECT_EQ(j["schemaVersion"], 1);
  EXPECT_FALSE(j["data"].contains("paymentReference"));
  auto reparsed = parse_event_line(j.dump());
  ASSERT_TRUE(reparsed.ok()) << reparsed.error().to_string();
  EXPECT_EQ(reparsed->schema_version, 1u);
}

// The current layout, frozen: a change to the stored form of the envelope or a
// v1 payload breaks this test, a reminder to version it instead.
TEST(CodecTest, CurrentStoredFormMatchesTheCommittedFixture) {
  std::string bytes = read_hex_fixture("customer_created_v1.hex");
  auto e = decode_canonical(bytes);
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  RecordedEvent expected = recorded(test::customer_created(1, CustomerType::institution), 1);
  EXPECT_EQ(e->payload, expected.payload);
  EXPECT_EQ(e->meta, expected.meta);
  std::string now;
  encode_canonical(expected, now);
  EXPECT_EQ(now, bytes);
}

TEST(CodecTest, TruncatedOrUnknownStoredBytesAreCorruption) {
  RecordedEvent e = recorded(test::token_used(1, 5, 1), 2);
  std::string bytes;
  encode_canonical(e, bytes);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    auto d = decode_canonical(std::string_view(bytes).substr(0, cut));
    ASSERT_FALSE(d.ok()) << cut;
    EXPECT_EQ(d.error().code(), ErrorCode::corruption);
  }
  auto trailing = decode_canonical(bytes + "x");
  ASSERT_FALSE(trailing.ok());
  EXPECT_NE(trailing.error().message().find("trailing"), std::string::npos);

  // A length past the record's end (here the stream name's, which the 8
  // bytes before the name hold) is refused before anything is allocated
  // for it: 2^40 and 2^64-1 bytes, not a bad_alloc or an attempt at a terabyte.
  const std::size_t name_at = bytes.find(e.stream);
  ASSERT_NE(name_at, std::string::npos);
  ASSERT_GE(name_at, 8u);
  for (std::uint64_t huge : {std::uint64_t{1} << 40, UINT64_MAX}) {
    std::string patched = bytes;
    for (int b = 0; b < 8; ++b) patched[name_at - 8 + b] = static_cast<char>(huge >> (8 * b));
    auto d = decode_canonical(patched);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code(), ErrorCode::corruption);
    EXPECT_NE(d.error().message().find("is larger than the"), std::string::npos) << d.error().message();
  }
}

}  // namespace
}  // namespace cs
