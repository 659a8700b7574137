// JSON text appended straight to a string, for the hot paths: the records the
// distributor publishes and the lines `csctl read` and `export` print. Building
// a nlohmann document for each of those costs several times the bytes it
// produces; this writes the same bytes (nlohmann's dump(): no spaces, strings
// escaped the same way, which tests check) without a tree in between.
//
// The caller keeps the structure valid (a key before each member value);
// commas are placed from the text already written. Strings must be UTF-8, as
// everything that enters the log is. Not thread-safe; the string is borrowed.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cs/assert.h"

namespace cs {

class JsonWriter {
 public:
  // Appends to `out` after whatever it holds already.
  explicit JsonWriter(std::string& out) : out_(out) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(std::string_view name) {
    member_separator();
    append_quoted(out_, name);
    out_ += ':';
    after_key_ = true;
  }
  // A member name the code spells (a literal, a schema field's name), which
  // has no byte JSON escapes: appended as it is. A name that comes from
  // input (a `changes` key) goes through key(). The schema's names are
  // checked byte for byte against nlohmann's dump() by CodecTest.
  void known_key(std::string_view name) {
    member_separator();
    // One append of `"name":` instead of three (names are short).
    char quoted[known_key_bytes_max + 3];
    CS_ASSERT(name.size() <= known_key_bytes_max, "JsonWriter::known_key: a name longer than known_key_bytes_max");
    quoted[0] = '"';
    std::memcpy(quoted + 1, name.data(), name.size());
    quoted[name.size() + 1] = '"';
    quoted[name.size() + 2] = ':';
    out_.append(quoted, name.size() + 3);
    after_key_ = true;
  }
  void string(std::string_view value) {
    value_separator();
    append_quoted(out_, value);
  }
  // A string the caller knows has no byte JSON escapes (`"`, `\\`, below
  // 0x20): hex digits, UUIDs, timestamps, the log's own names. Appended
  // without looking at it.
  void unescaped_string(std::string_view value) {
    value_separator();
    out_ += '"';
    out_ += value;
    out_ += '"';
  }
  template <class Int>
  void integer(Int value) {
    value_separator();
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
    out_.append(buf, end);
  }
  void boolean(bool value) {
    value_separator();
    out_ += value ? "true" : "false";
  }
  void null() {
    value_separator();
    out_ += "null";
  }
  // A value that is JSON text already (in nlohmann's compact form).
  void raw(std::string_view json) {
    value_separator();
    out_ += json;
  }

  // `value` as a JSON string literal, quotes included, escaped as nlohmann's dump() does.
  static void append_quoted(std::string& out, std::string_view value);

 private:
  static constexpr int depth_max = 64;  // nesting levels; events nest three deep
  static constexpr std::size_t known_key_bytes_max = 64;  // the schema's names are under 20 bytes

  void open(char bracket) {
    value_separator();
    CS_ASSERT(depth_ < depth_max, "JSON nesting deeper than JsonWriter::depth_max");
    has_members_ &= ~(std::uint64_t{1} << depth_);
    ++depth_;
    out_ += bracket;
  }
  void close(char bracket) {
    CS_ASSERT(depth_ > 0 && !after_key_, "JsonWriter: close without a matching open, or after a key");
    --depth_;
    out_ += bracket;
  }
  void member_separator() {
    CS_ASSERT(depth_ > 0 && !after_key_, "JsonWriter: a key outside an object, or two keys in a row");
    std::uint64_t bit = std::uint64_t{1} << (depth_ - 1);
    if (has_members_ & bit) out_ += ',';
    has_members_ |= bit;
  }
  // After a key the value follows its colon; in an array, elements are separated.
  void value_separator() {
    if (after_key_) {
      after_key_ = false;
    } else if (depth_ > 0) {
      member_separator();
    }
  }

  std::string& out_;
  int depth_ = 0;
  std::uint64_t has_members_ = 0;  // bit d: the container at depth d+1 has an entry
  bool after_key_ = false;
};

}  // namespace cs
