// Helpers shared by the Google Benchmark programs: packed CPU tensor descriptors, random inputs, main().
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkb {

// A packed row-major CPU tensor of `rank` dimensions over data.
inline tk_tensor contiguous(void* data, tk_dtype dtype, int32_t rank, const int64_t* shape) {
    tk_tensor t{};
    t.data = data;
    t.dtype = dtype;
    t.device_kind = TK_DEVICE_CPU;
    t.rank = rank;
    int64_t stride = 1;
    for (int32_t d = rank - 1; d >= 0; --d) {
        t.shape[d] = shape[d];
        t.strides[d] = stride;
        stride *= shape[d];
    }
    return t;
}

// count normal values of standard deviation scale, the same for the same seed.
inline std::vector<float> random_floats(int64_t count, float scale = 1.0f, uint32_t seed = 12345) {
    std::vector<float> values(static_cast<size_t>(count));
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    for (float& v : values) v = dist(rng);
    return values;
}

// The whole main() of a benchmark program whose benchmarks register_all() registers (at run time,
// so that their sizes can depend on the machine).
inline int run_benchmarks(int argc, char** argv, void (*register_all)()) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace tkb
