// Indented JSON text written straight to a string, in the layout of
// nlohmann's dump(2): reports of many megabytes (the token audit) are
// written without building a document of them first, which cost more time
// and memory than the report itself.
//
// The layout: two spaces per level, `"key": value`, one member or element
// per line, `{}` and `[]` when empty. Strings are escaped as JsonWriter
// does (nlohmann's dump()). The caller keeps the structure valid; misuse
// (a key in an array, a close without an open, deeper than depth_max) is a
// programming error. Nothing is held back: between two calls the caller may
// write the string out and clear it. Not thread-safe; the string is borrowed.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cs/assert.h"
#include "cs/json_writer.h"

namespace cs {

class PrettyJsonWriter {
 public:
  static constexpr std::size_t depth_max = 32;

  // Appends to `out` after whatever it holds already.
  explicit PrettyJsonWriter(std::string& out) : out_(out) {}

  void begin_object() { open('{', true); }
  void end_object() { close('}', true); }
  void begin_array() { open('[', false); }
  void end_array() { close(']', false); }
  void key(std::string_view name) {
    CS_ASSERT(depth_ > 0 && levels_[depth_ - 1].is_object && !after_key_,
              "PrettyJsonWriter: a key outside an object, or two keys in a row");
    next_entry();
    JsonWriter::append_quoted(out_, name);
    out_ += ": ";
    after_key_ = true;
  }
  void string(std::string_view value) {
    before_value();
    JsonWriter::append_quoted(out_, value);
  }
  template <class Int>
  void integer(Int value) {
    before_value();
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
  }
  void null() {
    before_value();
    out_ += "null";
  }

 private:
  struct Level {
    bool is_object = false;
    bool has_entries = false;
  };

  void before_value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    CS_ASSERT(depth_ == 0 || !levels_[depth_ - 1].is_object, "PrettyJsonWriter: a value in an object without a key");
    if (depth_ > 0) next_entry();
  }
  // A new member or element of the innermost container, on its own line.
  void next_entry() {
    Level& level = levels_[depth_ - 1];
    out_ += level.has_entries ? ",\n" : "\n";
    level.has_entries = true;
    out_.append(2 * depth_, ' ');
  }
  void open(char bracket, bool is_object) {
    before_value();
    CS_ASSERT(depth_ < depth_max, "PrettyJsonWriter: nesting deeper than depth_max");
    levels_[depth_++] = {is_object, false};
    out_ += bracket;
  }
  void close(char bracket, bool is_object) {
    CS_ASSERT(depth_ > 0 && levels_[depth_ - 1].is_object == is_object && !after_key_,
              "PrettyJsonWriter: a close that does not match its open, or after a key");
    const bool had_entries = levels_[--depth_].has_entries;
    if (had_entries) {
      out_ += '\n';
      out_.append(2 * depth_, ' ');
    }
    out_ += bracket;
  }

  std::string& out_;
  std::array<Level, depth_max> levels_{};
  std::size_t depth_ = 0;
  bool after_key_ = false;
};

}  // namespace cs
