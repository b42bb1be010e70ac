// Fuzzes the quantized-checkpoint readers: the description JSON (quant_model_description_*.json)
// and a quantized layer's tensors as they come from a weight file.
//
// Input: byte 0 selects the reader. Even: the rest is a description, parsed by
// parse_quant_description. Odd: byte 1 picks the algorithm, the rest is a safetensors file image
// whose tensors named "l.<name>" are a layer's tensors (weight, weight_scale, input_scale, ...)
// handed to QuantizedLinear::from_tensors. Every input must either be accepted or fail with a
// mindiesd::Error naming the problem; anything else (a crash, a sanitizer report, another
// exception) is a bug. An accepted layer's shapes must be consistent with its weight.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <memory>
#include <string_view>
#include <vector>

#include "mindiesd/core/error.h"
#include "mindiesd/core/op.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/kernel/cpu/kernels.h"
#include "mindiesd/quant/quant_format.h"
#include "mindiesd/quant/quant_linear.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // dtype conversions (Tensor::to), the only kernels the readers use
  mindiesd::cpu::register_copy_kernels(mindiesd::kernel_registry());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mindiesd;
  if (size < 2) return 0;
  try {
    if ((data[0] & 1) == 0) {
      (void)quant::parse_quant_description(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1),
                                           "fuzz");
      return 0;
    }
    const quant::QuantAlgo algos[] = {quant::QuantAlgo::W8A8,  quant::QuantAlgo::W8A8_DYNAMIC,
                                      quant::QuantAlgo::W8A8_TIMESTEP, quant::QuantAlgo::W8A16,
                                      quant::QuantAlgo::W4A16, quant::QuantAlgo::FP8_DYNAMIC};
    const quant::QuantAlgo algo = algos[data[1] % 6];
    auto bytes = std::make_shared<std::vector<uint8_t>>(data + 2, data + size);
    const auto file = io::SafetensorsFile::from_buffer(*bytes, bytes, "fuzz");
    quant::TensorMap t;
    for (const std::string& n : file->names())
      if (n.rfind("l.", 0) == 0) t[n.substr(2)] = file->get(n);
    const auto q = quant::QuantizedLinear::from_tensors(algo, "l", t);
    if (q->tensors().at("weight").size(0) != q->out_features()) {
      std::fprintf(stderr, "accepted a layer whose weight does not match its size\n");
      std::abort();
    }
  } catch (const Error&) {
  }
  return 0;
}
