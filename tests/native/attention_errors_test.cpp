// Every class of invalid attention-pruning argument (SPEC "Errors"): the status, a message naming the
// argument, and no byte written to any tensor, for tk_attention_importance, tk_qk_importance, tk_topk,
// tk_gather, tk_visionzip_contextual and their workspace-size queries.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// ---- tk_attention_importance -----------------------------------------------------------------------------

// attn [2, 3, 4, 6] f32, queries [1, 3), keys [1, 5): out [2, 4] f32.
struct ImportanceCall {
    HostArray attn_array{TK_DTYPE_F32, {6, 4, 6}};
    HostArray out_array{TK_DTYPE_F32, {2, 4}};
    tk_importance_params params{};
    tk_tensor attn{}, out{};
    bool null_params = false, null_attn = false, null_out = false;

    ImportanceCall() {
        fill_values(attn_array);
        out_array.fill_bytes(0xA5);
        attn = split_heads(attn_array.desc(), 3);
        out = out_array.desc();
        params.query_begin = 1;
        params.query_end = 3;
        params.key_begin = 1;
        params.key_end = 5;
        params.head_reduce = TK_REDUCE_MEAN;
        params.query_reduce = TK_REDUCE_SUM;
    }
    std::vector<const HostArray*> arrays() const { return {&attn_array, &out_array}; }
    tk_status run() const {
        return tk_attention_importance(null_params ? nullptr : &params, null_attn ? nullptr : &attn, null_out ? nullptr : &out, nullptr);
    }
};

std::vector<InvalidCase<ImportanceCall>> importance_cases() {
    using C = ImportanceCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullAttn", [](C& c) { c.null_attn = true; }, "attn"},
        {"NullOut", [](C& c) { c.null_out = true; }, "out"},
        {"AttnNullData", [](C& c) { c.attn.data = nullptr; }, "attn.data"},
        {"AttnRank3", [](C& c) { c.attn.rank = 3; }, "attn.rank"},
        {"AttnI32", [](C& c) { c.attn.dtype = TK_DTYPE_I32; }, "attn.dtype"},
        {"AttnUnknownDtype", [](C& c) { c.attn.dtype = 9; }, "attn.dtype"},
        {"AttnCpuOrdinal1", [](C& c) { c.attn.device_ordinal = 1; }, "attn.device_ordinal"},
        {"AttnKeysNotContiguous", [](C& c) { c.attn.strides[3] = 2; }, "attn.strides[3]"},
        {"AttnZeroHeadStride", [](C& c) { c.attn.strides[1] = 0; }, "attn.strides[1]"},
        {"AttnNoHeads", [](C& c) { c.attn.shape[1] = 0; }, "attn.shape[1]"},
        {"HeadReduceTwo", [](C& c) { c.params.head_reduce = 2; }, "params->head_reduce"},
        {"QueryReduceNegative", [](C& c) { c.params.query_reduce = -1; }, "params->query_reduce"},
        {"QueryBeginNegative", [](C& c) { c.params.query_begin = -1; }, "params->query_begin"},
        {"QueryRangeEmpty", [](C& c) { c.params.query_begin = 3; }, "params->query_begin"},
        {"QueryEndPastNq", [](C& c) { c.params.query_end = 5; }, "query_end"},
        {"KeyBeginNegative", [](C& c) { c.params.key_begin = -1; }, "params->key_begin"},
        {"KeyBeginAfterEnd", [](C& c) { c.params.key_begin = 6; }, "params->key_begin"},
        {"KeyEndPastNk", [](C& c) { c.params.key_end = 7; }, "key_end"},
        {"OutRank1", [](C& c) { c.out.rank = 1; }, "out.rank"},
        {"OutF16", [](C& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"OutBatchDiffers", [](C& c) { c.out.shape[0] = 1; }, "out.shape[0]"},
        {"OutWidthNotKeyRange", [](C& c) { c.out.shape[1] = 5; }, "out.shape[1]"},
        {"OutOverlapsItself", [](C& c) { c.out.strides[0] = 1; }, "out.strides"},
        {"OutOverlapsAttn", [](C& c) { c.out.data = static_cast<float*>(c.attn.data) + 30; }, "disjoint from attn"},
    };
}

class AttentionImportanceInvalid : public ::testing::TestWithParam<InvalidCase<ImportanceCall>> {};
TEST_P(AttentionImportanceInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Attention, AttentionImportanceInvalid, ::testing::ValuesIn(importance_cases()), case_name<ImportanceCall>);

// ---- tk_qk_importance ---------------------------------------------------------------------------------

// q [2, 4, 5, 3], k [2, 2, 6, 3] (GQA), lse [2, 4, 5], queries [0, 5), keys [1, 5): out [2, 4].
struct QkCall {
    HostArray q_array{TK_DTYPE_F32, {8, 5, 3}};
    HostArray k_array{TK_DTYPE_F32, {4, 6, 3}};
    HostArray lse_array{TK_DTYPE_F32, {2, 4, 5}};
    HostArray out_array{TK_DTYPE_F32, {2, 4}};
    tk_importance_params params{};
    tk_tensor q{}, k{}, lse{}, out{};
    bool null_params = false, null_q = false, null_k = false, null_out = false;
    void* workspace = nullptr;
    uint64_t workspace_bytes = 0;

    QkCall() {
        fill_values(q_array);
        fill_values(k_array);
        fill_values(lse_array);
        out_array.fill_bytes(0xA5);
        q = split_heads(q_array.desc(), 4);
        k = split_heads(k_array.desc(), 2);
        lse = lse_array.desc();
        out = out_array.desc();
        params.query_begin = 0;
        params.query_end = 5;
        params.key_begin = 1;
        params.key_end = 5;
        params.head_reduce = TK_REDUCE_SUM;
        params.query_reduce = TK_REDUCE_MEAN;
        params.scale = 0.5f;
        params.causal = 1;
    }
    std::vector<const HostArray*> arrays() const { return {&q_array, &k_array, &lse_array, &out_array}; }
    tk_status run() const {
        return tk_qk_importance(null_params ? nullptr : &params, null_q ? nullptr : &q, null_k ? nullptr : &k, &lse,
                                null_out ? nullptr : &out, workspace, workspace_bytes, nullptr);
    }
};

std::vector<InvalidCase<QkCall>> qk_cases() {
    using C = QkCall;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullQ", [](C& c) { c.null_q = true; }, "q"},
        {"NullK", [](C& c) { c.null_k = true; }, "k"},
        {"NullOut", [](C& c) { c.null_out = true; }, "out"},
        {"ScaleZero", [](C& c) { c.params.scale = 0.0f; }, "params->scale"},
        {"ScaleNegative", [](C& c) { c.params.scale = -0.5f; }, "params->scale"},
        {"ScaleNan", [nan](C& c) { c.params.scale = nan; }, "params->scale"},
        {"ScaleInf", [inf](C& c) { c.params.scale = inf; }, "params->scale"},
        {"CausalTwo", [](C& c) { c.params.causal = 2; }, "params->causal"},
        {"CausalNegative", [](C& c) { c.params.causal = -1; }, "params->causal"},
        {"HeadReduceTwo", [](C& c) { c.params.head_reduce = 2; }, "params->head_reduce"},
        {"QueryRangeEmpty", [](C& c) { c.params.query_end = 0; }, "params->query_begin"},
        {"KeyEndPastNk", [](C& c) { c.params.key_end = 7; }, "key_end"},
        {"QRank3", [](C& c) { c.q.rank = 3; }, "q.rank"},
        {"KRank5", [](C& c) { c.k.rank = 5; }, "k.rank"},
        {"QI32", [](C& c) { c.q.dtype = TK_DTYPE_I32; }, "q.dtype"},
        {"KDtypeDiffers", [](C& c) { c.k.dtype = TK_DTYPE_F16; }, "k.dtype"},
        {"QHeadDimNotContiguous", [](C& c) { c.q.strides[3] = 2; }, "q.strides[3]"},
        {"KZeroTokenStride", [](C& c) { c.k.strides[2] = 0; }, "k.strides[2]"},
        {"KBatchDiffers", [](C& c) { c.k.shape[0] = 1; }, "k.shape[0]"},
        {"KHeadDimDiffers", [](C& c) { c.k.shape[3] = 2; }, "k.shape[3]"},
        {"KeyHeadsNotDividingHeads", [](C& c) { c.k.shape[1] = 3; }, "k.shape[1]"},
        {"LseRank2", [](C& c) { c.lse.rank = 2; }, "lse.rank"},
        {"LseF16", [](C& c) { c.lse.dtype = TK_DTYPE_F16; }, "lse.dtype"},
        {"LseQueriesDiffer", [](C& c) { c.lse.shape[2] = 4; }, "lse.shape[2]"},
        {"LseHeadsDiffer", [](C& c) { c.lse.shape[1] = 2; }, "lse.shape[1]"},
        {"LseZeroStride", [](C& c) { c.lse.strides[1] = 0; }, "lse.strides[1]"},
        {"OutWidthNotKeyRange", [](C& c) { c.out.shape[1] = 6; }, "out.shape[1]"},
        {"OutI32", [](C& c) { c.out.dtype = TK_DTYPE_I32; }, "out.dtype"},
        {"OutOverlapsQ", [](C& c) { c.out.data = c.q.data; }, "disjoint from q"},
        {"OutOverlapsK", [](C& c) { c.out.data = static_cast<float*>(c.k.data) + 10; }, "disjoint from k"},
        {"OutOverlapsLse", [](C& c) { c.out.data = static_cast<float*>(c.lse.data) + 1; }, "disjoint from lse"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 16; }, "workspace"},
        {"WorkspaceOverlapsQ", [](C& c) { c.workspace = c.q.data; c.workspace_bytes = 16; }, "disjoint from q"},
        {"WorkspaceOverlapsLse", [](C& c) { c.workspace = static_cast<float*>(c.lse.data) + 39; c.workspace_bytes = 16; },
         "disjoint from lse"},
        {"WorkspaceOverlapsOut", [](C& c) { c.workspace = static_cast<float*>(c.out.data) - 1; c.workspace_bytes = 8; },
         "disjoint from out"},
        {"KStrideBytesOverflow", [](C& c) { c.k.strides[2] = int64_t{1} << 62; }, "k.strides"},
    };
}

class QkImportanceInvalid : public ::testing::TestWithParam<InvalidCase<QkCall>> {};
TEST_P(QkImportanceInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Attention, QkImportanceInvalid, ::testing::ValuesIn(qk_cases()), case_name<QkCall>);

TEST(QkImportanceInvalidWorkspaceSize, EachArgumentIsNamed) {
    QkCall c;
    uint64_t bytes = 12345;
    expect_rejected(tk_qk_importance_workspace_size(&c.params, &c.q, &c.k, &c.lse, nullptr), "bytes");
    expect_rejected(tk_qk_importance_workspace_size(nullptr, &c.q, &c.k, &c.lse, &bytes), "params");
    expect_rejected(tk_qk_importance_workspace_size(&c.params, &c.q, nullptr, &c.lse, &bytes), "k");
    c.params.scale = -1.0f;
    expect_rejected(tk_qk_importance_workspace_size(&c.params, &c.q, &c.k, &c.lse, &bytes), "params->scale");
    c.params.scale = 0.5f;
    c.k.shape[1] = 3;
    expect_rejected(tk_qk_importance_workspace_size(&c.params, &c.q, &c.k, &c.lse, &bytes), "k.shape[1]");
    EXPECT_EQ(bytes, 12345u) << "a rejected query wrote bytes";
}

// ---- tk_topk ----------------------------------------------------------------------------------------

// scores [2, 7] f32, lengths {7, 3}, item_k {2, 4}, k = 4: indices and ranked [2, 4] i32.
struct TopkCall {
    HostArray scores_array{TK_DTYPE_F32, {2, 7}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray item_k_array{TK_DTYPE_I32, {2}};
    HostArray indices_array{TK_DTYPE_I32, {2, 4}};
    HostArray ranked_array{TK_DTYPE_I32, {2, 4}};
    tk_topk_params params{4};
    tk_tensor scores{}, lengths{}, item_k{}, indices{}, ranked{};
    bool null_params = false, null_scores = false, null_indices = false;
    void* workspace = nullptr;
    uint64_t workspace_bytes = 0;

    TopkCall() {
        fill_values(scores_array);
        lengths_array.set(0, 0, 0, 7);
        lengths_array.set(1, 0, 0, 3);
        item_k_array.set(0, 0, 0, 2);
        item_k_array.set(1, 0, 0, 4);
        indices_array.fill_bytes(0xA5);
        ranked_array.fill_bytes(0xA5);
        scores = scores_array.desc();
        lengths = lengths_array.desc();
        item_k = item_k_array.desc();
        indices = indices_array.desc();
        ranked = ranked_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&scores_array, &lengths_array, &item_k_array, &indices_array, &ranked_array}; }
    tk_status run() const {
        return tk_topk(null_params ? nullptr : &params, null_scores ? nullptr : &scores, &lengths, &item_k,
                       null_indices ? nullptr : &indices, &ranked, workspace, workspace_bytes, nullptr);
    }
};

std::vector<InvalidCase<TopkCall>> topk_cases() {
    using C = TopkCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullScores", [](C& c) { c.null_scores = true; }, "scores"},
        {"NullIndices", [](C& c) { c.null_indices = true; }, "indices"},
        {"KNegative", [](C& c) { c.params.k = -1; }, "params->k"},
        {"KAboveN", [](C& c) { c.params.k = 8; }, "params->k"},
        {"ScoresRank3", [](C& c) { c.scores.rank = 3; }, "scores.rank"},
        {"ScoresI32", [](C& c) { c.scores.dtype = TK_DTYPE_I32; }, "scores.dtype"},
        {"ScoresZeroStride", [](C& c) { c.scores.strides[1] = 0; }, "scores.strides[1]"},
        {"IndicesI64", [](C& c) { c.indices.dtype = TK_DTYPE_I64; }, "indices.dtype"},
        {"IndicesColumnsNotK", [](C& c) { c.indices.shape[1] = 3; }, "indices.shape[1]"},
        {"IndicesRank1", [](C& c) { c.indices.rank = 1; }, "indices.rank"},
        {"RankedF32", [](C& c) { c.ranked.dtype = TK_DTYPE_F32; }, "ranked.dtype"},
        {"RankedBatchDiffers", [](C& c) { c.ranked.shape[0] = 1; }, "ranked.shape[0]"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthsBatchDiffers", [](C& c) { c.lengths.shape[0] = 3; }, "lengths.shape[0]"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 8); }, "lengths[1]"},
        {"LengthNegative", [](C& c) { c.lengths_array.set(0, 0, 0, -1); }, "lengths[0]"},
        {"ItemKRank2", [](C& c) { c.item_k.rank = 2; }, "item_k.rank"},
        {"ItemKAboveK", [](C& c) { c.item_k_array.set(0, 0, 0, 5); }, "item_k[0]"},
        {"ItemKNegative", [](C& c) { c.item_k_array.set(1, 0, 0, -2); }, "item_k[1]"},
        {"IndicesOverlapItself", [](C& c) { c.indices.strides[0] = 1; }, "indices.strides"},
        {"IndicesOverlapScores", [](C& c) { c.indices.data = c.scores.data; }, "disjoint from scores"},
        {"IndicesOverlapLengths", [](C& c) { c.indices.data = c.lengths.data; }, "disjoint from lengths"},
        {"RankedOverlapsIndices", [](C& c) { c.ranked.data = static_cast<int32_t*>(c.indices.data) + 5; }, "disjoint from indices"},
        {"RankedOverlapsItemK", [](C& c) { c.ranked.data = c.item_k.data; }, "disjoint from item_k"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 8; }, "workspace"},
        {"WorkspaceOverlapsScores", [](C& c) { c.workspace = c.scores.data; c.workspace_bytes = 8; }, "disjoint from scores"},
        {"WorkspaceOverlapsItemK", [](C& c) { c.workspace = c.item_k.data; c.workspace_bytes = 4; }, "disjoint from item_k"},
        {"WorkspaceOverlapsRanked",
         // ranked's last element: a longer workspace would reach past ranked into whatever the heap put
         // next (indices, in some runs), and the message would name that instead.
         [](C& c) { c.workspace = static_cast<int32_t*>(c.ranked.data) + 7; c.workspace_bytes = 4; }, "disjoint from ranked"},
        // Element offsets fit int64, their bytes do not (4 x 2^62), or reach past the address space
        // (4 x 2^61); once both returned OK or crashed.
        {"ScoresStrideBytesOverflow", [](C& c) { c.scores.strides[0] = int64_t{1} << 62; }, "scores.strides"},
        {"ScoresStrideBytesBeyondAddressSpace", [](C& c) { c.scores.strides[0] = int64_t{1} << 61; }, "scores.strides"},
        {"ScoresEndWrapsAddressSpace", [](C& c) { c.scores.data = reinterpret_cast<void*>(uintptr_t{0} - 32); },
         "scores.strides"},
        {"IndicesStrideBytesOverflow", [](C& c) { c.indices.strides[0] = int64_t{1} << 62; }, "indices.strides"},
    };
}

class TopkInvalid : public ::testing::TestWithParam<InvalidCase<TopkCall>> {};
TEST_P(TopkInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Attention, TopkInvalid, ::testing::ValuesIn(topk_cases()), case_name<TopkCall>);

TEST(TopkInvalidWorkspaceSize, EachArgumentIsNamed) {
    TopkCall c;
    uint64_t bytes = 12345;
    expect_rejected(tk_topk_workspace_size(&c.params, &c.scores, nullptr), "bytes");
    expect_rejected(tk_topk_workspace_size(nullptr, &c.scores, &bytes), "params");
    expect_rejected(tk_topk_workspace_size(&c.params, nullptr, &bytes), "scores");
    c.params.k = 8;
    expect_rejected(tk_topk_workspace_size(&c.params, &c.scores, &bytes), "params->k");
    EXPECT_EQ(bytes, 12345u) << "a rejected query wrote bytes";
}

// ---- tk_gather ----------------------------------------------------------------------------------------

// x [2, 5, 3] f32, indices [2, 4] i64 (a -1 among them): out [2, 4, 3] f32.
struct GatherCall {
    HostArray x_array{TK_DTYPE_F32, {2, 5, 3}};
    HostArray indices_array{TK_DTYPE_I64, {2, 4}};
    HostArray out_array{TK_DTYPE_F32, {2, 4, 3}};
    tk_tensor x{}, indices{}, out{};
    bool null_x = false, null_indices = false, null_out = false;

    GatherCall() {
        fill_values(x_array);
        const int64_t rows[2][4] = {{0, 4, -1, 2}, {3, 3, 1, 0}};
        for (int64_t b = 0; b < 2; ++b)
            for (int64_t i = 0; i < 4; ++i) indices_array.set(b, i, 0, static_cast<double>(rows[b][i]));
        out_array.fill_bytes(0xA5);
        x = x_array.desc();
        indices = indices_array.desc();
        out = out_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&x_array, &indices_array, &out_array}; }
    tk_status run() const {
        return tk_gather(null_x ? nullptr : &x, null_indices ? nullptr : &indices, null_out ? nullptr : &out, nullptr);
    }
};

std::vector<InvalidCase<GatherCall>> gather_cases() {
    using C = GatherCall;
    return {
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullIndices", [](C& c) { c.null_indices = true; }, "indices"},
        {"NullOut", [](C& c) { c.null_out = true; }, "out"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XUnknownDtype", [](C& c) { c.x.dtype = 7; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"IndicesF32", [](C& c) { c.indices.dtype = TK_DTYPE_F32; }, "indices.dtype"},
        {"IndicesRank3", [](C& c) { c.indices.rank = 3; }, "indices.rank"},
        {"IndicesBatchDiffers", [](C& c) { c.indices.shape[0] = 1; }, "indices.shape[0]"},
        {"IndexAboveN", [](C& c) { c.indices_array.set(1, 2, 0, 5); }, "indices[1, 2]"},
        {"IndexBelowMinusOne", [](C& c) { c.indices_array.set(0, 0, 0, -2); }, "indices[0, 0]"},
        {"OutDtypeDiffersFromX", [](C& c) { c.out.dtype = TK_DTYPE_BF16; }, "out.dtype"},
        {"OutRowsNotK", [](C& c) { c.out.shape[1] = 3; }, "out.shape[1]"},
        {"OutChannelsDiffer", [](C& c) { c.out.shape[2] = 2; }, "out.shape[2]"},
        {"OutOverlapsItself", [](C& c) { c.out.strides[1] = 1; }, "out.strides"},
        {"OutOverlapsX", [](C& c) { c.out.data = c.x.data; }, "disjoint from x"},
        {"OutOverlapsIndices", [](C& c) { c.out.data = c.indices.data; }, "disjoint from indices"},
        {"IndicesMisaligned", [](C& c) { c.indices.data = static_cast<char*>(c.indices.data) + 4; },
         "indices.data: expected a pointer aligned to 8 bytes"},
    };
}

class GatherInvalid : public ::testing::TestWithParam<InvalidCase<GatherCall>> {};
TEST_P(GatherInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Attention, GatherInvalid, ::testing::ValuesIn(gather_cases()), case_name<GatherCall>);

// ---- tk_visionzip_contextual ----------------------------------------------------------------------------

// metric [2, 7, 4] f32, x [2, 7, 3] bf16, kept [2, 2] i32 = {{0, 3}, {6, 1}}, contextual 3: out [2, 3, 3] bf16.
struct ContextualCall {
    HostArray metric_array{TK_DTYPE_F32, {2, 7, 4}};
    HostArray x_array{TK_DTYPE_BF16, {2, 7, 3}};
    HostArray kept_array{TK_DTYPE_I32, {2, 2}};
    HostArray out_array{TK_DTYPE_BF16, {2, 3, 3}};
    int32_t contextual = 3;
    tk_tensor metric{}, x{}, kept{}, out{};
    bool null_metric = false, null_x = false, null_kept = false, null_out = false;
    void* workspace = nullptr;
    uint64_t workspace_bytes = 0;

    ContextualCall() {
        fill_values(metric_array);
        fill_values(x_array);
        kept_array.set(0, 0, 0, 0);
        kept_array.set(0, 1, 0, 3);
        kept_array.set(1, 0, 0, 6);
        kept_array.set(1, 1, 0, 1);
        out_array.fill_bytes(0xA5);
        metric = metric_array.desc();
        x = x_array.desc();
        kept = kept_array.desc();
        out = out_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&metric_array, &x_array, &kept_array, &out_array}; }
    tk_status run() const {
        return tk_visionzip_contextual(contextual, null_metric ? nullptr : &metric, null_x ? nullptr : &x,
                                       null_kept ? nullptr : &kept, null_out ? nullptr : &out, workspace, workspace_bytes, nullptr);
    }
};

std::vector<InvalidCase<ContextualCall>> contextual_cases() {
    using C = ContextualCall;
    return {
        {"NullMetric", [](C& c) { c.null_metric = true; }, "metric"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullKept", [](C& c) { c.null_kept = true; }, "kept"},
        {"NullOut", [](C& c) { c.null_out = true; }, "out"},
        {"ContextualNegative", [](C& c) { c.contextual = -1; }, "contextual"},
        {"ContextualAboveRemaining", [](C& c) { c.contextual = 6; }, "contextual"},
        {"MetricRank2", [](C& c) { c.metric.rank = 2; }, "metric.rank"},
        {"MetricI32", [](C& c) { c.metric.dtype = TK_DTYPE_I32; }, "metric.dtype"},
        {"MetricChannelsNotContiguous", [](C& c) { c.metric.strides[2] = 2; }, "metric.strides[2]"},
        {"XI64", [](C& c) { c.x.dtype = TK_DTYPE_I64; }, "x.dtype"},
        {"XBatchDiffers", [](C& c) { c.x.shape[0] = 1; }, "x.shape[0]"},
        {"XTokensDiffer", [](C& c) { c.x.shape[1] = 6; }, "x.shape[1]"},
        {"KeptF32", [](C& c) { c.kept.dtype = TK_DTYPE_F32; }, "kept.dtype"},
        {"KeptRank1", [](C& c) { c.kept.rank = 1; }, "kept.rank"},
        {"KeptBatchDiffers", [](C& c) { c.kept.shape[0] = 3; }, "kept.shape[0]"},
        {"KeptMoreThanN", [](C& c) { c.kept.shape[1] = 8; }, "kept.shape[1]"},
        {"KeptOutOfRange", [](C& c) { c.kept_array.set(1, 0, 0, 7); }, "kept[1, 0]"},
        {"KeptNegative", [](C& c) { c.kept_array.set(0, 1, 0, -1); }, "kept[0, 1]"},
        {"KeptDuplicate", [](C& c) { c.kept_array.set(1, 1, 0, 6); }, "kept[1, 1]"},
        {"OutDtypeNotX", [](C& c) { c.out.dtype = TK_DTYPE_F32; }, "out.dtype"},
        {"OutRowsNotContextual", [](C& c) { c.out.shape[1] = 2; }, "out.shape[1]"},
        {"OutChannelsDiffer", [](C& c) { c.out.shape[2] = 4; }, "out.shape[2]"},
        {"OutOverlapsItself", [](C& c) { c.out.strides[0] = 3; }, "out.strides"},
        {"OutOverlapsX", [](C& c) { c.out.data = c.x.data; }, "disjoint from x"},
        {"OutOverlapsMetric", [](C& c) { c.out.data = static_cast<float*>(c.metric.data) + 4; }, "disjoint from metric"},
        {"OutOverlapsKept", [](C& c) { c.out.data = c.kept.data; }, "disjoint from kept"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 4; }, "workspace"},
        {"WorkspaceOverlapsKept", [](C& c) { c.workspace = c.kept.data; c.workspace_bytes = 256; }, "disjoint from kept"},
        {"WorkspaceOverlapsOut", [](C& c) { c.workspace = static_cast<char*>(c.out.data) + 2; c.workspace_bytes = 2; },
         "disjoint from out"},
        {"XStrideBytesOverflow", [](C& c) { c.x.strides[1] = int64_t{1} << 62; }, "x.strides"},
    };
}

class ContextualInvalid : public ::testing::TestWithParam<InvalidCase<ContextualCall>> {};
TEST_P(ContextualInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Attention, ContextualInvalid, ::testing::ValuesIn(contextual_cases()), case_name<ContextualCall>);

TEST(ContextualInvalidWorkspaceSize, EachArgumentIsNamed) {
    ContextualCall c;
    uint64_t bytes = 12345;
    expect_rejected(tk_visionzip_contextual_workspace_size(3, &c.metric, &c.x, &c.kept, nullptr), "bytes");
    expect_rejected(tk_visionzip_contextual_workspace_size(-1, &c.metric, &c.x, &c.kept, &bytes), "contextual");
    expect_rejected(tk_visionzip_contextual_workspace_size(3, &c.metric, nullptr, &c.kept, &bytes), "x");
    EXPECT_EQ(bytes, 12345u) << "a rejected query wrote bytes";
    // The query reads shapes, not values: kept may not be computed yet (a duplicate here).
    c.kept_array.set(0, 1, 0, 0);
    EXPECT_EQ(tk_visionzip_contextual_workspace_size(3, &c.metric, &c.x, &c.kept, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(bytes, 0u);
    expect_rejected(c.run(), "kept[0, 1]");
}

// ---- Devices ------------------------------------------------------------------------------------------

// Without a CUDA device, a tensor that says it lives on one is refused as such.
TEST(AttentionInvalidDevices, CudaTensorWithoutCuda) {
    if (cuda_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
    ImportanceCall importance;
    importance.out.device_kind = TK_DEVICE_CUDA;
    expect_rejected(importance.run(), "out.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
    QkCall qk;
    qk.k.device_kind = TK_DEVICE_CUDA;
    expect_rejected(qk.run(), "k.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
    TopkCall topk;
    topk.lengths.device_kind = TK_DEVICE_CUDA;
    expect_rejected(topk.run(), "lengths.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
    GatherCall gather;
    gather.indices.device_kind = TK_DEVICE_CUDA;
    expect_rejected(gather.run(), "indices.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
    ContextualCall contextual;
    contextual.kept.device_kind = TK_DEVICE_CUDA;
    expect_rejected(contextual.run(), "kept.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
}

// With one, an input on the device beside host tensors is a device mismatch.
TEST(AttentionInvalidDevicesCuda, MixedDevicesAreRejectedWithoutWriting) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const auto on_device = [](const HostArray& host, const DeviceBuffer& buffer, tk_tensor t) {
        t.data = static_cast<uint8_t*>(buffer.get()) + (static_cast<const uint8_t*>(t.data) - host.bytes().data());
        t.device_kind = TK_DEVICE_CUDA;
        t.device_ordinal = 0;
        return t;
    };
    {
        ImportanceCall c;
        const DeviceBuffer out_d(c.out_array.bytes().size());
        c.out = on_device(c.out_array, out_d, c.out);
        expect_rejected(c.run(), "out.device");
    }
    {
        QkCall c;
        const DeviceBuffer k_d(c.k_array.bytes().size()), lse_d(c.lse_array.bytes().size());
        c.k = on_device(c.k_array, k_d, c.k);
        expect_rejected(c.run(), "k.device");
        c.k = split_heads(c.k_array.desc(), 2);
        c.lse = on_device(c.lse_array, lse_d, c.lse);
        const auto before = snapshot(c.arrays());
        expect_rejected(c.run(), "lse.device");
        EXPECT_TRUE(snapshot(c.arrays()) == before);
    }
    {
        TopkCall c;
        const DeviceBuffer item_k_d(c.item_k_array.bytes().size());
        c.item_k = on_device(c.item_k_array, item_k_d, c.item_k);
        expect_rejected(c.run(), "item_k.device");
    }
    {
        GatherCall c;
        const DeviceBuffer x_d(c.x_array.bytes().size());
        c.x = on_device(c.x_array, x_d, c.x);
        expect_rejected(c.run(), "device");
    }
    {
        ContextualCall c;
        const DeviceBuffer x_d(c.x_array.bytes().size());
        c.x = on_device(c.x_array, x_d, c.x);
        const auto before = snapshot(c.arrays());
        expect_rejected(c.run(), "x.device");
        EXPECT_TRUE(snapshot(c.arrays()) == before);
    }
}

// CUDA limits that the CPU does not have: head dimensions outside {64, 80, 96, 128}.
TEST(QkImportanceInvalidCuda, HeadDimensionOutsideTheCudaSet) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    QkCall c;
    const DeviceBuffer q_d(c.q_array.bytes().size()), k_d(c.k_array.bytes().size()), lse_d(c.lse_array.bytes().size()),
        out_d(c.out_array.bytes().size());
    const auto on_device = [](const HostArray& host, const DeviceBuffer& buffer, tk_tensor t) {
        t.data = static_cast<uint8_t*>(buffer.get()) + (static_cast<const uint8_t*>(t.data) - host.bytes().data());
        t.device_kind = TK_DEVICE_CUDA;
        return t;
    };
    c.q = on_device(c.q_array, q_d, c.q);
    c.k = on_device(c.k_array, k_d, c.k);
    c.lse = on_device(c.lse_array, lse_d, c.lse);
    c.out = on_device(c.out_array, out_d, c.out);
    expect_rejected(c.run(), "q.shape[3]");
}

// A shape whose CUDA grid would not fit gridDim.x (B * H * ceil(queries / 64) blocks) is refused by
// name, by the workspace query and the op alike, instead of being cast into a smaller grid. The views
// overlap themselves (head and row strides of 1), so they need only a few KiB of device memory.
TEST(QkImportanceInvalidCuda, GridBeyondTheCudaLimit) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const int64_t heads = int64_t{1} << 15, queries = int64_t{1} << 22, keys = 64, d = 64;
    const DeviceBuffer q_d((heads + queries + d) * sizeof(float)), k_d((keys + d) * sizeof(float)), out_d(keys * sizeof(float));
    tk_tensor q{q_d.get(), TK_DTYPE_F32, TK_DEVICE_CUDA, 0, 4, {1, heads, queries, d}, {heads + queries + d, 1, 1, 1}};
    tk_tensor k{k_d.get(), TK_DTYPE_F32, TK_DEVICE_CUDA, 0, 4, {1, 1, keys, d}, {keys + d, keys + d, 1, 1}};
    tk_tensor out{out_d.get(), TK_DTYPE_F32, TK_DEVICE_CUDA, 0, 2, {1, keys}, {keys, 1}};
    tk_importance_params p{};
    p.query_begin = 0;
    p.query_end = queries;
    p.key_begin = 0;
    p.key_end = keys;
    p.head_reduce = TK_REDUCE_SUM;
    p.query_reduce = TK_REDUCE_SUM;
    p.scale = 0.125f;
    uint64_t bytes = 7;
    EXPECT_EQ(tk_qk_importance_workspace_size(&p, &q, &k, nullptr, &bytes), TK_STATUS_INVALID_ARGUMENT) << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find("CUDA grid"), std::string::npos) << tk_last_error();
    EXPECT_EQ(bytes, 7u);
    EXPECT_EQ(tk_qk_importance(&p, &q, &k, nullptr, &out, nullptr, 0, nullptr), TK_STATUS_INVALID_ARGUMENT) << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find("q:"), std::string::npos) << tk_last_error();
}

}  // namespace
}  // namespace tkt
