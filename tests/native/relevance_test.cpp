// Query relevance and conditional DPP selection (SPEC section 7, CDPruner): the CPU backend against
// the float64 reference on fresh random inputs (redrawn until no DPP choice is a near-tie), every
// dtype, strided views, lengths, per-item k and text lengths; k = 1 and k = N, an exhausted residual,
// NaN rows, theta's edge values, determinism across thread counts, and CUDA against the CPU (skipped
// without a device).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "relevance_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

constexpr tk_dtype kFloatDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};

::testing::AssertionResult ok(tk_status status) {
    if (status != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    return ::testing::AssertionSuccess();
}

std::string test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->test_suite_name()) + "." + info->name();
}

void fill_normal(HostArray& a, std::mt19937_64& g) {
    std::normal_distribution<double> normal(0.0, 1.0);
    const auto& s = a.shape();
    for (int64_t b = 0; b < s[0]; ++b)
        for (int64_t i = 0; i < s[1]; ++i)
            for (int64_t c = 0; c < s[2]; ++c) a.set(b, i, c, normal(g));
    a.fill_gaps_with_nan();
}

std::vector<int64_t> as_int64(const HostArray& a) {
    std::vector<int64_t> v;
    for (double d : a.values()) v.push_back(static_cast<int64_t>(d));
    return v;
}

// ---- Query relevance ----------------------------------------------------------------------------

struct RelevanceBuffers {
    tk_relevance_params params{};
    HostArray visual, text, lengths, text_lengths, relevance;
    bool has_lengths = false, has_text_lengths = false;

    RelevanceInputs inputs() const {
        RelevanceInputs in;
        in.batch = visual.shape()[0];
        in.tokens = visual.shape()[1];
        in.text_tokens = text.shape()[1];
        in.channels = visual.shape()[2];
        in.negate = params.negate != 0;
        in.visual = visual.values();
        in.text = text.values();
        if (has_lengths) in.lengths = as_int64(lengths);
        if (has_text_lengths) in.text_lengths = as_int64(text_lengths);
        return in;
    }

    tk_status run() {
        const tk_tensor v = visual.desc(), t = text.desc(), l = lengths.desc(), tl = text_lengths.desc(), r = relevance.desc();
        return tk_query_relevance(&params, &v, &t, has_lengths ? &l : nullptr, has_text_lengths ? &tl : nullptr, &r, nullptr);
    }
};

RelevanceBuffers relevance_buffers(tk_dtype dtype, int64_t batch, int64_t tokens, int64_t text_tokens, int64_t channels,
                                   bool negate, bool has_lengths, bool has_text_lengths, const ArrayLayout& layout,
                                   std::mt19937_64& g) {
    RelevanceBuffers d;
    d.params.negate = negate ? 1 : 0;
    d.has_lengths = has_lengths;
    d.has_text_lengths = has_text_lengths;
    d.visual = HostArray(dtype, {batch, tokens, channels}, layout);
    d.text = HostArray(dtype, {batch, text_tokens, channels}, ArrayLayout{1, false, 0});
    fill_normal(d.visual, g);
    fill_normal(d.text, g);
    d.lengths = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 1});
    d.text_lengths = HostArray(TK_DTYPE_I32, {batch});
    for (int64_t b = 0; b < batch; ++b) {
        d.lengths.set(b, 0, 0, has_lengths ? static_cast<double>(std::uniform_int_distribution<int64_t>(0, tokens)(g)) : tokens);
        d.text_lengths.set(b, 0, 0,
                           has_text_lengths ? static_cast<double>(std::uniform_int_distribution<int64_t>(1, text_tokens)(g)) : text_tokens);
    }
    d.relevance = HostArray(TK_DTYPE_F32, {batch, tokens}, ArrayLayout{1, false, 1});
    d.relevance.fill_bytes(0x5a);
    return d;
}

// Runs the op, checks nothing outside the view changed and every value is within float32 rounding of
// the reference (r is a ratio of differences of means of C-term dot products: a few 1e-5 relative to
// its range of about 1).
void expect_relevance_matches(RelevanceBuffers& d) {
    const HostArray before = d.relevance;
    ASSERT_TRUE(ok(d.run()));
    EXPECT_EQ(first_changed_gap(before, d.relevance), "");
    const std::vector<double> want = reference_relevance(d.inputs());
    const std::vector<double> got = d.relevance.values();
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-4) << "element " << i;
}

TEST(Relevance, MatchesReferenceEveryDtypeAndLayout) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (bool negate : {false, true})
            for (int64_t channels : {1, 7, 40}) {
                SCOPED_TRACE(std::string(dtype_label(dtype)) + " negate " + std::to_string(negate) + " C=" + std::to_string(channels));
                RelevanceBuffers d = relevance_buffers(dtype, 3, 37, 9, channels, negate, false, false, ArrayLayout{2, true, 1}, g);
                expect_relevance_matches(d);
            }
}

TEST(Relevance, LengthsAndTextLengths) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (int options = 0; options < 4; ++options) {
        SCOPED_TRACE("options " + std::to_string(options));
        RelevanceBuffers d = relevance_buffers(TK_DTYPE_F32, 4, 53, 17, 19, true, options & 1, options & 2, ArrayLayout{}, g);
        expect_relevance_matches(d);
        // Past each item's length the relevance is 0.
        for (int64_t b = 0; b < 4; ++b)
            for (int64_t i = static_cast<int64_t>(d.lengths.get(b)); i < 53; ++i) EXPECT_EQ(d.relevance.get(b, i), 0.0);
    }
}

// Min-max: the least relevant token gets exactly 1e-6 / range above 0 and the most relevant
// 1 + 1e-6 / range; one token, equal scores and no text give 1 everywhere.
TEST(Relevance, MinMaxEndpointsAndDegenerateItems) {
    std::mt19937_64 g(seed_from_name(test_name()));
    RelevanceBuffers d = relevance_buffers(TK_DTYPE_F32, 1, 30, 5, 12, false, false, false, ArrayLayout{}, g);
    ASSERT_TRUE(ok(d.run()));
    const std::vector<double> r = d.relevance.values();
    EXPECT_GT(*std::min_element(r.begin(), r.end()), 0.0);
    EXPECT_LT(*std::min_element(r.begin(), r.end()), 1e-4);
    EXPECT_NEAR(*std::max_element(r.begin(), r.end()), 1.0, 1e-4);

    RelevanceBuffers one = relevance_buffers(TK_DTYPE_F32, 2, 6, 3, 8, true, true, true, ArrayLayout{}, g);
    one.lengths.set(0, 0, 0, 1);
    one.text_lengths.set(1, 0, 0, 0);
    for (int64_t i = 0; i < 6; ++i)
        for (int64_t c = 0; c < 8; ++c) one.visual.set(1, i, c, 0.25 * (c + 1));  // item 1: equal tokens
    one.lengths.set(1, 0, 0, 6);
    ASSERT_TRUE(ok(one.run()));
    EXPECT_EQ(one.relevance.get(0, 0), 1.0);
    for (int64_t i = 1; i < 6; ++i) EXPECT_EQ(one.relevance.get(0, i), 0.0);
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(one.relevance.get(1, i), 1.0);
}

// A NaN token has a NaN relevance and does not move the others' min-max.
TEST(Relevance, NanTokenIsNanAndIgnoredByMinMax) {
    std::mt19937_64 g(seed_from_name(test_name()));
    RelevanceBuffers d = relevance_buffers(TK_DTYPE_F32, 1, 20, 4, 9, true, false, false, ArrayLayout{}, g);
    d.visual.set(0, 7, 3, std::numeric_limits<double>::quiet_NaN());
    ASSERT_TRUE(ok(d.run()));
    RelevanceInputs in = d.inputs();
    const std::vector<double> want = reference_relevance(in);
    EXPECT_TRUE(std::isnan(d.relevance.get(0, 7)));
    for (int64_t i = 0; i < 20; ++i)
        if (i != 7) {
            EXPECT_NEAR(d.relevance.get(0, i), want[static_cast<size_t>(i)], 2e-4);
        }
}

TEST(Relevance, SameBitsOnOneAndTwoThreads) {
    std::mt19937_64 g(seed_from_name(test_name()));
    RelevanceBuffers d = relevance_buffers(TK_DTYPE_BF16, 2, 300, 21, 133, true, false, false, ArrayLayout{}, g);
    std::vector<double> first;
    for (int32_t threads : {1, 2}) {
        const ScopedNumThreads scoped(threads);
        ASSERT_TRUE(ok(d.run()));
        if (first.empty()) {
            first = d.relevance.values();
        } else {
            EXPECT_EQ(d.relevance.values(), first);
        }
    }
}

// ---- Conditional DPP ----------------------------------------------------------------------------

struct DppBuffers {
    tk_dpp_params params{};
    HostArray x, relevance, lengths, item_k, order, sorted;
    bool has_relevance = true, has_lengths = false, has_item_k = false, has_sorted = true;

    DppInputs inputs() const {
        DppInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.k = params.k;
        in.exp_weighting = params.weighting == TK_DPP_WEIGHT_EXP;
        in.theta = params.theta;
        in.x = x.values();
        if (has_relevance) in.relevance = relevance.values();
        if (has_lengths) in.lengths = as_int64(lengths);
        if (has_item_k) in.item_k = as_int64(item_k);
        return in;
    }

    tk_status run(void* workspace = nullptr, uint64_t bytes = 0) {
        const tk_tensor xd = x.desc(), r = relevance.desc(), l = lengths.desc(), ik = item_k.desc(), o = order.desc(), s = sorted.desc();
        return tk_conditional_dpp_select(&params, &xd, has_relevance ? &r : nullptr, has_lengths ? &l : nullptr,
                                         has_item_k ? &ik : nullptr, &o, has_sorted ? &s : nullptr, workspace, bytes, nullptr);
    }
};

tk_dpp_params dpp_params(int64_t k, tk_dpp_weighting weighting, float theta) {
    tk_dpp_params p{};
    p.k = static_cast<int32_t>(k);
    p.weighting = weighting;
    p.theta = theta;
    return p;
}

DppBuffers dpp_buffers(const tk_dpp_params& p, tk_dtype dtype, int64_t batch, int64_t tokens, int64_t channels,
                       const ArrayLayout& layout, bool has_relevance, bool has_lengths, bool has_item_k, std::mt19937_64& g) {
    DppBuffers d;
    d.params = p;
    d.has_relevance = has_relevance;
    d.has_lengths = has_lengths;
    d.has_item_k = has_item_k;
    d.x = HostArray(dtype, {batch, tokens, channels}, layout);
    fill_normal(d.x, g);
    // Relevance as tk_query_relevance makes it: in (0, 1 + 1e-6], here uniform.
    d.relevance = HostArray(TK_DTYPE_F32, {batch, tokens}, ArrayLayout{0, true, 0});
    std::uniform_real_distribution<double> uniform(0.01, 1.0);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < tokens; ++i) d.relevance.set(b, i, 0, uniform(g));
    d.lengths = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 1});
    d.item_k = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{2, false, 0});
    for (int64_t b = 0; b < batch; ++b) {
        d.lengths.set(b, 0, 0, has_lengths ? static_cast<double>(std::uniform_int_distribution<int64_t>(0, tokens)(g)) : tokens);
        d.item_k.set(b, 0, 0, has_item_k ? static_cast<double>(std::uniform_int_distribution<int64_t>(0, p.k)(g)) : p.k);
    }
    d.order = HostArray(TK_DTYPE_I32, {batch, p.k}, ArrayLayout{1, false, 1});
    d.sorted = HostArray(TK_DTYPE_I32, {batch, p.k}, ArrayLayout{0, true, 0});
    d.order.fill_bytes(0x5a);
    d.sorted.fill_bytes(0x5a);
    return d;
}

// The expected order and sorted outputs [B, k] from the reference, -1 past each count.
void expected_outputs(const DppBuffers& d, const DppResult& want, std::vector<int64_t>& order, std::vector<int64_t>& sorted) {
    const int64_t batch = d.x.shape()[0], k = d.params.k;
    order.assign(static_cast<size_t>(batch * k), -1);
    sorted = order;
    for (int64_t b = 0; b < batch; ++b) {
        std::vector<int64_t> o = want.order[static_cast<size_t>(b)];
        for (size_t i = 0; i < o.size(); ++i) order[static_cast<size_t>(b * k) + i] = o[i];
        std::sort(o.begin(), o.end());
        for (size_t i = 0; i < o.size(); ++i) sorted[static_cast<size_t>(b * k) + i] = o[i];
    }
}

// Runs the op (with a caller workspace at an odd address when asked) and compares with `want` exactly,
// checking that nothing outside the output views changed.
void expect_dpp_outputs(DppBuffers& d, const DppResult& want, bool caller_workspace = false) {
    const HostArray order_before = d.order, sorted_before = d.sorted;
    uint64_t bytes = 0;
    if (caller_workspace) {
        const tk_tensor x = d.x.desc();
        ASSERT_TRUE(ok(tk_conditional_dpp_workspace_size(&d.params, &x, &bytes)));
    }
    std::vector<uint8_t> workspace(static_cast<size_t>(bytes) + 1);
    ASSERT_TRUE(ok(d.run(caller_workspace ? workspace.data() + 1 : nullptr, bytes)));
    EXPECT_EQ(first_changed_gap(order_before, d.order), "");
    EXPECT_EQ(first_changed_gap(sorted_before, d.sorted), "");
    std::vector<int64_t> order, sorted;
    expected_outputs(d, want, order, sorted);
    EXPECT_EQ(as_int64(d.order), order);
    if (d.has_sorted) {
        EXPECT_EQ(as_int64(d.sorted), sorted);
    }
}

// Draws until the reference has no near-tie, then compares exactly.
void expect_dpp_matches_reference(const tk_dpp_params& p, tk_dtype dtype, int64_t batch, int64_t tokens, int64_t channels,
                                  const ArrayLayout& layout, bool has_relevance, bool has_lengths, bool has_item_k,
                                  std::mt19937_64& g, bool caller_workspace = false) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        DppBuffers d = dpp_buffers(p, dtype, batch, tokens, channels, layout, has_relevance, has_lengths, has_item_k, g);
        const DppResult want = reference_dpp(d.inputs());
        if (want.margin < 1e-4) continue;
        expect_dpp_outputs(d, want, caller_workspace);
        return;
    }
    ADD_FAILURE() << "no draw without a near-tie in 20 attempts";
}

std::string describe(const tk_dpp_params& p) {
    return "k=" + std::to_string(p.k) + (p.weighting == TK_DPP_WEIGHT_EXP ? " exp theta=" + std::to_string(p.theta) : " linear");
}

TEST(ConditionalDpp, MatchesReferenceEveryWeightingAndDtype) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (const tk_dpp_params& p : {dpp_params(1, TK_DPP_WEIGHT_RELEVANCE, 0.0f), dpp_params(7, TK_DPP_WEIGHT_RELEVANCE, 0.0f),
                                       dpp_params(7, TK_DPP_WEIGHT_EXP, 0.5f), dpp_params(12, TK_DPP_WEIGHT_EXP, 0.9f)})
            for (int64_t batch : {1, 3}) {
                SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p) + " B=" + std::to_string(batch));
                expect_dpp_matches_reference(p, dtype, batch, 41, 57, batch == 1 ? ArrayLayout{3, false, 1} : ArrayLayout{2, true, 0},
                                             true, false, false, g);
            }
}

// Without relevance: the plain DPP (w = 1), equal to TK_DPP_WEIGHT_EXP at theta = 0.
TEST(ConditionalDpp, NullRelevanceIsPlainDppAndThetaZero) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const tk_dpp_params plain = dpp_params(9, TK_DPP_WEIGHT_RELEVANCE, 0.0f);
    expect_dpp_matches_reference(plain, TK_DTYPE_F32, 2, 33, 40, ArrayLayout{}, false, false, false, g);
    DppBuffers d = dpp_buffers(dpp_params(9, TK_DPP_WEIGHT_EXP, 0.0f), TK_DTYPE_F32, 2, 33, 40, ArrayLayout{}, true, false, false, g);
    ASSERT_TRUE(ok(d.run()));
    const std::vector<double> with_theta_zero = d.order.values();
    d.has_relevance = false;
    ASSERT_TRUE(ok(d.run()));
    EXPECT_EQ(d.order.values(), with_theta_zero);
}

TEST(ConditionalDpp, LengthsAndPerItemK) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (int options = 1; options < 4; ++options) {
        SCOPED_TRACE("options " + std::to_string(options));
        expect_dpp_matches_reference(dpp_params(11, TK_DPP_WEIGHT_EXP, 0.5f), TK_DTYPE_F32, 4, 29, 35, ArrayLayout{1, false, 0},
                                     true, options & 1, options & 2, g);
    }
}

TEST(ConditionalDpp, CallerWorkspaceAndLargerShapes) {
    std::mt19937_64 g(seed_from_name(test_name()));
    expect_dpp_matches_reference(dpp_params(24, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 2, 301, 203, ArrayLayout{}, true,
                                 false, true, g, true);
}

// k = N with C > N (L full rank, every residual positive to the end), and a single token.
TEST(ConditionalDpp, KEqualsNAndSingleToken) {
    std::mt19937_64 g(seed_from_name(test_name()));
    expect_dpp_matches_reference(dpp_params(13, TK_DPP_WEIGHT_EXP, 0.3f), TK_DTYPE_F32, 2, 13, 64, ArrayLayout{}, true, false,
                                 false, g);
    expect_dpp_matches_reference(dpp_params(1, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 3, 1, 5, ArrayLayout{}, true, false,
                                 false, g);
}

// Zero relevance makes a token's residual exactly 0 and keeps it there: the positive tokens are chosen
// first (as the reference orders them), then, every residual exhausted (the step adds no direction),
// the rest in ascending order.
TEST(ConditionalDpp, ExhaustedResidualContinuesInIndexOrder) {
    std::mt19937_64 g(seed_from_name(test_name()));
    DppBuffers d = dpp_buffers(dpp_params(10, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 1, 10, 16, ArrayLayout{}, true, false,
                               false, g);
    const std::vector<int64_t> positive = {2, 5, 6, 9};
    for (int64_t i = 0; i < 10; ++i)
        if (std::find(positive.begin(), positive.end(), i) == positive.end()) d.relevance.set(0, i, 0, 0.0);
    const DppResult want = reference_dpp(d.inputs());
    std::vector<int64_t> head(want.order[0].begin(), want.order[0].begin() + 4);
    std::sort(head.begin(), head.end());
    EXPECT_EQ(head, positive);
    EXPECT_EQ(std::vector<int64_t>(want.order[0].begin() + 4, want.order[0].end()), (std::vector<int64_t>{0, 1, 3, 4, 7, 8}));
    expect_dpp_outputs(d, want);
}

// Exact duplicates: after one is chosen the other's residual is (about) 0, so it comes after every
// token with a clearly positive residual, and no token is chosen twice.
TEST(ConditionalDpp, DuplicatesAreChosenOnceAndLate) {
    std::mt19937_64 g(seed_from_name(test_name()));
    DppBuffers d = dpp_buffers(dpp_params(8, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 1, 12, 40, ArrayLayout{}, false,
                               false, false, g);
    for (int64_t c = 0; c < 40; ++c) d.x.set(0, 4, c, d.x.get(0, 9, c));
    ASSERT_TRUE(ok(d.run()));
    const std::vector<int64_t> order = as_int64(d.order);
    const bool has4 = std::find(order.begin(), order.end(), 4) != order.end();
    const bool has9 = std::find(order.begin(), order.end(), 9) != order.end();
    EXPECT_TRUE(has4 != has9) << "exactly one of the duplicates among 8 of 11 distinct directions";
    std::vector<int64_t> unique = order;
    std::sort(unique.begin(), unique.end());
    EXPECT_EQ(std::unique(unique.begin(), unique.end()), unique.end());
}

// A NaN row has NaN residuals: it is chosen last, and the others as the reference orders them.
TEST(ConditionalDpp, NanRowChosenLast) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (int attempt = 0; attempt < 20; ++attempt) {
        DppBuffers d = dpp_buffers(dpp_params(9, TK_DPP_WEIGHT_EXP, 0.5f), TK_DTYPE_F32, 1, 9, 30, ArrayLayout{}, true, false,
                                   false, g);
        d.x.set(0, 3, 5, std::numeric_limits<double>::quiet_NaN());
        const DppResult want = reference_dpp(d.inputs());
        if (want.margin < 1e-4) continue;
        ASSERT_EQ(want.order[0].back(), 3);
        expect_dpp_outputs(d, want);
        return;
    }
    ADD_FAILURE() << "no draw without a near-tie";
}

TEST(ConditionalDpp, SameSelectionOnOneAndTwoThreads) {
    std::mt19937_64 g(seed_from_name(test_name()));
    DppBuffers d = dpp_buffers(dpp_params(40, TK_DPP_WEIGHT_EXP, 0.5f), TK_DTYPE_F16, 2, 500, 96, ArrayLayout{}, true, false,
                               false, g);
    std::vector<double> first;
    for (int32_t threads : {1, 2}) {
        const ScopedNumThreads scoped(threads);
        ASSERT_TRUE(ok(d.run()));
        if (first.empty()) {
            first = d.order.values();
        } else {
            EXPECT_EQ(d.order.values(), first);
        }
    }
}

TEST(ConditionalDpp, EmptySelectionsAccepted) {
    std::mt19937_64 g(seed_from_name(test_name()));
    DppBuffers d = dpp_buffers(dpp_params(0, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 2, 5, 3, ArrayLayout{}, true, false,
                               false, g);
    EXPECT_TRUE(ok(d.run()));
    DppBuffers empty_items = dpp_buffers(dpp_params(3, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 2, 5, 3, ArrayLayout{}, true,
                                         true, false, g);
    empty_items.lengths.set(0, 0, 0, 0);
    const DppResult want = reference_dpp(empty_items.inputs());
    expect_dpp_outputs(empty_items, want);
}

// ---- CUDA against the CPU ------------------------------------------------------------------------

// Device copies of host arrays, with their descriptors; copied back by copy_back.
class DeviceArrays {
public:
    explicit DeviceArrays(tk_stream stream) : stream_(stream) {}
    tk_tensor upload(const HostArray& a) {
        buffers_.push_back(std::make_unique<DeviceBuffer>(std::max<size_t>(a.bytes().size(), 1)));
        if (!a.bytes().empty()) {
            EXPECT_EQ(tk_cuda_memcpy_async(buffers_.back()->get(), a.bytes().data(), a.bytes().size(), stream_), TK_STATUS_OK);
        }
        return a.device_desc(buffers_.back()->get(), 0);
    }
    void copy_back(const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) - (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream_), TK_STATUS_OK);
    }

private:
    tk_stream stream_;
    std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

// The same relevance bits as the CPU, every dtype, lengths, text lengths and strided views.
TEST(RelevanceCuda, SameBitsAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (int options = 0; options < 4; ++options) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " options " + std::to_string(options));
            RelevanceBuffers cpu = relevance_buffers(dtype, 3, 45, 7, 37, options % 2 == 0, options & 1, options & 2,
                                                     ArrayLayout{2, false, 1}, g);
            RelevanceBuffers cuda = cpu;
            ASSERT_TRUE(ok(cpu.run()));
            DeviceArrays device(stream.get());
            const tk_tensor v = device.upload(cuda.visual), t = device.upload(cuda.text), l = device.upload(cuda.lengths),
                            tl = device.upload(cuda.text_lengths), r = device.upload(cuda.relevance);
            ASSERT_TRUE(ok(tk_query_relevance(&cuda.params, &v, &t, cuda.has_lengths ? &l : nullptr,
                                              cuda.has_text_lengths ? &tl : nullptr, &r, stream.get())));
            device.copy_back(r, cuda.relevance);
            ASSERT_TRUE(ok(tk_cuda_stream_synchronize(stream.get())));
            EXPECT_EQ(cuda.relevance.bytes(), cpu.relevance.bytes());
        }
}

// The same selection as the CPU (exactly, near-ties included: the same bits), every weighting and
// dtype, lengths, per-item k, with and without the caller's workspace; a NaN row and zero weights.
TEST(ConditionalDppCuda, SameSelectionAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (const tk_dpp_params& p : {dpp_params(1, TK_DPP_WEIGHT_RELEVANCE, 0.0f), dpp_params(13, TK_DPP_WEIGHT_RELEVANCE, 0.0f),
                                       dpp_params(13, TK_DPP_WEIGHT_EXP, 0.7f), dpp_params(41, TK_DPP_WEIGHT_EXP, 0.5f)})
            for (int options = 0; options < 4; ++options) {
                SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p) + " options " + std::to_string(options));
                DppBuffers cpu = dpp_buffers(p, dtype, 3, 41, 57, ArrayLayout{2, false, 1}, options != 3, options & 1, options & 2, g);
                if (options == 2) {
                    cpu.x.set(1, 5, 3, std::numeric_limits<double>::quiet_NaN());
                    for (int64_t i = 0; i < 41; i += 3) cpu.relevance.set(2, i, 0, 0.0);
                }
                DppBuffers cuda = cpu;
                ASSERT_TRUE(ok(cpu.run()));
                DeviceArrays device(stream.get());
                const tk_tensor x = device.upload(cuda.x), r = device.upload(cuda.relevance), l = device.upload(cuda.lengths),
                                ik = device.upload(cuda.item_k), o = device.upload(cuda.order), s = device.upload(cuda.sorted);
                uint64_t bytes = 0;
                ASSERT_TRUE(ok(tk_conditional_dpp_workspace_size(&cuda.params, &x, &bytes)));
                std::unique_ptr<DeviceBuffer> workspace;
                if (options & 1) workspace = std::make_unique<DeviceBuffer>(bytes);
                ASSERT_TRUE(ok(tk_conditional_dpp_select(&cuda.params, &x, cuda.has_relevance ? &r : nullptr,
                                                         cuda.has_lengths ? &l : nullptr, cuda.has_item_k ? &ik : nullptr, &o, &s,
                                                         workspace ? workspace->get() : nullptr, workspace ? bytes : 0, stream.get())));
                device.copy_back(o, cuda.order);
                device.copy_back(s, cuda.sorted);
                ASSERT_TRUE(ok(tk_cuda_stream_synchronize(stream.get())));
                EXPECT_EQ(as_int64(cuda.order), as_int64(cpu.order));
                EXPECT_EQ(as_int64(cuda.sorted), as_int64(cpu.sorted));
            }
}

// Without a CUDA build, CUDA tensors are refused as BACKEND_UNAVAILABLE, naming the build option.
TEST(ConditionalDppCuda, WithoutCudaBuildRefusedAsBackendUnavailable) {
    if (tk_cuda_is_built() != 0) GTEST_SKIP() << "this library is built with CUDA";
    std::mt19937_64 g(seed_from_name(test_name()));
    DppBuffers d = dpp_buffers(dpp_params(2, TK_DPP_WEIGHT_RELEVANCE, 0.0f), TK_DTYPE_F32, 1, 5, 3, ArrayLayout{}, false, false,
                               false, g);
    static float placeholder[512];
    const tk_tensor x = d.x.device_desc(placeholder, 0);
    const tk_tensor o = d.order.device_desc(placeholder + 256, 0);
    EXPECT_EQ(tk_conditional_dpp_select(&d.params, &x, nullptr, nullptr, nullptr, &o, nullptr, nullptr, 0, nullptr),
              TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_NE(std::string(tk_last_error()).find("TOKENKERNELS_CUDA"), std::string::npos) << tk_last_error();
    RelevanceBuffers r = relevance_buffers(TK_DTYPE_F32, 1, 5, 2, 3, true, false, false, ArrayLayout{}, g);
    const tk_tensor v = r.visual.device_desc(placeholder, 0);
    const tk_tensor t = r.text.device_desc(placeholder + 128, 0);
    const tk_tensor out = r.relevance.device_desc(placeholder + 256, 0);
    EXPECT_EQ(tk_query_relevance(&r.params, &v, &t, nullptr, nullptr, &out, nullptr), TK_STATUS_BACKEND_UNAVAILABLE);
}

}  // namespace
}  // namespace tkt
