// Reads lines in large blocks with a length limit, so one huge line cannot
// exhaust memory: the rest of an over-long line is skipped and the line
// reported as too long. Memory: at most line_bytes_max + 2 * block_bytes.
//
// Blocks, not characters: a per-character istream::get on std::cin costs a
// sentry and (when cin is tied to cout) a flush for every byte.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <istream>
#include <string>
#include <string_view>

namespace cs {

class LineReader {
 public:
  static constexpr std::size_t block_bytes = 1 << 20;

  LineReader(std::istream& in, std::size_t line_bytes_max) : in_(&in), max_(line_bytes_max) {}
  // Reads the file descriptor `fd` (not owned) with read(2), which returns
  // what has arrived, so that input_paused() can tell a pipe whose writer is
  // idle from one with more to read.
  LineReader(int fd, std::size_t line_bytes_max) : fd_(fd), max_(line_bytes_max) {}

  // Sets `line` (without the newline, nor a trailing '\r') and returns true,
  // or returns false at the end of the input. A UTF-8 byte order mark
  // opening the input is skipped (Windows editors write one); the line
  // parsers meet any other. `line` stays valid until the
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
  // True when no whole line is buffered and reading more would wait (a pipe
  // or a terminal whose writer has nothing to say now): a reader that batches
  // lines hands over what it has. Always false for an istream and once the
  // input has ended.
  bool input_paused() const {
    if (fd_ < 0 || ended_ || std::memchr(buffer_.data() + begin_, '\n', end_ - begin_) != nullptr) return false;
    pollfd ready{.fd = fd_, .events = POLLIN, .revents = 0};
    return ::poll(&ready, 1, 0) == 0;
  }
  // Why the input ended early (read(2) failed: stdin is a directory, say);
  // empty when it ended normally or is an istream.
  const std::string& read_error() const { return read_error_; }

 private:
  // Moves the unread bytes to the front and reads one more block; false when
  // the input has ended.
  bool fill();
  // Before the first line: steps over a byte order mark.
  void skip_byte_order_mark();

  // Up to `size` bytes at `out`; 0 at the end of the input or on an error.
  std::size_t read_some(char* out, std::size_t size);

  std::istream* in_ = nullptr;
  int fd_ = -1;
  std::size_t max_;
  std::string read_error_;
  std::string buffer_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes are buffer_[begin_, end_)
  bool ended_ = false;
  bool started_ = false;  // skip_byte_order_mark ran
  std::uint64_t number_ = 0;
};

inline std::size_t LineReader::read_some(char* out, std::size_t size) {
  if (in_ != nullptr) {
    in_->read(out, static_cast<std::streamsize>(size));
    return static_cast<std::size_t>(in_->gcount());
  }
  for (;;) {
    const ssize_t got = ::read(fd_, out, size);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno == EINTR) continue;
    read_error_ = std::strerror(errno);
    return 0;
  }
}

inline bool LineReader::fill() {
  if (ended_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // Grown once, not per read: a pipe hands over 64 KiB at a time, and
  // zeroing a block per read would cost more than the read.
  if (buffer_.size() < end_ + block_bytes) buffer_.resize(end_ + block_bytes);
  const std::size_t got = read_some(buffer_.data() + end_, block_bytes);
  end_ += got;
  if (got == 0) ended_ = true;
  return got > 0;
}

inline void LineReader::skip_byte_order_mark() {
  started_ = true;
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  while (end_ - begin_ < bom.size() && fill()) {
  }
  if (std::string_view(buffer_.data() + begin_, end_ - begin_).starts_with(bom)) begin_ += bom.size();
}

inline bool LineReader::next(std::string_view& line, bool& too_long) {
  if (!started_) skip_byte_order_mark();
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
