// What the cuDNN users of the CUDA backend (conv.cu, attention_cudnn.cpp) share: a handle per
// device per host thread, and the text of a cuDNN status. Only with MINDIESD_CUDNN.
#pragma once

#if defined(MINDIESD_CUDNN)

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace mindiesd::cuda {

// This thread's cuDNN handle for `device` (created on first use, taken from and given back to a
// process-wide pool as threads come and go), bound to `stream`. Internal on a cuDNN error.
cudnnHandle_t cudnn_handle(int device, cudaStream_t stream);

// "CUDNN_STATUS_... (code): the library's last error message".
std::string cudnn_status_text(cudnnStatus_t s);

// cuDNN's "not supported" family of statuses (3000-3999).
bool cudnn_not_supported(cudnnStatus_t s);

}  // namespace mindiesd::cuda

#endif  // MINDIESD_CUDNN
