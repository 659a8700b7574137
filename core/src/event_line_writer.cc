#include "cs/event_line_writer.h"

#include "cs/json_codec.h"

namespace cs {

namespace {
// Room for the line that crosses block_bytes, so the buffer rarely grows.
constexpr std::size_t line_slack_bytes = 4096;
}  // namespace

EventLineWriter::EventLineWriter(std::ostream& out) : out_(out) {
  block_.reserve(block_bytes + line_slack_bytes);
}

EventLineWriter::~EventLineWriter() {
  if (!block_.empty()) out_.write(block_.data(), static_cast<std::streamsize>(block_.size()));
}

bool EventLineWriter::add(const RecordedEvent& event) {
  append_event_line(block_, event);
  block_.push_back('\n');
  if (block_.size() >= block_bytes) {
    out_.write(block_.data(), static_cast<std::streamsize>(block_.size()));
    block_.clear();
  }
  return static_cast<bool>(out_);
}

bool EventLineWriter::finish() {
  out_.write(block_.data(), static_cast<std::streamsize>(block_.size()));
  block_.clear();
  out_.flush();
  return static_cast<bool>(out_);
}

}  // namespace cs
