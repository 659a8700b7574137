#include "cs/time.h"

#include <chrono>
#include <cstdio>

namespace cs {
namespace {

// Howard Hinnant's days_from_civil / civil_from_days (public domain).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};

constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool read_digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  return true;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

// Writes `digits` decimal digits of `value` (which has no more) at `out`.
void put_digits(char* out, unsigned digits, std::uint64_t value) {
  for (unsigned i = digits; i > 0; --i) {
    out[i - 1] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

// By hand rather than by snprintf: every line `csctl read` and `export`
// print carries two timestamps, and snprintf's format parsing was a sixth of
// a read's time.
std::size_t write_with_fraction(Timestamp t, int fraction_digits, char* out) {
  std::int64_t secs = t.micros / 1'000'000;
  std::int64_t micros = t.micros % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    secs -= 1;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  Civil c = civil_from_days(days);
  std::size_t n = 0;
  if (c.y >= 0 && c.y <= 9999) {
    put_digits(out, 4, static_cast<std::uint64_t>(c.y));
    n = 4;
  } else {
    // Outside what parse_timestamp accepts; printf's form, kept as it was.
    n = static_cast<std::size_t>(std::snprintf(out, timestamp_chars_max, "%04lld", static_cast<long long>(c.y)));
  }
  char* p = out + n;
  p[0] = '-';
  put_digits(p + 1, 2, c.m);
  p[3] = '-';
  put_digits(p + 4, 2, c.d);
  p[6] = 'T';
  put_digits(p + 7, 2, static_cast<std::uint64_t>(rem / 3600));
  p[9] = ':';
  put_digits(p + 10, 2, static_cast<std::uint64_t>(rem / 60 % 60));
  p[12] = ':';
  put_digits(p + 13, 2, static_cast<std::uint64_t>(rem % 60));
  p += 15;
  if (fraction_digits == 3) {
    *p++ = '.';
    put_digits(p, 3, static_cast<std::uint64_t>(micros / 1000));
    p += 3;
  } else if (fraction_digits == 6) {
    *p++ = '.';
    put_digits(p, 6, static_cast<std::uint64_t>(micros));
    p += 6;
  }
  *p++ = 'Z';
  return static_cast<std::size_t>(p - out);
}

int fraction_digits_of(Timestamp t) {
  std::int64_t frac = t.micros % 1'000'000;
  return frac == 0 ? 0 : frac % 1000 == 0 ? 3 : 6;
}

}  // namespace

Timestamp Timestamp::now() {
  auto since = std::chrono::system_clock::now().time_since_epoch();
  return Timestamp{std::chrono::duration_cast<std::chrono::microseconds>(since).count()};
}

std::optional<Timestamp> parse_timestamp(std::string_view s) {
  unsigned year, month, day, hour, minute, second;
  if (!read_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' ||
      !read_digits(s, 5, 2, month) || s[7] != '-' || !read_digits(s, 8, 2, day) ||
      (s[10] != 'T' && s[10] != 't') || !read_digits(s, 11, 2, hour) || s[13] != ':' ||
      !read_digits(s, 14, 2, minute) || s[16] != ':' || !read_digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
      hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (s[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      // Digits past microseconds are accepted and truncated.
      if (digits < 6) micros = micros * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < 6; ++i) micros *= 10;
  }
  std::string_view zone = s.substr(pos);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
  std::int64_t days = days_from_civil(year, month, day);
  std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second;
  return Timestamp{secs * 1'000'000 + micros};
}

std::size_t write_timestamp(Timestamp t, char* out) { return write_with_fraction(t, fraction_digits_of(t), out); }

std::size_t write_timestamp_millis(Timestamp t, char* out) { return write_with_fraction(t, 3, out); }

std::string format_timestamp(Timestamp t) {
  char buf[timestamp_chars_max];
  return std::string(buf, write_timestamp(t, buf));
}

std::string format_timestamp_millis(Timestamp t) {
  char buf[timestamp_chars_max];
  return std::string(buf, write_timestamp_millis(t, buf));
}

}  // namespace cs
