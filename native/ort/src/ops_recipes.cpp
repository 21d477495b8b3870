// Published methods in one node each, composed from the C ABI calls as managed/TokenKernels composes
// them (PruningMethods, CDPruner, ClusterRecipes, KMeans): VisionZip, FastV, DivPrune, CDPruner,
// DPC-kNN cluster-and-aggregate and k-means. Every output shape follows from the attributes and the
// input shapes, so nothing is read back from the device.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "node.hpp"
#include "ops.hpp"

namespace tk_ort {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Every byte 0x7F: the float32 3.3961514e38, above any sum of attention probabilities (at most H).
// Positions a method always keeps get it, so that one top-k over the whole sequence returns them
// with the highest-scoring others, in increasing position, with no offset to add on the device
// (PruningMethods' device forms do the same).
constexpr int kAlwaysKeptScoreByte = 0x7F;

// Python's round (half to even), as the methods' code rounds kept-token counts.
int64_t round_half_even(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

float fraction(const Attributes& a, const char* name, float fallback) {
    const float value = a.real(name, fallback);
    if (!(value >= 0.0f && value <= 1.0f)) a.refuse(name, "a fraction in [0, 1]", real_text(value));
    return value;
}

// Attention [B, H, Nq, N] over hidden states [B, N, C].
void require_attention_over(const NodeKernel::Run& run, size_t attention, const std::vector<int64_t>& attention_shape,
                            const std::vector<int64_t>& hidden_shape, const char* hidden_name) {
    if (attention_shape[0] != hidden_shape[0] || attention_shape[3] != hidden_shape[1])
        run.fail_input(attention, "expected [B, H, Nq, N] with B = " + std::to_string(hidden_shape[0]) + " and N = " +
                                      std::to_string(hidden_shape[1]) + " of " + hidden_name + ", got shape " +
                                      shape_text(attention_shape));
}

// ---- VisionZip -----------------------------------------------------------------------------------

// VisionZip (Yang et al., CVPR 2025): CLS and the dominant - 1 tokens the CLS row attends to most
// (summed over heads), in original order, then `contextual` tokens merged from the rest
// (PruningMethods.VisionZip).
class VisionZipKernel final : public NodeKernel {
public:
    explicit VisionZipKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        dominant_ = a.integer_in("dominant", 54, 1, kInt32Max);
        contextual_ = a.integer_in("contextual", 10, 0, kInt32Max);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> attention_shape = run.input_shape(0, 4, "[B, H, N, N]");
        const std::vector<int64_t> metric_shape = run.input_shape(1, 3, "[B, N, Cm]");
        const std::vector<int64_t> hidden_shape = run.input_shape(2, 3, "[B, N, C]");
        require_attention_over(run, 0, attention_shape, hidden_shape, "hidden_states");
        // The vision layer attends every token to every token (PruningMethods.VisionZip refuses the same).
        if (attention_shape[2] != hidden_shape[1])
            run.fail_input(0, "expected [B, H, N, N], N = " + std::to_string(hidden_shape[1]) +
                                  " queries of hidden_states attending to N keys, got shape " + shape_text(attention_shape));
        if (metric_shape[0] != hidden_shape[0] || metric_shape[1] != hidden_shape[1])
            run.fail_input(1, "expected [B, N, Cm] with B = " + std::to_string(hidden_shape[0]) + " and N = " +
                                  std::to_string(hidden_shape[1]) + " of hidden_states, got shape " + shape_text(metric_shape));
        const tk_tensor attention = run.input(0), metric = run.input(1), hidden = run.input(2);
        const int64_t batch = hidden_shape[0], tokens = hidden_shape[1];

        const tk_tensor out = run.output(0, {batch, int64_t{dominant_} + contextual_, hidden_shape[2]}, hidden.dtype);
        const Int64Indices kept = run.int64_output(1, {batch, dominant_});

        // Column 0 (CLS) always kept; columns 1..N-1 the CLS row's attention summed over heads.
        const tk_tensor scores = run.scratch_tensor({batch, tokens}, TK_DTYPE_F32);
        run.fill(scores.data, kAlwaysKeptScoreByte, static_cast<uint64_t>(batch * tokens) * sizeof(float));
        tk_importance_params importance{};
        importance.query_begin = 0;
        importance.query_end = 1;
        importance.key_begin = 1;
        importance.key_end = tokens;
        importance.head_reduce = TK_REDUCE_SUM;
        importance.query_reduce = TK_REDUCE_MEAN;
        const tk_tensor key_scores = columns(scores, tokens > 0 ? 1 : 0, tokens);
        run.check(tk_attention_importance(&importance, &attention, &key_scores, run.stream()), "tk_attention_importance");

        const tk_topk_params topk{dominant_};
        uint64_t bytes = 0;
        run.check(tk_topk_workspace_size(&topk, &scores, &bytes), "tk_topk_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_topk(&topk, &scores, nullptr, nullptr, &kept.as_i32, nullptr, workspace, bytes, run.stream()), "tk_topk");

        if (contextual_ > 0) {
            const tk_tensor contextual_rows = rows(out, dominant_, contextual_);
            run.check(tk_visionzip_contextual_workspace_size(contextual_, &metric, &hidden, &kept.as_i64, &bytes),
                      "tk_visionzip_contextual_workspace_size");
            workspace = run.scratch(bytes);
            run.check(tk_visionzip_contextual(contextual_, &metric, &hidden, &kept.as_i64, &contextual_rows, workspace, bytes,
                                              run.stream()),
                      "tk_visionzip_contextual");
        }
        const tk_tensor dominant_rows = rows(out, 0, dominant_);
        run.check(tk_gather(&hidden, &kept.as_i64, &dominant_rows, run.stream()), "tk_gather");
    }

private:
    int32_t dominant_ = 0;
    int32_t contextual_ = 0;
};

// ---- FastV ---------------------------------------------------------------------------------------

// FastV (Chen et al., ECCV 2024): after layer K, keep the round(L (1 - R)) image tokens that layer
// K - 1's last query row attends to most (mean over heads), with every text token, in original
// order; the kept positions are FastV's position ids (PruningMethods.FastV).
class FastVKernel final : public NodeKernel {
public:
    explicit FastVKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        image_start_ = a.integer("image_token_start_index", 35);
        image_length_ = a.integer("image_token_length", 576);
        if (image_start_ < 0) a.refuse("image_token_start_index", "a position >= 0", std::to_string(image_start_));
        if (image_length_ < 0 || image_length_ > kInt32Max)
            a.refuse("image_token_length", "a token count in [0, 2147483647]", std::to_string(image_length_));
        r_ = fraction(a, "fastv_r", 0.5f);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> attention_shape = run.input_shape(0, 4, "[B, H, Nq, N]");
        const std::vector<int64_t> hidden_shape = run.input_shape(1, 3, "[B, N, C]");
        require_attention_over(run, 0, attention_shape, hidden_shape, "hidden_states");
        const int64_t batch = hidden_shape[0], tokens = hidden_shape[1];
        if (image_start_ + image_length_ > tokens)
            name().fail(ORT_INVALID_ARGUMENT, "attributes 'image_token_start_index' = " + std::to_string(image_start_) +
                                                  " and 'image_token_length' = " + std::to_string(image_length_) +
                                                  " place the image past the N = " + std::to_string(tokens) +
                                                  " tokens of hidden_states");
        const tk_tensor attention = run.input(0), hidden = run.input(1);
        const int64_t kept = round_half_even(static_cast<double>(image_length_) * (1.0 - static_cast<double>(r_)));
        const int64_t length = tokens - image_length_ + kept;
        if (length > kInt32Max) name().fail(ORT_INVALID_ARGUMENT, "the pruned sequence of " + std::to_string(length) + " tokens is above 2147483647");

        const tk_tensor out = run.output(0, {batch, length, hidden_shape[2]}, hidden.dtype);
        const Int64Indices positions = run.int64_output(1, {batch, length});

        // Text columns always kept; image columns the last query row's attention, mean over heads.
        const tk_tensor scores = run.scratch_tensor({batch, tokens}, TK_DTYPE_F32);
        run.fill(scores.data, kAlwaysKeptScoreByte, static_cast<uint64_t>(batch * tokens) * sizeof(float));
        tk_importance_params importance{};
        importance.query_begin = attention_shape[2] - 1;
        importance.query_end = attention_shape[2];
        importance.key_begin = image_start_;
        importance.key_end = image_start_ + image_length_;
        importance.head_reduce = TK_REDUCE_MEAN;
        importance.query_reduce = TK_REDUCE_MEAN;
        const tk_tensor image_scores = columns(scores, image_start_, image_start_ + image_length_);
        run.check(tk_attention_importance(&importance, &attention, &image_scores, run.stream()), "tk_attention_importance");

        const tk_topk_params topk{static_cast<int32_t>(length)};
        uint64_t bytes = 0;
        run.check(tk_topk_workspace_size(&topk, &scores, &bytes), "tk_topk_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_topk(&topk, &scores, nullptr, nullptr, &positions.as_i32, nullptr, workspace, bytes, run.stream()), "tk_topk");
        run.check(tk_gather(&hidden, &positions.as_i64, &out, run.stream()), "tk_gather");
    }

private:
    int64_t image_start_ = 0;
    int64_t image_length_ = 0;
    float r_ = 0.0f;
};

// ---- DivPrune ------------------------------------------------------------------------------------

// DivPrune (Alvar et al., CVPR 2025): the round(threshold_ratio N) tokens of greedy k-center
// selection under the cosine distance, the most isolated first, gathered in increasing position
// (PruningMethods.DivPrune).
class DivPruneKernel final : public NodeKernel {
public:
    explicit DivPruneKernel(const KernelSetup& setup) : NodeKernel(setup) {
        ratio_ = fraction(Attributes(setup), "threshold_ratio", 0.098f);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 3, "[B, N, C]");
        const tk_tensor x = run.input(0);
        const int64_t k = round_half_even(static_cast<double>(ratio_) * static_cast<double>(shape[1]));
        if (k > kInt32Max) name().fail(ORT_INVALID_ARGUMENT, "DivPrune would keep " + std::to_string(k) + " tokens, above 2147483647");
        const tk_tensor out = run.output(0, {shape[0], k, shape[2]}, x.dtype);
        const Int64Indices kept = run.int64_output(1, {shape[0], k});
        const tk_tensor order = run.int64_output_or_scratch(2, {shape[0], k});
        tk_diversity_params params{};
        params.k = static_cast<int32_t>(k);
        params.distance = TK_DISTANCE_COSINE;
        params.first = TK_FIRST_MOST_ISOLATED;
        params.objective = TK_DIVERSITY_MAX_MIN;
        uint64_t bytes = 0;
        run.check(tk_diversity_workspace_size(&params, &x, &bytes), "tk_diversity_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_diversity_select(&params, &x, nullptr, nullptr, nullptr, nullptr, &order, &kept.as_i32, workspace, bytes,
                                      run.stream()),
                  "tk_diversity_select");
        run.check(tk_gather(&x, &kept.as_i64, &out, run.stream()), "tk_gather");
    }

private:
    float ratio_ = 0.0f;
};

// ---- CDPruner ------------------------------------------------------------------------------------

// CDPruner (Zhang et al., 2025): relevance of each visual token to the text, then greedy MAP
// inference of the conditional DPP, the kept tokens gathered in position order (CDPruner.Prune).
class CDPrunerKernel final : public NodeKernel {
public:
    explicit CDPrunerKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        dpp_.k = a.integer_in("visual_token_num", 64, 0, kInt32Max);
        if (a.has("theta")) {
            // The paper's exp(theta r / (2 (1 - theta))); without theta the released code's r.
            dpp_.theta = a.real("theta", std::nullopt);
            if (!(dpp_.theta >= 0.0f && dpp_.theta < 1.0f)) a.refuse("theta", "a float in [0, 1)", real_text(dpp_.theta));
            dpp_.weighting = TK_DPP_WEIGHT_EXP;
        } else {
            dpp_.weighting = TK_DPP_WEIGHT_RELEVANCE;
            dpp_.theta = 0.5f;
        }
        relevance_.negate = a.flag("negate", 1);
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 3, "[B, N, C]");
        const std::vector<int64_t> visual_shape = run.input_shape(1, 3, "[B, N, E]");
        run.input_shape(2, 3, "[B, T, E]");
        const tk_tensor features = run.input(0), visual = run.input(1), text = run.input(2);
        const int64_t batch = shape[0];
        const tk_tensor out = run.output(0, {batch, dpp_.k, shape[2]}, features.dtype);
        const Int64Indices kept = run.int64_output(1, {batch, dpp_.k});
        const tk_tensor order = run.int64_output_or_scratch(2, {batch, dpp_.k});

        const tk_tensor relevance = run.scratch_tensor({visual_shape[0], visual_shape[1]}, TK_DTYPE_F32);
        run.check(tk_query_relevance(&relevance_, &visual, &text, nullptr, nullptr, &relevance, run.stream()), "tk_query_relevance");
        uint64_t bytes = 0;
        run.check(tk_conditional_dpp_workspace_size(&dpp_, &features, &bytes), "tk_conditional_dpp_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_conditional_dpp_select(&dpp_, &features, &relevance, nullptr, nullptr, &order, &kept.as_i32, workspace, bytes,
                                            run.stream()),
                  "tk_conditional_dpp_select");
        run.check(tk_gather(&features, &kept.as_i64, &out, run.stream()), "tk_gather");
    }

private:
    tk_dpp_params dpp_{};
    tk_relevance_params relevance_{};
};

// ---- DPC-kNN cluster-and-aggregate ---------------------------------------------------------------

// Each item's tokens clustered by DPC-kNN, each cluster replaced by one token: the mean of its
// members (ClusterRecipes.ClusterAndAggregate), or a blend with its centre (HoliTom's centre blend
// formula, FastVID's DTM). Cluster j is the j-th centre in DPC-kNN's score order, in every mode:
// HoliTom's merge (ClusterRecipes.HoliTomMerge) renumbers the clusters by centre position, which
// needs the centres read back, so the node leaves that to the graph (the centres output has them).
class DpcKnnAggregateKernel final : public NodeKernel {
public:
    explicit DpcKnnAggregateKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        // Required (the token budget), and at least 1: with no cluster the assignment would be -1,
        // which the int64 outputs cannot carry (Int64Indices).
        dpc_.clusters = a.integer_in("clusters", std::nullopt, 1, kInt32Max);
        dpc_.neighbours = a.integer_in("neighbours", 5, 1, kInt32Max);
        const int32_t mode = a.choice("mode", "mean", {"mean", "centre_blend", "centre_count_blend"});
        merge_.clusters = dpc_.clusters;
        merge_.mode = mode == 0 ? TK_CLUSTER_MERGE_MEAN : mode == 1 ? TK_CLUSTER_MERGE_CENTRE_BLEND : TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
        // HoliTom's density takes k = min(neighbours, clusters), as ClusterRecipes.HoliTomMerge does.
        if (merge_.mode == TK_CLUSTER_MERGE_CENTRE_BLEND) dpc_.neighbours = std::min(dpc_.neighbours, dpc_.clusters);
        merge_.beta = a.real("beta", 0.6f);
        if (!std::isfinite(merge_.beta)) a.refuse("beta", "a finite float", real_text(merge_.beta));
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 3, "[B, N, C]");
        const tk_tensor x = run.input(0);
        const int64_t batch = shape[0];
        const tk_tensor out = run.output(0, {batch, dpc_.clusters, shape[2]}, x.dtype);
        tk_tensor sizes_storage;
        const tk_tensor* sizes = run.optional_output(1, {batch, dpc_.clusters}, TK_DTYPE_F32, sizes_storage);
        const tk_tensor centres = run.int64_output_or_scratch(2, {batch, dpc_.clusters});
        const tk_tensor assignment = run.int64_output_or_scratch(3, {batch, shape[1]});
        uint64_t bytes = 0;
        run.check(tk_dpc_knn_workspace_size(&dpc_, &x, &bytes), "tk_dpc_knn_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_dpc_knn(&dpc_, &x, nullptr, nullptr, &centres, &assignment, nullptr, nullptr, workspace, bytes, run.stream()),
                  "tk_dpc_knn");
        const bool centre_mode = merge_.mode != TK_CLUSTER_MERGE_MEAN;
        run.check(tk_cluster_merge(&merge_, &x, &assignment, nullptr, centre_mode ? &centres : nullptr, &out, sizes, run.stream()),
                  "tk_cluster_merge");
    }

private:
    tk_dpc_knn_params dpc_{};
    tk_cluster_merge_params merge_{};
};

// ---- k-means -------------------------------------------------------------------------------------

// Batched Lloyd k-means from k-means++ seeds, as scikit-learn's KMeans(n_init=1) (KMeans.Cluster).
class KMeansKernel final : public NodeKernel {
public:
    explicit KMeansKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        // Required (the token budget; scikit-learn's default of 8 is none), and at least 1: with no
        // cluster the assignment would be -1, which the int64 outputs cannot carry (Int64Indices).
        params_.clusters = a.integer_in("n_clusters", std::nullopt, 1, kInt32Max);
        params_.max_iterations = a.integer_in("max_iter", 300, 1, kInt32Max);
        const float tolerance = a.real("tol", 1e-4f);
        if (!(std::isfinite(tolerance) && tolerance >= 0.0f)) a.refuse("tol", "a finite float >= 0", real_text(tolerance));
        params_.tolerance = tolerance;
        const int64_t seed = a.integer("random_state", 0);
        if (seed < 0) a.refuse("random_state", "an integer >= 0", std::to_string(seed));
        params_.seed = static_cast<uint64_t>(seed);
        params_.init = TK_KMEANS_INIT_PLUS_PLUS;
    }

protected:
    void compute(Run& run) override {
        const std::vector<int64_t> shape = run.input_shape(0, 3, "[B, N, C]");
        const tk_tensor x = run.input(0);
        const int64_t batch = shape[0];
        const tk_tensor centres = run.output(0, {batch, params_.clusters, shape[2]}, TK_DTYPE_F32);
        const tk_tensor assignment = run.int64_output_or_scratch(1, {batch, shape[1]});
        tk_tensor sizes_storage, iterations_storage;
        const tk_tensor* sizes = run.optional_output(2, {batch, params_.clusters}, TK_DTYPE_F32, sizes_storage);
        const tk_tensor* iterations = run.optional_output(3, {batch}, TK_DTYPE_I32, iterations_storage);
        uint64_t bytes = 0;
        run.check(tk_kmeans_workspace_size(&params_, &x, &bytes), "tk_kmeans_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_kmeans(&params_, &x, nullptr, nullptr, nullptr, &centres, &assignment, sizes, iterations, workspace, bytes,
                            run.stream()),
                  "tk_kmeans");
    }

private:
    tk_kmeans_params params_{};
};

template <class Kernel>
std::unique_ptr<NodeKernel> make(const KernelSetup& setup) {
    return std::make_unique<Kernel>(setup);
}

}  // namespace

void add_recipe_ops(std::vector<OpSpec>& ops) {
    using K = ValueKind;
    ops.push_back({"VisionZip",
                   {{"attention", K::kAnyFloat}, {"metric", K::kAnyFloat}, {"hidden_states", K::kFeatures}},
                   {{"tokens", K::kFeatures}, {"kept_positions", K::kInt64}},
                   make<VisionZipKernel>});
    ops.push_back({"FastV",
                   {{"attention", K::kAnyFloat}, {"hidden_states", K::kFeatures}},
                   {{"tokens", K::kFeatures}, {"position_ids", K::kInt64}},
                   make<FastVKernel>});
    ops.push_back({"DivPrune",
                   {{"x", K::kFeatures}},
                   {{"tokens", K::kFeatures}, {"kept_positions", K::kInt64}, {"order", K::kInt64, true}},
                   make<DivPruneKernel>});
    ops.push_back({"CDPruner",
                   {{"features", K::kFeatures}, {"visual_embeds", K::kAnyFloat}, {"text_embeds", K::kAnyFloat}},
                   {{"tokens", K::kFeatures}, {"kept_positions", K::kInt64}, {"order", K::kInt64, true}},
                   make<CDPrunerKernel>});
    ops.push_back({"DpcKnnAggregate",
                   {{"x", K::kFeatures}},
                   {{"tokens", K::kFeatures}, {"sizes", K::kFloat32, true}, {"centres", K::kInt64, true}, {"assignment", K::kInt64, true}},
                   make<DpcKnnAggregateKernel>});
    ops.push_back({"KMeans",
                   {{"x", K::kAnyFloat}},
                   {{"centres", K::kFloat32}, {"assignment", K::kInt64, true}, {"sizes", K::kFloat32, true}, {"iterations", K::kInt32, true}},
                   make<KMeansKernel>});
}

}  // namespace tk_ort
