// Google Benchmark of CPU bipartite token merging at ToMe's and DyMU's shapes. When CMake finds a
// BLAS, the same run times its sgemm at the size of the similarity product (Ns x Nd x C), the
// roofline the fused matching is measured against: the matching does that product plus a row argmax.
// OpenBLAS may misdetect a virtualised CPU (it reports "Prescott" here and runs SSE3 kernels); set
// OPENBLAS_CORETYPE (SkylakeX, Haswell) to the real core for a fair baseline.
//
//   build/bin/tokenkernels_merge_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "tokenkernels/tokenkernels.h"

#if defined(TOKENKERNELS_BENCH_BLAS)
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);
#endif

namespace {

using tkb::contiguous;
using tkb::random_floats;

double similarity_flops(int64_t batch, int64_t tokens, int64_t channels) {
    return 2.0 * static_cast<double>(batch) * static_cast<double>((tokens + 1) / 2) * static_cast<double>(tokens / 2) *
           static_cast<double>(channels);
}

// tk_merge with x as its own metric (ToMe's keys are a [B, N, C] tensor of the same kind).
void BM_Merge(benchmark::State& state, int64_t tokens, int64_t channels, int32_t r) {
    tk_set_num_threads(static_cast<int32_t>(state.range(0)));
    const int64_t batch = state.range(1);
    tk_merge_params params{};
    params.r = r;
    params.protect_first = 1;
    int64_t effective_r = 0, out_tokens = 0;
    tk_merge_output_tokens(&params, tokens, &effective_r, &out_tokens);
    std::vector<float> x = random_floats(batch * tokens * channels);
    std::vector<float> out(static_cast<size_t>(batch * out_tokens * channels));
    std::vector<float> out_size(static_cast<size_t>(batch * out_tokens));
    std::vector<int32_t> source_map(static_cast<size_t>(batch * tokens));
    const int64_t x_shape[3] = {batch, tokens, channels}, out_shape[3] = {batch, out_tokens, channels};
    const int64_t out_rows[2] = {batch, out_tokens}, map_shape[2] = {batch, tokens};
    const tk_tensor xt = contiguous(x.data(), TK_DTYPE_F32, 3, x_shape);
    const tk_tensor outt = contiguous(out.data(), TK_DTYPE_F32, 3, out_shape);
    const tk_tensor sizet = contiguous(out_size.data(), TK_DTYPE_F32, 2, out_rows);
    const tk_tensor mapt = contiguous(source_map.data(), TK_DTYPE_I32, 2, map_shape);
    for (auto _ : state) {
        if (tk_merge(&params, &xt, &xt, nullptr, &outt, &sizet, &mapt, nullptr, nullptr, 0, nullptr) != TK_STATUS_OK) {
            state.SkipWithError(tk_last_error());
            return;
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOPS"] = benchmark::Counter(similarity_flops(batch, tokens, channels) * 1e-9 *
                                                      static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

// Matching only: the fused similarity and row argmax.
void BM_Match(benchmark::State& state, int64_t tokens, int64_t channels) {
    tk_set_num_threads(static_cast<int32_t>(state.range(0)));
    const int64_t batch = state.range(1);
    tk_merge_params params{};
    std::vector<float> metric = random_floats(batch * tokens * channels);
    const int64_t sources = (tokens + 1) / 2;
    std::vector<int32_t> dst(static_cast<size_t>(batch * sources));
    std::vector<float> best(static_cast<size_t>(batch * sources));
    const int64_t metric_shape[3] = {batch, tokens, channels}, match_shape[2] = {batch, sources};
    const tk_tensor metrict = contiguous(metric.data(), TK_DTYPE_F32, 3, metric_shape);
    const tk_tensor dstt = contiguous(dst.data(), TK_DTYPE_I32, 2, match_shape);
    const tk_tensor bestt = contiguous(best.data(), TK_DTYPE_F32, 2, match_shape);
    for (auto _ : state) {
        if (tk_merge_match(&params, &metrict, &dstt, &bestt, nullptr, 0, nullptr) != TK_STATUS_OK) {
            state.SkipWithError(tk_last_error());
            return;
        }
        benchmark::DoNotOptimize(best.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOPS"] = benchmark::Counter(similarity_flops(batch, tokens, channels) * 1e-9 *
                                                      static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

#if defined(TOKENKERNELS_BENCH_BLAS)
// The BLAS product of the same shape, once per item; its thread count is the BLAS's own setting
// (OPENBLAS_NUM_THREADS), so run it with the one tk uses.
void BM_Sgemm(benchmark::State& state, int64_t tokens, int64_t channels) {
    const int64_t batch = state.range(0);
    const int m = static_cast<int>((tokens + 1) / 2), n = static_cast<int>(tokens / 2), k = static_cast<int>(channels);
    std::vector<float> a = random_floats(int64_t{m} * k), b = random_floats(int64_t{n} * k);
    std::vector<float> c(static_cast<size_t>(int64_t{m} * n));
    const float one = 1.0f, zero = 0.0f;
    for (auto _ : state) {
        for (int64_t item = 0; item < batch; ++item)
            sgemm_("T", "N", &n, &m, &k, &one, b.data(), &k, a.data(), &k, &zero, c.data(), &n);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOPS"] = benchmark::Counter(similarity_flops(batch, tokens, channels) * 1e-9 *
                                                      static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
#endif

void register_all() {
    const int64_t hw = std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1;
    // ToMe on ViT-L/14 at 336 px: 577 tokens of 1024 channels, r = 16.
    auto* tome = benchmark::RegisterBenchmark("merge/tome_vit_l/N577xC1024/r16/f32", BM_Merge, 577, 1024, 16);
    for (int64_t batch : {1, 8, 32}) tome->Args({hw, batch});
    tome->ArgNames({"threads", "batch"})->UseRealTime()->Unit(benchmark::kMillisecond);
    // A large image grid: 10,816 SigLIP tokens of 1152 channels.
    benchmark::RegisterBenchmark("match/N10816xC1152/f32", BM_Match, 10816, 1152)
        ->Args({1, 1})->Args({hw, 1})->ArgNames({"threads", "batch"})->UseRealTime()->Unit(benchmark::kMillisecond);
#if defined(TOKENKERNELS_BENCH_BLAS)
    benchmark::RegisterBenchmark("sgemm/5408x5408x1152/f32", BM_Sgemm, 10816, 1152)
        ->Arg(1)->ArgName("batch")->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("sgemm/289x288x1024/f32", BM_Sgemm, 577, 1024)
        ->Arg(1)->Arg(8)->Arg(32)->ArgName("batch")->UseRealTime()->Unit(benchmark::kMillisecond);
#endif
}

}  // namespace

int main(int argc, char** argv) { return tkb::run_benchmarks(argc, argv, register_all); }
