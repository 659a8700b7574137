// Assertions that stay on in release builds.
//
// CS_ASSERT is for programming errors only: a broken invariant means the
// process cannot trust its own state, so it prints where and why and aborts.
// Operating errors (I/O, conflicts, bad input) are returned as cs::Error.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace cs::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line,
                                       const char* why) {
  std::fprintf(stderr, "assertion failed: %s (%s) at %s:%d\n", expr, why, file, line);
  std::abort();
}
}  // namespace cs::detail

#define CS_ASSERT(cond, why)                                          \
  do {                                                                \
    if (!(cond)) ::cs::detail::assert_failed(#cond, __FILE__, __LINE__, why); \
  } while (0)

// For code that a correct program never reaches (an exhaustive switch's end).
#define CS_UNREACHABLE(why) ::cs::detail::assert_failed("unreachable", __FILE__, __LINE__, why)
