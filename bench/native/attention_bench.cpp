// Google Benchmark of the CPU attention-pruning ops (SPEC section 3) at the shapes of the methods that
// use them: importance from attention probabilities (FastV on LLaVA-1.5-7B, VisionZip on CLIP
// ViT-L/14-336), importance from Q and K without the attention matrix (LLaMA-2-7B heads, with and
// without the row log-sum-exp, causal or not, and the last token against a long context), top-k,
// gather and VisionZip's contextual tokens. The PyTorch side-by-side numbers are bench/harness's.
//
//   build/bin/tokenkernels_attention_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench_support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace {

using tkb::contiguous;
using tkb::random_floats;

// Attention weights [rows, keys]: softmax rows of standard normal logits.
std::vector<float> attention_probabilities(int64_t rows, int64_t keys) {
    std::vector<float> p = random_floats(rows * keys);
    for (int64_t r = 0; r < rows; ++r) {
        float* row = p.data() + r * keys;
        const float top = *std::max_element(row, row + keys);
        float sum = 0.0f;
        for (int64_t j = 0; j < keys; ++j) {
            row[j] = std::exp(row[j] - top);
            sum += row[j];
        }
        for (int64_t j = 0; j < keys; ++j) row[j] /= sum;
    }
    return p;
}

bool ok(benchmark::State& state, tk_status status) {
    if (status == TK_STATUS_OK) return true;
    state.SkipWithError(tk_last_error());
    return false;
}

void set_threads(benchmark::State& state) { tk_set_num_threads(static_cast<int32_t>(state.range(0))); }

// ---- Importance from attention probabilities ----------------------------------------------------

// attn [B, H, N, N]; the importance of keys [key_begin, key_end) from queries [query_begin, query_end).
void BM_AttentionImportance(benchmark::State& state, int64_t heads, int64_t tokens, int64_t query_begin,
                            int64_t query_end, int64_t key_begin, int64_t key_end, tk_reduce head_reduce) {
    set_threads(state);
    const int64_t batch = state.range(1);
    std::vector<float> attn = attention_probabilities(batch * heads * tokens, tokens);
    std::vector<float> out(static_cast<size_t>(batch * (key_end - key_begin)));
    const int64_t attn_shape[4] = {batch, heads, tokens, tokens}, out_shape[2] = {batch, key_end - key_begin};
    const tk_tensor attn_t = contiguous(attn.data(), TK_DTYPE_F32, 4, attn_shape);
    const tk_tensor out_t = contiguous(out.data(), TK_DTYPE_F32, 2, out_shape);
    tk_importance_params params{};
    params.query_begin = query_begin;
    params.query_end = query_end;
    params.key_begin = key_begin;
    params.key_end = key_end;
    params.head_reduce = head_reduce;
    params.query_reduce = TK_REDUCE_MEAN;
    for (auto _ : state) {
        if (!ok(state, tk_attention_importance(&params, &attn_t, &out_t, nullptr))) return;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
}

// ---- Importance from Q and K ----------------------------------------------------------------------

// Keys query i sees (queries right-aligned to the keys when causal).
int64_t visible_keys(int64_t i, int64_t queries, int64_t keys, bool causal) {
    return causal ? std::clamp<int64_t>(i + keys - queries + 1, 0, keys) : keys;
}

// FlashAttention's row log-sum-exp [H, Nq] of scale * q k^T over the keys each query sees (B = 1).
std::vector<float> row_log_sum_exp(const std::vector<float>& q, const std::vector<float>& k, int64_t heads,
                                   int64_t queries, int64_t keys, int64_t d, float scale, bool causal) {
    std::vector<float> lse(static_cast<size_t>(heads * queries));
    std::vector<float> logits(static_cast<size_t>(keys));
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < queries; ++i) {
            const float* qi = q.data() + (h * queries + i) * d;
            const int64_t seen = visible_keys(i, queries, keys, causal);
            float top = -INFINITY;
            for (int64_t j = 0; j < seen; ++j) {
                const float* kj = k.data() + (h * keys + j) * d;
                float dot = 0.0f;
                for (int64_t c = 0; c < d; ++c) dot += qi[c] * kj[c];
                logits[static_cast<size_t>(j)] = scale * dot;
                top = std::max(top, logits[static_cast<size_t>(j)]);
            }
            double sum = 0.0;
            for (int64_t j = 0; j < seen; ++j)
                sum += std::exp(static_cast<double>(logits[static_cast<size_t>(j)]) - static_cast<double>(top));
            lse[static_cast<size_t>(h * queries + i)] = top + static_cast<float>(std::log(sum));
        }
    return lse;
}

// q [1, H, Nq, d], k [1, H, Nk, d] and, when asked for, their row log-sum-exp. The log-sum-exp takes
// seconds to compute here, and Google Benchmark calls a benchmark function more than once, so each
// set is made once per process.
struct QkInputs {
    std::vector<float> q, k, lse;
};

QkInputs& qk_inputs(int64_t heads, int64_t queries, int64_t keys, int64_t d, float scale, bool causal, bool with_lse) {
    static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool>, QkInputs> made;
    const auto key = std::make_tuple(heads, queries, keys, d, causal, with_lse);
    auto found = made.find(key);
    if (found == made.end()) {
        QkInputs inputs{random_floats(heads * queries * d, 1.0f, 1), random_floats(heads * keys * d, 1.0f, 2), {}};
        if (with_lse) inputs.lse = row_log_sum_exp(inputs.q, inputs.k, heads, queries, keys, d, scale, causal);
        found = made.emplace(key, std::move(inputs)).first;
    }
    return found->second;
}

// Every query against every key it sees, head and query mean, over q [1, H, Nq, d] and k [1, H, Nk, d].
void BM_QkImportance(benchmark::State& state, int64_t heads, int64_t queries, int64_t keys, int64_t d, bool causal,
                     bool with_lse) {
    set_threads(state);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    QkInputs& inputs = qk_inputs(heads, queries, keys, d, scale, causal, with_lse);
    std::vector<float> out(static_cast<size_t>(keys));
    const int64_t q_shape[4] = {1, heads, queries, d}, k_shape[4] = {1, heads, keys, d};
    const int64_t lse_shape[3] = {1, heads, queries}, out_shape[2] = {1, keys};
    const tk_tensor q_t = contiguous(inputs.q.data(), TK_DTYPE_F32, 4, q_shape);
    const tk_tensor k_t = contiguous(inputs.k.data(), TK_DTYPE_F32, 4, k_shape);
    const tk_tensor lse_t = contiguous(inputs.lse.data(), TK_DTYPE_F32, 3, lse_shape);
    const tk_tensor out_t = contiguous(out.data(), TK_DTYPE_F32, 2, out_shape);
    tk_importance_params params{};
    params.query_end = queries;
    params.key_end = keys;
    params.head_reduce = TK_REDUCE_MEAN;
    params.query_reduce = TK_REDUCE_MEAN;
    params.scale = scale;
    params.causal = causal ? 1 : 0;
    for (auto _ : state) {
        if (!ok(state, tk_qk_importance(&params, &q_t, &k_t, with_lse ? &lse_t : nullptr, &out_t, nullptr, 0, nullptr)))
            return;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    // The products of the (query, key) pairs that are seen, once, though the op without lse forms them twice.
    double pairs = 0.0;
    for (int64_t i = 0; i < queries; ++i) pairs += static_cast<double>(visible_keys(i, queries, keys, causal));
    state.counters["QK_GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(heads * d) * pairs * 1e-9 *
                                                         static_cast<double>(state.iterations()),
                                                     benchmark::Counter::kIsRate);
}

// ---- Top-k and gather -----------------------------------------------------------------------------

void BM_Topk(benchmark::State& state, int64_t tokens, int32_t k) {
    set_threads(state);
    const int64_t batch = state.range(1);
    std::vector<float> scores = random_floats(batch * tokens);
    std::vector<int32_t> indices(static_cast<size_t>(batch * k));
    const int64_t scores_shape[2] = {batch, tokens}, indices_shape[2] = {batch, k};
    const tk_tensor scores_t = contiguous(scores.data(), TK_DTYPE_F32, 2, scores_shape);
    const tk_tensor indices_t = contiguous(indices.data(), TK_DTYPE_I32, 2, indices_shape);
    tk_topk_params params{};
    params.k = k;
    for (auto _ : state) {
        if (!ok(state, tk_topk(&params, &scores_t, nullptr, nullptr, &indices_t, nullptr, nullptr, 0, nullptr))) return;
        benchmark::DoNotOptimize(indices.data());
        benchmark::ClobberMemory();
    }
}

// k of N rows of x [1, N, C] at sorted random positions, as pruning keeps them.
void BM_Gather(benchmark::State& state, int64_t tokens, int64_t channels, int64_t k) {
    set_threads(state);
    std::vector<float> x = random_floats(tokens * channels);
    std::vector<int32_t> positions(static_cast<size_t>(tokens));
    std::iota(positions.begin(), positions.end(), 0);
    std::shuffle(positions.begin(), positions.end(), std::mt19937(7));
    std::vector<int32_t> indices(positions.begin(), positions.begin() + k);
    std::sort(indices.begin(), indices.end());
    std::vector<float> out(static_cast<size_t>(k * channels));
    const int64_t x_shape[3] = {1, tokens, channels}, indices_shape[2] = {1, k}, out_shape[3] = {1, k, channels};
    const tk_tensor x_t = contiguous(x.data(), TK_DTYPE_F32, 3, x_shape);
    const tk_tensor indices_t = contiguous(indices.data(), TK_DTYPE_I32, 2, indices_shape);
    const tk_tensor out_t = contiguous(out.data(), TK_DTYPE_F32, 3, out_shape);
    for (auto _ : state) {
        if (!ok(state, tk_gather(&x_t, &indices_t, &out_t, nullptr))) return;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    // Bytes read plus bytes written.
    state.counters["GB/s"] = benchmark::Counter(2.0 * static_cast<double>(k * channels) * sizeof(float) * 1e-9 *
                                                    static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

// ---- VisionZip contextual tokens --------------------------------------------------------------------

// The patches after the CLS token: x [B, N, C], metric [B, N, Cm], the dominant tokens kept.
void BM_Contextual(benchmark::State& state, int64_t tokens, int64_t channels, int64_t metric_channels, int64_t dominant,
                   int32_t contextual) {
    set_threads(state);
    const int64_t batch = state.range(1);
    std::vector<float> x = random_floats(batch * tokens * channels, 1.0f, 3);
    std::vector<float> metric = random_floats(batch * tokens * metric_channels, 1.0f, 4);
    std::vector<int32_t> kept(static_cast<size_t>(batch * dominant));
    std::vector<int32_t> positions(static_cast<size_t>(tokens));
    std::mt19937 rng(5);
    for (int64_t b = 0; b < batch; ++b) {
        std::iota(positions.begin(), positions.end(), 0);
        std::shuffle(positions.begin(), positions.end(), rng);
        std::sort(positions.begin(), positions.begin() + dominant);
        std::copy(positions.begin(), positions.begin() + dominant, kept.begin() + b * dominant);
    }
    std::vector<float> out(static_cast<size_t>(batch * contextual * channels));
    const int64_t x_shape[3] = {batch, tokens, channels}, metric_shape[3] = {batch, tokens, metric_channels};
    const int64_t kept_shape[2] = {batch, dominant}, out_shape[3] = {batch, contextual, channels};
    const tk_tensor x_t = contiguous(x.data(), TK_DTYPE_F32, 3, x_shape);
    const tk_tensor metric_t = contiguous(metric.data(), TK_DTYPE_F32, 3, metric_shape);
    const tk_tensor kept_t = contiguous(kept.data(), TK_DTYPE_I32, 2, kept_shape);
    const tk_tensor out_t = contiguous(out.data(), TK_DTYPE_F32, 3, out_shape);
    for (auto _ : state) {
        if (!ok(state, tk_visionzip_contextual(contextual, &metric_t, &x_t, &kept_t, &out_t, nullptr, 0, nullptr)))
            return;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
}

// Runs each benchmark with one thread and with every hardware thread, at each batch size.
void with_threads_and_batches(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> batches) {
    const int64_t hw = std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1;
    for (int64_t threads : hw > 1 ? std::vector<int64_t>{1, hw} : std::vector<int64_t>{1})
        for (int64_t batch : batches) b->Args({threads, batch});
    b->ArgNames({"threads", "batch"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void register_all() {
    using benchmark::RegisterBenchmark;
    // FastV on LLaVA-1.5-7B: the last of 1200 query rows, 32 heads, the 576 image keys from position 35.
    with_threads_and_batches(RegisterBenchmark("importance/fastv/H32xN1200/f32", BM_AttentionImportance, 32, 1200,
                                               1199, 1200, 35, 611, TK_REDUCE_MEAN),
                             {1});
    // VisionZip on CLIP ViT-L/14-336: the CLS row, 16 heads summed, keys 1..576.
    with_threads_and_batches(RegisterBenchmark("importance/visionzip/H16xN577/f32", BM_AttentionImportance, 16, 577,
                                               0, 1, 1, 577, TK_REDUCE_SUM),
                             {1, 8});
    // LLaMA-2-7B heads (32 x d 128): 1024 queries and keys, and the last token against 16,384 keys.
    for (bool causal : {false, true})
        for (bool with_lse : {false, true}) {
            const std::string name = std::string("qk_importance/H32xN1024xd128") + (causal ? "/causal" : "") +
                                     (with_lse ? "/lse" : "") + "/f32";
            with_threads_and_batches(
                RegisterBenchmark(name.c_str(), BM_QkImportance, 32, 1024, 1024, 128, causal, with_lse), {1});
        }
    for (bool with_lse : {false, true}) {
        const std::string name =
            std::string("qk_importance/last_token/H32xNk16384xd128") + (with_lse ? "/lse" : "") + "/f32";
        with_threads_and_batches(
            RegisterBenchmark(name.c_str(), BM_QkImportance, 32, 1, 16384, 128, false, with_lse), {1});
    }
    // Top-k: FastV's 288 of 576, VisionZip's 54 of 576, a quarter of 16,384 tokens.
    with_threads_and_batches(RegisterBenchmark("topk/N576/k288/f32", BM_Topk, 576, 288), {1});
    with_threads_and_batches(RegisterBenchmark("topk/N576/k54/f32", BM_Topk, 576, 54), {1, 8});
    with_threads_and_batches(RegisterBenchmark("topk/N16384/k4096/f32", BM_Topk, 16384, 4096), {1});
    // Gather: FastV's 288 of 576 LLaMA hidden states, a quarter of 16,384 SigLIP tokens.
    with_threads_and_batches(RegisterBenchmark("gather/N576xC4096/k288/f32", BM_Gather, 576, 4096, 288), {1});
    with_threads_and_batches(RegisterBenchmark("gather/N16384xC1152/k4096/f32", BM_Gather, 16384, 1152, 4096), {1});
    // VisionZip's 10 contextual tokens from the 576 patches of CLIP ViT-L/14-336 after 54 dominant ones.
    with_threads_and_batches(RegisterBenchmark("visionzip_contextual/N576xC1024/K54/m10/f32", BM_Contextual, 576, 1024,
                                               64, 54, 10),
                             {1, 8});
}

}  // namespace

int main(int argc, char** argv) { return tkb::run_benchmarks(argc, argv, register_all); }
