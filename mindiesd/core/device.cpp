#include "mindiesd/core/device.h"

#include <charconv>

#include "mindiesd/core/error.h"

namespace mindiesd {

const char* device_type_name(DeviceType t) { return t == DeviceType::CPU ? "cpu" : "cuda"; }

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    int idx = -1;
    const auto rest = text.substr(5);
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), idx);
    if (ec == std::errc() && p == rest.data() + rest.size() && idx >= 0) return cuda(idx);
  }
  MINDIESD_THROW(InvalidArgument, "unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

}  // namespace mindiesd
