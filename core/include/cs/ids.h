// Strong types for the numbers that must never be mixed up.
//
// A global log sequence, a stream version and a Kafka offset are all integers,
// but adding one to another is always a bug; each is its own type here.
//
//   seq:      1  2  3  4  5  6      (global, gap-free, starts at 1)
//   stream A: 1     2        3      (per stream, gap-free, starts at 1)
//   stream B:    1     2  3
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace cs {

template <class Tag, class Rep>
struct StrongNumber {
  Rep value{};

  constexpr StrongNumber() = default;
  constexpr explicit StrongNumber(Rep v) : value(v) {}

  constexpr auto operator<=>(const StrongNumber&) const = default;
  constexpr StrongNumber next() const { return StrongNumber(value + 1); }
  constexpr StrongNumber prev() const { return StrongNumber(value - 1); }
};

// Position of an event in the whole log. 0 means "before the first event".
using Sequence = StrongNumber<struct SequenceTag, std::uint64_t>;
// Position of an event in its stream. 0 means "the stream has no event".
using StreamVersion = StrongNumber<struct StreamVersionTag, std::uint64_t>;
// A Kafka partition offset (signed, as librdkafka's).
using KafkaOffset = StrongNumber<struct KafkaOffsetTag, std::int64_t>;

}  // namespace cs

template <class Tag, class Rep>
struct std::hash<cs::StrongNumber<Tag, Rep>> {
  std::size_t operator()(const cs::StrongNumber<Tag, Rep>& n) const noexcept {
    return std::hash<Rep>{}(n.value);
  }
};
