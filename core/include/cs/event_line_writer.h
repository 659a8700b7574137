// Event lines (format_event_line's form, one per line) written to a stream in
// large blocks: readers print hundreds of thousands of lines a second, and one
// stream write per line was a fifth of their time.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "cs/event.h"

namespace cs {

class EventLineWriter {
 public:
  // Bytes gathered before one write to the stream.
  static constexpr std::size_t block_bytes = 1 << 16;

  // `out` is borrowed and must outlive the writer. Not thread-safe.
  explicit EventLineWriter(std::ostream& out);
  // Writes what is still gathered (errors are lost here: call finish()).
  ~EventLineWriter();
  EventLineWriter(const EventLineWriter&) = delete;
  EventLineWriter& operator=(const EventLineWriter&) = delete;

  // Adds `event`'s line and its newline; writes a block once one is full.
  // Returns false once the stream has failed (the caller should stop).
  bool add(const RecordedEvent& event);
  // Writes what is gathered and flushes the stream. Returns false if any
  // write failed.
  bool finish();

 private:
  std::ostream& out_;
  std::string block_;
};

}  // namespace cs
