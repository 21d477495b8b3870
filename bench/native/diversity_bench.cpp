// Google Benchmark of the CPU diversity selection (SPEC section 4) at the shapes of the methods that use
// it: DivPrune's 56 of LLaVA-1.5's 576 image tokens in LLaMA-2-7B's width and 10% of LLaVA-Video's
// 10,816 pooled SigLIP tokens (cosine, most isolated first, max-min), the same with a given first token
// (the greedy steps without the first center's all-pairs pass), max-sum, and the squared L2 distance.
// The PyTorch side-by-side numbers (DivPrune's own code) are bench/harness's.
//
//   build/bin/tokenkernels_diversity_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace {

using tkb::contiguous;
using tkb::random_floats;

bool ok(benchmark::State& state, tk_status status) {
    if (status == TK_STATUS_OK) return true;
    state.SkipWithError(tk_last_error());
    return false;
}

// k of the N tokens of x [B, N, C] (standard normal), order and sorted indices written.
void BM_DiversitySelect(benchmark::State& state, int64_t tokens, int64_t channels, int32_t k, tk_distance distance,
                        tk_first_center first, tk_diversity_objective objective) {
    tk_set_num_threads(static_cast<int32_t>(state.range(0)));
    const int64_t batch = state.range(1);
    std::vector<float> x = random_floats(batch * tokens * channels);
    std::vector<int32_t> first_index(static_cast<size_t>(batch), 0);
    std::vector<int32_t> order(static_cast<size_t>(batch * k)), sorted(static_cast<size_t>(batch * k));
    const int64_t x_shape[3] = {batch, tokens, channels}, index_shape[1] = {batch}, out_shape[2] = {batch, k};
    const tk_tensor x_t = contiguous(x.data(), TK_DTYPE_F32, 3, x_shape);
    const tk_tensor first_index_t = contiguous(first_index.data(), TK_DTYPE_I32, 1, index_shape);
    const tk_tensor order_t = contiguous(order.data(), TK_DTYPE_I32, 2, out_shape);
    const tk_tensor sorted_t = contiguous(sorted.data(), TK_DTYPE_I32, 2, out_shape);
    tk_diversity_params params{};
    params.k = k;
    params.distance = distance;
    params.first = first;
    params.objective = objective;
    const tk_tensor* first_index_arg = first == TK_FIRST_INDEX ? &first_index_t : nullptr;
    // The caller's workspace, allocated once as a host that calls every frame would.
    uint64_t workspace_bytes = 0;
    if (!ok(state, tk_diversity_workspace_size(&params, &x_t, &workspace_bytes))) return;
    std::vector<uint8_t> workspace(static_cast<size_t>(workspace_bytes));
    for (auto _ : state) {
        if (!ok(state, tk_diversity_select(&params, &x_t, nullptr, nullptr, first_index_arg, nullptr, &order_t,
                                           &sorted_t, workspace.data(), workspace_bytes, nullptr)))
            return;
        benchmark::DoNotOptimize(order.data());
        benchmark::ClobberMemory();
    }
    // The FLOPs of the plain algorithm, 2C per distance: the first center's all pairs (most isolated),
    // then N per chosen token. The op's lazy paths skip some of them, so this is a rate of the
    // algorithm's work, comparable across shapes, not of the arithmetic done.
    const double n = static_cast<double>(tokens);
    const double pairs = (first == TK_FIRST_MOST_ISOLATED ? n * (n - 1.0) / 2.0 : 0.0) + n * static_cast<double>(k - 1);
    const double flops = 2.0 * static_cast<double>(channels) * pairs * static_cast<double>(batch);
    state.counters["GFLOPS"] =
        benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Runs each benchmark with one thread and with every hardware thread, at each batch size.
void with_threads_and_batches(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> batches) {
    const int64_t hw = std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1;
    for (int64_t threads : hw > 1 ? std::vector<int64_t>{1, hw} : std::vector<int64_t>{1})
        for (int64_t batch : batches) b->Args({threads, batch});
    b->ArgNames({"threads", "batch"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

// DivPrune's settings, the same with a given first token (the greedy steps alone), max-sum, squared L2.
struct Variant {
    const char* name;
    tk_distance distance;
    tk_first_center first;
    tk_diversity_objective objective;
};
constexpr Variant kVariants[] = {
    {"cosine/most_isolated/max_min", TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN},
    {"cosine/index/max_min", TK_DISTANCE_COSINE, TK_FIRST_INDEX, TK_DIVERSITY_MAX_MIN},
    {"cosine/index/max_sum", TK_DISTANCE_COSINE, TK_FIRST_INDEX, TK_DIVERSITY_MAX_SUM},
    {"l2/index/max_min", TK_DISTANCE_L2, TK_FIRST_INDEX, TK_DIVERSITY_MAX_MIN},
};

void register_shape(const std::string& shape, int64_t tokens, int64_t channels, int32_t k,
                    std::initializer_list<int64_t> batches) {
    for (const Variant& v : kVariants) {
        const std::string name = "diversity/" + shape + "/" + v.name + "/f32";
        with_threads_and_batches(benchmark::RegisterBenchmark(name.c_str(), BM_DiversitySelect, tokens, channels, k,
                                                              v.distance, v.first, v.objective),
                                 batches);
    }
}

void register_all() {
    // DivPrune's default ratio 0.098 of LLaVA-1.5's 576 image tokens in LLaMA-2-7B's width; a batch of 8 images.
    register_shape("N576xC4096/k56", 576, 4096, 56, {1, 8});
    // 10% of LLaVA-Video's 64 frames of 13 x 13 pooled SigLIP tokens.
    register_shape("N10816xC1152/k1082", 10816, 1152, 1082, {1});
}

}  // namespace

int main(int argc, char** argv) { return tkb::run_benchmarks(argc, argv, register_all); }
