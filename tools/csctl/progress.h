// Progress of a long operation on stderr: a bar redrawn in place on a
// terminal (events done, events/s, ETA), plain lines every few seconds when
// stderr is a file or a pipe, so logs stay readable.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cs::csctl {

class ProgressReporter {
 public:
  explicit ProgressReporter(std::string label)
      : label_(std::move(label)), tty_(isatty(STDERR_FILENO) == 1), start_(clock::now()), last_(start_) {}

  // `total` 0 means unknown.
  void update(std::uint64_t done, std::uint64_t total) {
    auto now = clock::now();
    auto since_last = now - last_;
    bool finished = total > 0 && done >= total;
    if (!finished && since_last < (tty_ ? std::chrono::milliseconds(100) : std::chrono::seconds(5))) return;
    last_ = now;
    double seconds = std::chrono::duration<double>(now - start_).count();
    double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    if (tty_) {
      constexpr int width = 30;
      int filled = total > 0 ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total)) : 0;
      std::string bar(static_cast<std::size_t>(filled), '=');
      bar.resize(width, ' ');
      std::fprintf(stderr, "\r%s [%s] %llu", label_.c_str(), bar.c_str(), static_cast<unsigned long long>(done));
      if (total > 0) std::fprintf(stderr, "/%llu", static_cast<unsigned long long>(total));
      std::fprintf(stderr, " events  %.0f events/s", rate);
      if (total > 0 && rate > 0) std::fprintf(stderr, "  ETA %.0fs ", static_cast<double>(total - done) / rate);
      if (finished) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "%s: %llu", label_.c_str(), static_cast<unsigned long long>(done));
      if (total > 0) std::fprintf(stderr, " of %llu", static_cast<unsigned long long>(total));
      std::fprintf(stderr, " events, %.0f events/s\n", rate);
    }
    std::fflush(stderr);
  }

  // A callback for the engine's Progress.
  auto callback() {
    return [this](std::uint64_t done, std::uint64_t total) { update(done, total); };
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string label_;
  bool tty_;
  clock::time_point start_, last_;
};

}  // namespace cs::csctl
