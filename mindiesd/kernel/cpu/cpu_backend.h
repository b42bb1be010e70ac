#pragma once

#include "mindiesd/core/backend.h"

namespace mindiesd::cpu {
// Registers the CPU backend and every CPU kernel family.
void register_cpu_backend();
}  // namespace mindiesd::cpu
