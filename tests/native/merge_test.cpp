// Bipartite token merging (SPEC section 2): the CPU backend against the float64 reference on a grid
// of every merge mode, output order, protection flag, dtype, odd/even N, r and B, with exact indices
// (inputs are redrawn until no near-tie can flip a choice); hand-worked examples that pin the
// reference itself; ties, NaN, the cosine clamp, threshold mode, tiny N, determinism and unmerge; and
// the CUDA backend against the CPU backend on the same inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "merge_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;
// Inputs are redrawn until every choice is decided by at least this much in float64: the library's
// float32 scores from the same dtype-rounded metric are off by ~1e-6, so no decision can flip.
constexpr double kGap = 1e-4;
// How far a float32 cosine may be from the float64 one.
constexpr double kScoreTolerance = 1e-5;

const char* mode_label(tk_merge_mode mode) {
    switch (mode) {
        case TK_MERGE_WEIGHTED_MEAN:
            return "WeightedMean";
        case TK_MERGE_MEAN:
            return "Mean";
        case TK_MERGE_SUM:
            return "Sum";
        case TK_MERGE_AMAX:
            return "Amax";
        case TK_MERGE_DROP:
            return "Drop";
        default:
            return "Unknown";
    }
}

tk_merge_params merge_params(int32_t r, tk_merge_mode mode = TK_MERGE_WEIGHTED_MEAN,
                             tk_merge_order order = TK_MERGE_ORDER_POSITIONAL, int32_t protect_first = 0,
                             int32_t protect_second = 0) {
    tk_merge_params p{};
    p.r = r;
    p.mode = mode;
    p.order = order;
    p.protect_first = protect_first;
    p.protect_second = protect_second;
    return p;
}

std::string describe(const tk_merge_params& p) {
    std::ostringstream s;
    s << "r=" << p.r << (p.use_threshold ? " threshold=" + std::to_string(p.threshold) : std::string(" fixed"))
      << " protect_first=" << p.protect_first << " protect_second=" << p.protect_second
      << " mode=" << mode_label(p.mode) << " order=" << (p.order == TK_MERGE_ORDER_TOME ? "tome" : "positional");
    return s.str();
}

// ---- One merge call's tensors --------------------------------------------------------------------

struct MergeConfig {
    tk_merge_params params{};
    int64_t batch = 1;
    int64_t tokens = 8;
    int64_t metric_channels = 7;
    int64_t channels = 5;
    tk_dtype metric_dtype = TK_DTYPE_F32;
    tk_dtype x_dtype = TK_DTYPE_F32;
    bool same_tensor = false;  // metric is x
    bool with_size = false;
    bool with_merge_count = true;
    bool strided = false;  // every tensor a view into a larger buffer, some misaligned

    std::string describe() const {
        std::ostringstream s;
        s << tkt::describe(params) << " B=" << batch << " N=" << tokens << " Cm=" << metric_channels
          << " C=" << channels << " metric=" << dtype_label(metric_dtype) << " x=" << dtype_label(x_dtype)
          << (same_tensor ? " (same tensor)" : "") << (with_size ? " size" : " no-size")
          << (strided ? " strided" : " dense");
        return s.str();
    }
};

struct MergeBuffers {
    HostArray metric;  // unused when same_tensor
    HostArray x;
    HostArray size;
    HostArray out;
    HostArray out_size;
    HostArray source_map;
    HostArray merge_count;
    bool same_tensor = false;
    bool with_size = false;
    bool with_merge_count = false;

    const HostArray& metric_array() const { return same_tensor ? x : metric; }
};

MergeBuffers make_buffers(const MergeConfig& c) {
    const ArrayLayout dense{};
    const ArrayLayout x_layout = c.strided ? ArrayLayout{3, true, 1} : dense;
    const ArrayLayout metric_layout = c.strided ? ArrayLayout{2, false, 1} : dense;
    const ArrayLayout out_layout = c.strided ? ArrayLayout{1, false, 3} : dense;
    const ArrayLayout row_layout = c.strided ? ArrayLayout{1, true, 1} : dense;
    const int64_t rows = reference_output_tokens(c.params, c.tokens);
    MergeBuffers b;
    b.same_tensor = c.same_tensor;
    b.with_size = c.with_size;
    b.with_merge_count = c.with_merge_count || c.params.use_threshold;
    b.x = HostArray(c.x_dtype, {c.batch, c.tokens, c.same_tensor ? c.metric_channels : c.channels}, x_layout);
    if (!c.same_tensor) b.metric = HostArray(c.metric_dtype, {c.batch, c.tokens, c.metric_channels}, metric_layout);
    b.size = HostArray(TK_DTYPE_F32, {c.batch, c.tokens}, row_layout);
    b.out = HostArray(c.x_dtype, {c.batch, rows, b.x.shape()[2]}, out_layout);
    b.out_size = HostArray(TK_DTYPE_F32, {c.batch, rows}, row_layout);
    b.source_map = HostArray(TK_DTYPE_I32, {c.batch, c.tokens}, row_layout);
    b.merge_count = HostArray(TK_DTYPE_I32, {c.batch}, c.strided ? ArrayLayout{2, false, 1} : dense);
    if (c.strided) {
        b.x.fill_gaps_with_nan();
        if (!c.same_tensor) b.metric.fill_gaps_with_nan();
        b.size.fill_gaps_with_nan();
    }
    for (HostArray* out : {&b.out, &b.out_size, &b.source_map, &b.merge_count}) out->fill_bytes(0xA5);
    return b;
}

// Uniform in [lo, hi) from 24 random bits (mt19937_64's sequence is fixed by the standard).
double uniform(std::mt19937_64& g, double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(g() >> 40) * 0x1p-24;
}

void fill_uniform_24_bits(HostArray& a, std::mt19937_64& g, double lo, double hi) {
    const auto& s = a.shape();
    for (int64_t i = 0; i < s[0]; ++i)
        for (int64_t j = 0; j < s[1]; ++j)
            for (int64_t k = 0; k < s[2]; ++k) a.set(i, j, k, uniform(g, lo, hi));
}

MergeInputs read_inputs(const MergeBuffers& b) {
    MergeInputs in;
    const HostArray& metric = b.metric_array();
    in.batch = b.x.shape()[0];
    in.tokens = b.x.shape()[1];
    in.metric_channels = metric.shape()[2];
    in.channels = b.x.shape()[2];
    in.metric = metric.values();
    in.x = b.x.values();
    if (b.with_size) in.size = b.size.values();
    return in;
}

// Whether every choice the op makes on these inputs is decided by at least kGap: each source's best
// destination over the runner-up, the bests of an item among themselves (the fixed-r cut and ToMe's
// order of the unmerged sources) and against the threshold.
bool well_separated(const MatchResult& m, int64_t batch, const tk_merge_params& p) {
    for (int64_t b = 0; b < batch; ++b) {
        std::vector<double> finite;
        for (int64_t s = 0; s < m.sources; ++s) {
            const double best = m.best[static_cast<size_t>(b * m.sources + s)];
            const double second = m.second[static_cast<size_t>(b * m.sources + s)];
            if (std::isnan(best)) return false;
            if (std::isinf(best)) continue;
            if (!std::isinf(second) && best - second < kGap) return false;
            if (p.use_threshold && std::fabs(best - static_cast<double>(p.threshold)) < kGap) return false;
            finite.push_back(best);
        }
        std::sort(finite.begin(), finite.end());
        for (size_t k = 1; k < finite.size(); ++k)
            if (finite[k] - finite[k - 1] < kGap) return false;
    }
    return true;
}

// A threshold between two of the items' bests near their median, at least kGap from every best when
// the bests allow it, so that items merge different numbers of sources.
float pick_threshold(const MatchResult& m) {
    std::vector<double> finite;
    for (double v : m.best)
        if (std::isfinite(v)) finite.push_back(v);
    if (finite.size() < 2) return 0.5f;
    std::sort(finite.begin(), finite.end());
    const size_t mid = finite.size() / 2;
    for (size_t k = mid; k < finite.size(); ++k)
        if (finite[k] - finite[k - 1] >= 3 * kGap) return static_cast<float>((finite[k] + finite[k - 1]) / 2);
    return static_cast<float>((finite[mid] + finite[mid - 1]) / 2);
}

// Draws metric, x and sizes for c, redrawing the metric until well separated; sets the threshold in
// threshold mode. Returns the buffers and the reference match on them.
MergeBuffers draw(MergeConfig& c, uint64_t seed, MatchResult* match) {
    MergeBuffers b = make_buffers(c);
    std::mt19937_64 g(seed);
    fill_uniform_24_bits(b.x, g, -1.5, 2.5);
    if (c.with_size) {
        for (int64_t i = 0; i < c.batch; ++i)
            for (int64_t j = 0; j < c.tokens; ++j) b.size.set(i, j, 0, static_cast<double>(1 + g() % 4));
    }
    for (int attempt = 0; attempt < 500; ++attempt) {
        HostArray& metric = c.same_tensor ? b.x : b.metric;
        fill_uniform_24_bits(metric, g, -1.0, 1.0);
        MergeInputs in = read_inputs(b);
        *match = reference_match(c.params, in);
        if (c.params.use_threshold) c.params.threshold = pick_threshold(*match);
        if (well_separated(*match, c.batch, c.params)) return b;
    }
    ADD_FAILURE() << "no well-separated input found for " << c.describe();
    return b;
}

struct MergeDescs {
    tk_tensor metric, x, size, out, out_size, source_map, merge_count;
};

MergeDescs host_descs(const MergeBuffers& b) {
    return {b.metric_array().desc(), b.x.desc(),          b.size.desc(),       b.out.desc(),
            b.out_size.desc(),       b.source_map.desc(), b.merge_count.desc()};
}

tk_status call_merge(const tk_merge_params& p, const MergeBuffers& b, const MergeDescs& d, void* workspace = nullptr,
                     uint64_t workspace_bytes = 0, tk_stream stream = nullptr) {
    return tk_merge(&p, &d.metric, &d.x, b.with_size ? &d.size : nullptr, &d.out, &d.out_size, &d.source_map,
                    b.with_merge_count ? &d.merge_count : nullptr, workspace, workspace_bytes, stream);
}

::testing::AssertionResult ok(tk_status status) {
    if (status != TK_STATUS_OK)
        return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    if (std::strcmp(tk_last_error(), "") != 0)
        return ::testing::AssertionFailure() << "tk_last_error() is \"" << tk_last_error() << "\" after a success";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult merge_on_cpu(const tk_merge_params& p, MergeBuffers& b) {
    return ok(call_merge(p, b, host_descs(b)));
}

// ---- Checks ----------------------------------------------------------------------------------------

// The contract fixes the float32 arithmetic of every output value (the destination's own term, then
// its sources by increasing position, products rounded before each add, true division; a token nothing
// merged into is copied), so a value must equal the same-precision reference rounded to its dtype bit
// for bit. As a check on that reference itself, it must also lie within the pool tests' accuracy rule
// of the float64 one: |ours - ref64| <= 2 |round_dtype(ref32) - ref64| + 1e-5 max(1, |ref64|).
bool value_ok(double got, double want, float want32, tk_dtype dtype) {
    const double exact = round_to_dtype(want32, dtype);
    if (std::isnan(exact) || std::isnan(got)) return std::isnan(exact) && std::isnan(got) && std::isnan(want);
    if (got != exact) return false;
    if (std::isinf(want)) return got == want;
    return std::fabs(got - want) <= 2.0 * std::fabs(exact - want) + 1e-5 * std::max(1.0, std::fabs(want));
}

// Everything tk_merge wrote against the reference, exactly: source map, counts, out_size (sizes are
// small integers), values (value_ok), padding rows zero.
::testing::AssertionResult matches_reference(const MergeBuffers& b, const MergeResult& ref) {
    std::ostringstream failures;
    int64_t failed = 0;
    // Counts a mismatch and describes the first few.
    const auto fail = [&](auto&&... parts) {
        if (++failed <= 8) {
            failures << "\n  ";
            (failures << ... << parts);
        }
    };
    if (!ref.determined)
        return ::testing::AssertionFailure() << "test bug: the reference merged a source without destination";
    const int64_t B = b.x.shape()[0];
    const int64_t N = b.x.shape()[1];
    const int64_t C = b.out.shape()[2];
    const int64_t rows = ref.output_tokens;
    for (int64_t i = 0; i < B; ++i) {
        if (b.with_merge_count && b.merge_count.get(i) != ref.merge_count[static_cast<size_t>(i)])
            fail("merge_count[", i, "]: got ", b.merge_count.get(i), ", expected ",
                 ref.merge_count[static_cast<size_t>(i)]);
        for (int64_t t = 0; t < N; ++t) {
            const double want = ref.source_map[static_cast<size_t>(i * N + t)];
            if (b.source_map.get(i, t) != want)
                fail("source_map[", i, ", ", t, "]: got ", b.source_map.get(i, t), ", expected ", want);
        }
        for (int64_t k = 0; k < rows; ++k) {
            const size_t row = static_cast<size_t>(i * rows + k);
            if (b.out_size.get(i, k) != ref.out_size[row])
                fail("out_size[", i, ", ", k, "]: got ", b.out_size.get(i, k), ", expected ", ref.out_size[row]);
            // Threshold mode pads each item's rows past N - count with exact zeros.
            const bool padding = rows == N && k >= N - ref.merge_count[static_cast<size_t>(i)];
            for (int64_t c = 0; c < C; ++c) {
                const size_t e = row * static_cast<size_t>(C) + static_cast<size_t>(c);
                const double got = b.out.get(i, k, c);
                if (padding ? got != 0.0 : !value_ok(got, ref.out[e], ref.out32[e], b.out.dtype()))
                    fail("out[", i, ", ", k, ", ", c, "]: got ", got, ", float64 reference ", ref.out[e],
                         ", bit-exact same-precision reference ", round_to_dtype(ref.out32[e], b.out.dtype()));
            }
        }
    }
    if (failed == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << failed << " mismatches" << failures.str();
}

// tk_merge_match against the reference: exact destinations, scores within float32 rounding, -inf
// exactly where the source is protected or has no candidate.
::testing::AssertionResult match_matches_reference(const tk_merge_params& p, const MergeBuffers& b,
                                                   const MatchResult& ref, bool strided) {
    const int64_t B = b.x.shape()[0];
    const int64_t S = ref.sources;
    HostArray dst(TK_DTYPE_I32, {B, S}, strided ? ArrayLayout{2, true, 1} : ArrayLayout{});
    HostArray best(TK_DTYPE_F32, {B, S}, strided ? ArrayLayout{1, false, 1} : ArrayLayout{});
    dst.fill_bytes(0xA5);
    best.fill_bytes(0xA5);
    const HostArray dst_before = dst;
    const HostArray best_before = best;
    const tk_tensor metric = b.metric_array().desc();
    const tk_tensor dst_desc = dst.desc();
    const tk_tensor best_desc = best.desc();
    ::testing::AssertionResult status = ok(tk_merge_match(&p, &metric, &dst_desc, &best_desc, nullptr, 0, nullptr));
    if (!status) return status << " (tk_merge_match)";
    std::ostringstream failures;
    int64_t failed = 0;
    for (int64_t i = 0; i < B; ++i)
        for (int64_t s = 0; s < S; ++s) {
            const double want = ref.best[static_cast<size_t>(i * S + s)];
            const double got = best.get(i, s);
            const bool ok_best = std::isinf(want)   ? got == want
                                 : std::isnan(want) ? std::isnan(got)
                                                    : std::fabs(got - want) <= kScoreTolerance;
            const int64_t want_dst = ref.dst[static_cast<size_t>(i * S + s)];
            const bool ok_dst = want_dst < 0 || dst.get(i, s) == static_cast<double>(want_dst);
            if ((!ok_best || !ok_dst) && ++failed <= 8)
                failures << "\n  source " << s << " (token " << 2 * s << ") of item " << i << ": got dst "
                         << dst.get(i, s) << " best " << got << ", expected dst " << want_dst << " best " << want;
        }
    if (!first_changed_gap(dst_before, dst).empty() || !first_changed_gap(best_before, best).empty())
        failures << "\n  tk_merge_match wrote outside dst/best", ++failed;
    if (failed == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << failed << " mismatches in tk_merge_match" << failures.str();
}

// tk_unmerge(out, source_map) gives every input position the row its token ended up in, bit for bit.
::testing::AssertionResult unmerge_round_trip(const MergeBuffers& b, const HostArray& map,
                                              const ArrayLayout& back_layout) {
    const int64_t B = b.x.shape()[0];
    const int64_t N = b.x.shape()[1];
    const int64_t C = b.out.shape()[2];
    HostArray back(b.out.dtype(), {B, N, C}, back_layout);
    back.fill_bytes(0x5A);
    const HostArray back_before = back;
    const tk_tensor y = b.out.desc();
    const tk_tensor m = map.desc();
    const tk_tensor o = back.desc();
    ::testing::AssertionResult status = ok(tk_unmerge(&y, &m, &o, nullptr));
    if (!status) return status << " (tk_unmerge)";
    for (int64_t i = 0; i < B; ++i)
        for (int64_t t = 0; t < N; ++t) {
            const auto row = static_cast<int64_t>(map.get(i, t));
            for (int64_t c = 0; c < C; ++c) {
                const double want = b.out.get(i, row, c);
                const double got = back.get(i, t, c);
                if (!(got == want || (std::isnan(got) && std::isnan(want))))
                    return ::testing::AssertionFailure() << "unmerged [" << i << ", " << t << ", " << c << "]: got "
                                                         << got << ", expected row " << row << "'s " << want;
            }
        }
    const std::string gap = first_changed_gap(back_before, back);
    if (!gap.empty()) return ::testing::AssertionFailure() << "tk_unmerge: " << gap;
    return ::testing::AssertionSuccess();
}

bool same_output_bytes(const MergeBuffers& a, const MergeBuffers& b) {
    return a.out.bytes() == b.out.bytes() && a.out_size.bytes() == b.out_size.bytes() &&
           a.source_map.bytes() == b.source_map.bytes() && a.merge_count.bytes() == b.merge_count.bytes();
}

// ---- The grid ------------------------------------------------------------------------------------------

struct DtypeCombo {
    const char* name;
    tk_dtype metric;
    tk_dtype x;
    bool same_tensor;
};

// Every mode and order runs on each dtype; the mixed and shared-tensor cases, which change what is
// read rather than how it is merged, run on a weighted mode (sizes) and an unweighted one.
const DtypeCombo kCombos[] = {
    {"f32", TK_DTYPE_F32, TK_DTYPE_F32, false},
    {"f16", TK_DTYPE_F16, TK_DTYPE_F16, false},
    {"bf16", TK_DTYPE_BF16, TK_DTYPE_BF16, false},
};

const DtypeCombo kMixedCombos[] = {
    {"MetricF32_XBf16", TK_DTYPE_F32, TK_DTYPE_BF16, false},
    {"MetricF16_XF32", TK_DTYPE_F16, TK_DTYPE_F32, false},
    {"MetricIsX_f32", TK_DTYPE_F32, TK_DTYPE_F32, true},
    {"MetricIsX_bf16", TK_DTYPE_BF16, TK_DTYPE_BF16, true},
};

// Keeps gtest from dumping the struct's bytes when a test fails.
void PrintTo(const DtypeCombo& c, std::ostream* os) { *os << c.name; }

constexpr tk_merge_mode kModes[] = {TK_MERGE_WEIGHTED_MEAN, TK_MERGE_MEAN, TK_MERGE_SUM, TK_MERGE_AMAX, TK_MERGE_DROP};
constexpr tk_merge_mode kMixedModes[] = {TK_MERGE_WEIGHTED_MEAN, TK_MERGE_AMAX};
constexpr tk_merge_order kOrders[] = {TK_MERGE_ORDER_POSITIONAL, TK_MERGE_ORDER_TOME};

using GridParam = std::tuple<tk_merge_mode, tk_merge_order, DtypeCombo>;

std::string grid_name(const ::testing::TestParamInfo<GridParam>& info) {
    const auto& [mode, order, combo] = info.param;
    return std::string(mode_label(mode)) + (order == TK_MERGE_ORDER_TOME ? "_Tome_" : "_Positional_") + combo.name;
}

// Every configuration of one (mode, order, dtypes): protect flags x odd/even N x r in {0, 1, N/2,
// > N/2} x B in {1, 3} x fixed/threshold. B = 3 runs on strided, partly misaligned views; sizes are
// present for half of the cases of each B.
std::vector<MergeConfig> grid_configs(const GridParam& param) {
    const auto& [mode, order, combo] = param;
    std::vector<MergeConfig> configs;
    for (int protect = 0; protect < 4; ++protect)
        for (int64_t tokens : {13, 14})
            for (int r_kind = 0; r_kind < 4; ++r_kind)
                for (int64_t batch : {1, 3})
                    for (int32_t threshold : {0, 1}) {
                        MergeConfig c;
                        const auto half = static_cast<int32_t>(tokens / 2);
                        const int32_t rs[] = {0, 1, half, half + 3};
                        c.params = merge_params(rs[r_kind], mode, order, protect & 1, protect >> 1);
                        c.params.use_threshold = threshold;
                        c.batch = batch;
                        c.tokens = tokens;
                        c.metric_channels = combo.same_tensor ? 6 : 7;
                        c.channels = combo.same_tensor ? 6 : 5;
                        c.metric_dtype = combo.metric;
                        c.x_dtype = combo.x;
                        c.same_tensor = combo.same_tensor;
                        c.strided = batch == 3;
                        c.with_size = (tokens % 2 == 1) != (batch == 3);
                        c.with_merge_count = r_kind % 2 == 0;
                        configs.push_back(c);
                    }
    return configs;
}

class MergeCpu : public ::testing::TestWithParam<GridParam> {};

TEST_P(MergeCpu, MatchesReference) {
    int64_t index = 0;
    for (MergeConfig c : grid_configs(GetParam())) {
        SCOPED_TRACE(c.describe());
        MatchResult match;
        MergeBuffers b = draw(c, seed_from_name(grid_name({GetParam(), 0})) + static_cast<uint64_t>(index++), &match);
        const MergeResult ref = reference_merge(c.params, read_inputs(b), match);

        int64_t effective_r = -1;
        int64_t rows = -1;
        ASSERT_TRUE(ok(tk_merge_output_tokens(&c.params, c.tokens, &effective_r, &rows)));
        ASSERT_EQ(effective_r, reference_effective_r(c.params, c.tokens));
        ASSERT_EQ(rows, ref.output_tokens);

        const HostArray x_before = b.x;
        const HostArray metric_before = b.metric;
        const HostArray size_before = b.size;
        const MergeBuffers untouched = b;
        {
            const ScopedNumThreads threads(2);
            ASSERT_TRUE(merge_on_cpu(c.params, b));
        }
        EXPECT_TRUE(b.x.bytes() == x_before.bytes() && b.metric.bytes() == metric_before.bytes() &&
                    b.size.bytes() == size_before.bytes())
            << "an input was written to";
        for (const auto& [after, before] :
             {std::make_pair(&b.out, &untouched.out), std::make_pair(&b.out_size, &untouched.out_size),
              std::make_pair(&b.source_map, &untouched.source_map),
              std::make_pair(&b.merge_count, &untouched.merge_count)})
            EXPECT_EQ(first_changed_gap(*before, *after), "");
        if (!b.with_merge_count) {
            EXPECT_TRUE(b.merge_count.bytes() == untouched.merge_count.bytes());
        }
        EXPECT_TRUE(matches_reference(b, ref));
        EXPECT_TRUE(match_matches_reference(c.params, b, match, c.strided));
        EXPECT_TRUE(unmerge_round_trip(b, b.source_map, c.strided ? ArrayLayout{2, true, 1} : ArrayLayout{}));

        // Deterministic: one thread gives the same bits as two.
        MergeBuffers one_thread = untouched;
        {
            const ScopedNumThreads threads(1);
            ASSERT_TRUE(merge_on_cpu(c.params, one_thread));
        }
        EXPECT_TRUE(same_output_bytes(one_thread, b)) << "1 and 2 threads gave different bits";
        if (HasFailure()) return;  // one failing configuration says enough
    }
}

INSTANTIATE_TEST_SUITE_P(Merge, MergeCpu,
                         ::testing::Combine(::testing::ValuesIn(kModes), ::testing::ValuesIn(kOrders),
                                            ::testing::ValuesIn(kCombos)),
                         grid_name);
INSTANTIATE_TEST_SUITE_P(MergeMixed, MergeCpu,
                         ::testing::Combine(::testing::ValuesIn(kMixedModes), ::testing::ValuesIn(kOrders),
                                            ::testing::ValuesIn(kMixedCombos)),
                         grid_name);

// ---- tk_merge_output_tokens against the contract's clamp -------------------------------------------

TEST(MergeOutputTokens, MatchesClamp) {
    for (int32_t threshold = 0; threshold < 2; ++threshold)
        for (int protect = 0; protect < 4; ++protect)
            for (int64_t n = 0; n <= 41; ++n)
                for (int32_t r = 0; r <= 25; ++r) {
                    tk_merge_params p =
                        merge_params(r, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, protect & 1, protect >> 1);
                    p.use_threshold = threshold;
                    int64_t effective_r = -1;
                    int64_t rows = -1;
                    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, n, &effective_r, &rows)));
                    const int64_t want = reference_effective_r(p, n);
                    ASSERT_EQ(effective_r, want) << describe(p) << " N=" << n;
                    ASSERT_EQ(rows, threshold ? n : n - want) << describe(p) << " N=" << n;
                }
    // Spot values of ToMe's clamp written out: (N - protected) / 2, none without a candidate.
    int64_t effective_r = 0;
    int64_t rows = 0;
    tk_merge_params p = merge_params(100);
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 197, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 98);
    EXPECT_EQ(rows, 99);
    p.protect_first = 1;
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 197, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 98);
    p.protect_second = 1;
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 198, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 98);
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 3, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 0) << "token 1 is the only destination and it is protected";
    p = merge_params(8, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, 0, 1);
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 4, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 1);
    EXPECT_EQ(rows, 3);
    ASSERT_TRUE(ok(tk_merge_output_tokens(&p, 0, &effective_r, &rows)));
    EXPECT_EQ(effective_r, 0);
    EXPECT_EQ(rows, 0);
}

// ---- Hand-worked examples (they pin the reference as much as the library) ---------------------------

// Unit vectors at angles in degrees in a 2-channel f32 metric: cos(a, b) = cos of the angle between.
HostArray angles_metric(const std::vector<std::vector<double>>& degrees) {
    const auto B = static_cast<int64_t>(degrees.size());
    const auto N = static_cast<int64_t>(degrees[0].size());
    HostArray m(TK_DTYPE_F32, {B, N, 2});
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < N; ++i) {
            const double a = degrees[static_cast<size_t>(b)][static_cast<size_t>(i)] * kPi / 180.0;
            m.set(b, i, 0, std::cos(a));
            m.set(b, i, 1, std::sin(a));
        }
    return m;
}

struct SmallMerge {
    std::vector<double> out;         // [N'] (B = 1, C = 1)
    std::vector<double> out_size;    // [N']
    std::vector<double> source_map;  // [N]
};

// Merges a B = 1, C = 1 example on the CPU and checks that the reference agrees with the library.
SmallMerge small_merge(const tk_merge_params& p, const HostArray& metric, const std::vector<double>& x,
                       const std::vector<double>& size) {
    const int64_t N = metric.shape()[1];
    MergeBuffers b;
    b.metric = metric;
    b.x = HostArray(TK_DTYPE_F32, {1, N, 1});
    for (int64_t i = 0; i < N; ++i) b.x.set(0, i, 0, x[static_cast<size_t>(i)]);
    b.with_size = !size.empty();
    b.size = HostArray(TK_DTYPE_F32, {1, N});
    for (int64_t i = 0; i < N && b.with_size; ++i) b.size.set(0, i, 0, size[static_cast<size_t>(i)]);
    const int64_t rows = reference_output_tokens(p, N);
    b.out = HostArray(TK_DTYPE_F32, {1, rows, 1});
    b.out_size = HostArray(TK_DTYPE_F32, {1, rows});
    b.source_map = HostArray(TK_DTYPE_I32, {1, N});
    b.merge_count = HostArray(TK_DTYPE_I32, {1});
    b.with_merge_count = true;
    EXPECT_TRUE(merge_on_cpu(p, b));
    const MergeInputs in = read_inputs(b);
    EXPECT_TRUE(matches_reference(b, reference_merge(p, in, reference_match(p, in))));
    return {b.out.values(), b.out_size.values(), b.source_map.values()};
}

using V = std::vector<double>;

// Tokens at 0, 50, 100, 103, 200 and 170 degrees: sources 0, 2, 4 and destinations 1, 3, 5. Source 2
// is closest to 3 (cos 3 deg), 4 to 5 (cos 30), 0 to 1 (cos 50): ranking 2, 4, 0.
TEST(MergeHandWorked, FixedROrdersAndModes) {
    const HostArray metric = angles_metric({{0, 50, 100, 103, 200, 170}});
    const V x = {0, 10, 20, 30, 40, 50};
    const V size = {1, 2, 3, 1, 1, 1};
    {
        SCOPED_TRACE("weighted mean, positional, r = 1: source 2 into 3");
        const SmallMerge m = small_merge(merge_params(1), metric, x, size);
        EXPECT_EQ(m.out, (V{0, 10, (3 * 20 + 1 * 30) / 4.0, 40, 50}));
        EXPECT_EQ(m.out_size, (V{1, 2, 4, 1, 1}));
        EXPECT_EQ(m.source_map, (V{0, 1, 2, 2, 3, 4}));
    }
    {
        SCOPED_TRACE("ToMe order, r = 1: unmerged sources by descending best (4, 0), then destinations");
        const SmallMerge m = small_merge(merge_params(1, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_TOME), metric, x, {});
        EXPECT_EQ(m.out, (V{40, 0, 10, 25, 50}));
        EXPECT_EQ(m.source_map, (V{1, 2, 3, 3, 0, 4}));
    }
    {
        SCOPED_TRACE("ToMe order, r = 2, sum: 2 into 3, 4 into 5");
        const SmallMerge m = small_merge(merge_params(2, TK_MERGE_SUM, TK_MERGE_ORDER_TOME), metric, x, size);
        EXPECT_EQ(m.out, (V{0, 10, 50, 90}));
        EXPECT_EQ(m.out_size, (V{1, 2, 4, 2}));
        EXPECT_EQ(m.source_map, (V{0, 1, 2, 2, 3, 3}));
    }
    {
        SCOPED_TRACE("protect_second, ToMe order: [unm[0], dst[0], unm[1:], dst[1:]] = tokens 4, 1, 0, 3, 5");
        // Token 1 is no candidate: source 0 now goes to 3 (cos 103), still ranked last.
        const SmallMerge m = small_merge(merge_params(1, TK_MERGE_MEAN, TK_MERGE_ORDER_TOME, 0, 1), metric, x, {});
        EXPECT_EQ(m.out, (V{40, 10, 0, 25, 50}));
        EXPECT_EQ(m.source_map, (V{2, 1, 3, 3, 0, 4}));
    }
    {
        SCOPED_TRACE("both protected, ToMe order: unmerged sorted back (0, 4), then 1; tokens 0, 1, 4, 3, 5");
        const SmallMerge m = small_merge(merge_params(1, TK_MERGE_AMAX, TK_MERGE_ORDER_TOME, 1, 1), metric, x, {});
        EXPECT_EQ(m.out, (V{0, 10, 40, 30, 50}));
        EXPECT_EQ(m.source_map, (V{0, 1, 3, 3, 2, 4}));
    }
    {
        SCOPED_TRACE("amax propagates NaN from a merged source and from a destination");
        const double nan = std::numeric_limits<double>::quiet_NaN();
        const SmallMerge m = small_merge(merge_params(2, TK_MERGE_AMAX), metric, {0, 10, nan, 30, 40, nan}, {});
        ASSERT_EQ(m.out.size(), 4u);
        EXPECT_EQ(m.out[0], 0);
        EXPECT_EQ(m.out[1], 10);
        EXPECT_TRUE(std::isnan(m.out[2])) << m.out[2];
        EXPECT_TRUE(std::isnan(m.out[3])) << m.out[3];
    }
    {
        SCOPED_TRACE("protect_first, ToMe order, r = 2: sources 2 and 4 merge; 0 first, then destinations");
        const SmallMerge m = small_merge(merge_params(2, TK_MERGE_DROP, TK_MERGE_ORDER_TOME, 1, 0), metric, x, size);
        EXPECT_EQ(m.out, (V{0, 10, 30, 50}));
        EXPECT_EQ(m.out_size, (V{1, 2, 1, 1}));
        EXPECT_EQ(m.source_map, (V{0, 1, 2, 2, 3, 3}));
    }
}

// ---- Threshold mode -------------------------------------------------------------------------------------

struct MatchOut {
    std::vector<double> dst;
    std::vector<double> best;
};

MatchOut match_on_cpu(const tk_merge_params& p, const HostArray& metric);

// Destinations at 0, 90, 180, 270 degrees; source s sits offset[s] degrees past destination s. With
// threshold cos 30 deg and a cap of 3, item 0 merges none, item 1 two (offsets 10, 20), item 2 hits
// the cap.
TEST(MergeThreshold, CountsPerItemAndZeroPadding) {
    const double offsets[3][4] = {{40, 41, 42, 43}, {10, 35, 20, 44}, {1, 2, 3, 4}};
    std::vector<std::vector<double>> degrees(3, std::vector<double>(8));
    for (int b = 0; b < 3; ++b)
        for (int s = 0; s < 4; ++s) {
            degrees[b][2 * s] = 90.0 * s + offsets[b][s];
            degrees[b][2 * s + 1] = 90.0 * s;
        }
    for (tk_merge_order order : kOrders)
        for (tk_merge_mode mode : kModes) {
            tk_merge_params p = merge_params(3, mode, order);
            p.use_threshold = 1;
            p.threshold = static_cast<float>(std::cos(30.0 * kPi / 180.0));
            SCOPED_TRACE(describe(p));
            MergeBuffers b;
            b.metric = angles_metric(degrees);
            b.x = HostArray(TK_DTYPE_F16, {3, 8, 4}, ArrayLayout{1, false, 1});
            std::mt19937_64 g(seed_from_name("CountsPerItemAndZeroPadding"));
            fill_uniform_24_bits(b.x, g, -1.5, 2.5);
            b.with_size = true;
            b.size = HostArray(TK_DTYPE_F32, {3, 8});
            for (int64_t i = 0; i < 3; ++i)
                for (int64_t t = 0; t < 8; ++t) b.size.set(i, t, 0, static_cast<double>(1 + (i + t) % 3));
            b.out = HostArray(TK_DTYPE_F16, {3, 8, 4});
            b.out_size = HostArray(TK_DTYPE_F32, {3, 8});
            b.source_map = HostArray(TK_DTYPE_I32, {3, 8});
            b.merge_count = HostArray(TK_DTYPE_I32, {3});
            b.with_merge_count = true;
            for (HostArray* out : {&b.out, &b.out_size, &b.source_map, &b.merge_count}) out->fill_bytes(0xA5);
            ASSERT_TRUE(merge_on_cpu(p, b));
            EXPECT_EQ(b.merge_count.values(), (V{0, 2, 3}));
            for (int64_t i = 0; i < 3; ++i) {
                const auto count = static_cast<int64_t>(b.merge_count.get(i));
                for (int64_t k = 8 - count; k < 8; ++k) {
                    EXPECT_EQ(b.out_size.get(i, k), 0.0) << "padding row " << k << " of item " << i;
                    for (int64_t c = 0; c < 4; ++c)
                        EXPECT_EQ(b.out.get(i, k, c), 0.0) << "padding row " << k << " of item " << i;
                }
            }
            const MergeInputs in = read_inputs(b);
            EXPECT_TRUE(matches_reference(b, reference_merge(p, in, reference_match(p, in))));
            EXPECT_TRUE(unmerge_round_trip(b, b.source_map, ArrayLayout{}));

            // Strict: a threshold equal to the library's own score of item 1's second source (offset
            // 20 deg) leaves only the offset-10 source above it.
            const MatchOut m = match_on_cpu(p, b.metric);
            p.threshold = static_cast<float>(m.best[4 + 2]);
            MergeBuffers strict = b;
            ASSERT_TRUE(merge_on_cpu(p, strict));
            EXPECT_EQ(strict.merge_count.values(), (V{0, 1, 3}));
        }
}

// ---- Ties, NaN and the cosine clamp ---------------------------------------------------------------------

MergeBuffers buffers_for_metric(const HostArray& metric, int64_t channels, const tk_merge_params& p) {
    MergeBuffers b;
    b.metric = metric;
    const int64_t B = metric.shape()[0];
    const int64_t N = metric.shape()[1];
    b.x = HostArray(TK_DTYPE_F32, {B, N, channels});
    std::mt19937_64 g(seed_from_name("buffers_for_metric") + static_cast<uint64_t>(N));
    fill_uniform_24_bits(b.x, g, -1.5, 2.5);
    const int64_t rows = reference_output_tokens(p, N);
    b.out = HostArray(TK_DTYPE_F32, {B, rows, channels});
    b.out_size = HostArray(TK_DTYPE_F32, {B, rows});
    b.source_map = HostArray(TK_DTYPE_I32, {B, N});
    b.merge_count = HostArray(TK_DTYPE_I32, {B});
    b.with_merge_count = true;
    for (HostArray* out : {&b.out, &b.out_size, &b.source_map, &b.merge_count}) out->fill_bytes(0xA5);
    return b;
}

HostArray rows_metric(const std::vector<std::vector<double>>& rows) {
    const auto N = static_cast<int64_t>(rows.size());
    const auto Cm = static_cast<int64_t>(rows[0].size());
    HostArray m(TK_DTYPE_F32, {1, N, Cm});
    for (int64_t i = 0; i < N; ++i)
        for (int64_t c = 0; c < Cm; ++c) m.set(0, i, c, rows[static_cast<size_t>(i)][static_cast<size_t>(c)]);
    return m;
}

MatchOut match_on_cpu(const tk_merge_params& p, const HostArray& metric) {
    const int64_t B = metric.shape()[0];
    const int64_t S = (metric.shape()[1] + 1) / 2;
    HostArray dst(TK_DTYPE_I32, {B, S});
    HostArray best(TK_DTYPE_F32, {B, S});
    const tk_tensor m = metric.desc();
    const tk_tensor d = dst.desc();
    const tk_tensor s = best.desc();
    EXPECT_TRUE(ok(tk_merge_match(&p, &m, &d, &s, nullptr, 0, nullptr)));
    return {dst.values(), best.values()};
}

// Tokens 1 and 3 hold the same metric row: exact ties in every arithmetic, so the lower destination
// must win; sources 0 and 2 are duplicates too, so the lower source must merge first.
TEST(MergeTies, LowerDestinationAndLowerSourceWin) {
    const HostArray metric =
        rows_metric({{1, 0.3, 0.1}, {1, 0, 0}, {1, 0.3, 0.1}, {1, 0, 0}, {0.5, 0.5, 1}, {0, 0, 1}});
    const MatchOut match = match_on_cpu(merge_params(0), metric);
    EXPECT_EQ(match.dst, (V{1, 1, 5}));
    EXPECT_EQ(match.best[0], match.best[1]) << "duplicated sources must score the same bits";
    EXPECT_GT(match.best[0], match.best[2]);
    // With token 1 no candidate, its twin 3 is the best destination.
    EXPECT_EQ(match_on_cpu(merge_params(0, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, 0, 1), metric).dst[0],
              3.0);

    for (tk_merge_order order : kOrders) {
        const tk_merge_params p = merge_params(1, TK_MERGE_SUM, order);
        SCOPED_TRACE(describe(p));
        MergeBuffers b = buffers_for_metric(metric, 3, p);
        ASSERT_TRUE(merge_on_cpu(p, b));
        const V map = b.source_map.values();
        // Source 0 merged into 1; source 2 (equal best) survived.
        EXPECT_EQ(map[0], map[1]);
        EXPECT_NE(map[2], map[1]);
        if (order == TK_MERGE_ORDER_TOME) {
            EXPECT_EQ(map, (V{2, 2, 0, 3, 1, 4})) << "unmerged in ranking order 2, 4, then destinations 1, 3, 5";
        }
        const MergeInputs in = read_inputs(b);
        EXPECT_TRUE(matches_reference(b, reference_merge(p, in, reference_match(p, in))));
    }
    {
        // Nothing merges in threshold mode (threshold above every best), in ToMe order: the unmerged
        // sources by descending best, equal bests by position.
        tk_merge_params p = merge_params(2, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_TOME);
        p.use_threshold = 1;
        p.threshold = 0.99f;
        MergeBuffers b = buffers_for_metric(metric, 3, p);
        ASSERT_TRUE(merge_on_cpu(p, b));
        EXPECT_EQ(b.merge_count.get(0), 0);
        EXPECT_EQ(b.source_map.values(), (V{0, 3, 1, 4, 2, 5}));
        // Fixed r = 0 in ToMe order: ToMe returns x untouched, so the original order.
        const tk_merge_params fixed = merge_params(0, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_TOME);
        MergeBuffers untouched = buffers_for_metric(metric, 3, fixed);
        ASSERT_TRUE(merge_on_cpu(fixed, untouched));
        EXPECT_EQ(untouched.source_map.values(), (V{0, 1, 2, 3, 4, 5}));
        EXPECT_TRUE(untouched.out.values() == untouched.x.values()) << "x must come back untouched";
    }
}

// A zero metric row scores 0 against everything (|v| is clamped to 1e-12, no NaN), so its best is the
// first candidate; a row of norm 1e-13 is divided by 1e-12, so its cosine with a parallel unit row is 0.1.
TEST(MergeCosine, NormIsClampedTo1em12) {
    const HostArray metric = rows_metric({{0, 0}, {1, 0}, {1e-13, 0}, {0, 1}, {0.6, 0.8}});
    const MatchOut plain = match_on_cpu(merge_params(0), metric);
    EXPECT_EQ(plain.best[0], 0.0);
    EXPECT_EQ(plain.dst[0], 1.0);
    EXPECT_NEAR(plain.best[1], 0.1, 1e-6);
    EXPECT_EQ(plain.dst[1], 1.0);
    EXPECT_NEAR(plain.best[2], 0.8, 1e-6);
    EXPECT_EQ(plain.dst[2], 3.0);
    const MatchOut protected_second =
        match_on_cpu(merge_params(0, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, 1, 1), metric);
    EXPECT_EQ(protected_second.best[0], -kInf) << "protected source 0";
    EXPECT_EQ(protected_second.dst[1], 3.0);
    EXPECT_EQ(protected_second.best[1], 0.0);
}

// A source whose metric holds NaN scores NaN and ranks below every finite score and below -inf.
TEST(MergeNan, NanSourceRanksLast) {
    MergeConfig c;
    c.params = merge_params(1, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_TOME);
    c.tokens = 10;
    MatchResult match;
    MergeBuffers b = draw(c, seed_from_name("NanSourceRanksLast"), &match);
    b.metric.set(0, 4, 3, std::numeric_limits<double>::quiet_NaN());  // source 2
    const MatchOut m = match_on_cpu(c.params, b.metric);
    EXPECT_TRUE(std::isnan(m.best[2])) << m.best[2];
    // r stays within the finite sources (where a merged NaN source goes is not specified).
    for (int32_t protect_first : {0, 1}) {
        for (int32_t r : {1, 4 - protect_first}) {
            for (int32_t threshold : {0, 1}) {
                tk_merge_params p = c.params;
                p.r = r;
                p.protect_first = protect_first;
                p.use_threshold = threshold;
                p.threshold = -0.99f;  // every finite best is above
                SCOPED_TRACE(describe(p));
                MergeBuffers run = buffers_for_metric(b.metric, 5, p);
                run.x = b.x;
                ASSERT_TRUE(merge_on_cpu(p, run));
                const MergeInputs in = read_inputs(run);
                const MatchResult ref_match = reference_match(p, in);
                EXPECT_TRUE(matches_reference(run, reference_merge(p, in, ref_match)));
                if (!protect_first) {
                    // ToMe order: the NaN source is the last unmerged source, just before the 5 destinations.
                    EXPECT_EQ(run.source_map.get(0, 4), (5 - r) - 1);
                }
                if (threshold) {
                    EXPECT_EQ(run.merge_count.get(0), r);
                }
            }
        }
    }
}

// A destination whose metric holds NaN is never chosen, even by a source that would prefer it.
TEST(MergeNan, NanDestinationIsNeverChosen) {
    MergeConfig c;
    c.params = merge_params(3, TK_MERGE_MEAN, TK_MERGE_ORDER_TOME);
    c.tokens = 10;
    c.batch = 2;
    MatchResult match;
    MergeBuffers b = draw(c, seed_from_name("NanDestinationIsNeverChosen"), &match);
    // Token 3 becomes the favourite of source 1 (token 2) in item 0, then holds a NaN.
    for (int64_t k = 0; k < c.metric_channels; ++k) b.metric.set(0, 3, k, b.metric.get(0, 2, k));
    b.metric.set(0, 3, 1, std::numeric_limits<double>::quiet_NaN());
    const MatchOut m = match_on_cpu(c.params, b.metric);
    for (size_t s = 0; s < 5; ++s) {
        EXPECT_NE(m.dst[s], 3.0) << "source " << s << " chose the NaN destination";
        EXPECT_FALSE(std::isnan(m.best[s])) << "source " << s;
    }
    MergeBuffers run = buffers_for_metric(b.metric, 5, c.params);
    ASSERT_TRUE(merge_on_cpu(c.params, run));
    const MergeInputs in = read_inputs(run);
    const MatchResult ref = reference_match(c.params, in);
    if (well_separated(ref, c.batch, c.params)) {
        EXPECT_TRUE(matches_reference(run, reference_merge(c.params, in, ref)));
    }
    for (int64_t t = 0; t < 10; t += 2)
        if (run.source_map.get(0, t) == run.source_map.get(0, 3))
            ADD_FAILURE() << "token " << t << " merged into NaN token 3";
}

// protect_first with a NaN source and r reaching it: the NaN source ranks below the protected
// token's -inf, yet token 0 never becomes a source, so the NaN source merges and token 0 stays.
TEST(MergeNan, ProtectedTokenNeverMergesEvenBelowNan) {
    MergeConfig c;
    c.params = merge_params(4, TK_MERGE_SUM, TK_MERGE_ORDER_POSITIONAL, 1, 0);
    c.tokens = 10;
    MatchResult match;
    MergeBuffers b = draw(c, seed_from_name("ProtectedTokenNeverMergesEvenBelowNan"), &match);
    b.metric.set(0, 4, 0, std::numeric_limits<double>::quiet_NaN());  // source 2
    for (int32_t threshold : {0, 1}) {
        tk_merge_params p = c.params;
        p.use_threshold = threshold;
        p.threshold = -std::numeric_limits<float>::infinity();  // every finite best is above; NaN is not
        SCOPED_TRACE(describe(p));
        MergeBuffers run = buffers_for_metric(b.metric, 5, p);
        ASSERT_TRUE(merge_on_cpu(p, run));
        EXPECT_EQ(run.source_map.get(0, 0), 0.0) << "the protected token 0 merged";
        EXPECT_EQ(run.merge_count.get(0), threshold ? 3 : 4);
        bool nan_source_merged = false;  // token 4 shares its row with a destination
        for (int64_t t = 1; t < 10; t += 2) nan_source_merged |= run.source_map.get(0, 4) == run.source_map.get(0, t);
        EXPECT_EQ(nan_source_merged, threshold == 0) << "fixed r = 4 must merge the NaN source; threshold mode never";
    }
}

// ---- Tiny and empty shapes -----------------------------------------------------------------------------

TEST(MergeShapes, TinyN) {
    for (int64_t tokens : {1, 2, 3, 4})
        for (int protect = 0; protect < 4; ++protect)
            for (tk_merge_mode mode : kModes)
                for (tk_merge_order order : kOrders)
                    for (int32_t threshold : {0, 1}) {
                        MergeConfig c;
                        c.params = merge_params(5, mode, order, protect & 1, protect >> 1);
                        c.params.use_threshold = threshold;
                        c.batch = 2;
                        c.tokens = tokens;
                        c.with_size = true;
                        SCOPED_TRACE(c.describe());
                        MatchResult match;
                        MergeBuffers b =
                            draw(c, seed_from_name("TinyN") + static_cast<uint64_t>(tokens * 100 + protect), &match);
                        ASSERT_TRUE(merge_on_cpu(c.params, b));
                        EXPECT_TRUE(matches_reference(b, reference_merge(c.params, read_inputs(b), match)));
                        EXPECT_TRUE(match_matches_reference(c.params, b, match, false));
                        EXPECT_TRUE(unmerge_round_trip(b, b.source_map, ArrayLayout{}));
                    }
}

// N = 0 with B > 0 is a valid call: nothing to merge, counts are zero; B = 0 writes nothing.
TEST(MergeShapes, EmptyTokensAndEmptyBatch) {
    for (int32_t threshold : {0, 1}) {
        tk_merge_params p = merge_params(3);
        p.use_threshold = threshold;
        SCOPED_TRACE(describe(p));
        HostArray metric(TK_DTYPE_F32, {2, 0, 4});
        HostArray x(TK_DTYPE_BF16, {2, 0, 3});
        HostArray out(TK_DTYPE_BF16, {2, 0, 3});
        HostArray out_size(TK_DTYPE_F32, {2, 0});
        HostArray map(TK_DTYPE_I32, {2, 0});
        HostArray count(TK_DTYPE_I32, {2});
        count.fill_bytes(0xA5);
        const tk_tensor d[] = {metric.desc(), x.desc(), out.desc(), out_size.desc(), map.desc(), count.desc()};
        ASSERT_TRUE(ok(tk_merge(&p, &d[0], &d[1], nullptr, &d[2], &d[3], &d[4], &d[5], nullptr, 0, nullptr)));
        EXPECT_EQ(count.values(), (V{0, 0}));
        HostArray dst(TK_DTYPE_I32, {2, 0});
        HostArray best(TK_DTYPE_F32, {2, 0});
        const tk_tensor dd = dst.desc();
        const tk_tensor bd = best.desc();
        EXPECT_TRUE(ok(tk_merge_match(&p, &d[0], &dd, &bd, nullptr, 0, nullptr)));
        HostArray back(TK_DTYPE_BF16, {2, 0, 3});
        const tk_tensor back_d = back.desc();
        EXPECT_TRUE(ok(tk_unmerge(&d[2], &d[4], &back_d, nullptr)));
    }
    {
        const tk_merge_params p = merge_params(2);
        HostArray metric(TK_DTYPE_F32, {0, 6, 4});
        HostArray x(TK_DTYPE_F32, {0, 6, 3});
        HostArray out(TK_DTYPE_F32, {0, 4, 3});
        HostArray count(TK_DTYPE_I32, {0});
        tk_tensor d[] = {metric.desc(), x.desc(), out.desc(), count.desc()};
        for (tk_tensor& t : d) t.data = nullptr;
        EXPECT_TRUE(ok(tk_merge(&p, &d[0], &d[1], nullptr, &d[2], nullptr, nullptr, &d[3], nullptr, 0, nullptr)));
    }
}

// In fixed mode out_size, source_map and merge_count may be NULL; out is the same without them.
TEST(MergeOptional, OutputsMayBeNull) {
    for (tk_merge_order order : kOrders) {
        MergeConfig c;
        c.params = merge_params(4, TK_MERGE_WEIGHTED_MEAN, order, 1, 0);
        c.batch = 2;
        c.tokens = 12;
        c.with_size = true;
        SCOPED_TRACE(c.describe());
        MatchResult match;
        MergeBuffers b = draw(c, seed_from_name("OutputsMayBeNull"), &match);
        MergeBuffers bare = b;
        ASSERT_TRUE(merge_on_cpu(c.params, b));
        const MergeDescs d = host_descs(bare);
        ASSERT_TRUE(
            ok(tk_merge(&c.params, &d.metric, &d.x, &d.size, &d.out, nullptr, nullptr, nullptr, nullptr, 0, nullptr)));
        EXPECT_TRUE(bare.out.bytes() == b.out.bytes());
        // A workspace is not needed on the CPU (size 0) but may be passed.
        uint64_t bytes = 99;
        ASSERT_TRUE(ok(tk_merge_workspace_size(&c.params, &d.metric, &d.x, &bytes)));
        EXPECT_EQ(bytes, 0u);
        std::vector<uint8_t> workspace(64);
        MergeBuffers with_workspace = bare;
        ASSERT_TRUE(
            ok(call_merge(c.params, with_workspace, host_descs(with_workspace), workspace.data(), workspace.size())));
        EXPECT_TRUE(same_output_bytes(with_workspace, b));
    }
}

// ---- Determinism and unmerge at a realistic size --------------------------------------------------------

// ViT-L/14 at 336 px: 577 tokens with a class token. Random inputs of this size hold near-ties, so the
// indices are checked for consistency with the library's own match (the merge step of the reference
// applied to tk_merge_match's scores) and the bits for determinism.
TEST(MergeDeterminism, BitIdenticalAcrossRunsAndThreads) {
    for (tk_dtype dtype : {TK_DTYPE_F32, TK_DTYPE_BF16})
        for (tk_merge_order order : kOrders) {
            MergeConfig c;
            c.params = merge_params(150, TK_MERGE_WEIGHTED_MEAN, order, 1, 0);
            c.batch = 2;
            c.tokens = 577;
            c.metric_channels = 64;
            c.channels = 96;
            c.metric_dtype = dtype;
            c.x_dtype = dtype;
            c.with_size = true;
            SCOPED_TRACE(c.describe());
            MergeBuffers b = make_buffers(c);
            std::mt19937_64 g(seed_from_name("BitIdenticalAcrossRunsAndThreads"));
            fill_uniform_24_bits(b.x, g, -1.5, 2.5);
            fill_uniform_24_bits(b.metric, g, -1.0, 1.0);
            for (int64_t i = 0; i < c.batch; ++i)
                for (int64_t t = 0; t < c.tokens; ++t) b.size.set(i, t, 0, static_cast<double>(1 + g() % 3));
            MergeBuffers again = b;
            MergeBuffers one_thread = b;
            {
                const ScopedNumThreads threads(2);
                ASSERT_TRUE(merge_on_cpu(c.params, b));
                ASSERT_TRUE(merge_on_cpu(c.params, again));
            }
            {
                const ScopedNumThreads threads(1);
                ASSERT_TRUE(merge_on_cpu(c.params, one_thread));
            }
            EXPECT_TRUE(same_output_bytes(again, b)) << "two identical calls gave different bits";
            EXPECT_TRUE(same_output_bytes(one_thread, b)) << "1 and 2 threads gave different bits";

            const MatchOut m = match_on_cpu(c.params, b.metric);
            MatchResult library_match;
            library_match.sources = (c.tokens + 1) / 2;
            for (double v : m.dst) library_match.dst.push_back(static_cast<int64_t>(v));
            library_match.best = m.best;
            library_match.dst[0] = library_match.dst[library_match.sources] = -1;  // protected: no destination
            EXPECT_TRUE(matches_reference(b, reference_merge(c.params, read_inputs(b), library_match)));

            // Unmerge with i32 and i64 maps into a strided output, from a strided y.
            HostArray map64(TK_DTYPE_I64, {c.batch, c.tokens}, ArrayLayout{1, false, 0});
            for (int64_t i = 0; i < c.batch; ++i)
                for (int64_t t = 0; t < c.tokens; ++t) map64.set(i, t, 0, b.source_map.get(i, t));
            EXPECT_TRUE(unmerge_round_trip(b, b.source_map, ArrayLayout{5, true, 1}));
            EXPECT_TRUE(unmerge_round_trip(b, map64, ArrayLayout{0, false, 1}));
        }
}

// tk_unmerge on its own: any valid map (not only a merge's), both index types, y of every dtype.
TEST(MergeUnmerge, GathersRowsForAnyMap) {
    for (tk_dtype dtype : {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16})
        for (tk_dtype index : {TK_DTYPE_I32, TK_DTYPE_I64}) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + (index == TK_DTYPE_I32 ? " i32" : " i64"));
            MergeBuffers b;
            b.x = HostArray(dtype, {3, 9, 4});
            b.out = HostArray(dtype, {3, 5, 4}, ArrayLayout{2, true, 1});
            b.out.fill_gaps_with_nan();
            std::mt19937_64 g(seed_from_name("GathersRowsForAnyMap"));
            fill_uniform_24_bits(b.out, g, -2, 2);
            HostArray map(index, {3, 9}, ArrayLayout{1, true, 0});
            for (int64_t i = 0; i < 3; ++i)
                for (int64_t t = 0; t < 9; ++t) map.set(i, t, 0, static_cast<double>(g() % 5));
            EXPECT_TRUE(unmerge_round_trip(b, map, ArrayLayout{1, false, 1}));
        }
}

// ---- CUDA against CPU -------------------------------------------------------------------------------------

// Device copies of host arrays: the whole backing buffers, gaps included.
class DeviceArrays {
public:
    explicit DeviceArrays(tk_stream stream) : stream_(stream) {}
    tk_tensor add(const HostArray& a) {
        buffers_.push_back(std::make_unique<DeviceBuffer>(a.bytes().size()));
        EXPECT_EQ(tk_cuda_memcpy_async(buffers_.back()->get(), a.bytes().data(), a.bytes().size(), stream_),
                  TK_STATUS_OK)
            << tk_last_error();
        return a.device_desc(buffers_.back()->get(), 0);
    }
    void copy_back(const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) -
                           (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream_), TK_STATUS_OK)
            << tk_last_error();
    }

private:
    tk_stream stream_;
    std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

enum class Workspace { None, Caller };

// Runs tk_merge (and tk_merge_match into dst/best) on CUDA device 0 and copies the outputs into b.
::testing::AssertionResult merge_on_cuda(const tk_merge_params& p, MergeBuffers& b, Workspace workspace,
                                         tk_stream stream, HostArray* dst = nullptr, HostArray* best = nullptr) {
    DeviceArrays dev(stream);
    MergeDescs d;
    d.x = dev.add(b.x);
    d.metric = b.same_tensor ? d.x : dev.add(b.metric);
    d.size = dev.add(b.size);
    d.out = dev.add(b.out);
    d.out_size = dev.add(b.out_size);
    d.source_map = dev.add(b.source_map);
    d.merge_count = dev.add(b.merge_count);
    uint64_t bytes = 0;
    ::testing::AssertionResult status = ok(tk_merge_workspace_size(&p, &d.metric, &d.x, &bytes));
    if (!status) return status << " (tk_merge_workspace_size)";
    std::unique_ptr<DeviceBuffer> scratch;
    if (workspace == Workspace::Caller && bytes > 0) scratch = std::make_unique<DeviceBuffer>(bytes);
    void* ws = scratch ? scratch->get() : nullptr;
    const uint64_t ws_bytes = scratch ? bytes : 0;
    status = ok(call_merge(p, b, d, ws, ws_bytes, stream));
    if (!status) return status << " (tk_merge on CUDA)";
    if (dst != nullptr) {
        const tk_tensor dst_d = dev.add(*dst);
        const tk_tensor best_d = dev.add(*best);
        status = ok(tk_merge_match(&p, &d.metric, &dst_d, &best_d, ws, ws_bytes, stream));
        if (!status) return status << " (tk_merge_match on CUDA)";
        dev.copy_back(dst_d, *dst);
        dev.copy_back(best_d, *best);
    }
    dev.copy_back(d.out, b.out);
    dev.copy_back(d.out_size, b.out_size);
    dev.copy_back(d.source_map, b.source_map);
    dev.copy_back(d.merge_count, b.merge_count);
    if (tk_cuda_stream_synchronize(stream) != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_last_error();
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult unmerge_on_cuda(const HostArray& y, const HostArray& map, HostArray& out, tk_stream stream) {
    DeviceArrays dev(stream);
    const tk_tensor yd = dev.add(y);
    const tk_tensor md = dev.add(map);
    const tk_tensor od = dev.add(out);
    ::testing::AssertionResult status = ok(tk_unmerge(&yd, &md, &od, stream));
    if (!status) return status << " (tk_unmerge on CUDA)";
    dev.copy_back(od, out);
    if (tk_cuda_stream_synchronize(stream) != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_last_error();
    return ::testing::AssertionSuccess();
}

class MergeCuda : public ::testing::TestWithParam<GridParam> {
protected:
    void SetUp() override {
        const std::string why = cuda_unavailable_reason();
        if (!why.empty()) GTEST_SKIP() << why;
    }
};

TEST_P(MergeCuda, MatchesCpuAndReference) {
    const CudaStream stream;
    // Reduced scale: 4 of the 128 configurations, one per protection choice, with an N, r, B and
    // threshold choice that differs between instances (the low bits of a configuration's index), so
    // that the family covers them all.
    const int64_t offset = static_cast<int64_t>(seed_from_name(grid_name({GetParam(), 0})) % 32);
    int64_t index = 0;
    for (MergeConfig c : grid_configs(GetParam())) {
        const int64_t case_index = index++;
        if (!runs_at_scale(case_index + offset, 32)) continue;
        SCOPED_TRACE(c.describe());
        MatchResult match;
        MergeBuffers cpu = draw(c, seed_from_name(grid_name({GetParam(), 0})) + static_cast<uint64_t>(case_index), &match);
        const MergeResult ref = reference_merge(c.params, read_inputs(cpu), match);
        const MergeBuffers initial = cpu;
        MergeBuffers cuda = cpu;
        MergeBuffers cuda_again = cpu;
        MergeBuffers cuda_default_stream = cpu;
        ASSERT_TRUE(merge_on_cpu(c.params, cpu));
        const int64_t S = (c.tokens + 1) / 2;
        HostArray dst(TK_DTYPE_I32, {c.batch, S});
        HostArray best(TK_DTYPE_F32, {c.batch, S});
        ASSERT_TRUE(merge_on_cuda(c.params, cuda, Workspace::Caller, stream.get(), &dst, &best));
        ASSERT_TRUE(merge_on_cuda(c.params, cuda_again, Workspace::None, stream.get()));
        ASSERT_TRUE(merge_on_cuda(c.params, cuda_default_stream, Workspace::None, nullptr));

        EXPECT_TRUE(matches_reference(cuda, ref));
        EXPECT_EQ(first_changed_gap(initial.out, cuda.out), "");
        EXPECT_EQ(first_changed_gap(initial.source_map, cuda.source_map), "");
        EXPECT_TRUE(cuda.source_map.bytes() == cpu.source_map.bytes()) << "CUDA and CPU source maps differ";
        // The contract fixes the float32 recipe, so the backends agree bit for bit (NaN-free inputs).
        EXPECT_TRUE(cuda.out.bytes() == cpu.out.bytes()) << "CUDA and CPU out differ";
        EXPECT_TRUE(cuda.out_size.bytes() == cpu.out_size.bytes()) << "CUDA and CPU out_size differ";
        EXPECT_TRUE(cuda.merge_count.bytes() == cpu.merge_count.bytes()) << "CUDA and CPU merge counts differ";
        EXPECT_TRUE(same_output_bytes(cuda_again, cuda))
            << "CUDA with and without a caller workspace gave different bits";
        EXPECT_TRUE(same_output_bytes(cuda_default_stream, cuda)) << "two CUDA calls gave different bits";
        for (int64_t i = 0; i < c.batch; ++i)
            for (int64_t s = 0; s < S; ++s) {
                const double want = match.best[static_cast<size_t>(i * S + s)];
                if (std::isinf(want)) {
                    EXPECT_EQ(best.get(i, s), want) << "source " << s << " of item " << i;
                } else {
                    EXPECT_EQ(dst.get(i, s), static_cast<double>(match.dst[static_cast<size_t>(i * S + s)]))
                        << "source " << s;
                    EXPECT_NEAR(best.get(i, s), want, kScoreTolerance) << "source " << s << " of item " << i;
                }
            }
        HostArray back_cpu(cpu.out.dtype(), {c.batch, c.tokens, cpu.out.shape()[2]}, ArrayLayout{1, true, 1});
        HostArray back_cuda = back_cpu;
        const tk_tensor y = cpu.out.desc();
        const tk_tensor m = cpu.source_map.desc();
        const tk_tensor o = back_cpu.desc();
        ASSERT_TRUE(ok(tk_unmerge(&y, &m, &o, nullptr)));
        ASSERT_TRUE(unmerge_on_cuda(cpu.out, cpu.source_map, back_cuda, stream.get()));
        EXPECT_TRUE(back_cpu.bytes() == back_cuda.bytes()) << "CUDA and CPU unmerge differ";
        if (HasFailure()) return;
    }
}

INSTANTIATE_TEST_SUITE_P(Merge, MergeCuda,
                         ::testing::Combine(::testing::ValuesIn(kModes), ::testing::ValuesIn(kOrders),
                                            ::testing::ValuesIn(kCombos)),
                         grid_name);
INSTANTIATE_TEST_SUITE_P(MergeMixed, MergeCuda,
                         ::testing::Combine(::testing::ValuesIn(kMixedModes), ::testing::ValuesIn(kOrders),
                                            ::testing::ValuesIn(kMixedCombos)),
                         grid_name);

// A finite metric row whose float32 sum of squares overflows (|x| above about 1.8e19) is the zero
// vector of the SPEC's cosine: it scores 0 with every row, on both backends, also where the dot product
// of two such rows overflows as well. Item 0: every destination and source token 2 are such rows, so
// every score is exactly 0 and every source takes its first candidate with best 0 (NaN scores would
// leave source token 2 without a winner, best -inf, ranked last); r = 2 then merges the two lowest
// sources. Item 1: only tokens 2 and 3. The CPU against the reference, CUDA against the CPU bit for bit.
TEST(MergeOverflow, RowWhoseSquaredNormOverflowsIsTheZeroVector) {
    for (tk_dtype dtype : {TK_DTYPE_F32, TK_DTYPE_BF16}) {
        SCOPED_TRACE(dtype_label(dtype));
        MergeConfig c;
        c.params = merge_params(2, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, 0, 0);
        c.batch = 2;
        c.tokens = 11;
        c.metric_channels = 6;
        c.channels = 16;  // whole 16-byte words: the merge and unmerge rows' vector paths on CUDA
        c.metric_dtype = dtype;
        c.x_dtype = dtype;
        MergeBuffers cpu = make_buffers(c);
        std::mt19937_64 g(seed_from_name("RowWhoseSquaredNormOverflowsIsTheZeroVector"));
        fill_uniform_24_bits(cpu.x, g, -1.5, 2.5);
        fill_uniform_24_bits(cpu.metric, g, -1.0, 1.0);
        const auto set_huge = [&](int64_t item, int64_t token) {
            for (int64_t k = 0; k < c.metric_channels; ++k) cpu.metric.set(item, token, k, k % 2 ? -3e19 : 3e19);
        };
        for (int64_t token = 1; token < c.tokens; token += 2) set_huge(0, token);
        for (int64_t item : {0, 1}) {
            set_huge(item, 2);
            set_huge(item, 3);
        }
        const MergeInputs in = read_inputs(cpu);
        const MatchResult match = reference_match(c.params, in);
        const int64_t S = match.sources;
        for (int64_t s = 0; s < S; ++s) {
            EXPECT_EQ(match.dst[static_cast<size_t>(s)], 1) << "the reference's zero vectors, source " << s;
            EXPECT_EQ(match.best[static_cast<size_t>(s)], 0.0) << "the reference's zero vectors, source " << s;
        }
        EXPECT_TRUE(match_matches_reference(c.params, cpu, match, false));
        MergeBuffers cuda = cpu;
        ASSERT_TRUE(merge_on_cpu(c.params, cpu));
        EXPECT_TRUE(matches_reference(cpu, reference_merge(c.params, in, match)));

        if (!cuda_unavailable_reason().empty()) continue;
        const CudaStream stream;
        HostArray dst(TK_DTYPE_I32, {c.batch, S});
        HostArray best(TK_DTYPE_F32, {c.batch, S});
        ASSERT_TRUE(merge_on_cuda(c.params, cuda, Workspace::None, stream.get(), &dst, &best));
        for (int64_t i = 0; i < c.batch; ++i)
            for (int64_t s = 0; s < S; ++s) {
                EXPECT_EQ(dst.get(i, s), static_cast<double>(match.dst[static_cast<size_t>(i * S + s)])) << "source " << s;
                if (i == 0) {
                    EXPECT_EQ(best.get(i, s), 0.0) << "source " << s << " of item 0";
                }
            }
        EXPECT_TRUE(cuda.out.bytes() == cpu.out.bytes()) << "CUDA and CPU out differ";
        EXPECT_TRUE(cuda.source_map.bytes() == cpu.source_map.bytes()) << "CUDA and CPU source maps differ";
        HostArray back_cpu(dtype, {c.batch, c.tokens, c.channels});
        HostArray back_cuda = back_cpu;
        const tk_tensor y = cpu.out.desc(), map = cpu.source_map.desc(), back = back_cpu.desc();
        ASSERT_TRUE(ok(tk_unmerge(&y, &map, &back, nullptr)));
        ASSERT_TRUE(unmerge_on_cuda(cpu.out, cpu.source_map, back_cuda, stream.get()));
        EXPECT_TRUE(back_cpu.bytes() == back_cuda.bytes()) << "CUDA and CPU unmerge differ";
    }
}

// Unmerge on CUDA bit for bit as on the CPU, in every dtype and index width, with rows of 5 channels
// (element copies) and of 16 (whole 16-byte words where aligned).
TEST(MergeCudaUnmerge, EveryDtypeAndIndexWidthAsOnTheCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name("EveryDtypeAndIndexWidthAsOnTheCpu"));
    for (tk_dtype dtype : {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16})
        for (tk_dtype index_dtype : {TK_DTYPE_I32, TK_DTYPE_I64})
            for (int64_t channels : {5, 16}) {
                SCOPED_TRACE(std::string(dtype_label(dtype)) + (index_dtype == TK_DTYPE_I64 ? " i64" : " i32") +
                             " C=" + std::to_string(channels));
                HostArray y(dtype, {2, 7, channels});
                fill_uniform_24_bits(y, g, -2.0, 2.0);
                HostArray map(index_dtype, {2, 11});
                for (int64_t b = 0; b < 2; ++b)
                    for (int64_t t = 0; t < 11; ++t) map.set(b, t, 0, static_cast<double>(g() % 7));
                HostArray cpu(dtype, {2, 11, channels});
                cpu.fill_bytes(0xA5);
                HostArray cuda = cpu;
                const tk_tensor yd = y.desc(), md = map.desc(), od = cpu.desc();
                ASSERT_TRUE(ok(tk_unmerge(&yd, &md, &od, nullptr)));
                ASSERT_TRUE(unmerge_on_cuda(y, map, cuda, stream.get()));
                EXPECT_TRUE(cuda.bytes() == cpu.bytes()) << "CUDA and CPU unmerge differ";
            }
}

// On CUDA an out-of-range unmerge index gives a zero row instead of an error.
TEST(MergeCudaUnmerge, OutOfRangeIndexGivesZeroRow) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    HostArray y(TK_DTYPE_F32, {1, 3, 2});
    for (int64_t k = 0; k < 3; ++k)
        for (int64_t c = 0; c < 2; ++c) y.set(0, k, c, 1 + k);
    HostArray map(TK_DTYPE_I64, {1, 4});
    const double rows[] = {0, 3, -1, 2};
    for (int64_t t = 0; t < 4; ++t) map.set(0, t, 0, rows[t]);
    HostArray out(TK_DTYPE_F32, {1, 4, 2});
    out.fill_bytes(0xA5);
    ASSERT_TRUE(unmerge_on_cuda(y, map, out, stream.get()));
    EXPECT_EQ(out.values(), (V{1, 1, 0, 0, 0, 0, 3, 3}));
}

// N = 100,000 tokens (far beyond the CPU's reach in a unit test): the CUDA match checked source by
// source against float64 on a sample, and the merge checked exactly against the reference's merge
// step applied to CUDA's own match. At reduced scale N = 3,001: 24 x 24 tiles of matching, and
// B * ceil(N / 2) = 3,002 sort keys, past CUB's single-tile radix sort (2,304 keys of 8 bytes with
// CUDA 11.8), so that its multi-tile onesweep sort runs too.
TEST(MergeCudaLarge, HundredThousandTokens) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    MergeConfig c;
    c.batch = 2;
    c.tokens = scaled(100000, 3001);
    c.params = merge_params(static_cast<int32_t>(c.tokens * 3 / 10), TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL, 1, 0);
    c.metric_channels = 16;
    c.channels = 16;  // whole 8-element words of f16 for the merged rows
    c.metric_dtype = TK_DTYPE_F16;
    c.x_dtype = TK_DTYPE_F16;
    c.with_size = true;
    for (int32_t threshold : {0, 1}) {
        c.params.use_threshold = threshold;
        c.params.threshold = 0.6f;
        SCOPED_TRACE(c.describe());
        MergeBuffers b = make_buffers(c);
        std::mt19937_64 g(seed_from_name("HundredThousandTokens"));
        fill_uniform_24_bits(b.x, g, -1.5, 2.5);
        fill_uniform_24_bits(b.metric, g, -1.0, 1.0);
        for (int64_t i = 0; i < c.batch; ++i)
            for (int64_t t = 0; t < c.tokens; ++t) b.size.set(i, t, 0, 1.0);
        const int64_t S = (c.tokens + 1) / 2;
        HostArray dst(TK_DTYPE_I32, {c.batch, S});
        HostArray best(TK_DTYPE_F32, {c.batch, S});
        const CudaStream stream;
        MergeBuffers again = b;
        ASSERT_TRUE(merge_on_cuda(c.params, b, Workspace::Caller, stream.get(), &dst, &best));
        ASSERT_TRUE(merge_on_cuda(c.params, again, Workspace::None, stream.get()));
        EXPECT_TRUE(same_output_bytes(again, b)) << "two CUDA calls gave different bits";

        const MergeInputs in = read_inputs(b);
        // Sampled sources against float64: the score of CUDA's destination is within float32 rounding
        // of the true best.
        for (int64_t i = 0; i < c.batch; ++i) {
            for (int64_t s = 1; s < S; s += scaled(997, 97)) {
                double na = 0;
                for (int64_t k = 0; k < c.metric_channels; ++k)
                    na += std::pow(in.metric[static_cast<size_t>((i * c.tokens + 2 * s) * c.metric_channels + k)], 2);
                double want = -kInf;
                double at_cuda_dst = -kInf;
                for (int64_t d = 0; d < c.tokens / 2; ++d) {
                    double dot = 0;
                    double nb = 0;
                    for (int64_t k = 0; k < c.metric_channels; ++k) {
                        const double va =
                            in.metric[static_cast<size_t>((i * c.tokens + 2 * s) * c.metric_channels + k)];
                        const double vb =
                            in.metric[static_cast<size_t>((i * c.tokens + 2 * d + 1) * c.metric_channels + k)];
                        dot += va * vb;
                        nb += vb * vb;
                    }
                    const double score = dot / (std::max(std::sqrt(na), 1e-12) * std::max(std::sqrt(nb), 1e-12));
                    want = std::max(want, score);
                    if (2 * d + 1 == static_cast<int64_t>(dst.get(i, s))) at_cuda_dst = score;
                }
                EXPECT_NEAR(best.get(i, s), want, kScoreTolerance) << "source " << s << " of item " << i;
                EXPECT_NEAR(at_cuda_dst, want, 2 * kScoreTolerance) << "source " << s << " of item " << i;
            }
        }
        MatchResult cuda_match;
        cuda_match.sources = S;
        for (double v : dst.values()) cuda_match.dst.push_back(static_cast<int64_t>(v));
        cuda_match.best = best.values();
        for (int64_t i = 0; i < c.batch; ++i) cuda_match.dst[static_cast<size_t>(i * S)] = -1;
        EXPECT_TRUE(matches_reference(b, reference_merge(c.params, in, cuda_match)));
    }
}

}  // namespace
}  // namespace tkt
