// Temporal redundancy (SPEC section 5): tk_temporal_similarity, tk_evs and tk_dycoke_ttm against the
// float64 reference on random inputs of awkward sizes, every float dtype and strided layouts; CUDA against
// the CPU, bit for bit, where a device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "support.hpp"
#include "temporal_reference.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

struct VideoCase {
    int64_t batch, frames, height, width, channels;
};

// Awkward sizes: odd frame and grid sizes, channels around and off the 16 lanes, T = 1, P = 1.
const VideoCase kCases[] = {
    {2, 5, 3, 7, 37}, {1, 1, 4, 4, 16}, {3, 9, 1, 1, 5}, {2, 16, 6, 5, 130}, {1, 7, 2, 3, 1}, {1, 4, 27, 27, 24},
};
const tk_dtype kDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};

std::string case_label(const VideoCase& c, tk_dtype dtype) {
    return std::string(dtype_label(dtype)) + "_B" + std::to_string(c.batch) + "_T" + std::to_string(c.frames) + "_H" +
           std::to_string(c.height) + "_W" + std::to_string(c.width) + "_C" + std::to_string(c.channels);
}

HostTensor make_video(const VideoCase& c, tk_dtype dtype, const Layout& layout, const std::string& name) {
    HostTensor x(dtype, {c.batch, c.frames, c.height, c.width, c.channels}, layout);
    x.fill_bytes(0xA5);
    x.fill_gaps_with_nan();
    x.fill_random(seed_from_name(name));
    return x;
}

// DyCoke's references: in each window of 4 frames, 2i+1 -> 2i and 4i+2 -> 4i; window starts have none.
std::vector<int32_t> dycoke_references(int64_t frames) {
    std::vector<int32_t> r(static_cast<size_t>(frames));
    for (int64_t t = 0; t < frames; ++t) r[static_cast<size_t>(t)] = static_cast<int32_t>(t % 2 == 1 ? t - 1 : (t % 4 == 2 ? t - 2 : -1));
    return r;
}

HostArray reference_tensor(const std::vector<int32_t>& r) {
    HostArray a(TK_DTYPE_I32, {static_cast<int64_t>(r.size())}, ArrayLayout{1, false, 0});
    for (size_t t = 0; t < r.size(); ++t) a.set(static_cast<int64_t>(t), 0, 0, r[t]);
    return a;
}

void expect_similarity(const std::vector<double>& expected, const HostArray& out, const std::string& label) {
    const std::vector<double> got = out.values();
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::isinf(expected[i])) {
            ASSERT_EQ(got[i], expected[i]) << label << " token " << i;
        } else {
            ASSERT_NEAR(got[i], expected[i], 2e-6 * std::sqrt(static_cast<double>(out.shape().size() + 64))) << label << " token " << i;
        }
    }
}

TEST(TemporalSimilarity, MatchesReferenceForEveryDtypeLayoutAndReference) {
    const Layout layouts[] = {Layout{}, Layout{3, 0, 2, false, 1}, Layout{1, 0, 1, true, 0}};
    for (const VideoCase& c : kCases)
        for (tk_dtype dtype : kDtypes)
            for (size_t l = 0; l < std::size(layouts); ++l)
                for (int dycoke = 0; dycoke < 2; ++dycoke) {
                    const std::string label = case_label(c, dtype) + "_layout" + std::to_string(l) + (dycoke ? "_dycoke" : "_previous");
                    SCOPED_TRACE(label);
                    const HostTensor x = make_video(c, dtype, layouts[l], label);
                    const std::vector<int32_t> refs = dycoke ? dycoke_references(c.frames) : std::vector<int32_t>{};
                    const HostArray reference = reference_tensor(refs);
                    HostArray out(TK_DTYPE_F32, {c.batch, c.frames, c.height * c.width}, ArrayLayout{2, false, 0});
                    out.fill_bytes(0x7F);
                    const HostArray before = out;
                    const tk_tensor x_desc = video_desc(x.desc());
                    const tk_tensor ref_desc = reference.desc();
                    const tk_tensor out_desc = out.desc();
                    ASSERT_EQ(tk_temporal_similarity(&x_desc, dycoke ? &ref_desc : nullptr, &out_desc, nullptr), TK_STATUS_OK)
                        << tk_last_error();
                    expect_similarity(reference_temporal_similarity(x, refs), out, label);
                    // The contract's float32 recipe, bit for bit, whichever vector variant this CPU runs.
                    const std::vector<float> exact = reference_temporal_similarity_f32(x, refs);
                    const std::vector<double> got = out.values();
                    for (size_t i = 0; i < exact.size(); ++i)
                        ASSERT_EQ(static_cast<float>(got[i]), exact[i]) << label << " token " << i;
                    EXPECT_EQ(first_changed_gap(before, out), "");
                }
}

TEST(TemporalSimilarity, ThreadCountChangesNoBit) {
    const VideoCase c{2, 11, 5, 9, 70};
    const HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, "threads");
    const tk_tensor x_desc = video_desc(x.desc());
    std::vector<std::vector<uint8_t>> results;
    for (int32_t threads : {1, 2, 3, 7}) {
        const ScopedNumThreads scoped(threads);
        HostArray out(TK_DTYPE_F32, {c.batch, c.frames, c.height * c.width});
        const tk_tensor out_desc = out.desc();
        ASSERT_EQ(tk_temporal_similarity(&x_desc, nullptr, &out_desc, nullptr), TK_STATUS_OK) << tk_last_error();
        results.push_back(out.bytes());
    }
    for (const auto& r : results) EXPECT_TRUE(r == results.front());
}

TEST(TemporalSimilarity, ZeroAndNanTokens) {
    // A zero token has cosine 0 with anything (each norm clamped); NaN propagates to its own score only.
    const VideoCase c{1, 3, 1, 3, 20};
    HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, "zero_nan");
    for (int64_t ch = 0; ch < c.channels; ++ch) x.set(0, 1, 0, 0, ch, 0.0f);
    x.set(0, 2, 0, 1, 7, std::numeric_limits<float>::quiet_NaN());
    HostArray out(TK_DTYPE_F32, {1, 3, 3});
    const tk_tensor x_desc = video_desc(x.desc());
    const tk_tensor out_desc = out.desc();
    ASSERT_EQ(tk_temporal_similarity(&x_desc, nullptr, &out_desc, nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(out.get(0, 1, 0), 0.0);  // frame 1, token 0 is zero
    EXPECT_EQ(out.get(0, 2, 0), 0.0);  // frame 2, token 0 against the zero token
    EXPECT_TRUE(std::isnan(out.get(0, 2, 1)));
    EXPECT_FALSE(std::isnan(out.get(0, 2, 2)));
    EXPECT_EQ(out.get(0, 0, 1), -std::numeric_limits<double>::infinity());
}

// ---- The video methods: EVS and DyCoke ---------------------------------------------------------------

// One method's C calls, with its rate (EVS's pruning_rate q, DyCoke's merging_ratio) and grid.
struct VideoMethod {
    const char* name;
    bool dycoke;

    int64_t retained(const VideoCase& c, double rate) const {
        int64_t k = -1;
        const tk_status status = dycoke ? tk_dycoke_retained_tokens(&dycoke_params(c, rate), c.frames, &k)
                                        : tk_evs_retained_tokens(&evs_params(c, rate), c.frames, &k);
        EXPECT_EQ(status, TK_STATUS_OK) << tk_last_error();
        return k;
    }
    uint64_t workspace_bytes(const VideoCase& c, double rate, const tk_tensor& x) const {
        uint64_t bytes = 0;
        const tk_status status = dycoke ? tk_dycoke_workspace_size(&dycoke_params(c, rate), &x, &bytes)
                                        : tk_evs_workspace_size(&evs_params(c, rate), &x, &bytes);
        EXPECT_EQ(status, TK_STATUS_OK) << tk_last_error();
        return bytes;
    }
    tk_status run(const VideoCase& c, double rate, const tk_tensor& x, const tk_tensor* out, const tk_tensor* indices,
                  const tk_tensor* positions, const tk_tensor* mask, void* workspace, uint64_t bytes, tk_stream stream) const {
        return dycoke ? tk_dycoke_ttm(&dycoke_params(c, rate), &x, out, indices, positions, mask, workspace, bytes, stream)
                      : tk_evs(&evs_params(c, rate), &x, out, indices, positions, mask, workspace, bytes, stream);
    }
    SelectionReference reference(const HostTensor& x, double rate) const {
        return dycoke ? reference_dycoke(x, rate) : reference_evs(x, rate);
    }

private:
    static const tk_evs_params& evs_params(const VideoCase& c, double q) {
        static thread_local tk_evs_params p;
        p = tk_evs_params{q, static_cast<int32_t>(c.height), static_cast<int32_t>(c.width)};
        return p;
    }
    static const tk_dycoke_params& dycoke_params(const VideoCase& c, double ratio) {
        static thread_local tk_dycoke_params p;
        p = tk_dycoke_params{ratio, static_cast<int32_t>(c.height), static_cast<int32_t>(c.width)};
        return p;
    }
};

const VideoMethod kEvs{"evs", false};
const VideoMethod kDyCoke{"dycoke", true};
const VideoMethod kMethods[] = {kEvs, kDyCoke};
// EVS's q and DyCoke's merging_ratio (0.7 is its default); 0 keeps everything, DyCoke's 1 keeps the
// window starts alone.
const double kEvsRates[] = {0.0, 0.3, 0.5, 0.75, 0.999};
const double kDyCokeRatios[] = {0.0, 0.3, 0.7, 0.95, 1.0};

std::vector<double> rates_of(const VideoMethod& m) {
    return m.dycoke ? std::vector<double>(std::begin(kDyCokeRatios), std::end(kDyCokeRatios))
                    : std::vector<double>(std::begin(kEvsRates), std::end(kEvsRates));
}

struct VideoOutputs {
    HostArray out, indices, positions, mask;
    VideoOutputs(const VideoCase& c, tk_dtype dtype, int64_t retained)
        : out(dtype, {c.batch, retained, c.channels}, ArrayLayout{3, false, 0}),
          indices(TK_DTYPE_I32, {c.batch, retained}, ArrayLayout{1, false, 0}),
          positions(TK_DTYPE_I32, {c.batch, retained, 3}, ArrayLayout{2, false, 0}),
          mask(TK_DTYPE_I32, {c.batch, c.frames * c.height * c.width}, ArrayLayout{1, true, 0}) {
        for (HostArray* a : {&out, &indices, &positions, &mask}) a->fill_bytes(0x5A);
    }
};

tk_status run_host(const VideoMethod& m, const VideoCase& c, double rate, const HostTensor& x, VideoOutputs& o,
                   bool with_workspace) {
    const tk_tensor x_desc = video_desc(x.desc());
    const tk_tensor out = o.out.desc(), indices = o.indices.desc(), positions = o.positions.desc(), mask = o.mask.desc();
    const uint64_t bytes = m.workspace_bytes(c, rate, x_desc);
    std::vector<uint8_t> workspace(with_workspace ? bytes : 0);
    return m.run(c, rate, x_desc, &out, &indices, &positions, &mask, with_workspace ? workspace.data() : nullptr,
                 with_workspace ? bytes : 0, nullptr);
}

// Our kept set equals the reference's, except that a token within rounding of its group's boundary may
// stand in for another one equally close (float32 against float64 values).
void expect_kept(const SelectionReference& ref, int64_t b, const std::vector<int64_t>& got, const std::string& label) {
    const std::vector<int64_t>& want = ref.kept[static_cast<size_t>(b)];
    ASSERT_EQ(got.size(), want.size()) << label;
    ASSERT_TRUE(std::is_sorted(got.begin(), got.end())) << label;
    if (got == want) return;
    std::vector<int64_t> differ;
    std::set_symmetric_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(differ));
    for (int64_t i : differ)
        EXPECT_NEAR(ref.value[static_cast<size_t>(b)][static_cast<size_t>(i)], ref.boundary[static_cast<size_t>(b)][static_cast<size_t>(i)], 1e-5)
            << label << ": item " << b << " token " << i << " is kept by one side only, away from the boundary";
}

void expect_selection(const SelectionReference& ref, const VideoCase& c, const HostTensor& x, const VideoOutputs& o,
                      const std::string& label) {
    const int64_t positions = c.height * c.width;
    for (int64_t b = 0; b < c.batch; ++b) {
        std::vector<int64_t> got;
        for (int64_t k = 0; k < ref.retained; ++k) got.push_back(static_cast<int64_t>(o.indices.get(b, k)));
        expect_kept(ref, b, got, label);
        std::vector<int32_t> mask(static_cast<size_t>(c.frames * positions), 0);
        for (int64_t k = 0; k < ref.retained; ++k) {
            const int64_t token = got[static_cast<size_t>(k)];
            const int64_t t = token / positions, h = token % positions / c.width, w = token % c.width;
            ASSERT_EQ(o.positions.get(b, k, 0), t) << label;
            ASSERT_EQ(o.positions.get(b, k, 1), h) << label;
            ASSERT_EQ(o.positions.get(b, k, 2), w) << label;
            for (int64_t ch = 0; ch < c.channels; ++ch) {
                const double want = x.get(b, t, h, w, ch), have = o.out.get(b, k, ch);
                ASSERT_TRUE(want == have || (std::isnan(want) && std::isnan(have))) << label << " row " << k;
            }
            mask[static_cast<size_t>(token)] = 1;
        }
        for (int64_t i = 0; i < c.frames * positions; ++i) ASSERT_EQ(o.mask.get(b, i), mask[static_cast<size_t>(i)]) << label;
    }
}

// Frame counts around DyCoke's windows of four: partial windows of 1 to 3 frames.
const VideoCase kWindowCases[] = {{2, 2, 3, 3, 17}, {1, 3, 2, 5, 16}, {1, 6, 4, 4, 33}, {2, 11, 3, 2, 8}};

TEST(VideoMethods, MatchReferenceForEveryDtypeAndRate) {
    const Layout layouts[] = {Layout{}, Layout{5, 0, 1, false, 1}};
    for (const VideoMethod& m : kMethods)
        for (const std::vector<VideoCase>& cases : {std::vector<VideoCase>(std::begin(kCases), std::end(kCases)),
                                                    std::vector<VideoCase>(std::begin(kWindowCases), std::end(kWindowCases))})
            for (const VideoCase& c : cases)
                for (tk_dtype dtype : kDtypes)
                    for (size_t l = 0; l < std::size(layouts); ++l)
                        for (double rate : rates_of(m)) {
                            const std::string label = std::string(m.name) + "_" + case_label(c, dtype) + "_layout" + std::to_string(l) +
                                                      "_rate" + std::to_string(rate);
                            SCOPED_TRACE(label);
                            const HostTensor x = make_video(c, dtype, layouts[l], label);
                            const SelectionReference ref = m.reference(x, rate);
                            ASSERT_EQ(m.retained(c, rate), ref.retained);
                            VideoOutputs o(c, dtype, ref.retained);
                            const VideoOutputs before = o;
                            ASSERT_EQ(run_host(m, c, rate, x, o, l == 1), TK_STATUS_OK) << tk_last_error();
                            expect_selection(ref, c, x, o, label);
                            EXPECT_EQ(first_changed_gap(before.out, o.out), "");
                            EXPECT_EQ(first_changed_gap(before.indices, o.indices), "");
                            EXPECT_EQ(first_changed_gap(before.positions, o.positions), "");
                            EXPECT_EQ(first_changed_gap(before.mask, o.mask), "");
                        }
}

TEST(VideoMethods, RetainedCountsAreThePublishedFormulas) {
    // EVS: max(P, int(T * P * (1 - q))); T = 1 and q = 0 keep everything, one token per frame, q near 1
    // keeps frame 0 alone.
    EXPECT_EQ(kEvs.retained({2, 1, 3, 5, 9}, 0.9), 15);
    EXPECT_EQ(kEvs.retained({1, 6, 2, 2, 8}, 0.0), 24);
    EXPECT_EQ(kEvs.retained({2, 12, 1, 1, 33}, 0.5), 6);
    EXPECT_EQ(kEvs.retained({1, 5, 4, 3, 17}, 0.99), 12);
    EXPECT_EQ(kEvs.retained({1, 64, 27, 27, 1}, 0.75), 11664);
    // DyCoke: 16 frames of LLaVA-OneVision's 14 x 14 at its default 0.7: 4 whole frames, 12 keeping
    // int(0.3 * 196) = 58 (0.30000000000000004 * 196 = 58.800000000000004).
    EXPECT_EQ(kDyCoke.retained({1, 16, 14, 14, 1}, 0.7), 4 * 196 + 12 * 58);
    EXPECT_EQ(kDyCoke.retained({1, 1, 14, 14, 1}, 0.7), 196);
    EXPECT_EQ(kDyCoke.retained({1, 5, 2, 2, 1}, 1.0), 8);  // frames 0 and 4
    EXPECT_EQ(kDyCoke.retained({1, 7, 3, 1, 1}, 0.0), 21);
}

TEST(VideoMethods, TiesGoToTheLowerPositionAndNanRanksLast) {
    // Every token the same vector: every compared token scores the same number, so the first ones in
    // position are kept. NaN: token 6 (frame 1, cell 0, its own NaN), 11 (frame 1, cell 5, against frame
    // 0's NaN cell) and 12 (frame 2, cell 0, against token 6 for EVS) score NaN and rank last.
    const VideoCase c{1, 4, 2, 3, 19};
    HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, "ties");
    for (int64_t t = 0; t < c.frames; ++t)
        for (int64_t h = 0; h < c.height; ++h)
            for (int64_t w = 0; w < c.width; ++w)
                for (int64_t ch = 0; ch < c.channels; ++ch) x.set(0, t, h, w, ch, x.get(0, 0, 0, 0, ch));
    x.set(0, 1, 0, 0, 3, std::numeric_limits<float>::quiet_NaN());
    x.set(0, 0, 1, 2, 0, std::numeric_limits<float>::quiet_NaN());
    {
        VideoOutputs o(c, TK_DTYPE_F32, 12);  // q = 0.5: frame 0, then 6 of the 15 finite scores
        ASSERT_EQ(run_host(kEvs, c, 0.5, x, o, false), TK_STATUS_OK) << tk_last_error();
        const std::vector<int64_t> want = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 13, 14};
        for (int64_t k = 0; k < 12; ++k) EXPECT_EQ(o.indices.get(0, k), want[static_cast<size_t>(k)]) << "EVS slot " << k;
    }
    {
        // DyCoke at 0.5 keeps 3 of 6 in frames 1 to 3. Frame 1: NaN at cells 0 and 5, so 1, 2, 3; frame 2
        // (against frame 0): cell 5 is NaN, so 12, 13, 14; frame 3 (against frame 2): all equal, 18, 19, 20.
        VideoOutputs o(c, TK_DTYPE_F32, 15);
        ASSERT_EQ(run_host(kDyCoke, c, 0.5, x, o, false), TK_STATUS_OK) << tk_last_error();
        const std::vector<int64_t> want = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 14, 18, 19, 20};
        for (int64_t k = 0; k < 15; ++k) EXPECT_EQ(o.indices.get(0, k), want[static_cast<size_t>(k)]) << "DyCoke slot " << k;
    }
}

TEST(VideoMethods, ThreadCountChangesNoBit) {
    const VideoCase c{2, 13, 4, 7, 40};
    const HostTensor x = make_video(c, TK_DTYPE_BF16, Layout{}, "video_threads");
    for (const VideoMethod& m : kMethods) {
        std::vector<std::vector<uint8_t>> results;
        for (int32_t threads : {1, 2, 5}) {
            const ScopedNumThreads scoped(threads);
            VideoOutputs o(c, TK_DTYPE_BF16, m.retained(c, 0.6));
            ASSERT_EQ(run_host(m, c, 0.6, x, o, false), TK_STATUS_OK) << tk_last_error();
            results.push_back(o.indices.bytes());
        }
        for (const auto& r : results) EXPECT_TRUE(r == results.front()) << m.name;
    }
}

TEST(VideoMethods, OutputsAreOptional) {
    const VideoCase c{2, 6, 3, 4, 21};
    const HostTensor x = make_video(c, TK_DTYPE_F16, Layout{}, "optional");
    const tk_tensor x_desc = video_desc(x.desc());
    for (const VideoMethod& m : kMethods) {
        const int64_t retained = m.retained(c, 0.4);
        VideoOutputs all(c, TK_DTYPE_F16, retained);
        ASSERT_EQ(run_host(m, c, 0.4, x, all, false), TK_STATUS_OK) << tk_last_error();
        // Each output alone equals the same output of the full call.
        VideoOutputs alone(c, TK_DTYPE_F16, retained);
        const tk_tensor out = alone.out.desc(), positions = alone.positions.desc(), mask = alone.mask.desc();
        ASSERT_EQ(m.run(c, 0.4, x_desc, &out, nullptr, nullptr, nullptr, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
        ASSERT_EQ(m.run(c, 0.4, x_desc, nullptr, nullptr, &positions, nullptr, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
        ASSERT_EQ(m.run(c, 0.4, x_desc, nullptr, nullptr, nullptr, &mask, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
        EXPECT_TRUE(alone.out.values() == all.out.values()) << m.name;
        EXPECT_TRUE(alone.positions.values() == all.positions.values()) << m.name;
        EXPECT_TRUE(alone.mask.values() == all.mask.values()) << m.name;
        ASSERT_EQ(m.run(c, 0.4, x_desc, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    }
}

// ---- FrameFusion ---------------------------------------------------------------------------------------

// A video whose frames repeat their predecessor with noise of a size that varies by token, so that the
// cosines to the previous frame spread over [0, 1] and many pass FrameFusion's threshold.
HostTensor make_repeating_video(const VideoCase& c, tk_dtype dtype, const Layout& layout, const std::string& name) {
    HostTensor x = make_video(c, dtype, layout, name);
    const float noise[] = {0.02f, 0.1f, 0.4f, 1.0f, 3.0f};
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t t = 1; t < c.frames; ++t)
            for (int64_t h = 0; h < c.height; ++h)
                for (int64_t w = 0; w < c.width; ++w) {
                    const float scale = noise[(t * 7 + h * 3 + w * 5 + b) % 5];
                    for (int64_t ch = 0; ch < c.channels; ++ch)
                        x.set(b, t, h, w, ch, static_cast<float>(x.get(b, t - 1, h, w, ch) + scale * x.get(b, t, h, w, ch)));
                }
    return x;
}

struct FrameFusionOutputs {
    HostArray out, out_size, source_map, merge_count;
    FrameFusionOutputs(const VideoCase& c, tk_dtype dtype)
        : out(dtype, {c.batch, c.frames * c.height * c.width, c.channels}, ArrayLayout{2, false, 0}),
          out_size(TK_DTYPE_F32, {c.batch, c.frames * c.height * c.width}, ArrayLayout{1, false, 0}),
          source_map(TK_DTYPE_I32, {c.batch, c.frames * c.height * c.width}, ArrayLayout{0, true, 0}),
          merge_count(TK_DTYPE_I32, {c.batch}, ArrayLayout{1, false, 0}) {
        for (HostArray* a : {&out, &out_size, &source_map, &merge_count}) a->fill_bytes(0x5A);
    }
};

tk_status run_framefusion(const tk_framefusion_params& params, const HostTensor& x, FrameFusionOutputs& o, bool with_workspace) {
    const tk_tensor x_desc = video_desc(x.desc());
    const tk_tensor out = o.out.desc(), out_size = o.out_size.desc(), source_map = o.source_map.desc(), count = o.merge_count.desc();
    uint64_t bytes = 0;
    EXPECT_EQ(tk_framefusion_workspace_size(&params, &x_desc, &bytes), TK_STATUS_OK) << tk_last_error();
    std::vector<uint8_t> workspace(with_workspace ? bytes : 0);
    return tk_framefusion_merge(&params, &x_desc, &out, &out_size, &source_map, &count, with_workspace ? workspace.data() : nullptr,
                                with_workspace ? bytes : 0, nullptr);
}

void expect_framefusion(const FrameFusionReference& ref, const VideoCase& c, tk_dtype dtype, const FrameFusionOutputs& o,
                        const std::string& label) {
    const int64_t tokens = c.frames * c.height * c.width;
    for (int64_t b = 0; b < c.batch; ++b) {
        ASSERT_EQ(o.merge_count.get(b), ref.merge_count[static_cast<size_t>(b)]) << label;
        for (int64_t i = 0; i < tokens; ++i) ASSERT_EQ(o.source_map.get(b, i), ref.rows[static_cast<size_t>(b)][static_cast<size_t>(i)]) << label;
        const int64_t kept = tokens - ref.merge_count[static_cast<size_t>(b)];
        for (int64_t r = 0; r < tokens; ++r) {
            const double size = r < kept ? ref.sizes[static_cast<size_t>(b)][static_cast<size_t>(r)] : 0.0;
            ASSERT_EQ(o.out_size.get(b, r), size) << label << " row " << r;
            for (int64_t ch = 0; ch < c.channels; ++ch) {
                const double got = o.out.get(b, r, ch);
                if (r >= kept) {
                    ASSERT_EQ(got, 0.0) << label << " row " << r << " past the count";
                    continue;
                }
                const double want = ref.out[static_cast<size_t>(b)][static_cast<size_t>(r * c.channels + ch)];
                // A head alone is copied; a mean is a float32 sum of `size` terms rounded to the dtype.
                const double tolerance = size == 1.0 ? 0.0 : std::abs(round_to_dtype(static_cast<float>(want), dtype) - want) + 1e-6 * size * (1 + std::abs(want));
                ASSERT_NEAR(got, want, tolerance * 1.01 + (dtype == TK_DTYPE_F32 ? 0.0 : std::abs(want) * 8e-3 * (size > 1))) << label << " row " << r << " channel " << ch;
            }
        }
    }
}

TEST(FrameFusion, MatchesReferenceForEveryDtypeThresholdAndCap) {
    const Layout layouts[] = {Layout{}, Layout{3, 0, 2, false, 1}};
    // FrameFusion's 0.6; everything merges (frame 0 never does, even at -inf); nothing does.
    const float thresholds[] = {0.6f, 0.9f, -1.0f, -std::numeric_limits<float>::infinity(), 2.0f};
    const int32_t caps[] = {-1, 0, 5, 1 << 30};
    for (const VideoCase& c : kCases)
        for (tk_dtype dtype : kDtypes)
            for (size_t l = 0; l < std::size(layouts); ++l)
                for (float threshold : thresholds)
                    for (int32_t cap : caps) {
                        const std::string label = std::string("framefusion_") + case_label(c, dtype) + "_layout" + std::to_string(l) +
                                                  "_threshold" + std::to_string(threshold) + "_cap" + std::to_string(cap);
                        SCOPED_TRACE(label);
                        const HostTensor x = make_repeating_video(c, dtype, layouts[l], label);
                        FrameFusionOutputs o(c, dtype);
                        const FrameFusionOutputs before = o;
                        ASSERT_EQ(run_framefusion(tk_framefusion_params{threshold, cap}, x, o, l == 1), TK_STATUS_OK) << tk_last_error();
                        expect_framefusion(reference_framefusion(x, threshold, cap), c, dtype, o, label);
                        EXPECT_EQ(first_changed_gap(before.out, o.out), "");
                        EXPECT_EQ(first_changed_gap(before.out_size, o.out_size), "");
                        EXPECT_EQ(first_changed_gap(before.merge_count, o.merge_count), "");
                    }
}

TEST(FrameFusion, RepeatedFramesMergeIntoTheFirstAndUnmergeBack) {
    // Three identical frames, then a different one: positions merge in runs of three, and tk_unmerge of
    // the output by the source map gives back every token of the identical frames, to the rounding of
    // (a + a + a) / 3.
    const VideoCase c{1, 4, 2, 2, 24};
    HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, "repeat");
    for (int64_t t = 1; t < 3; ++t)
        for (int64_t h = 0; h < 2; ++h)
            for (int64_t w = 0; w < 2; ++w)
                for (int64_t ch = 0; ch < c.channels; ++ch) x.set(0, t, h, w, ch, static_cast<float>(x.get(0, 0, h, w, ch)));
    for (int64_t h = 0; h < 2; ++h)
        for (int64_t w = 0; w < 2; ++w)
            for (int64_t ch = 0; ch < c.channels; ++ch) x.set(0, 3, h, w, ch, static_cast<float>(-x.get(0, 0, h, w, ch)));
    FrameFusionOutputs o(c, TK_DTYPE_F32);
    ASSERT_EQ(run_framefusion(tk_framefusion_params{0.6f, -1}, x, o, false), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(o.merge_count.get(0), 8);
    for (int64_t p = 0; p < 4; ++p) {
        EXPECT_EQ(o.source_map.get(0, p), p);
        EXPECT_EQ(o.source_map.get(0, 4 + p), p);
        EXPECT_EQ(o.source_map.get(0, 8 + p), p);
        EXPECT_EQ(o.source_map.get(0, 12 + p), 4 + p);
        EXPECT_EQ(o.out_size.get(0, p), 3.0);
    }
    HostArray restored(TK_DTYPE_F32, {1, 16, c.channels});
    const tk_tensor y = o.out.desc(), map = o.source_map.desc(), restored_desc = restored.desc();
    ASSERT_EQ(tk_unmerge(&y, &map, &restored_desc, nullptr), TK_STATUS_OK) << tk_last_error();
    for (int64_t i = 0; i < 12; ++i)
        for (int64_t ch = 0; ch < c.channels; ++ch) {
            const double want = x.get(0, i / 4, i % 4 / 2, i % 2, ch);
            EXPECT_NEAR(restored.get(0, i, ch), want, 2.5e-7 * std::abs(want)) << "token " << i;
        }
}

TEST(FrameFusion, ThreadCountChangesNoBit) {
    const VideoCase c{2, 9, 5, 4, 37};
    const HostTensor x = make_repeating_video(c, TK_DTYPE_BF16, Layout{}, "framefusion_threads");
    std::vector<std::vector<uint8_t>> results;
    for (int32_t threads : {1, 2, 5}) {
        const ScopedNumThreads scoped(threads);
        FrameFusionOutputs o(c, TK_DTYPE_BF16);
        ASSERT_EQ(run_framefusion(tk_framefusion_params{0.6f, 40}, x, o, false), TK_STATUS_OK) << tk_last_error();
        results.push_back(o.out.bytes());
    }
    for (const auto& r : results) EXPECT_TRUE(r == results.front());
}

// ---- CUDA against the CPU --------------------------------------------------------------------------

class TemporalCuda : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string why = cuda_unavailable_reason();
        if (!why.empty()) GTEST_SKIP() << why;
        ASSERT_EQ(tk_cuda_stream_create(0, &stream_), TK_STATUS_OK) << tk_last_error();
    }
    void TearDown() override {
        if (stream_ != nullptr) {
            EXPECT_EQ(tk_cuda_stream_destroy(stream_), TK_STATUS_OK) << tk_last_error();
        }
    }
    // A device copy of a host buffer's bytes (the whole backing buffer, so descriptors keep their offsets).
    void upload(const DeviceBuffer& device, const std::vector<uint8_t>& bytes) {
        ASSERT_EQ(tk_cuda_memcpy_async(device.get(), bytes.data(), bytes.size(), stream_), TK_STATUS_OK) << tk_last_error();
    }
    void download(std::vector<uint8_t>& bytes, const DeviceBuffer& device) {
        ASSERT_EQ(tk_cuda_memcpy_async(bytes.data(), device.get(), bytes.size(), stream_), TK_STATUS_OK) << tk_last_error();
    }
    void sync() { ASSERT_EQ(tk_cuda_stream_synchronize(stream_), TK_STATUS_OK) << tk_last_error(); }
    tk_stream stream_ = nullptr;
};

TEST_F(TemporalCuda, SimilarityEqualsTheCpuBitForBit) {
    int64_t index = 0;
    for (const VideoCase& c : kCases)
        for (tk_dtype dtype : kDtypes)
            for (int dycoke = 0; dycoke < 2; ++dycoke) {
                if (!runs_at_scale(index++, 5)) continue;
                const std::string label = case_label(c, dtype) + (dycoke ? "_dycoke" : "_previous");
                SCOPED_TRACE(label);
                const HostTensor x = make_video(c, dtype, Layout{3, 0, 1, false, 1}, label);
                const HostArray reference = reference_tensor(dycoke_references(c.frames));
                HostArray cpu(TK_DTYPE_F32, {c.batch, c.frames, c.height * c.width}, ArrayLayout{1, false, 0});
                cpu.fill_bytes(0x11);
                HostArray gpu = cpu;
                const tk_tensor x_desc = video_desc(x.desc()), ref_desc = reference.desc(), cpu_desc = cpu.desc();
                ASSERT_EQ(tk_temporal_similarity(&x_desc, dycoke ? &ref_desc : nullptr, &cpu_desc, nullptr), TK_STATUS_OK);
                DeviceBuffer x_device(x.bytes().size()), ref_device(reference.bytes().size()), out_device(gpu.bytes().size());
                upload(x_device, x.bytes());
                upload(ref_device, reference.bytes());
                upload(out_device, gpu.bytes());
                const tk_tensor xd = video_desc(x.device_desc(x_device.get(), 0));
                const tk_tensor rd = reference.device_desc(ref_device.get(), 0);
                const tk_tensor od = gpu.device_desc(out_device.get(), 0);
                ASSERT_EQ(tk_temporal_similarity(&xd, dycoke ? &rd : nullptr, &od, stream_), TK_STATUS_OK) << tk_last_error();
                download(gpu.bytes(), out_device);
                sync();
                EXPECT_TRUE(gpu.bytes() == cpu.bytes()) << "the CUDA similarities differ from the CPU's";
            }
}

TEST_F(TemporalCuda, VideoMethodsEqualTheCpu) {
    int64_t index = 0;
    for (const VideoMethod& m : kMethods)
        for (const VideoCase& c : kCases)
            for (tk_dtype dtype : kDtypes)
                for (double rate : rates_of(m)) {
                    if (!runs_at_scale(index++, 7)) continue;
                    const std::string label = std::string(m.name) + "_" + case_label(c, dtype) + "_rate" + std::to_string(rate);
                    SCOPED_TRACE(label);
                    const HostTensor x = make_video(c, dtype, Layout{}, label);
                    const int64_t retained = m.retained(c, rate);
                    VideoOutputs cpu(c, dtype, retained);
                    VideoOutputs gpu = cpu;
                    ASSERT_EQ(run_host(m, c, rate, x, cpu, false), TK_STATUS_OK) << tk_last_error();
                    DeviceBuffer xd(x.bytes().size()), od(gpu.out.bytes().size()), id(gpu.indices.bytes().size()),
                        pd(gpu.positions.bytes().size()), md(gpu.mask.bytes().size());
                    upload(xd, x.bytes());
                    upload(od, gpu.out.bytes());
                    upload(id, gpu.indices.bytes());
                    upload(pd, gpu.positions.bytes());
                    upload(md, gpu.mask.bytes());
                    const tk_tensor x_desc = video_desc(x.device_desc(xd.get(), 0));
                    const tk_tensor out = gpu.out.device_desc(od.get(), 0), indices = gpu.indices.device_desc(id.get(), 0),
                                    positions = gpu.positions.device_desc(pd.get(), 0), mask = gpu.mask.device_desc(md.get(), 0);
                    // Without a workspace on even cases, with the queried one on odd ones.
                    const uint64_t bytes = m.workspace_bytes(c, rate, x_desc);
                    const bool given = index % 2 == 1;
                    DeviceBuffer workspace(given ? bytes : 0);
                    ASSERT_EQ(m.run(c, rate, x_desc, &out, &indices, &positions, &mask, given ? workspace.get() : nullptr,
                                    given ? bytes : 0, stream_),
                              TK_STATUS_OK)
                        << tk_last_error();
                    download(gpu.out.bytes(), od);
                    download(gpu.indices.bytes(), id);
                    download(gpu.positions.bytes(), pd);
                    download(gpu.mask.bytes(), md);
                    sync();
                    EXPECT_TRUE(gpu.out.bytes() == cpu.out.bytes());
                    EXPECT_TRUE(gpu.indices.bytes() == cpu.indices.bytes());
                    EXPECT_TRUE(gpu.positions.bytes() == cpu.positions.bytes());
                    EXPECT_TRUE(gpu.mask.bytes() == cpu.mask.bytes());
                }
}

TEST_F(TemporalCuda, FrameFusionEqualsTheCpu) {
    int64_t index = 0;
    const float thresholds[] = {0.6f, -1.0f};
    const int32_t caps[] = {-1, 7};
    for (const VideoCase& c : kCases)
        for (tk_dtype dtype : kDtypes)
            for (float threshold : thresholds)
                for (int32_t cap : caps) {
                    if (!runs_at_scale(index++, 5)) continue;
                    const std::string label = std::string("framefusion_") + case_label(c, dtype) + "_threshold" + std::to_string(threshold) +
                                              "_cap" + std::to_string(cap);
                    SCOPED_TRACE(label);
                    const HostTensor x = make_repeating_video(c, dtype, Layout{}, label);
                    const tk_framefusion_params params{threshold, cap};
                    FrameFusionOutputs cpu(c, dtype);
                    FrameFusionOutputs gpu = cpu;
                    ASSERT_EQ(run_framefusion(params, x, cpu, false), TK_STATUS_OK) << tk_last_error();
                    DeviceBuffer xd(x.bytes().size()), od(gpu.out.bytes().size()), sd(gpu.out_size.bytes().size()),
                        md(gpu.source_map.bytes().size()), cd(gpu.merge_count.bytes().size());
                    upload(xd, x.bytes());
                    upload(od, gpu.out.bytes());
                    upload(sd, gpu.out_size.bytes());
                    upload(md, gpu.source_map.bytes());
                    upload(cd, gpu.merge_count.bytes());
                    const tk_tensor x_desc = video_desc(x.device_desc(xd.get(), 0));
                    const tk_tensor out = gpu.out.device_desc(od.get(), 0), out_size = gpu.out_size.device_desc(sd.get(), 0),
                                    map = gpu.source_map.device_desc(md.get(), 0), count = gpu.merge_count.device_desc(cd.get(), 0);
                    ASSERT_EQ(tk_framefusion_merge(&params, &x_desc, &out, &out_size, &map, &count, nullptr, 0, stream_), TK_STATUS_OK)
                        << tk_last_error();
                    download(gpu.out.bytes(), od);
                    download(gpu.out_size.bytes(), sd);
                    download(gpu.source_map.bytes(), md);
                    download(gpu.merge_count.bytes(), cd);
                    sync();
                    EXPECT_TRUE(gpu.merge_count.bytes() == cpu.merge_count.bytes());
                    EXPECT_TRUE(gpu.source_map.bytes() == cpu.source_map.bytes());
                    EXPECT_TRUE(gpu.out_size.bytes() == cpu.out_size.bytes());
                    EXPECT_TRUE(gpu.out.bytes() == cpu.out.bytes());
                }
}

}  // namespace
}  // namespace tkt
