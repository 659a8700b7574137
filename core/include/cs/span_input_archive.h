// cereal's portable binary format read from bytes in memory. It loads what
// cereal::PortableBinaryInputArchive loads, byte for byte, but without an
// std::istream: that archive reads every field through a virtual streambuf
// call, which made decoding an event's fields cost more than fetching it.
//
// Failures throw cereal::Exception as cereal's archive does (the decoder
// turns them into corruption errors). One more check than cereal's: a size
// (of a string or a list) larger than the bytes left is refused before
// anything is allocated for it, so a corrupt length cannot ask for gigabytes.
#pragma once

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <limits>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cs {

class SpanInputArchive : public cereal::InputArchive<SpanInputArchive, cereal::AllowEmptyClassElision> {
 public:
  // `bytes` is borrowed for the archive's life. Reads the endianness byte
  // that cereal's portable archive writes first.
  explicit SpanInputArchive(std::string_view bytes)
      : cereal::InputArchive<SpanInputArchive, cereal::AllowEmptyClassElision>(this),
        next_(bytes.data()),
        end_(bytes.data() + bytes.size()) {
    std::uint8_t stream_little_endian = 0;
    (*this)(stream_little_endian);
    convert_endianness_ = host_little_endian() != (stream_little_endian != 0);
  }

  template <std::streamsize DataSize>
  void loadBinary(void* data, std::streamsize size) {
    if (size < 0 || static_cast<std::size_t>(size) > remaining()) {
      throw cereal::Exception("Failed to read " + std::to_string(size) + " bytes from input stream! Read " +
                              std::to_string(remaining()));
    }
    std::memcpy(data, next_, static_cast<std::size_t>(size));
    next_ += size;
    if constexpr (DataSize > 1) {
      if (convert_endianness_) {
        auto* p = static_cast<std::uint8_t*>(data);
        for (std::streamsize i = 0; i < size; i += DataSize) {
          for (std::streamsize b = 0; b < DataSize / 2; ++b) std::swap(p[i + b], p[i + DataSize - 1 - b]);
        }
      }
    }
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - next_); }

 private:
  static bool host_little_endian() {
    const std::uint16_t probe = 1;
    std::uint8_t first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
  }

  const char* next_;
  const char* end_;
  bool convert_endianness_ = false;
};

// The load functions for the archive, found through it by argument-dependent
// lookup (cereal's are in namespace cereal beside its own archives).
template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(SpanInputArchive& ar, T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "portable binary only supports IEEE 754 floating point");
  ar.template loadBinary<sizeof(T)>(std::addressof(t), sizeof(t));
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(SpanInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

// Every element of a sized string, list or map takes at least one byte of the record.
template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(SpanInputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (static_cast<std::uint64_t>(t.size) > ar.remaining()) {
    throw cereal::Exception("a size of " + std::to_string(static_cast<std::uint64_t>(t.size)) +
                            " is larger than the " + std::to_string(ar.remaining()) + " bytes left");
  }
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(SpanInputArchive& ar, cereal::BinaryData<T>& bd) {
  using Element = std::remove_pointer_t<T>;
  ar.template loadBinary<sizeof(Element)>(bd.data, static_cast<std::streamsize>(bd.size));
}

}  // namespace cs

// What cereal's traits ask to find the saving side of minimal serializers
// (enums). Only this direction: the portable output archive's input side is
// cereal's own archive.
namespace cereal::traits::detail {
template <>
struct get_output_from_input<cs::SpanInputArchive> {
  using type = cereal::PortableBinaryOutputArchive;
};
}  // namespace cereal::traits::detail
