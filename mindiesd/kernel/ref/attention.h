// Float64 reference attention: softmax(q k^T * scale + mask) v, materialising the full matrix.
#pragma once

#include "mindiesd/kernel/ref/ref.h"

namespace mindiesd::ref {

// q (B, Hq, Sq, D), k (B, Hkv, Sk, D), v (B, Hkv, Sk, Dv) -> (B, Hq, Sq, Dv). `mask` is empty
// or broadcastable to (B, Hq, Sq, Sk); boolean masks keep where non-zero, float masks add.
// Rows with no visible key give zeros (the engine's convention).
Array attention(const Array& q, const Array& k, const Array& v, const Array& mask, bool mask_is_bool,
                double scale, bool causal);

}  // namespace mindiesd::ref
