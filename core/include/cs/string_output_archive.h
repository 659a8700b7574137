// cereal's portable binary format written straight into a std::string. It
// saves what cereal::PortableBinaryOutputArchive saves, byte for byte (the
// host's byte order, named by the first byte), but without an std::ostream:
// that archive writes every field through a virtual streambuf call, a fifth
// of encoding an event or a projection's state. The reading side is
// SpanInputArchive (or cereal's own portable input archive).
#pragma once

#include <cereal/cereal.hpp>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "cs/span_input_archive.h"

namespace cs {

class StringOutputArchive : public cereal::OutputArchive<StringOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  // Appends to `out`, which is borrowed for the archive's life. Writes the
  // byte order byte that cereal's portable archive writes first.
  explicit StringOutputArchive(std::string& out)
      : cereal::OutputArchive<StringOutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {
    const std::uint16_t probe = 1;
    std::uint8_t little_endian = 0;
    std::memcpy(&little_endian, &probe, 1);
    (*this)(little_endian);
  }

  template <std::streamsize DataSize>
  void saveBinary(const void* data, std::streamsize size) {
    out_.append(static_cast<const char*>(data), static_cast<std::size_t>(size));
  }

 private:
  std::string& out_;
};

// The save functions for the archive, found through it by argument-dependent
// lookup (cereal's are in namespace cereal beside its own archives).
template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "portable binary only supports IEEE 754 floating point");
  ar.template saveBinary<sizeof(T)>(std::addressof(t), sizeof(t));
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  using Element = std::remove_pointer_t<T>;
  ar.template saveBinary<sizeof(Element)>(bd.data, static_cast<std::streamsize>(bd.size));
}

}  // namespace cs

// What cereal's traits ask to find the loading side of minimal serializers
// (enums).
namespace cereal::traits::detail {
template <>
struct get_input_from_output<cs::StringOutputArchive> {
  using type = cs::SpanInputArchive;
};
}  // namespace cereal::traits::detail
