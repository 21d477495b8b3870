// The CUDA runtime behind the ABI's device queries, memory helpers and per-tensor device checks.
// Implemented by cuda/runtime.cu when CUDA is built and by cuda/unavailable.cpp when it is not, so
// no other file needs an #ifdef. Every function throws tk::Error on failure.
#pragma once

#include <cstdint>
#include <string>

namespace tk::cuda {

bool is_built() noexcept;
// Usable devices; 0 without a driver or device (never throws).
int32_t device_count() noexcept;
// `argument` is the full argument name used in messages ("x.device_ordinal", "ordinal", "x.data").
// Throws BACKEND_UNAVAILABLE when CUDA is not built or no device is present, INVALID_ARGUMENT
// naming `argument` when ordinal is out of range.
void require_device(int32_t ordinal, const char* argument);
// Throws INVALID_ARGUMENT naming `argument` when ptr is not memory that device `ordinal` can
// address (host memory that was never registered, or another device's memory).
void require_device_pointer(const void* ptr, int32_t ordinal, const char* argument);
// For a device that exists (require_device): throws BACKEND_UNAVAILABLE naming `argument`, the device,
// its compute capability and the build's CUDA architectures when this library holds no code the
// device can run (core/cuda_architectures.hpp), instead of every launch failing with "no kernel image".
void require_runnable_device(int32_t ordinal, const char* argument);
// Throws INVALID_ARGUMENT naming "stream" when stream (a cudaStream_t; NULL and the per-thread default
// stream are the current device's) was created on another device than `ordinal`.
void require_stream_of_device(void* stream, int32_t ordinal);

std::string device_name(int32_t ordinal);
void device_capability(int32_t ordinal, int32_t* major, int32_t* minor);

void* stream_create(int32_t ordinal);
void stream_destroy(void* stream);
void stream_synchronize(void* stream);

void* malloc_device(int32_t ordinal, uint64_t bytes);
void free_device(int32_t ordinal, void* ptr);
void memcpy_async(void* dst, const void* src, uint64_t bytes, void* stream);
void memset_async(void* dst, int32_t value, uint64_t bytes, void* stream);

}  // namespace tk::cuda
