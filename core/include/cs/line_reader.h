// Reads lines in large blocks with a length limit, so one huge line cannot
// exhaust memory: the rest of an over-long line is skipped and the line
// reported as too long. Memory: at most line_bytes_max + block_bytes.
//
// Blocks, not characters: a per-character istream::get on std::cin costs a
// sentry and (when cin is tied to cout) a flush for every byte.
#pragma once

#include <cstdint>
#include <cstring>
#include <istream>
#include <string>
#include <string_view>

namespace cs {

class LineReader {
 public:
  static constexpr std::size_t block_bytes = 1 << 20;

  LineReader(std::istream& in, std::size_t line_bytes_max) : in_(in), max_(line_bytes_max) {}

  // Sets `line` (without the newline, nor a trailing '\r') and returns true,
  // or returns false at the end of the input. `line` stays valid until the
  // next call. `too_long`: the line passed the limit; `line` is then empty.
  bool next(std::string_view& line, bool& too_long);
  // The same, copied.
  bool next(std::string& line, bool& too_long) {
    std::string_view view;
    if (!next(view, too_long)) return false;
    line.assign(view);
    return true;
  }
  // 1-based number of the line last returned.
  std::uint64_t number() const { return number_; }

 private:
  // Moves the unread bytes to the front and reads one more block; false when
  // the input has ended.
  bool fill();

  std::istream& in_;
  std::size_t max_;
  std::string buffer_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes are buffer_[begin_, end_)
  bool ended_ = false;
  std::uint64_t number_ = 0;
};

inline bool LineReader::fill() {
  if (ended_) return false;
  if (begin_ > 0) {
    buffer_.erase(0, begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  buffer_.resize(end_ + block_bytes);
  in_.read(buffer_.data() + end_, static_cast<std::streamsize>(block_bytes));
  std::size_t got = static_cast<std::size_t>(in_.gcount());
  end_ += got;
  buffer_.resize(end_);
  if (got == 0) ended_ = true;
  return got > 0;
}

inline bool LineReader::next(std::string_view& line, bool& too_long) {
  too_long = false;
  std::size_t scanned = begin_;  // no newline in [begin_, scanned)
  for (;;) {
    const char* start = buffer_.data() + scanned;
    const void* found = scanned < end_ ? std::memchr(start, '\n', end_ - scanned) : nullptr;
    std::size_t stop = found ? static_cast<std::size_t>(static_cast<const char*>(found) - buffer_.data()) : end_;
    if (found || (ended_ && begin_ < end_)) {
      std::size_t size = stop - begin_;
      if (size > 0 && buffer_[begin_ + size - 1] == '\r') --size;
      too_long = too_long || size > max_;
      line = too_long ? std::string_view() : std::string_view(buffer_.data() + begin_, size);
      begin_ = found ? stop + 1 : end_;
      ++number_;
      return true;
    }
    if (ended_) return false;
    if (end_ - begin_ > max_ + 1) {
      // Over the limit already: forget what was read of this line.
      too_long = true;
      begin_ = end_;
    }
    scanned = end_ - begin_;
    if (!fill() && begin_ == end_) {
      if (!too_long) return false;
      ++number_;  // an over-long last line without a newline
      line = std::string_view();
      return true;
    }
    scanned += begin_;
  }
}

}  // namespace cs
