// Google Benchmark of the CPU pooling op at the shapes the published methods use, next to the
// machine's copy bandwidth measured in the same run (a parallel memcpy of the input, with the same
// thread count). Compare the bytes_per_second counters: pooling moves input + output bytes once.
//
//   build/bin/tokenkernels_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace {

using tkb::contiguous;

struct Case {
    const char* name;
    tk_dtype dtype;
    int64_t in_shape[5];
    tk_pool_params params;
};

tk_pool_params window_avg_2x2() { return tk_pool_params{TK_POOL_WINDOW_AVG, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}}; }
tk_pool_params bilinear_to(int32_t frames, int32_t side) { return tk_pool_params{TK_POOL_BILINEAR, {0, 0, 0}, {0, 0, 0}, {frames, side, side}}; }
tk_pool_params adaptive_avg_to(int32_t t, int32_t h, int32_t w) { return tk_pool_params{TK_POOL_ADAPTIVE_AVG, {0, 0, 0}, {0, 0, 0}, {t, h, w}}; }

int64_t count(const int64_t* shape) { return shape[0] * shape[1] * shape[2] * shape[3] * shape[4]; }

// Fresh non-zero bytes: random floats in [-1, 1) reinterpreted at the dtype's width keep every
// format finite (f16/bf16 halves of a float's bits are finite for these magnitudes).
std::vector<uint8_t> random_bytes(int64_t elements, tk_dtype dtype) {
    std::vector<uint8_t> bytes(static_cast<size_t>(elements * tk_dtype_size(dtype)));
    std::mt19937 rng(12345);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < elements; ++i) {
        const float v = dist(rng);
        uint32_t u;
        std::memcpy(&u, &v, 4);
        if (dtype == TK_DTYPE_F32) {
            std::memcpy(bytes.data() + 4 * i, &u, 4);
        } else {
            const uint16_t high = static_cast<uint16_t>(dtype == TK_DTYPE_BF16 ? u >> 16 : 0x3c00u | (u & 0x03ffu));
            std::memcpy(bytes.data() + 2 * i, &high, 2);
        }
    }
    return bytes;
}

void BM_Pool(benchmark::State& state, Case c) {
    tk_set_num_threads(static_cast<int32_t>(state.range(0)));
    int64_t out_shape[5];
    if (tk_pool_output_shape(&c.params, c.in_shape, out_shape) != TK_STATUS_OK) {
        state.SkipWithError(tk_last_error());
        return;
    }
    std::vector<uint8_t> in = random_bytes(count(c.in_shape), c.dtype);
    std::vector<uint8_t> out(static_cast<size_t>(count(out_shape) * tk_dtype_size(c.dtype)), 1);
    const tk_tensor x = contiguous(in.data(), c.dtype, 5, c.in_shape);
    const tk_tensor y = contiguous(out.data(), c.dtype, 5, out_shape);
    for (auto _ : state) {
        if (tk_pool(&c.params, &x, &y, nullptr, 0, nullptr) != TK_STATUS_OK) {
            state.SkipWithError(tk_last_error());
            return;
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(in.size() + out.size()));
    state.counters["tokens_in"] = static_cast<double>(c.in_shape[0] * c.in_shape[1] * c.in_shape[2] * c.in_shape[3]);
    state.counters["tokens_out"] = static_cast<double>(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]);
}

// The copy roofline: each thread memcpys its share of the input; bytes read + written counted.
void BM_Copy(benchmark::State& state, int64_t bytes) {
    const int threads = static_cast<int>(state.range(0));
    std::vector<uint8_t> src(static_cast<size_t>(bytes), 3), dst(static_cast<size_t>(bytes), 0);
    for (auto _ : state) {
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            const size_t begin = static_cast<size_t>(bytes * t / threads), end = static_cast<size_t>(bytes * (t + 1) / threads);
            workers.emplace_back([&, begin, end] { std::memcpy(dst.data() + begin, src.data() + begin, end - begin); });
        }
        for (auto& w : workers) w.join();
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * 2 * bytes);
}

void register_all() {
    const int hw = static_cast<int>(std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1);
    const Case cases[] = {
        {"llava_video_avg2x2/64x27x27x1152/f32", TK_DTYPE_F32, {1, 64, 27, 27, 1152}, window_avg_2x2()},
        {"llava_video_avg2x2/64x27x27x1152/bf16", TK_DTYPE_BF16, {1, 64, 27, 27, 1152}, window_avg_2x2()},
        {"llava_ov_bilinear14/64x27x27x1152/f32", TK_DTYPE_F32, {1, 64, 27, 27, 1152}, bilinear_to(64, 14)},
        {"llava_ov_bilinear14/64x27x27x1152/bf16", TK_DTYPE_BF16, {1, 64, 27, 27, 1152}, bilinear_to(64, 14)},
        {"pllava_adaptive/16x24x24x4096/f32", TK_DTYPE_F32, {1, 16, 24, 24, 4096}, adaptive_avg_to(16, 12, 12)},
        {"pllava_adaptive/16x24x24x4096/f16", TK_DTYPE_F16, {1, 16, 24, 24, 4096}, adaptive_avg_to(16, 12, 12)},
    };
    for (const Case& c : cases) {
        benchmark::RegisterBenchmark((std::string("pool/") + c.name).c_str(), BM_Pool, c)
            ->Arg(1)->Arg(hw)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
    }
    const int64_t f32_input = int64_t{64} * 27 * 27 * 1152 * 4;
    benchmark::RegisterBenchmark("copy/64x27x27x1152/f32", BM_Copy, f32_input)
        ->Arg(1)->Arg(hw)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) { return tkb::run_benchmarks(argc, argv, register_all); }
