// JsonWriter: builds one JSON document as a string, for the figures the
// benchmark tools print. Commas are placed automatically; the caller nests
// Begin/End calls correctly.
#ifndef LOCKD_BENCH_JSON_WRITER_H_
#define LOCKD_BENCH_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"

namespace lockd::bench {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Inside an object: the name of the next value.
  JsonWriter& Key(absl::string_view key);

  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);  // non-finite values become null
  JsonWriter& Bool(bool value);

  // Key(key) then the value.
  template <typename T>
  JsonWriter& Field(absl::string_view key, const T& value);

  const std::string& str() const { return out_; }

 private:
  void BeforeValue();

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written yet
  bool after_key_ = false;
};

template <typename T>
JsonWriter& JsonWriter::Field(absl::string_view key, const T& value) {
  Key(key);
  if constexpr (std::is_convertible_v<const T&, absl::string_view>) {
    return String(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    return Bool(value);
  } else if constexpr (std::is_floating_point_v<T>) {
    return Double(value);
  } else if constexpr (std::is_signed_v<T>) {
    return Int(value);
  } else {
    return Uint(value);
  }
}

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_JSON_WRITER_H_
