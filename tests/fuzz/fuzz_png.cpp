// Fuzzes PNG decoding from memory (the HTTP service decodes uploads with decode_png), and
// re-encodes what decodes: libpng's longjmp error path and our setjmp handling must turn every
// broken input into a mindiesd::Error, and every decoded image must round-trip exactly.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/io/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mindiesd;
  Tensor img;
  try {
    // A small pixel cap keeps a claimed 30000 x 30000 image from exhausting the fuzzer's memory.
    img = io::decode_png(std::span<const uint8_t>(data, size), "fuzz", int64_t{1} << 22);
  } catch (const Error&) {
    return 0;
  }
  const std::vector<uint8_t> png = io::encode_png(img, 1);
  const Tensor back = io::decode_png(png, "fuzz-roundtrip");
  if (!(back.shape() == img.shape()) ||
      std::memcmp(back.data_ptr(), img.data_ptr(), static_cast<size_t>(img.nbytes())) != 0) {
    __builtin_trap();
  }
  return 0;
}
