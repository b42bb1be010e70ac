#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mindiesd {

enum class DeviceType : uint8_t { CPU, CUDA };
inline constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool operator==(const Device&) const = default;
  std::string str() const;
  // "cpu", "cuda", "cuda:1"; throws InvalidArgument naming the text otherwise.
  static Device parse(std::string_view text);
};

const char* device_type_name(DeviceType t);

}  // namespace mindiesd
