// Attention-based pruning (SPEC section 3): the CPU backend against the float64 reference on fresh
// random inputs of awkward sizes, every dtype and strided views (padded rows, head- or batch-inner
// layouts, misaligned pointers), with exact indices wherever the contract fixes them; FastV and
// VisionZip selections on synthetic attention; determinism across thread counts; and the CUDA
// backend against the CPU backend on the same inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "attention_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr tk_dtype kFloatDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};

::testing::AssertionResult ok(tk_status status) {
    if (status != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    return ::testing::AssertionSuccess();
}

std::string test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->test_suite_name()) + "." + info->name();
}

// Half the distance between neighbouring numbers of dtype, relative: the rounding of an output.
double rounding_of(tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F16:
            return 1.0 / 2048.0;
        case TK_DTYPE_BF16:
            return 1.0 / 256.0;
        default:
            return 1.0 / 16777216.0;
    }
}

// A [B, H, N, D] view: a HostArray [B * H, N, D] read as four dimensions. With batch_inner the
// layout is [N, B, H, D] in memory (head and batch strides smaller than the token stride), as in
// the (tokens, batch, heads, dim) tensors some attention kernels use.
class Host4 {
public:
    Host4(tk_dtype dtype, std::array<int64_t, 4> shape, const ArrayLayout& layout = ArrayLayout())
        : shape_(shape), array_(dtype, {shape[0] * shape[1], shape[2], shape[3]}, layout) {}

    double get(int64_t b, int64_t h, int64_t n, int64_t c) const { return array_.get(b * shape_[1] + h, n, c); }
    void set(int64_t b, int64_t h, int64_t n, int64_t c, double v) { array_.set(b * shape_[1] + h, n, c, v); }
    std::vector<double> values() const { return array_.values(); }
    HostArray& array() { return array_; }
    const HostArray& array() const { return array_; }
    tk_tensor desc() const { return split_heads(array_.desc(), shape_[1]); }
    tk_tensor device_desc(void* buffer, int32_t ordinal) const { return split_heads(array_.device_desc(buffer, ordinal), shape_[1]); }

private:
    std::array<int64_t, 4> shape_;
    HostArray array_;
};

tk_importance_params importance_params(int64_t q0, int64_t q1, int64_t k0, int64_t k1, tk_reduce head_reduce,
                                       tk_reduce query_reduce, float scale = 1.0f, int32_t causal = 0) {
    tk_importance_params p{};
    p.query_begin = q0;
    p.query_end = q1;
    p.key_begin = k0;
    p.key_end = k1;
    p.head_reduce = head_reduce;
    p.query_reduce = query_reduce;
    p.scale = scale;
    p.causal = causal;
    return p;
}

std::string describe(const tk_importance_params& p) {
    std::ostringstream s;
    s << "queries [" << p.query_begin << ", " << p.query_end << ") keys [" << p.key_begin << ", " << p.key_end
      << ") heads " << (p.head_reduce == TK_REDUCE_MEAN ? "mean" : "sum") << " queries "
      << (p.query_reduce == TK_REDUCE_MEAN ? "mean" : "sum") << " scale " << p.scale << " causal " << p.causal;
    return s.str();
}

std::string describe(const AttentionShape& s) {
    std::ostringstream o;
    o << "B=" << s.batch << " H=" << s.heads << " Hk=" << s.key_heads << " Nq=" << s.queries << " Nk=" << s.keys
      << " d=" << s.head_dim;
    return o.str();
}

// ---- Importance from attention probabilities ---------------------------------------------------------

struct AttentionCase {
    tk_dtype dtype;
    AttentionShape shape;
    tk_importance_params params;
    ArrayLayout layout;
};

// Runs tk_attention_importance on attn into a fresh (padded) out and returns out.
HostArray run_attention_importance(const tk_importance_params& p, const Host4& attn, int64_t batch) {
    HostArray out(TK_DTYPE_F32, {batch, p.key_end - p.key_begin}, ArrayLayout{1, false, 0});
    out.fill_bytes(0x5a);
    const HostArray before = out;
    const tk_tensor a = attn.desc();
    const tk_tensor o = out.desc();
    EXPECT_TRUE(ok(tk_attention_importance(&p, &a, &o, nullptr)));
    EXPECT_EQ(first_changed_gap(before, out), "");
    return out;
}

TEST(AttentionImportance, MatchesReferenceAndTheContractsFloat32Order) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const ArrayLayout dense{};
    const ArrayLayout padded{3, false, 1};
    const ArrayLayout heads_inner{1, true, 0};
    std::vector<AttentionCase> cases;
    for (tk_dtype dtype : kFloatDtypes) {
        // Keys cross the CPU's 512-key tile; ranges start and end inside it.
        cases.push_back({dtype, {3, 5, 5, 7, 1037, 1}, importance_params(1, 6, 3, 1030, TK_REDUCE_MEAN, TK_REDUCE_MEAN), padded});
        cases.push_back({dtype, {1, 1, 1, 1, 1, 1}, importance_params(0, 1, 0, 1, TK_REDUCE_SUM, TK_REDUCE_SUM), dense});
        cases.push_back({dtype, {3, 4, 4, 9, 13, 1}, importance_params(8, 9, 2, 11, TK_REDUCE_MEAN, TK_REDUCE_SUM), heads_inner});
        cases.push_back({dtype, {1, 7, 7, 33, 33, 1}, importance_params(0, 1, 1, 33, TK_REDUCE_SUM, TK_REDUCE_MEAN), padded});
        cases.push_back({dtype, {3, 2, 2, 17, 515, 1}, importance_params(0, 17, 0, 515, TK_REDUCE_SUM, TK_REDUCE_SUM), heads_inner});
        cases.push_back({dtype, {3, 2, 2, 4, 9, 1}, importance_params(1, 3, 4, 4, TK_REDUCE_MEAN, TK_REDUCE_MEAN), dense});
    }
    for (const AttentionCase& c : cases) {
        SCOPED_TRACE(std::string(dtype_label(c.dtype)) + " " + describe(c.shape) + " " + describe(c.params));
        Host4 attn(c.dtype, {c.shape.batch, c.shape.heads, c.shape.queries, c.shape.keys}, c.layout);
        fill_uniform(attn.array(), g, 0.0, 1.0);
        attn.array().fill_gaps_with_nan();
        const HostArray out = run_attention_importance(c.params, attn, c.shape.batch);
        const std::vector<double> want = reference_attention_importance(c.params, c.shape, attn.values());
        const std::vector<float> want32 = reference_attention_importance_f32(c.params, c.shape, attn.values());
        const std::vector<double> got = out.values();
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) {
            const auto got32 = static_cast<float>(got[i]);
            EXPECT_EQ(std::memcmp(&got32, &want32[i], sizeof got32), 0) << "column " << i << ": " << got32 << " vs " << want32[i];
            EXPECT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i]))) << "column " << i;
        }
    }
}

// Row-stochastic attention [B, H, N, N] from random logits, with `boost` added to the logits of
// the keys in `planted` in the rows `rows`: those keys stand out in the importance.
Host4 synthetic_attention(tk_dtype dtype, int64_t batch, int64_t heads, int64_t tokens, const std::vector<int64_t>& rows,
                          const std::vector<std::vector<int64_t>>& planted, double boost, std::mt19937_64& g) {
    Host4 attn(dtype, {batch, heads, tokens, tokens});
    std::normal_distribution<double> logit(0.0, 1.0);
    std::vector<double> row(static_cast<size_t>(tokens));
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < tokens; ++i) {
                for (double& v : row) v = logit(g);
                if (std::find(rows.begin(), rows.end(), i) != rows.end())
                    for (int64_t j : planted[static_cast<size_t>(b)]) row[static_cast<size_t>(j)] += boost;
                const double top = *std::max_element(row.begin(), row.end());
                double sum = 0.0;
                for (double& v : row) sum += (v = std::exp(v - top));
                for (int64_t j = 0; j < tokens; ++j) attn.set(b, h, i, j, row[static_cast<size_t>(j)] / sum);
            }
    return attn;
}

// The k most important keys of each item, as positions of the key range, by tk_topk.
std::vector<int32_t> select_top(const HostArray& importance, int64_t k) {
    const int64_t batch = importance.shape()[0];
    HostArray indices(TK_DTYPE_I32, {batch, k});
    const tk_topk_params p{static_cast<int32_t>(k)};
    const tk_tensor s = importance.desc();
    const tk_tensor i = indices.desc();
    EXPECT_TRUE(ok(tk_topk(&p, &s, nullptr, nullptr, &i, nullptr, nullptr, 0, nullptr)));
    std::vector<int32_t> out;
    for (double v : indices.values()) out.push_back(static_cast<int32_t>(v));
    return out;
}

std::vector<int32_t> reference_select(const tk_importance_params& p, const AttentionShape& shape, const Host4& attn,
                                      int64_t k) {
    const std::vector<double> importance = reference_attention_importance(p, shape, attn.values());
    return reference_topk(shape.batch, p.key_end - p.key_begin, k, importance, {}, {}).indices;
}

TEST(AttentionImportanceFastV, LastRowHeadMeanOverTheImageSpanKeepsThePlantedTokens) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const int64_t batch = 3, heads = 4, tokens = 41, image_begin = 5, image_end = 29, keep = 6;
    for (tk_dtype dtype : kFloatDtypes) {
        SCOPED_TRACE(dtype_label(dtype));
        std::vector<std::vector<int64_t>> planted;
        for (int64_t b = 0; b < batch; ++b) {
            std::vector<int64_t> span(static_cast<size_t>(image_end - image_begin));
            std::iota(span.begin(), span.end(), image_begin);
            std::shuffle(span.begin(), span.end(), g);
            planted.emplace_back(span.begin(), span.begin() + keep);
            std::sort(planted.back().begin(), planted.back().end());
        }
        const Host4 attn = synthetic_attention(dtype, batch, heads, tokens, {tokens - 1}, planted, 4.0, g);
        const tk_importance_params p =
            importance_params(tokens - 1, tokens, image_begin, image_end, TK_REDUCE_MEAN, TK_REDUCE_MEAN);
        const std::vector<int32_t> selected = select_top(run_attention_importance(p, attn, batch), keep);
        const AttentionShape shape{batch, heads, heads, tokens, tokens, 1};
        EXPECT_EQ(selected, reference_select(p, shape, attn, keep));
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t r = 0; r < keep; ++r)
                EXPECT_EQ(selected[static_cast<size_t>(b * keep + r)] + image_begin, planted[static_cast<size_t>(b)][static_cast<size_t>(r)])
                    << "item " << b << " rank " << r;
    }
}

TEST(AttentionImportanceVisionZip, ClsRowHeadSumOverPatchKeysKeepsThePlantedTokens) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const int64_t batch = 3, heads = 5, tokens = 37, keep = 5;
    for (tk_dtype dtype : kFloatDtypes) {
        SCOPED_TRACE(dtype_label(dtype));
        std::vector<std::vector<int64_t>> planted;
        for (int64_t b = 0; b < batch; ++b) {
            std::vector<int64_t> patches(static_cast<size_t>(tokens - 1));
            std::iota(patches.begin(), patches.end(), 1);
            std::shuffle(patches.begin(), patches.end(), g);
            planted.emplace_back(patches.begin(), patches.begin() + keep);
            std::sort(planted.back().begin(), planted.back().end());
        }
        const Host4 attn = synthetic_attention(dtype, batch, heads, tokens, {0}, planted, 4.0, g);
        const tk_importance_params p = importance_params(0, 1, 1, tokens, TK_REDUCE_SUM, TK_REDUCE_MEAN);
        const HostArray importance = run_attention_importance(p, attn, batch);
        // Head sum: a patch's importance is at most H, and the patches' importances with the CLS
        // token's own add up to H per item.
        for (int64_t b = 0; b < batch; ++b) {
            double total = 0.0;
            for (int64_t j = 0; j < tokens - 1; ++j) total += importance.get(b, j);
            for (int64_t h = 0; h < heads; ++h) total += attn.get(b, h, 0, 0);
            EXPECT_NEAR(total, static_cast<double>(heads), 0.02 * heads) << "item " << b;
        }
        const std::vector<int32_t> selected = select_top(importance, keep);
        const AttentionShape shape{batch, heads, heads, tokens, tokens, 1};
        EXPECT_EQ(selected, reference_select(p, shape, attn, keep));
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t r = 0; r < keep; ++r)
                EXPECT_EQ(selected[static_cast<size_t>(b * keep + r)] + 1, planted[static_cast<size_t>(b)][static_cast<size_t>(r)])
                    << "item " << b << " rank " << r;
    }
}

// ---- Importance from Q and K ----------------------------------------------------------------------

struct QkCase {
    tk_dtype dtype = TK_DTYPE_F32;
    AttentionShape shape;
    bool causal = false;
    bool with_lse = false;
    int64_t q0 = 0, q1 = 0, k0 = 0, k1 = 0;
    tk_reduce head_reduce = TK_REDUCE_MEAN, query_reduce = TK_REDUCE_MEAN;
    bool strided = false;
    double sharpness = 2.0;  // scale = sharpness / sqrt(d)
};

std::string describe(const QkCase& c) {
    std::ostringstream s;
    s << dtype_label(c.dtype) << " " << describe(c.shape) << " sharpness " << c.sharpness << (c.causal ? " causal" : "")
      << (c.with_lse ? " lse" : "")
      << (c.strided ? " strided" : "");
    return s.str();
}

// A case's tensors: q, k and the reference lse (as f32) drawn from a seed.
struct QkInputs {
    Host4 q;
    Host4 k;
    HostArray lse;
    tk_importance_params params;

    QkInputs(const QkCase& c, std::mt19937_64& g)
        : q(c.dtype, {c.shape.batch, c.shape.heads, c.shape.queries, c.shape.head_dim},
            c.strided ? ArrayLayout{3, true, 1} : ArrayLayout()),
          k(c.dtype, {c.shape.batch, c.shape.key_heads, c.shape.keys, c.shape.head_dim},
            c.strided ? ArrayLayout{5, false, 0} : ArrayLayout()),
          lse(TK_DTYPE_F32, {c.shape.batch, c.shape.heads, c.shape.queries}, c.strided ? ArrayLayout{2, true, 0} : ArrayLayout()) {
        // A scale above 1/sqrt(d) gives rows of clearly unequal probabilities.
        const auto scale = static_cast<float>(c.sharpness / std::sqrt(static_cast<double>(c.shape.head_dim)));
        params = importance_params(c.q0, c.q1, c.k0, c.k1, c.head_reduce, c.query_reduce, scale, c.causal ? 1 : 0);
        fill_uniform(q.array(), g, -1.5, 1.5);
        fill_uniform(k.array(), g, -1.5, 1.5);
        q.array().fill_gaps_with_nan();
        k.array().fill_gaps_with_nan();
        const std::vector<double> row_lse = reference_row_lse(c.shape, q.values(), k.values(), params.scale, c.causal);
        for (int64_t b = 0; b < c.shape.batch; ++b)
            for (int64_t h = 0; h < c.shape.heads; ++h)
                for (int64_t i = 0; i < c.shape.queries; ++i)
                    lse.set(b, h, i, row_lse[static_cast<size_t>((b * c.shape.heads + h) * c.shape.queries + i)]);
    }
};

HostArray run_qk_importance(const QkInputs& in, bool with_lse, int64_t batch) {
    const tk_importance_params& p = in.params;
    HostArray out(TK_DTYPE_F32, {batch, p.key_end - p.key_begin}, ArrayLayout{2, false, 1});
    out.fill_bytes(0x5a);
    const HostArray before = out;
    const tk_tensor q = in.q.desc(), k = in.k.desc(), lse = in.lse.desc(), o = out.desc();
    EXPECT_TRUE(ok(tk_qk_importance(&p, &q, &k, with_lse ? &lse : nullptr, &o, nullptr, 0, nullptr)));
    EXPECT_EQ(first_changed_gap(before, out), "");
    return out;
}

// float32 scores and exponentials against float64: a few parts in 1e5 of each probability.
void expect_importance_near(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * std::fabs(want[i]) + 1e-6) << what << " column " << i;
}

std::vector<QkCase> qk_cases() {
    std::vector<QkCase> cases;
    const int64_t head_dims[] = {64, 80, 96, 128, 13};
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t d : head_dims)
            for (bool causal : {false, true})
                for (bool with_lse : {false, true}) {
                    QkCase c;
                    c.dtype = dtype;
                    c.shape = {1, 8, 2, 37, 71, d};
                    c.causal = causal;
                    c.with_lse = with_lse;
                    c.q1 = 37;
                    c.k1 = 71;
                    if (d == 13 || d == 80) {  // sub-ranges, sums
                        c.q0 = 3;
                        c.q1 = 30;
                        c.k0 = 5;
                        c.k1 = 70;
                        c.head_reduce = TK_REDUCE_SUM;
                        c.query_reduce = d == 13 ? TK_REDUCE_MEAN : TK_REDUCE_SUM;
                    }
                    c.strided = d == 96 || d == 13;
                    cases.push_back(c);
                }
    for (tk_dtype dtype : kFloatDtypes)
        for (bool causal : {false, true}) {
            // More queries than keys: under causal the first Nq - Nk rows see no key.
            QkCase tall;
            tall.dtype = dtype;
            tall.shape = {3, 3, 1, 70, 13, 13};
            tall.causal = causal;
            tall.with_lse = causal;
            tall.q1 = 70;
            tall.k1 = 13;
            tall.strided = true;
            cases.push_back(tall);
            // Keys across several 64-key tiles, the last query row only (FastV), no lse.
            QkCase wide;
            wide.dtype = dtype;
            wide.shape = {3, 4, 4, 5, 200, 7};
            wide.causal = causal;
            wide.q0 = 4;
            wide.q1 = 5;
            wide.k0 = 33;
            wide.k1 = 171;
            cases.push_back(wide);
            // Three rows with lse, the first two seeing no key under causal (the few-rows path).
            QkCase few;
            few.dtype = dtype;
            few.shape = {2, 4, 2, 9, 6, 16};
            few.causal = causal;
            few.with_lse = true;
            few.q0 = 1;
            few.q1 = 4;
            few.k1 = 6;
            few.strided = true;
            cases.push_back(few);
            // Scores spread over hundreds: most probabilities underflow far below float32's range.
            QkCase peaked;
            peaked.dtype = dtype;
            peaked.shape = {1, 2, 2, 9, 150, 16};
            peaked.causal = causal;
            peaked.with_lse = !causal;
            peaked.q1 = 9;
            peaked.k1 = 150;
            peaked.query_reduce = TK_REDUCE_SUM;
            peaked.sharpness = 150.0;
            cases.push_back(peaked);
            QkCase one;
            one.dtype = dtype;
            one.shape = {1, 1, 1, 1, 1, 1};
            one.causal = causal;
            one.q1 = 1;
            one.k1 = 1;
            cases.push_back(one);
            // The few-rows path at the head dimensions CUDA supports (the cases above use others), each
            // with and without lse, two dimensions under each causal flag: the last row (FastV) over
            // keys in several 64-key tiles, and ten rows of grouped heads, strided.
            for (int64_t d : causal ? std::vector<int64_t>{80, 128} : std::vector<int64_t>{64, 96})
                for (bool with_lse : {false, true}) {
                    QkCase last_row;
                    last_row.dtype = dtype;
                    last_row.shape = {2, 4, 2, 6, 150, d};
                    last_row.causal = causal;
                    last_row.with_lse = with_lse;
                    last_row.q0 = 5;
                    last_row.q1 = 6;
                    last_row.k0 = 3;
                    last_row.k1 = 141;
                    cases.push_back(last_row);
                    QkCase ten_rows = last_row;
                    ten_rows.shape = {1, 8, 4, 20, 130, d};
                    ten_rows.q0 = 10;
                    ten_rows.q1 = 20;
                    ten_rows.k0 = 0;
                    ten_rows.k1 = 130;
                    ten_rows.head_reduce = TK_REDUCE_SUM;
                    ten_rows.strided = true;
                    cases.push_back(ten_rows);
                }
        }
    return cases;
}

TEST(QkImportance, MatchesDenseSoftmaxAndAttentionImportanceOnTheMaterialisedP) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (const QkCase& c : qk_cases()) {
        SCOPED_TRACE(describe(c));
        const QkInputs in(c, g);
        SCOPED_TRACE(describe(in.params));
        const HostArray out = run_qk_importance(in, c.with_lse, c.shape.batch);
        const std::vector<double> p = reference_probabilities(c.shape, in.q.values(), in.k.values(), in.params.scale, c.causal);
        const std::vector<double> want = reference_attention_importance(in.params, c.shape, p);
        expect_importance_near(out.values(), want, "against float64");

        Host4 materialised(TK_DTYPE_F32, {c.shape.batch, c.shape.heads, c.shape.queries, c.shape.keys});
        for (int64_t b = 0; b < c.shape.batch; ++b)
            for (int64_t h = 0; h < c.shape.heads; ++h)
                for (int64_t i = 0; i < c.shape.queries; ++i)
                    for (int64_t j = 0; j < c.shape.keys; ++j)
                        materialised.set(b, h, i, j, p[static_cast<size_t>(((b * c.shape.heads + h) * c.shape.queries + i) * c.shape.keys + j)]);
        const HostArray from_attention = run_attention_importance(in.params, materialised, c.shape.batch);
        expect_importance_near(out.values(), from_attention.values(), "against tk_attention_importance");
    }
}

TEST(QkImportance, CausalRowsWithoutKeysAddNothing) {
    // Nq = 4, Nk = 2: queries 0 and 1 see no key, query 2 sees key 0, query 3 sees both. Query sum,
    // one head: key 0 gets 1 + P[3, 0], key 1 gets P[3, 1] = 1 - P[3, 0].
    HostArray q(TK_DTYPE_F32, {1, 4, 2});
    HostArray k(TK_DTYPE_F32, {1, 2, 2});
    for (int64_t i = 0; i < 4; ++i) {
        q.set(0, i, 0, 1.0);
        q.set(0, i, 1, 0.0);
    }
    k.set(0, 0, 0, 1.0);
    k.set(0, 0, 1, 0.0);
    k.set(0, 1, 0, 0.0);
    k.set(0, 1, 1, 0.0);
    tk_tensor qd = q.desc(), kd = k.desc();
    for (tk_tensor* t : {&qd, &kd}) {  // [1, 1, N, 2]
        t->rank = 4;
        t->shape[3] = 2;
        t->shape[2] = t->shape[1];
        t->shape[1] = 1;
        t->strides[3] = 1;
        t->strides[2] = 2;
        t->strides[1] = 2 * t->shape[2];
    }
    HostArray out(TK_DTYPE_F32, {1, 2});
    const tk_tensor o = out.desc();
    const tk_importance_params p = importance_params(0, 4, 0, 2, TK_REDUCE_SUM, TK_REDUCE_SUM, 1.0f, 1);
    ASSERT_TRUE(ok(tk_qk_importance(&p, &qd, &kd, nullptr, &o, nullptr, 0, nullptr)));
    const double p30 = std::exp(1.0) / (std::exp(1.0) + 1.0);
    EXPECT_NEAR(out.get(0, 0), 1.0 + p30, 1e-6);
    EXPECT_NEAR(out.get(0, 1), 1.0 - p30, 1e-6);
}

TEST(QkImportance, DeterministicAcrossRunsAndThreadCounts) {
    std::mt19937_64 g(seed_from_name(test_name()));
    QkCase c;
    c.dtype = TK_DTYPE_BF16;
    c.shape = {2, 4, 2, 50, 300, 80};
    c.causal = true;
    c.q1 = 50;
    c.k0 = 3;
    c.k1 = 299;
    c.strided = true;
    const QkInputs in(c, g);
    for (bool with_lse : {false, true}) {
        SCOPED_TRACE(with_lse ? "lse" : "no lse");
        std::vector<uint8_t> first;
        for (int32_t threads : {1, 2, 3, 2, 0}) {
            const ScopedNumThreads scoped(threads);
            const HostArray out = run_qk_importance(in, with_lse, c.shape.batch);
            if (first.empty()) {
                first = out.bytes();
            } else {
                EXPECT_TRUE(first == out.bytes()) << "different bits with " << threads << " threads";
            }
        }
    }
}

TEST(AttentionImportance, DeterministicAcrossThreadCounts) {
    std::mt19937_64 g(seed_from_name(test_name()));
    Host4 attn(TK_DTYPE_F16, {3, 6, 40, 1100}, ArrayLayout{1, true, 0});
    fill_uniform(attn.array(), g, 0.0, 1.0);
    const tk_importance_params p = importance_params(2, 40, 1, 1100, TK_REDUCE_MEAN, TK_REDUCE_MEAN);
    std::vector<uint8_t> first;
    for (int32_t threads : {1, 2, 3, 0}) {
        const ScopedNumThreads scoped(threads);
        const HostArray out = run_attention_importance(p, attn, 3);
        if (first.empty()) {
            first = out.bytes();
        } else {
            EXPECT_TRUE(first == out.bytes()) << "different bits with " << threads << " threads";
        }
    }
}

// ---- Top-k ------------------------------------------------------------------------------------------

struct TopkBuffers {
    HostArray scores;
    HostArray lengths;  // empty shape when absent
    HostArray item_k;
    HostArray indices;
    HostArray ranked;
    bool has_lengths = false, has_item_k = false, has_ranked = false;
};

std::vector<int64_t> as_int64(const HostArray& a) {
    std::vector<int64_t> out;
    for (double v : a.values()) out.push_back(static_cast<int64_t>(v));
    return out;
}

std::vector<int32_t> as_int32(const HostArray& a) {
    std::vector<int32_t> out;
    for (double v : a.values()) out.push_back(static_cast<int32_t>(v));
    return out;
}

::testing::AssertionResult run_topk(int64_t k, TopkBuffers& t) {
    const tk_topk_params p{static_cast<int32_t>(k)};
    const tk_tensor s = t.scores.desc(), l = t.lengths.desc(), ik = t.item_k.desc(), i = t.indices.desc(), r = t.ranked.desc();
    return ok(tk_topk(&p, &s, t.has_lengths ? &l : nullptr, t.has_item_k ? &ik : nullptr, &i, t.has_ranked ? &r : nullptr,
                      nullptr, 0, nullptr));
}

// Scores from a handful of values (many ties) with NaN, -inf and +inf among them.
void fill_scores_with_ties(HostArray& scores, std::mt19937_64& g) {
    std::uniform_int_distribution<int> pick(0, 99);
    for (int64_t b = 0; b < scores.shape()[0]; ++b)
        for (int64_t n = 0; n < scores.shape()[1]; ++n) {
            const int v = pick(g);
            const double value = v < 5 ? kNan : v < 10 ? -kInf : v < 13 ? kInf : (v % 9) * 0.75 - 2.0 + (v % 2) * 1e-3;
            scores.set(b, n, 0, value);
        }
}

TopkBuffers topk_buffers(tk_dtype dtype, int64_t batch, int64_t tokens, int64_t k, bool has_lengths, bool has_item_k,
                         bool has_ranked, const ArrayLayout& layout, std::mt19937_64& g) {
    TopkBuffers t{HostArray(dtype, {batch, tokens}, layout), HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 0}),
                  HostArray(TK_DTYPE_I32, {batch}), HostArray(TK_DTYPE_I32, {batch, k}, layout),
                  HostArray(TK_DTYPE_I32, {batch, k}, ArrayLayout{2, false, 1})};
    t.has_lengths = has_lengths;
    t.has_item_k = has_item_k;
    t.has_ranked = has_ranked;
    fill_scores_with_ties(t.scores, g);
    t.scores.fill_gaps_with_nan();
    std::uniform_int_distribution<int64_t> length(0, tokens), item(0, k);
    for (int64_t b = 0; b < batch; ++b) {
        t.lengths.set(b, 0, 0, static_cast<double>(length(g)));
        t.item_k.set(b, 0, 0, static_cast<double>(item(g)));
    }
    t.indices.fill_bytes(0x33);
    t.ranked.fill_bytes(0x44);
    return t;
}

TEST(Topk, MatchesReferenceOnTiesNanInfinitiesLengthsAndItemK) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const ArrayLayout layouts[] = {ArrayLayout(), ArrayLayout{2, false, 1}, ArrayLayout{0, true, 0}};
    int layout_index = 0;
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t batch : {1, 3})
            for (int64_t tokens : {1, 2, 7, 100, 1001})
                for (int64_t k : {int64_t{0}, int64_t{1}, tokens / 2, tokens})
                    for (int options = 0; options < 4; ++options) {
                        const bool has_lengths = options & 1, has_item_k = options & 2, has_ranked = options != 1;
                        const ArrayLayout layout = layouts[layout_index++ % 3];
                        SCOPED_TRACE(std::string(dtype_label(dtype)) + " B=" + std::to_string(batch) + " N=" + std::to_string(tokens) +
                                     " k=" + std::to_string(k) + (has_lengths ? " lengths" : "") + (has_item_k ? " item_k" : ""));
                        TopkBuffers t = topk_buffers(dtype, batch, tokens, k, has_lengths, has_item_k, has_ranked, layout, g);
                        const TopkBuffers before = t;
                        ASSERT_TRUE(run_topk(k, t));
                        const TopkResult want =
                            reference_topk(batch, tokens, k, t.scores.values(), has_lengths ? as_int64(t.lengths) : std::vector<int64_t>{},
                                           has_item_k ? as_int64(t.item_k) : std::vector<int64_t>{});
                        EXPECT_EQ(as_int32(t.indices), want.indices);
                        EXPECT_EQ(first_changed_gap(before.indices, t.indices), "");
                        if (has_ranked) {
                            EXPECT_EQ(as_int32(t.ranked), want.ranked);
                            EXPECT_EQ(first_changed_gap(before.ranked, t.ranked), "");
                        } else {
                            EXPECT_TRUE(before.ranked.bytes() == t.ranked.bytes()) << "ranked written though not passed";
                        }
                    }
}

TEST(Topk, FewOfManyDistinctScores) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes) {
        SCOPED_TRACE(dtype_label(dtype));
        TopkBuffers t = topk_buffers(dtype, 3, 5003, 10, false, false, true, ArrayLayout(), g);
        fill_uniform(t.scores, g, -3.0, 3.0);
        ASSERT_TRUE(run_topk(10, t));
        const TopkResult want = reference_topk(3, 5003, 10, t.scores.values(), {}, {});
        EXPECT_EQ(as_int32(t.indices), want.indices);
        EXPECT_EQ(as_int32(t.ranked), want.ranked);
    }
}

TEST(Topk, SignedZerosTieAndNeighbouringFloatsRankExactly) {
    // Scores that differ only in their last bits, in sign of zero, or below the normal range: the
    // selection must order them as floats compare (+0 == -0), ties to the lower position.
    std::mt19937_64 g(seed_from_name(test_name()));
    const int64_t tokens = 20011;
    const double base[] = {0.0, -0.0, 1.0, -1.0, 1e-40, -1e-40, 3.5, kInf, -kInf, kNan};
    std::uniform_int_distribution<int> pick(0, 9), step(0, 3);
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t k : {int64_t{1}, tokens / 3, tokens / 2, tokens - 1}) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " k=" + std::to_string(k));
            TopkBuffers t = topk_buffers(dtype, 2, tokens, k, false, false, true, ArrayLayout(), g);
            for (int64_t b = 0; b < 2; ++b)
                for (int64_t n = 0; n < tokens; ++n) {
                    float value = static_cast<float>(base[pick(g)]);
                    for (int s = step(g); s > 0 && std::isfinite(value) && value != 0.0f; --s) value = std::nextafter(value, 10.0f);
                    t.scores.set(b, n, 0, value);
                }
            ASSERT_TRUE(run_topk(k, t));
            const TopkResult want = reference_topk(2, tokens, k, t.scores.values(), {}, {});
            EXPECT_EQ(as_int32(t.indices), want.indices);
            EXPECT_EQ(as_int32(t.ranked), want.ranked);
        }
}

TEST(Topk, HandWorkedOrderPinsReferenceAndLibrary) {
    // NaN below -inf, ties and NaN against NaN to the lower position.
    const std::vector<double> scores = {1.0, kNan, -kInf, 1.0, 3.0, kNan, -kInf};
    struct Expected {
        int64_t k, length, item_k;
        std::vector<int32_t> indices, ranked;
    };
    const Expected cases[] = {
        {7, 7, 7, {0, 1, 2, 3, 4, 5, 6}, {4, 0, 3, 2, 6, 1, 5}},
        {3, 7, 3, {0, 3, 4}, {4, 0, 3}},
        {5, 7, 5, {0, 2, 3, 4, 6}, {4, 0, 3, 2, 6}},
        {6, 7, 6, {0, 1, 2, 3, 4, 6}, {4, 0, 3, 2, 6, 1}},
        {4, 2, 4, {0, 1, -1, -1}, {0, 1, -1, -1}},
        {4, 7, 2, {0, 4, -1, -1}, {4, 0, -1, -1}},
        {3, 0, 3, {-1, -1, -1}, {-1, -1, -1}},
        {0, 7, 0, {}, {}},
    };
    for (const Expected& e : cases) {
        SCOPED_TRACE("k=" + std::to_string(e.k) + " length=" + std::to_string(e.length) + " item_k=" + std::to_string(e.item_k));
        const TopkResult want = reference_topk(1, 7, e.k, scores, {e.length}, {e.item_k});
        EXPECT_EQ(want.indices, e.indices);
        EXPECT_EQ(want.ranked, e.ranked);
        for (tk_dtype dtype : kFloatDtypes) {
            std::mt19937_64 g(1);
            TopkBuffers t = topk_buffers(dtype, 1, 7, e.k, true, true, true, ArrayLayout(), g);
            for (int64_t n = 0; n < 7; ++n) t.scores.set(0, n, 0, scores[static_cast<size_t>(n)]);
            t.lengths.set(0, 0, 0, static_cast<double>(e.length));
            t.item_k.set(0, 0, 0, static_cast<double>(e.item_k));
            ASSERT_TRUE(run_topk(e.k, t));
            EXPECT_EQ(as_int32(t.indices), e.indices) << dtype_label(dtype);
            EXPECT_EQ(as_int32(t.ranked), e.ranked) << dtype_label(dtype);
        }
    }
}

// ---- Gather -------------------------------------------------------------------------------------------

constexpr tk_dtype kAllDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16, TK_DTYPE_I32, TK_DTYPE_I64};

const char* any_dtype_label(tk_dtype dtype) {
    return dtype == TK_DTYPE_I32 ? "i32" : dtype == TK_DTYPE_I64 ? "i64" : dtype_label(dtype);
}

struct GatherBuffers {
    HostArray x, indices, out;
};

GatherBuffers gather_buffers(tk_dtype dtype, tk_dtype index_dtype, int64_t batch, int64_t tokens, int64_t channels, int64_t k,
                             bool strided, std::mt19937_64& g) {
    GatherBuffers t{HostArray(dtype, {batch, tokens, channels}, strided ? ArrayLayout{3, true, 1} : ArrayLayout()),
                    HostArray(index_dtype, {batch, k}, strided ? ArrayLayout{1, false, 1} : ArrayLayout()),
                    HostArray(dtype, {batch, k, channels}, strided ? ArrayLayout{2, false, 0} : ArrayLayout())};
    std::uniform_int_distribution<int64_t> value(-1000, 1000), index(-1, tokens - 1);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t n = 0; n < tokens; ++n)
            for (int64_t c = 0; c < channels; ++c) t.x.set(b, n, c, static_cast<double>(value(g)) / 16.0);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < k; ++i) t.indices.set(b, i, 0, static_cast<double>(index(g)));
    t.out.fill_bytes(0xa5);
    return t;
}

TEST(Gather, CopiesRowsExactlyAndZerosPadding) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kAllDtypes)
        for (tk_dtype index_dtype : {TK_DTYPE_I32, TK_DTYPE_I64})
            for (int64_t batch : {1, 3})
                for (int64_t tokens : {1, 9})
                    for (bool strided : {false, true}) {
                        SCOPED_TRACE(std::string(any_dtype_label(dtype)) + " indices " + any_dtype_label(index_dtype) + " B=" +
                                     std::to_string(batch) + " N=" + std::to_string(tokens) + (strided ? " strided" : ""));
                        const int64_t channels = 5, k = 7;
                        GatherBuffers t = gather_buffers(dtype, index_dtype, batch, tokens, channels, k, strided, g);
                        const HostArray before = t.out;
                        const tk_tensor x = t.x.desc(), i = t.indices.desc(), o = t.out.desc();
                        ASSERT_TRUE(ok(tk_gather(&x, &i, &o, nullptr)));
                        const std::vector<double> want =
                            reference_gather(batch, tokens, channels, t.x.values(), k, as_int64(t.indices));
                        EXPECT_EQ(t.out.values(), want);
                        EXPECT_EQ(first_changed_gap(before, t.out), "");
                    }
}

TEST(Gather, PaddingRowIsAllZeroBytes) {
    HostArray x(TK_DTYPE_BF16, {1, 3, 4});
    x.fill_bytes(0xff);  // NaN everywhere
    HostArray indices(TK_DTYPE_I64, {1, 2});
    indices.set(0, 0, 0, -1);
    indices.set(0, 1, 0, 2);
    HostArray out(TK_DTYPE_BF16, {1, 2, 4});
    out.fill_bytes(0x11);
    const tk_tensor xd = x.desc(), id = indices.desc(), od = out.desc();
    ASSERT_TRUE(ok(tk_gather(&xd, &id, &od, nullptr)));
    for (size_t byte = 0; byte < 8; ++byte) EXPECT_EQ(out.bytes()[byte], 0) << "byte " << byte;
    for (size_t byte = 8; byte < 16; ++byte) EXPECT_EQ(out.bytes()[byte], 0xff) << "byte " << byte;
}

// An output past the library's streaming threshold (32 MiB) is written with non-temporal stores where the
// CPU has them: rows whose size is no multiple of the vector, into an output starting off a vector
// boundary, land exactly (what the smaller cases above never reach), and nothing past the output is
// touched.
TEST(Gather, LargeOutputsCopyExactly) {
    const int64_t tokens = 9001, channels = 1001, k = 8500;  // 8500 rows of 4004 bytes: 34 MB
    std::vector<float> x(static_cast<size_t>(tokens * channels));
    for (size_t e = 0; e < x.size(); ++e) x[e] = static_cast<float>(e % 65521) * 0.5f - 7.0f;
    std::vector<int32_t> indices(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) indices[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919 + 13) % tokens);
    indices[5] = -1;  // padding: a zero row
    std::vector<float> storage(static_cast<size_t>(k * channels + 2), 123.0f);
    float* out = storage.data() + 1;  // 4 bytes past the vector's start: off every vector boundary
    const tk_tensor xd{x.data(), TK_DTYPE_F32, TK_DEVICE_CPU, 0, 3, {1, tokens, channels}, {tokens * channels, channels, 1}};
    const tk_tensor id{indices.data(), TK_DTYPE_I32, TK_DEVICE_CPU, 0, 2, {1, k}, {k, 1}};
    const tk_tensor od{out, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 3, {1, k, channels}, {k * channels, channels, 1}};
    ASSERT_TRUE(ok(tk_gather(&xd, &id, &od, nullptr)));
    for (int64_t i = 0; i < k; ++i) {
        const int32_t token = indices[static_cast<size_t>(i)];
        for (int64_t c = 0; c < channels; ++c) {
            const float want = token < 0 ? 0.0f : x[static_cast<size_t>(token * channels + c)];
            ASSERT_EQ(out[i * channels + c], want) << "row " << i << " channel " << c;
        }
    }
    EXPECT_EQ(storage.front(), 123.0f);
    EXPECT_EQ(storage.back(), 123.0f);
}

// ---- VisionZip contextual tokens ---------------------------------------------------------------

struct ContextualCase {
    tk_dtype metric_dtype, x_dtype, kept_dtype;
    int64_t batch, tokens, kept, contextual, metric_channels, channels;
    bool same_tensor, strided;
};

std::string describe(const ContextualCase& c) {
    std::ostringstream s;
    s << "metric " << dtype_label(c.metric_dtype) << " x " << dtype_label(c.x_dtype) << " kept "
      << any_dtype_label(c.kept_dtype) << " B=" << c.batch << " N=" << c.tokens << " K=" << c.kept << " m=" << c.contextual
      << " Cm=" << c.metric_channels << " C=" << c.channels << (c.same_tensor ? " x is metric" : "")
      << (c.strided ? " strided" : "");
    return s.str();
}

struct ContextualBuffers {
    HostArray metric, x, kept, out;
};

// Inputs drawn until every assignment is decided by at least min_margin in float64.
ContextualBuffers contextual_buffers(const ContextualCase& c, std::mt19937_64& g, double min_margin) {
    const ArrayLayout features = c.strided ? ArrayLayout{3, true, 1} : ArrayLayout();
    ContextualBuffers t{HostArray(c.metric_dtype, {c.batch, c.tokens, c.metric_channels}, features),
                        HostArray(c.x_dtype, {c.batch, c.tokens, c.channels}, c.strided ? ArrayLayout{1, false, 0} : ArrayLayout()),
                        HostArray(c.kept_dtype, {c.batch, c.kept}, c.strided ? ArrayLayout{2, true, 0} : ArrayLayout()),
                        HostArray(c.x_dtype, {c.batch, c.contextual, c.channels}, c.strided ? ArrayLayout{1, false, 1} : ArrayLayout())};
    for (int64_t b = 0; b < c.batch; ++b) {
        std::vector<int64_t> order(static_cast<size_t>(c.tokens));
        std::iota(order.begin(), order.end(), int64_t{0});
        std::shuffle(order.begin(), order.end(), g);
        for (int64_t i = 0; i < c.kept; ++i) t.kept.set(b, i, 0, static_cast<double>(order[static_cast<size_t>(i)]));
    }
    for (int attempt = 0; attempt < 50; ++attempt) {
        fill_uniform(t.metric, g, -1.0, 1.0);
        if (!c.same_tensor) fill_uniform(t.x, g, -2.0, 2.0);
        const ContextualResult r = reference_contextual(c.batch, c.tokens, c.metric_channels, c.channels, t.metric.values(),
                                                        (c.same_tensor ? t.metric : t.x).values(), c.kept, as_int64(t.kept),
                                                        c.contextual);
        if (r.margin >= min_margin) break;
    }
    t.metric.fill_gaps_with_nan();
    t.x.fill_gaps_with_nan();
    t.out.fill_bytes(0x3c);
    return t;
}

void expect_contextual_near(const std::vector<double>& got, const std::vector<double>& want, tk_dtype dtype) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 2.0 * rounding_of(dtype) * std::fabs(want[i]) + 1e-5) << "element " << i;
}

std::vector<ContextualCase> contextual_cases() {
    std::vector<ContextualCase> cases;
    const tk_dtype pairs[][2] = {{TK_DTYPE_F32, TK_DTYPE_F32}, {TK_DTYPE_F16, TK_DTYPE_F16}, {TK_DTYPE_BF16, TK_DTYPE_BF16},
                                 {TK_DTYPE_F32, TK_DTYPE_BF16}, {TK_DTYPE_F16, TK_DTYPE_F32}};
    int variant = 0;
    for (const auto& pair : pairs)
        for (int64_t batch : {1, 3})
            for (int64_t kept : {0, 5, 20})
                for (int64_t contextual : {int64_t{0}, int64_t{1}, int64_t{4}, 37 - kept}) {
                    const bool same = pair[0] == pair[1] && variant % 3 == 0;
                    cases.push_back({pair[0], pair[1], variant % 2 ? TK_DTYPE_I64 : TK_DTYPE_I32, batch, 37, kept, contextual, 11,
                                     same ? 11 : 13, same, variant % 4 == 1});
                    ++variant;
                }
    cases.push_back({TK_DTYPE_F32, TK_DTYPE_F32, TK_DTYPE_I32, 3, 1, 0, 1, 3, 5, false, false});
    cases.push_back({TK_DTYPE_BF16, TK_DTYPE_F16, TK_DTYPE_I64, 1, 1, 1, 0, 3, 5, false, true});
    // Metric rows of whole 16-lane blocks (VisionZip's 64-channel head features) and of blocks plus a
    // tail: the similarity sums take the lane order of the SPEC's "One function on both backends".
    for (const auto& pair : pairs)
        for (int64_t metric_channels : {64, 71}) {
            const bool same = pair[0] == pair[1] && metric_channels == 64;
            cases.push_back({pair[0], pair[1], TK_DTYPE_I32, 2, 45, 6, 5, metric_channels, same ? 64 : 9, same, pair[0] == TK_DTYPE_F16});
        }
    return cases;
}

TEST(Contextual, MatchesReferenceAssignmentAndValues) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (const ContextualCase& c : contextual_cases()) {
        SCOPED_TRACE(describe(c));
        ContextualBuffers t = contextual_buffers(c, g, 1e-5);
        const HostArray before = t.out;
        const tk_tensor m = t.metric.desc(), k = t.kept.desc(), o = t.out.desc();
        const tk_tensor x = c.same_tensor ? m : t.x.desc();
        ASSERT_TRUE(ok(tk_visionzip_contextual(static_cast<int32_t>(c.contextual), &m, &x, &k, &o, nullptr, 0, nullptr)));
        const ContextualResult want = reference_contextual(c.batch, c.tokens, c.metric_channels, c.channels, t.metric.values(),
                                                           (c.same_tensor ? t.metric : t.x).values(), c.kept, as_int64(t.kept),
                                                           c.contextual);
        ASSERT_GE(want.margin, 1e-5) << "no input without near-ties was found";
        expect_contextual_near(t.out.values(), want.out, c.x_dtype);
        EXPECT_EQ(first_changed_gap(before, t.out), "");
    }
}

// Six tokens, token 4 kept, m = 2: the remaining 0, 1, 2, 3, 5 (M = 5, step 2) give targets 0 and 2.
struct HandContextual {
    HostArray metric{TK_DTYPE_F32, {1, 6, 2}};
    HostArray x{TK_DTYPE_F32, {1, 6, 2}};
    HostArray kept{TK_DTYPE_I32, {1, 1}};
    HostArray out{TK_DTYPE_F32, {1, 2, 2}};

    HandContextual() {
        const double metric_rows[6][2] = {{1, 0}, {1, 0.1}, {0, 1}, {0.1, 1}, {5, 5}, {1, 1}};
        const double x_rows[6][2] = {{1, 2}, {10, 20}, {3, 4}, {30, 40}, {99, 99}, {100, 200}};
        for (int64_t n = 0; n < 6; ++n)
            for (int64_t c = 0; c < 2; ++c) {
                metric.set(0, n, c, metric_rows[n][c]);
                x.set(0, n, c, x_rows[n][c]);
            }
        kept.set(0, 0, 0, 4);
    }
    ::testing::AssertionResult run() {
        const tk_tensor m = metric.desc(), xd = x.desc(), k = kept.desc(), o = out.desc();
        return ok(tk_visionzip_contextual(2, &m, &xd, &k, &o, nullptr, 0, nullptr));
    }
    ContextualResult reference() const { return reference_contextual(1, 6, 2, 2, metric.values(), x.values(), 1, {4}, 2); }
};

TEST(Contextual, HandWorkedTiesToTheLowerTarget) {
    // Token 1 joins target 0, token 3 target 1 (token 2); token 5 is equally close to both and joins
    // target 0. out[0] = x0 + (x1 + x5) / 2, out[1] = x2 + x3.
    HandContextual h;
    const std::vector<double> expected = {56, 112, 33, 44};
    EXPECT_EQ(h.reference().out, expected);
    ASSERT_TRUE(h.run());
    EXPECT_EQ(h.out.values(), expected);
}

TEST(Contextual, NanMetricJoinsTargetZeroAndAnEmptyTargetIsCopied) {
    HandContextual h;
    h.metric.set(0, 3, 0, kNan);
    // Tokens 1, 3 (NaN) and 5 join target 0; target 1 (token 2) has none and is copied.
    const std::vector<double> expected = {1.0 + 140.0 / 3.0, 2.0 + 260.0 / 3.0, 3, 4};
    const ContextualResult want = h.reference();
    ASSERT_TRUE(h.run());
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_NEAR(want.out[i], expected[i], 1e-12) << "reference element " << i;
        EXPECT_NEAR(h.out.values()[i], expected[i], 1e-5) << "element " << i;
    }
}

// ---- CUDA against CPU ----------------------------------------------------------------------------

// Device copies of host arrays: the whole backing buffers, gaps included.
class DeviceArrays {
public:
    explicit DeviceArrays(tk_stream stream) : stream_(stream) {}
    tk_tensor add(const HostArray& a) { return a.device_desc(upload(a), 0); }
    tk_tensor add(const Host4& a) { return a.device_desc(upload(a.array()), 0); }
    void copy_back(const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) - (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream_), TK_STATUS_OK) << tk_last_error();
    }
    ::testing::AssertionResult synchronize() {
        if (tk_cuda_stream_synchronize(stream_) != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_last_error();
        return ::testing::AssertionSuccess();
    }

private:
    void* upload(const HostArray& a) {
        buffers_.push_back(std::make_unique<DeviceBuffer>(a.bytes().size()));
        EXPECT_EQ(tk_cuda_memcpy_async(buffers_.back()->get(), a.bytes().data(), a.bytes().size(), stream_), TK_STATUS_OK)
            << tk_last_error();
        return buffers_.back()->get();
    }

    tk_stream stream_;
    std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

#define TK_SKIP_WITHOUT_CUDA()                                  \
    do {                                                        \
        const std::string why = cuda_unavailable_reason();      \
        if (!why.empty()) GTEST_SKIP() << why;                  \
    } while (0)

TEST(AttentionImportanceCuda, BitIdenticalToCpu) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (bool strided : {false, true}) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + (strided ? " strided" : ""));
            Host4 attn(dtype, {3, 5, 9, 1037}, strided ? ArrayLayout{3, true, 1} : ArrayLayout());
            fill_uniform(attn.array(), g, 0.0, 1.0);
            for (const tk_importance_params& p : {importance_params(1, 8, 3, 1030, TK_REDUCE_MEAN, TK_REDUCE_MEAN),
                                                  importance_params(8, 9, 0, 1037, TK_REDUCE_SUM, TK_REDUCE_SUM)}) {
                SCOPED_TRACE(describe(p));
                const HostArray cpu = run_attention_importance(p, attn, 3);
                HostArray cuda(TK_DTYPE_F32, {3, p.key_end - p.key_begin}, ArrayLayout{1, false, 0});
                cuda.fill_bytes(0x5a);
                DeviceArrays dev(stream.get());
                const tk_tensor a = dev.add(attn), o = dev.add(cuda);
                ASSERT_TRUE(ok(tk_attention_importance(&p, &a, &o, stream.get())));
                dev.copy_back(o, cuda);
                ASSERT_TRUE(dev.synchronize());
                EXPECT_TRUE(cpu.bytes() == cuda.bytes()) << "CUDA and CPU bits differ";
            }
        }
}

TEST(QkImportanceCuda, MatchesCpuAndIsDeterministic) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (const QkCase& c : qk_cases()) {
        const int64_t d = c.shape.head_dim;
        if (d != 64 && d != 80 && d != 96 && d != 128) continue;  // the head dimensions CUDA supports
        SCOPED_TRACE(describe(c));
        const QkInputs in(c, g);
        const tk_importance_params& p = in.params;
        const HostArray cpu = run_qk_importance(in, c.with_lse, c.shape.batch);
        HostArray first(TK_DTYPE_F32, {c.shape.batch, p.key_end - p.key_begin}, ArrayLayout{2, false, 1});
        for (bool caller_workspace : {false, true}) {
            HostArray cuda = first;
            DeviceArrays dev(stream.get());
            const tk_tensor q = dev.add(in.q), k = dev.add(in.k), lse = dev.add(in.lse), o = dev.add(cuda);
            const tk_tensor* lse_arg = c.with_lse ? &lse : nullptr;
            uint64_t bytes = 0;
            ASSERT_TRUE(ok(tk_qk_importance_workspace_size(&p, &q, &k, lse_arg, &bytes)));
            std::unique_ptr<DeviceBuffer> workspace;
            if (caller_workspace && bytes > 0) workspace = std::make_unique<DeviceBuffer>(bytes);
            ASSERT_TRUE(ok(tk_qk_importance(&p, &q, &k, lse_arg, &o, workspace ? workspace->get() : nullptr,
                                            workspace ? bytes : 0, stream.get())));
            dev.copy_back(o, cuda);
            ASSERT_TRUE(dev.synchronize());
            expect_importance_near(cuda.values(), cpu.values(), "CUDA against CPU");
            if (caller_workspace) {
                EXPECT_TRUE(first.bytes() == cuda.bytes()) << "two CUDA runs gave different bits";
            } else {
                first = cuda;
            }
        }
    }
}

TEST(TopkCuda, SameIndicesAsCpu) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    int64_t index = 0;
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t tokens : {1, 7, 1001, 5003})
            for (int64_t k : {int64_t{0}, int64_t{1}, std::min<int64_t>(tokens, 10), tokens / 2, tokens})
                for (int options = 0; options < 4; ++options) {
                    // Reduced scale: every 7th of the 240 cases (7 is coprime with each dimension).
                    if (!runs_at_scale(index++, 7)) continue;
                    const bool has_lengths = options & 1, has_item_k = options & 2;
                    SCOPED_TRACE(std::string(dtype_label(dtype)) + " N=" + std::to_string(tokens) + " k=" + std::to_string(k) +
                                 (has_lengths ? " lengths" : "") + (has_item_k ? " item_k" : ""));
                    TopkBuffers cpu = topk_buffers(dtype, 3, tokens, k, has_lengths, has_item_k, true, ArrayLayout{1, false, 0}, g);
                    TopkBuffers cuda = cpu;
                    ASSERT_TRUE(run_topk(k, cpu));
                    DeviceArrays dev(stream.get());
                    const tk_tensor s = dev.add(cuda.scores), l = dev.add(cuda.lengths), ik = dev.add(cuda.item_k),
                                    i = dev.add(cuda.indices), r = dev.add(cuda.ranked);
                    const tk_topk_params p{static_cast<int32_t>(k)};
                    uint64_t bytes = 0;
                    ASSERT_TRUE(ok(tk_topk_workspace_size(&p, &s, &bytes)));
                    ASSERT_TRUE(ok(tk_topk(&p, &s, has_lengths ? &l : nullptr, has_item_k ? &ik : nullptr, &i, &r, nullptr, 0,
                                           stream.get())));
                    dev.copy_back(i, cuda.indices);
                    dev.copy_back(r, cuda.ranked);
                    ASSERT_TRUE(dev.synchronize());
                    EXPECT_EQ(as_int32(cuda.indices), as_int32(cpu.indices));
                    EXPECT_EQ(as_int32(cuda.ranked), as_int32(cpu.ranked));
                    EXPECT_TRUE(cuda.indices.bytes() == cpu.indices.bytes()) << "gaps differ";
                }
}

TEST(GatherCuda, BitIdenticalToCpuAndOutOfRangeGivesZeros) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kAllDtypes)
        for (tk_dtype index_dtype : {TK_DTYPE_I32, TK_DTYPE_I64})
            for (bool strided : {false, true})
                for (int64_t channels : {5, 16}) {  // 16: rows of whole 16-byte words where aligned
                    SCOPED_TRACE(std::string(any_dtype_label(dtype)) + " indices " + any_dtype_label(index_dtype) + (strided ? " strided" : "") +
                                 " C=" + std::to_string(channels));
                    GatherBuffers cpu = gather_buffers(dtype, index_dtype, 3, 9, channels, 7, strided, g);
                    GatherBuffers cuda = cpu;
                    const tk_tensor x = cpu.x.desc(), i = cpu.indices.desc(), o = cpu.out.desc();
                    ASSERT_TRUE(ok(tk_gather(&x, &i, &o, nullptr)));
                    // Out of range on CUDA (where the CPU rejects it): a zero row.
                    cuda.indices.set(1, 2, 0, 9);
                    cuda.indices.set(2, 0, 0, -5);
                    DeviceArrays dev(stream.get());
                    const tk_tensor xd = dev.add(cuda.x), id = dev.add(cuda.indices), od = dev.add(cuda.out);
                    ASSERT_TRUE(ok(tk_gather(&xd, &id, &od, stream.get())));
                    dev.copy_back(od, cuda.out);
                    ASSERT_TRUE(dev.synchronize());
                    for (int64_t c = 0; c < channels; ++c) {
                        EXPECT_EQ(cuda.out.get(1, 2, c), 0.0);
                        EXPECT_EQ(cuda.out.get(2, 0, c), 0.0);
                        cuda.out.set(1, 2, c, cpu.out.get(1, 2, c));
                        cuda.out.set(2, 0, c, cpu.out.get(2, 0, c));
                    }
                    EXPECT_TRUE(cuda.out.bytes() == cpu.out.bytes()) << "CUDA and CPU bytes differ";
                }
}

TEST(ContextualCuda, MatchesCpu) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (const ContextualCase& c : contextual_cases()) {
        SCOPED_TRACE(describe(c));
        ContextualBuffers cpu = contextual_buffers(c, g, 1e-4);
        ContextualBuffers cuda = cpu;
        const tk_tensor m = cpu.metric.desc(), k = cpu.kept.desc(), o = cpu.out.desc();
        const tk_tensor x = c.same_tensor ? m : cpu.x.desc();
        const auto contextual = static_cast<int32_t>(c.contextual);
        ASSERT_TRUE(ok(tk_visionzip_contextual(contextual, &m, &x, &k, &o, nullptr, 0, nullptr)));
        for (bool caller_workspace : {false, true}) {
            DeviceArrays dev(stream.get());
            const tk_tensor md = dev.add(cuda.metric), kd = dev.add(cuda.kept), od = dev.add(cuda.out);
            const tk_tensor xd = c.same_tensor ? md : dev.add(cuda.x);
            uint64_t bytes = 0;
            ASSERT_TRUE(ok(tk_visionzip_contextual_workspace_size(contextual, &md, &xd, &kd, &bytes)));
            std::unique_ptr<DeviceBuffer> workspace;
            if (caller_workspace && bytes > 0) workspace = std::make_unique<DeviceBuffer>(bytes);
            ASSERT_TRUE(ok(tk_visionzip_contextual(contextual, &md, &xd, &kd, &od, workspace ? workspace->get() : nullptr,
                                                   workspace ? bytes : 0, stream.get())));
            dev.copy_back(od, cuda.out);
            ASSERT_TRUE(dev.synchronize());
            // One function on both backends: the same assignment and the same bits.
            EXPECT_TRUE(cuda.out.bytes() == cpu.out.bytes()) << "CUDA and CPU bits differ";
            expect_contextual_near(cuda.out.values(), cpu.out.values(), c.x_dtype);
        }
    }
}

// Similarities that tie in exact arithmetic, so that only rounding picks the target: every target's
// metric row is a permutation of one vector, and every other token's row is constant, so its cosine
// with each target is the same sum taken in another order. Both backends take the sums in the same
// lane order (SPEC, "One function on both backends"), so they pick the same targets, bit for bit.
TEST(ContextualCuda, RoundingDecidedTiesGoAsOnTheCpu) {
    TK_SKIP_WITHOUT_CUDA();
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    const int64_t batch = 2, tokens = 48, contextual = 8, channels = 16;  // targets: tokens 0, 6, ..., 42
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t metric_channels : {64, 71}) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " Cm=" + std::to_string(metric_channels));
            HostArray metric(dtype, {batch, tokens, metric_channels}), x(dtype, {batch, tokens, channels});
            HostArray kept(TK_DTYPE_I32, {batch, 0}), cpu_out(dtype, {batch, contextual, channels});
            fill_uniform(x, g, -2.0, 2.0);
            std::uniform_int_distribution<int> sixteenths(-64, 64);
            for (int64_t b = 0; b < batch; ++b) {
                std::vector<double> v(static_cast<size_t>(metric_channels));
                for (double& value : v) value = sixteenths(g) / 16.0;  // exact in every dtype
                for (int64_t n = 0; n < tokens; ++n) {
                    if (n % (tokens / contextual) == 0) std::shuffle(v.begin(), v.end(), g);
                    const double constant = 0.25 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(g);
                    for (int64_t c = 0; c < metric_channels; ++c)
                        metric.set(b, n, c, n % (tokens / contextual) == 0 ? v[static_cast<size_t>(c)] : constant);
                }
            }
            cpu_out.fill_bytes(0x3c);
            HostArray cuda_out = cpu_out;
            const tk_tensor m = metric.desc(), xd = x.desc(), k = kept.desc(), o = cpu_out.desc();
            ASSERT_TRUE(ok(tk_visionzip_contextual(static_cast<int32_t>(contextual), &m, &xd, &k, &o, nullptr, 0, nullptr)));
            DeviceArrays dev(stream.get());
            const tk_tensor md = dev.add(metric), x_dev = dev.add(x), kd = dev.add(kept), od = dev.add(cuda_out);
            ASSERT_TRUE(ok(tk_visionzip_contextual(static_cast<int32_t>(contextual), &md, &x_dev, &kd, &od, nullptr, 0,
                                                   stream.get())));
            dev.copy_back(od, cuda_out);
            ASSERT_TRUE(dev.synchronize());
            EXPECT_TRUE(cuda_out.bytes() == cpu_out.bytes()) << "CUDA and CPU chose differently or differ in bits";
        }
}

}  // namespace
}  // namespace tkt
