// Fuzzes config.json parsing: bytes -> ConfigReader -> each typed config.
//
// Every input must either parse or fail with a mindiesd::Error (malformed JSON, a duplicate key,
// a wrong type, an inconsistent value); any other outcome is a bug. A config that parses must
// survive its own serialisation: to_json(), dumped to text and read again, gives an equal struct
// (the fuzzer aborts naming the class otherwise). Each typed read gets its own reader so that one
// class's _class_name check does not hide the others' field handling.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
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
  Config c;
  try {
    ConfigReader r(std::move(j), "fuzz");
    c = Config::read(r);
    (void)r.unknown_keys();
  } catch (const mindiesd::Error&) {
    return;
  }
  std::string text;
  try {
    text = c.to_json().dump();
  } catch (const mindiesd::Error& e) {
    if (e.kind() == mindiesd::ErrorKind::Unsupported) return;  // values the struct does not keep
    throw;
  }
  // Errors here are bugs too: what was accepted once must be accepted again.
  ConfigReader again = ConfigReader::from_string(text, "fuzz (re-read)");
  const Config back = Config::read(again);
  if (!(back == c) || !again.unknown_keys().empty()) {
    std::fprintf(stderr, "%s does not survive a round trip through %s\n", Config::kClassName,
                 text.c_str());
    std::abort();
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
    read_as<AutoencoderKLWanConfig>(json, strip);
    read_as<UniPCMultistepSchedulerConfig>(json, strip);
  }
  return 0;
}
