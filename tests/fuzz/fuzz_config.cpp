// Fuzzes config.json parsing: bytes -> ConfigReader -> each typed config.
//
// Every input must either parse or fail with a mindiesd::Error (malformed JSON, a duplicate key,
// a wrong type, an inconsistent value); any other outcome is a bug. Each typed read gets its own
// reader so that one class's _class_name check does not hide the others' field handling.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/io/config.h"

namespace {

template <typename Config>
void read_as(const nlohmann::json& json, bool strip_class) {
  using namespace mindiesd::io;
  nlohmann::json j = json;
  // Without the class name every typed reader gets to look at every field.
  if (strip_class) j.erase("_class_name");
  try {
    ConfigReader r(std::move(j), "fuzz");
    Config::read(r);
    (void)r.unknown_keys();
  } catch (const mindiesd::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mindiesd::io;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json json;
  try {
    ConfigReader r = ConfigReader::from_string(text, "fuzz");
    (void)r.unknown_keys();
    (void)r.metadata_keys();
    (void)r.class_name();
    json = r.json();
  } catch (const mindiesd::Error&) {
    return 0;
  }
  for (bool strip : {false, true}) {
    read_as<AutoencoderKLConfig>(json, strip);
    read_as<FluxTransformer2DModelConfig>(json, strip);
    read_as<WanTransformer3DModelConfig>(json, strip);
    read_as<FlowMatchEulerDiscreteSchedulerConfig>(json, strip);
  }
  return 0;
}
