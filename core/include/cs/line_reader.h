// Reads lines with a length limit, so one huge line cannot exhaust memory:
// the rest of an over-long line is skipped and the line reported as too long.
#pragma once

#include <cstdint>
#include <istream>
#include <string>

namespace cs {

class LineReader {
 public:
  LineReader(std::istream& in, std::size_t line_bytes_max) : in_(in), max_(line_bytes_max) {}

  // Fills `line` (without the newline) and returns true, or false at the end.
  // `too_long` tells that the line was cut at the limit.
  bool next(std::string& line, bool& too_long) {
    line.clear();
    too_long = false;
    char c;
    bool any = false;
    while (in_.get(c)) {
      any = true;
      if (c == '\n') break;
      if (line.size() < max_) {
        line.push_back(c);
      } else {
        too_long = true;
      }
    }
    if (!any) return false;
    ++number_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }
  // 1-based number of the line last returned.
  std::uint64_t number() const { return number_; }

 private:
  std::istream& in_;
  std::size_t max_;
  std::uint64_t number_ = 0;
};

}  // namespace cs
