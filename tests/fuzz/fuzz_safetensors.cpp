// Fuzzes the safetensors header parser and reader on in-memory file images.
//
// Any input must either parse or fail with a mindiesd::Error; anything else (a crash, a
// sanitizer report, another exception type escaping) is a bug. For inputs that parse, it also
// checks what the validation promises (every range inside the data section, byte counts that
// match the shapes, no overlaps), reads every tensor, and round-trips the file through the
// writer: re-serialising the tensors and parsing the result must give the same header.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/safetensors.h"

namespace {

void check(bool cond) {
  if (!cond) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mindiesd;
  using namespace mindiesd::io;
  std::shared_ptr<SafetensorsFile> file;
  try {
    file = SafetensorsFile::from_buffer(std::span<const uint8_t>(data, size), nullptr, "fuzz");
  } catch (const Error&) {
    return 0;
  }
  const SafetensorsHeader& h = file->header();
  check(h.data_offset + h.data_bytes == size);
  std::vector<std::pair<std::string, Tensor>> tensors;
  bool all_supported = true;
  for (const std::string& name : file->names()) {
    const TensorInfo& t = file->info(name);
    check(t.begin <= t.end && static_cast<uint64_t>(t.end) <= h.data_bytes);
    check(t.nbytes() * 8 == t.numel * t.dtype_bits);
    if (!t.dtype) {
      all_supported = false;
      continue;
    }
    try {
      Tensor x = file->get(name);
      check(x.nbytes() == t.nbytes());
      check(reinterpret_cast<uintptr_t>(x.data_ptr()) %
                static_cast<uintptr_t>(std::max(1, dtype_bits(x.dtype()) / 8)) ==
            0);
      if (x.nbytes() > 0) {
        // Touch both ends so ASan sees any read outside the buffer.
        const auto* p = static_cast<const uint8_t*>(x.data_ptr());
        check(std::memcmp(p, data + h.data_offset + t.begin, static_cast<size_t>(x.nbytes())) == 0);
      }
      tensors.emplace_back(name, std::move(x));
    } catch (const Error&) {
      // e.g. OutOfMemory for an aligned copy; still never a crash
      all_supported = false;
    }
  }
  if (!all_supported) return 0;

  // Round trip through the writer.
  std::vector<uint8_t> again;
  try {
    again = serialize_safetensors(tensors, file->metadata());
  } catch (const Error&) {
    return 0;  // e.g. metadata or names that are not UTF-8 are refused by the writer
  }
  const auto back = SafetensorsFile::from_buffer(again, nullptr, "fuzz-roundtrip");
  check(back->names() == file->names());
  check(back->metadata() == file->metadata());
  check(back->header().data_offset % 8 == 0);
  for (const std::string& name : file->names()) {
    check(back->info(name).shape == file->info(name).shape);
    check(back->info(name).dtype_name == file->info(name).dtype_name);
  }
  return 0;
}
