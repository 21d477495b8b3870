// The op families, one C ABI call each: pooling, ToMe merge and unmerge, attention and QK importance,
// top-k, gather and diversity selection.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

#include "node.hpp"
#include "ops.hpp"

namespace tk_ort {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// ---- Pool ----------------------------------------------------------------------------------------

class PoolKernel final : public NodeKernel {
public:
    explicit PoolKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        params_.mode = a.choice("mode", "window_avg", {"window_avg", "window_max", "adaptive_avg", "adaptive_max", "bilinear"});
        const bool window = params_.mode == TK_POOL_WINDOW_AVG || params_.mode == TK_POOL_WINDOW_MAX;
        if (window) {
            if (a.has("output_size")) a.refuse("output_size", "none with a window mode (kernel and stride set the output)", "a value");
            const std::vector<int64_t> kernel = three(a, "kernel", a.integers("kernel", std::vector<int64_t>{1, 2, 2}));
            const std::vector<int64_t> stride = three(a, "stride", a.integers("stride", kernel));
            for (int d = 0; d < 3; ++d) {
                params_.kernel[d] = static_cast<int32_t>(kernel[d]);
                params_.stride[d] = static_cast<int32_t>(stride[d]);
            }
        } else {
            for (const char* name : {"kernel", "stride"})
                if (a.has(name)) a.refuse(name, "none with an adaptive or bilinear mode (output_size sets the output)", "a value");
            bilinear_ = params_.mode == TK_POOL_BILINEAR;
            std::vector<int64_t> size = a.integers("output_size", std::nullopt);
            if (bilinear_) {
                // Bilinear resizes each frame: T' is the input's T, so the attribute is (H', W').
                if (size.size() != 2) a.refuse("output_size", "2 integers (H', W') for mode 'bilinear'", std::to_string(size.size()));
                size.insert(size.begin(), 1);
            }
            size = three(a, "output_size", size);
            for (int d = 0; d < 3; ++d) params_.output_size[d] = static_cast<int32_t>(size[d]);
        }
        // The C ABI's own checks of the sizes, on an input large enough for any window.
        tk_pool_params probe = params_;
        if (bilinear_) probe.output_size[0] = static_cast<int32_t>(kInt32Max);
        const int64_t input[5] = {1, kInt32Max, kInt32Max, kInt32Max, 1};
        int64_t output[5];
        name().check_attributes(tk_pool_output_shape(&probe, input, output), "tk_pool_output_shape");
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 5, "[B, T, H, W, C]");
        const tk_tensor x = run.input(0);
        tk_pool_params params = params_;
        if (bilinear_) {
            if (shape[1] > kInt32Max) run.fail_input(0, "T = " + std::to_string(shape[1]) + " frames is above 2147483647");
            params.output_size[0] = static_cast<int32_t>(shape[1]);
        }
        std::vector<int64_t> out_shape(5);
        run.check(tk_pool_output_shape(&params, shape.data(), out_shape.data()), "tk_pool_output_shape");
        const tk_tensor out = run.output(0, out_shape, x.dtype);
        uint64_t bytes = 0;
        run.check(tk_pool_workspace_size(&params, &x, &out, &bytes), "tk_pool_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_pool(&params, &x, &out, workspace, bytes, run.stream()), "tk_pool");
    }

private:
    static std::vector<int64_t> three(const Attributes& a, const char* name, const std::vector<int64_t>& values) {
        if (values.size() != 3) a.refuse(name, "3 integers (T, H, W)", std::to_string(values.size()) + " integers");
        for (int64_t v : values)
            if (v < std::numeric_limits<int32_t>::min() || v > kInt32Max) a.refuse(name, "integers that fit in int32", std::to_string(v));
        return values;
    }

    tk_pool_params params_{};
    bool bilinear_ = false;
};

// ---- ToMe merge and unmerge ----------------------------------------------------------------------

class ToMeMergeKernel final : public NodeKernel {
public:
    explicit ToMeMergeKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        params_.r = a.integer_in("r", 16, std::numeric_limits<int32_t>::min(), kInt32Max);
        if (a.has("threshold")) {
            params_.use_threshold = 1;
            params_.threshold = a.real("threshold", std::nullopt);
        }
        params_.protect_first = a.flag("protect_first", 0);
        params_.protect_second = a.flag("protect_second", 0);
        params_.mode = a.choice("mode", "weighted_mean", {"weighted_mean", "mean", "sum", "amax", "drop"});
        params_.order = a.choice("order", "positional", {"positional", "tome"});
        int64_t r = 0, rows = 0;
        name().check_attributes(tk_merge_output_tokens(&params_, 0, &r, &rows), "tk_merge_output_tokens");
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> metric_shape = run.input_shape(0, 3, "[B, N, Cm]");
        const std::vector<int64_t> x_shape = run.input_shape(1, 3, "[B, N, C]");
        const tk_tensor metric = run.input(0);
        const tk_tensor x = run.input(1);
        tk_tensor size_storage;
        const tk_tensor* size = run.optional_input(2, size_storage);
        int64_t r = 0, rows = 0;
        run.check(tk_merge_output_tokens(&params_, metric_shape[1], &r, &rows), "tk_merge_output_tokens");
        const int64_t batch = x_shape[0];
        const tk_tensor out = run.output(0, {batch, rows, x_shape[2]}, x.dtype);
        tk_tensor out_size_storage, merge_count_storage;
        const tk_tensor* out_size = run.optional_output(1, {batch, rows}, TK_DTYPE_F32, out_size_storage);
        const Int64Indices source_map = run.int64_output(2, {batch, x_shape[1]});
        const tk_tensor* merge_count = run.optional_output(3, {batch}, TK_DTYPE_I32, merge_count_storage);
        if (merge_count == nullptr && params_.use_threshold) {
            // Threshold mode needs the counts, which the node does not output: they go to scratch.
            merge_count_storage = run.scratch_tensor({batch}, TK_DTYPE_I32);
            merge_count = &merge_count_storage;
        }
        uint64_t bytes = 0;
        run.check(tk_merge_workspace_size(&params_, &metric, &x, &bytes), "tk_merge_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_merge(&params_, &metric, &x, size, &out, out_size, source_map.present ? &source_map.as_i32 : nullptr,
                           merge_count, workspace, bytes, run.stream()),
                  "tk_merge");
    }

private:
    tk_merge_params params_{};
};

class ToMeUnmergeKernel final : public NodeKernel {
public:
    explicit ToMeUnmergeKernel(const KernelSetup& setup) : NodeKernel(setup) {}

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> y_shape = run.input_shape(0, 3, "[B, N', C]");
        const std::vector<int64_t> map_shape = run.input_shape(1, 2, "[B, N]");
        const tk_tensor y = run.input(0);
        const tk_tensor source_map = run.input(1);
        const tk_tensor out = run.output(0, {y_shape[0], map_shape[1], y_shape[2]}, y.dtype);
        run.check(tk_unmerge(&y, &source_map, &out, run.stream()), "tk_unmerge");
    }
};

// ---- Importance ----------------------------------------------------------------------------------

// A query or key range of the attributes: begin and end count from the end when negative (Python's
// slices); an absent end is the dimension itself.
struct Range {
    int64_t begin = 0;
    std::optional<int64_t> end;

    std::pair<int64_t, int64_t> resolve(int64_t size) const {
        const int64_t b = begin < 0 ? begin + size : begin;
        const int64_t e = !end ? size : *end < 0 ? *end + size : *end;
        return {b, e};
    }
};

struct ImportanceAttributes {
    Range queries, keys;
    tk_reduce head_reduce = TK_REDUCE_MEAN, query_reduce = TK_REDUCE_MEAN;

    explicit ImportanceAttributes(const Attributes& a) {
        queries.begin = a.integer("query_begin", 0);
        if (a.has("query_end")) queries.end = a.integer("query_end", std::nullopt);
        keys.begin = a.integer("key_begin", 0);
        if (a.has("key_end")) keys.end = a.integer("key_end", std::nullopt);
        head_reduce = a.choice("head_reduce", "mean", {"mean", "sum"});
        query_reduce = a.choice("query_reduce", "mean", {"mean", "sum"});
    }

    tk_importance_params params(int64_t query_count, int64_t key_count) const {
        tk_importance_params p{};
        std::tie(p.query_begin, p.query_end) = queries.resolve(query_count);
        std::tie(p.key_begin, p.key_end) = keys.resolve(key_count);
        p.head_reduce = head_reduce;
        p.query_reduce = query_reduce;
        return p;
    }
};

class AttentionImportanceKernel final : public NodeKernel {
public:
    explicit AttentionImportanceKernel(const KernelSetup& setup) : NodeKernel(setup), attributes_(Attributes(setup)) {}

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 4, "[B, H, Nq, Nk]");
        const tk_tensor attention = run.input(0);
        const tk_importance_params params = attributes_.params(shape[2], shape[3]);
        const tk_tensor out = run.output(0, {shape[0], std::max<int64_t>(params.key_end - params.key_begin, 0)}, TK_DTYPE_F32);
        run.check(tk_attention_importance(&params, &attention, &out, run.stream()), "tk_attention_importance");
    }

private:
    ImportanceAttributes attributes_;
};

class QkImportanceKernel final : public NodeKernel {
public:
    explicit QkImportanceKernel(const KernelSetup& setup) : NodeKernel(setup), attributes_(Attributes(setup)) {
        const Attributes a(setup);
        if (a.has("scale")) {
            scale_ = a.real("scale", std::nullopt);
            if (!(std::isfinite(*scale_) && *scale_ > 0.0f)) a.refuse("scale", "a finite float > 0", real_text(*scale_));
        }
        causal_ = a.flag("causal", 0);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> q_shape = run.input_shape(0, 4, "[B, H, Nq, d]");
        const std::vector<int64_t> k_shape = run.input_shape(1, 4, "[B, Hk, Nk, d]");
        const tk_tensor q = run.input(0);
        const tk_tensor k = run.input(1);
        tk_tensor lse_storage;
        const tk_tensor* lse = run.optional_input(2, lse_storage);
        tk_importance_params params = attributes_.params(q_shape[2], k_shape[2]);
        // SDPA's default scale 1/sqrt(d), rounded to float32.
        params.scale = scale_ ? *scale_ : static_cast<float>(1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(q_shape[3], 1))));
        params.causal = causal_;
        const tk_tensor out = run.output(0, {q_shape[0], std::max<int64_t>(params.key_end - params.key_begin, 0)}, TK_DTYPE_F32);
        uint64_t bytes = 0;
        run.check(tk_qk_importance_workspace_size(&params, &q, &k, lse, &bytes), "tk_qk_importance_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_qk_importance(&params, &q, &k, lse, &out, workspace, bytes, run.stream()), "tk_qk_importance");
    }

private:
    ImportanceAttributes attributes_;
    std::optional<float> scale_;
    int32_t causal_ = 0;
};

// ---- Top-k and gather ----------------------------------------------------------------------------

class TopKKernel final : public NodeKernel {
public:
    explicit TopKKernel(const KernelSetup& setup) : NodeKernel(setup) {
        params_.k = Attributes(setup).integer_in("k", std::nullopt, 0, kInt32Max);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 2, "[B, N]");
        const tk_tensor scores = run.input(0);
        const Int64Indices indices = run.int64_output(0, {shape[0], params_.k});
        const Int64Indices ranked = run.int64_output(1, {shape[0], params_.k});
        uint64_t bytes = 0;
        run.check(tk_topk_workspace_size(&params_, &scores, &bytes), "tk_topk_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_topk(&params_, &scores, nullptr, nullptr, &indices.as_i32, ranked.present ? &ranked.as_i32 : nullptr,
                          workspace, bytes, run.stream()),
                  "tk_topk");
    }

private:
    tk_topk_params params_{};
};

class GatherKernel final : public NodeKernel {
public:
    explicit GatherKernel(const KernelSetup& setup) : NodeKernel(setup) {}

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> x_shape = run.input_shape(0, 3, "[B, N, C]");
        const std::vector<int64_t> index_shape = run.input_shape(1, 2, "[B, k]");
        const tk_tensor x = run.input(0);
        const tk_tensor indices = run.input(1);
        const tk_tensor out = run.output(0, {x_shape[0], index_shape[1], x_shape[2]}, x.dtype);
        run.check(tk_gather(&x, &indices, &out, run.stream()), "tk_gather");
    }
};

// ---- Diversity selection -------------------------------------------------------------------------

class DiversitySelectKernel final : public NodeKernel {
public:
    explicit DiversitySelectKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        params_.k = a.integer_in("k", std::nullopt, 0, kInt32Max);
        params_.distance = a.choice("distance", "cosine", {"cosine", "l2"});
        params_.first = a.choice("first", "most_isolated", {"most_isolated", "score"}) == 0 ? TK_FIRST_MOST_ISOLATED : TK_FIRST_SCORE;
        params_.objective = a.choice("objective", "max_min", {"max_min", "max_sum"});
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 3, "[B, N, C]");
        const tk_tensor x = run.input(0);
        tk_tensor first_score_storage;
        const tk_tensor* first_score = run.optional_input(1, first_score_storage);
        const Int64Indices order = run.int64_output(0, {shape[0], params_.k});
        const Int64Indices sorted = run.int64_output(1, {shape[0], params_.k});
        uint64_t bytes = 0;
        run.check(tk_diversity_workspace_size(&params_, &x, &bytes), "tk_diversity_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_diversity_select(&params_, &x, nullptr, nullptr, nullptr, first_score, &order.as_i32,
                                      sorted.present ? &sorted.as_i32 : nullptr, workspace, bytes, run.stream()),
                  "tk_diversity_select");
    }

private:
    tk_diversity_params params_{};
};

template <class Kernel>
std::unique_ptr<NodeKernel> make(const KernelSetup& setup) {
    return std::make_unique<Kernel>(setup);
}

}  // namespace

void add_family_ops(std::vector<OpSpec>& ops) {
    using K = ValueKind;
    ops.push_back({"Pool", {{"x", K::kFeatures}}, {{"y", K::kFeatures}}, make<PoolKernel>});
    ops.push_back({"ToMeMerge",
                   {{"metric", K::kAnyFloat}, {"x", K::kFeatures}, {"size", K::kFloat32, true}},
                   {{"out", K::kFeatures}, {"out_size", K::kFloat32, true}, {"source_map", K::kInt64, true}, {"merge_count", K::kInt32, true}},
                   make<ToMeMergeKernel>});
    ops.push_back({"ToMeUnmerge", {{"y", K::kFeatures}, {"source_map", K::kInt64}}, {{"out", K::kFeatures}}, make<ToMeUnmergeKernel>});
    ops.push_back({"AttentionImportance", {{"attention", K::kAnyFloat}}, {{"importance", K::kFloat32}}, make<AttentionImportanceKernel>});
    ops.push_back({"QkImportance",
                   {{"q", K::kAnyFloat}, {"k", K::kAnyFloat}, {"lse", K::kFloat32, true}},
                   {{"importance", K::kFloat32}},
                   make<QkImportanceKernel>});
    ops.push_back({"TopK", {{"scores", K::kAnyFloat}}, {{"indices", K::kInt64}, {"ranked", K::kInt64, true}}, make<TopKKernel>});
    ops.push_back({"Gather", {{"x", K::kFeatures}, {"indices", K::kInt64}}, {{"out", K::kFeatures}}, make<GatherKernel>});
    ops.push_back({"DiversitySelect",
                   {{"x", K::kAnyFloat}, {"first_score", K::kAnyFloat, true}},
                   {{"order", K::kInt64}, {"sorted", K::kInt64, true}},
                   make<DiversitySelectKernel>});
}

}  // namespace tk_ort
