// Temporal redundancy (SPEC section 5): tk_temporal_similarity, tk_evs, tk_dycoke_ttm and tk_vidcom2 against the
// float64 reference on random inputs of awkward sizes, every float dtype and strided layouts; CUDA against
// the CPU, bit for bit, where a device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
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

// One method's C calls, with its rate (EVS's pruning_rate q, DyCoke's merging_ratio, VidCom2's
// retention_ratio) and grid; VidCom2 also takes its channel ratio and temperature from here.
struct VideoMethod {
    enum Kind { kEvsMethod, kDyCokeMethod, kVidCom2Method };
    const char* name;
    Kind kind;
    double channel_ratio = 0.5;  // VidCom2's defaults
    double temperature = 0.01;

    // VidCom2 with other settings.
    VideoMethod with(double channels, double temp) const {
        VideoMethod m = *this;
        m.channel_ratio = channels;
        m.temperature = temp;
        return m;
    }
    int64_t retained(const VideoCase& c, double rate) const {
        int64_t k = -1;
        tk_status status = TK_STATUS_OK;
        switch (kind) {
            case kEvsMethod: status = tk_evs_retained_tokens(&evs_params(c, rate), c.frames, &k); break;
            case kDyCokeMethod: status = tk_dycoke_retained_tokens(&dycoke_params(c, rate), c.frames, &k); break;
            case kVidCom2Method: status = tk_vidcom2_retained_tokens(&vidcom2_params(c, rate), c.frames, &k); break;
        }
        EXPECT_EQ(status, TK_STATUS_OK) << tk_last_error();
        return k;
    }
    uint64_t workspace_bytes(const VideoCase& c, double rate, const tk_tensor& x) const {
        uint64_t bytes = 0;
        tk_status status = TK_STATUS_OK;
        switch (kind) {
            case kEvsMethod: status = tk_evs_workspace_size(&evs_params(c, rate), &x, &bytes); break;
            case kDyCokeMethod: status = tk_dycoke_workspace_size(&dycoke_params(c, rate), &x, &bytes); break;
            case kVidCom2Method: status = tk_vidcom2_workspace_size(&vidcom2_params(c, rate), &x, &bytes); break;
        }
        EXPECT_EQ(status, TK_STATUS_OK) << tk_last_error();
        return bytes;
    }
    tk_status run(const VideoCase& c, double rate, const tk_tensor& x, const tk_tensor* out, const tk_tensor* indices,
                  const tk_tensor* positions, const tk_tensor* mask, void* workspace, uint64_t bytes, tk_stream stream) const {
        switch (kind) {
            case kEvsMethod: return tk_evs(&evs_params(c, rate), &x, out, indices, positions, mask, workspace, bytes, stream);
            case kDyCokeMethod:
                return tk_dycoke_ttm(&dycoke_params(c, rate), &x, out, indices, positions, mask, workspace, bytes, stream);
            default: return tk_vidcom2(&vidcom2_params(c, rate), &x, out, indices, positions, mask, workspace, bytes, stream);
        }
    }
    // EVS and DyCoke (VidCom2 has its own reference, reference_vidcom2).
    SelectionReference reference(const HostTensor& x, double rate) const {
        return kind == kDyCokeMethod ? reference_dycoke(x, rate) : reference_evs(x, rate);
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
    const tk_vidcom2_params& vidcom2_params(const VideoCase& c, double r) const {
        static thread_local tk_vidcom2_params p;
        p = tk_vidcom2_params{r, channel_ratio, temperature, static_cast<int32_t>(c.height), static_cast<int32_t>(c.width)};
        return p;
    }
};

const VideoMethod kEvs{"evs", VideoMethod::kEvsMethod};
const VideoMethod kDyCoke{"dycoke", VideoMethod::kDyCokeMethod};
const VideoMethod kVidCom2{"vidcom2", VideoMethod::kVidCom2Method};
// The methods with a SelectionReference (the reference tests); every method (the others).
const VideoMethod kMethods[] = {kEvs, kDyCoke};
const VideoMethod kAllMethods[] = {kEvs, kDyCoke, kVidCom2};
// EVS's q and DyCoke's merging_ratio (0.7 is its default); 0 keeps everything, DyCoke's 1 keeps the
// window starts alone. VidCom2's retention_ratio: its default 0.25, 1 keeps everything, 0.001 one token
// per frame.
const double kEvsRates[] = {0.0, 0.3, 0.5, 0.75, 0.999};
const double kDyCokeRatios[] = {0.0, 0.3, 0.7, 0.95, 1.0};
const double kVidCom2Ratios[] = {0.25, 1.0, 0.001, 0.6};

std::vector<double> rates_of(const VideoMethod& m) {
    switch (m.kind) {
        case VideoMethod::kEvsMethod: return std::vector<double>(std::begin(kEvsRates), std::end(kEvsRates));
        case VideoMethod::kDyCokeMethod: return std::vector<double>(std::begin(kDyCokeRatios), std::end(kDyCokeRatios));
        default: return std::vector<double>(std::begin(kVidCom2Ratios), std::end(kVidCom2Ratios));
    }
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
    for (const VideoMethod& m : kAllMethods) {
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

// DyCoke's CPU path copies each frame's kept rows itself; past the streaming threshold (32 MiB of output)
// with non-temporal stores where the CPU has them. Rows of 4,400 bytes (no multiple of a vector) into an
// output off every vector boundary: each row is its token's, the positions are the indices-only call's,
// and nothing past the output is touched.
TEST(VideoMethods, DyCokeLargeOutputsCopyExactly) {
    const int64_t frames = 12, positions = 1000, channels = 1100;  // 3 whole frames + 9 of 700 tokens: 41 MB
    const tk_dycoke_params params{0.3, 25, 40};
    int64_t retained = 0;
    ASSERT_EQ(tk_dycoke_retained_tokens(&params, frames, &retained), TK_STATUS_OK) << tk_last_error();
    ASSERT_EQ(retained, 3 * 1000 + 9 * 700);
    std::vector<float> x(static_cast<size_t>(frames * positions * channels));
    std::mt19937 g(20261205);
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(g);
    const tk_tensor xd{x.data(), TK_DTYPE_F32, TK_DEVICE_CPU, 0, 4, {1, frames, positions, channels},
                       {frames * positions * channels, positions * channels, channels, 1}};
    std::vector<int32_t> alone(static_cast<size_t>(retained)), indices(static_cast<size_t>(retained));
    const tk_tensor alone_d{alone.data(), TK_DTYPE_I32, TK_DEVICE_CPU, 0, 2, {1, retained}, {retained, 1}};
    ASSERT_EQ(tk_dycoke_ttm(&params, &xd, nullptr, &alone_d, nullptr, nullptr, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    std::vector<float> storage(static_cast<size_t>(retained * channels + 2), 123.0f);
    float* out = storage.data() + 1;
    const tk_tensor out_d{out, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 3, {1, retained, channels}, {retained * channels, channels, 1}};
    const tk_tensor indices_d{indices.data(), TK_DTYPE_I32, TK_DEVICE_CPU, 0, 2, {1, retained}, {retained, 1}};
    ASSERT_EQ(tk_dycoke_ttm(&params, &xd, &out_d, &indices_d, nullptr, nullptr, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_TRUE(indices == alone);
    for (int64_t k = 0; k < retained; ++k)
        ASSERT_EQ(std::memcmp(out + k * channels, x.data() + static_cast<int64_t>(indices[static_cast<size_t>(k)]) * channels,
                              static_cast<size_t>(channels) * sizeof(float)), 0) << "row " << k;
    EXPECT_EQ(storage.front(), 123.0f);
    EXPECT_EQ(storage.back(), 123.0f);
}

TEST(VideoMethods, OutputsAreOptional) {
    const VideoCase c{2, 6, 3, 4, 21};
    const HostTensor x = make_video(c, TK_DTYPE_F16, Layout{}, "optional");
    const tk_tensor x_desc = video_desc(x.desc());
    for (const VideoMethod& m : kAllMethods) {
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

// ---- VidCom2 -------------------------------------------------------------------------------------------

// make_video with each channel scaled by its own factor 1 + 0.04 * rank (rank a permutation of the
// channels): the variances spread out, so float32 and float64 choose the same lowest-variance channels,
// and those are not simply the first ones.
HostTensor make_vidcom2_video(const VideoCase& c, tk_dtype dtype, const Layout& layout, const std::string& name) {
    HostTensor x = make_video(c, dtype, layout, name);
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t t = 0; t < c.frames; ++t)
            for (int64_t h = 0; h < c.height; ++h)
                for (int64_t w = 0; w < c.width; ++w)
                    for (int64_t ch = 0; ch < c.channels; ++ch) {
                        const double scale = 1.0 + 0.04 * static_cast<double>((ch * 7919) % c.channels);
                        x.set(b, t, h, w, ch, static_cast<float>(x.get(b, t, h, w, ch) * scale));
                    }
    return x;
}

// How far apart two slot priorities (in tokens) must be in the float64 reference for float32 to be
// bound to order them alike: the softmax at temperature tau turns an error e in a frame's importance
// (a mean of float32 kernel sums, e about 1e-6) into a relative error about e / tau in its share.
double budget_tolerance(const VideoCase& c, double retention_ratio, double temperature) {
    return 4e-6 * retention_ratio * static_cast<double>(c.height * c.width) * (1.0 + 1.0 / temperature) + 1e-4;
}

// Each item's kept tokens per frame, from the indices.
std::vector<std::vector<int64_t>> kept_per_frame(const VideoCase& c, const HostArray& indices, int64_t retained) {
    const int64_t positions = c.height * c.width;
    std::vector<std::vector<int64_t>> counts;
    for (int64_t b = 0; b < c.batch; ++b) {
        std::vector<int64_t> k(static_cast<size_t>(c.frames), 0);
        for (int64_t i = 0; i < retained; ++i) {
            const auto token = static_cast<int64_t>(indices.get(b, i));
            if (token >= 0 && token < c.frames * positions) ++k[static_cast<size_t>(token / positions)];
        }
        counts.push_back(std::move(k));
    }
    return counts;
}

// Our choice against the float64 reference: each frame's count is the reference's unless the reference's
// deciding slot priorities are a near-tie (then within one of it), each between 1 and P, summing to K;
// each frame's kept set is the reference's for our count (up to near-ties at its boundary score); out,
// positions and mask follow the indices.
void expect_vidcom2(const VidCom2Reference& ref, const VideoCase& c, double retention_ratio, double temperature,
                    const HostTensor& x, const VideoOutputs& o, const std::string& label) {
    const int64_t positions = c.height * c.width;
    const std::vector<std::vector<int64_t>> counts = kept_per_frame(c, o.indices, ref.retained);
    const double tolerance = budget_tolerance(c, retention_ratio, temperature);
    for (int64_t b = 0; b < c.batch; ++b) {
        ASSERT_GT(ref.channel_gap[static_cast<size_t>(b)], 1e-4) << label << ": the test input leaves the channel choice to rounding";
        const std::vector<int64_t>& got = counts[static_cast<size_t>(b)];
        const std::vector<int64_t>& want = ref.frame_keeps[static_cast<size_t>(b)];
        int64_t total = 0;
        for (int64_t t = 0; t < c.frames; ++t) {
            const int64_t k = got[static_cast<size_t>(t)];
            ASSERT_GE(k, 1) << label << ": item " << b << " frame " << t;
            ASSERT_LE(k, positions) << label << ": item " << b << " frame " << t;
            total += k;
            if (ref.budget_margin[static_cast<size_t>(b)] > tolerance)
                ASSERT_EQ(k, want[static_cast<size_t>(t)]) << label << ": item " << b << " frame " << t << " (ideal "
                                                            << ref.ideal[static_cast<size_t>(b)][static_cast<size_t>(t)] << ", margin "
                                                            << ref.budget_margin[static_cast<size_t>(b)] << ")";
            else
                ASSERT_LE(std::abs(k - want[static_cast<size_t>(t)]), 1) << label << ": item " << b << " frame " << t;
        }
        ASSERT_EQ(total, ref.retained) << label << ": item " << b;
    }
    expect_selection(vidcom2_selection(ref, positions, counts), c, x, o, label);
}

// Runs VidCom2 with every output and checks it against the reference; nothing is written outside them.
void run_and_expect_vidcom2(const VideoCase& c, tk_dtype dtype, const HostTensor& x, double retention_ratio, double channel_ratio,
                            double temperature, bool with_workspace, const std::string& label) {
    const VideoMethod m = kVidCom2.with(channel_ratio, temperature);
    const VidCom2Reference ref = reference_vidcom2(x, retention_ratio, channel_ratio, temperature);
    ASSERT_EQ(m.retained(c, retention_ratio), ref.retained) << label;
    VideoOutputs o(c, dtype, ref.retained);
    const VideoOutputs before = o;
    ASSERT_EQ(run_host(m, c, retention_ratio, x, o, with_workspace), TK_STATUS_OK) << label << ": " << tk_last_error();
    expect_vidcom2(ref, c, retention_ratio, temperature, x, o, label);
    EXPECT_EQ(first_changed_gap(before.out, o.out), "") << label;
    EXPECT_EQ(first_changed_gap(before.indices, o.indices), "") << label;
    EXPECT_EQ(first_changed_gap(before.positions, o.positions), "") << label;
    EXPECT_EQ(first_changed_gap(before.mask, o.mask), "") << label;
}

struct VidCom2Setting {
    double retention_ratio, channel_ratio, temperature;
};
const VidCom2Setting kVidCom2Settings[] = {
    {0.25, 0.5, 0.01},    // VidCom2's defaults
    {1.0, 0.5, 0.01},     // every token kept
    {0.001, 0.5, 0.01},   // K = T: one token per frame
    {0.6, 1.0, 1.0},      // every channel, a soft softmax
    {0.4, 0.1, 0.1},      // one channel in ten (C' at least 1)
    {0.15, 0.75, 100.0},  // near-equal shares
};

std::string setting_label(const VidCom2Setting& s) {
    return "_r" + std::to_string(s.retention_ratio) + "_ch" + std::to_string(s.channel_ratio) + "_temp" + std::to_string(s.temperature);
}

TEST(VidCom2, MatchesReferenceForEveryDtypeLayoutAndSetting) {
    const Layout layouts[] = {Layout{}, Layout{5, 0, 1, false, 1}};
    for (const std::vector<VideoCase>& cases : {std::vector<VideoCase>(std::begin(kCases), std::end(kCases)),
                                                std::vector<VideoCase>(std::begin(kWindowCases), std::end(kWindowCases))})
        for (const VideoCase& c : cases)
            for (tk_dtype dtype : kDtypes)
                for (size_t l = 0; l < std::size(layouts); ++l)
                    for (const VidCom2Setting& s : kVidCom2Settings) {
                        const std::string label = "vidcom2_" + case_label(c, dtype) + "_layout" + std::to_string(l) + setting_label(s);
                        SCOPED_TRACE(label);
                        const HostTensor x = make_vidcom2_video(c, dtype, layouts[l], label);
                        run_and_expect_vidcom2(c, dtype, x, s.retention_ratio, s.channel_ratio, s.temperature, l == 1, label);
                        if (HasFatalFailure()) return;
                    }
}

TEST(VidCom2, RetainedCountsAreThePublishedFormula) {
    // K = max(T, int(T * P * r)) in double: LLaVA-Video's 16 frames of 14 x 14 at the default 0.25, at
    // least one token per frame, r = 1 keeps everything.
    EXPECT_EQ(kVidCom2.retained({1, 16, 14, 14, 1}, 0.25), 784);
    EXPECT_EQ(kVidCom2.retained({1, 32, 27, 27, 1}, 0.25), 5832);
    EXPECT_EQ(kVidCom2.retained({1, 8, 1, 1, 1}, 0.25), 8);
    EXPECT_EQ(kVidCom2.retained({1, 5, 3, 3, 1}, 0.001), 5);
    EXPECT_EQ(kVidCom2.retained({1, 1, 3, 5, 1}, 1.0), 15);
    EXPECT_EQ(kVidCom2.retained({2, 7, 3, 1, 4}, 1.0), 21);
    // Python's int() of the double product: 100 * 0.29 = 28.999999999999996, 48 * 0.1 = 4.800000000000001.
    EXPECT_EQ(kVidCom2.retained({1, 4, 5, 5, 1}, 0.29), 28);
    EXPECT_EQ(kVidCom2.retained({1, 3, 4, 4, 1}, 0.1), 4);
    // The other settings do not change K.
    EXPECT_EQ(kVidCom2.with(1.0, 5.0).retained({1, 16, 14, 14, 1}, 0.25), 784);
}

TEST(VidCom2, EveryFrameKeepsOneToAllAndTheTotalIsExact) {
    // Random videos, shapes and settings (temperatures from 1e-30 to 1e30), with frames scaled and
    // flipped so that the shares differ: each frame keeps between 1 and P tokens, K in all.
    std::mt19937_64 g(seed_from_name("vidcom2_apportionment"));
    const double temperatures[] = {1e-30, 1e-3, 0.01, 0.3, 1.0, 1e30};
    for (int trial = 0; trial < 150; ++trial) {
        const VideoCase c{1 + static_cast<int64_t>(g() % 2), 1 + static_cast<int64_t>(g() % 12), 1 + static_cast<int64_t>(g() % 6),
                          1 + static_cast<int64_t>(g() % 7), 1 + static_cast<int64_t>(g() % 40)};
        const double r = trial % 10 == 0 ? 1.0 : static_cast<double>(1 + g() % 1000) / 1000.0;
        const double channels = static_cast<double>(1 + g() % 100) / 100.0;
        const double temperature = temperatures[g() % std::size(temperatures)];
        const std::string label = "apportionment_" + std::to_string(trial) + "_" + case_label(c, TK_DTYPE_F32) + "_r" +
                                  std::to_string(r) + "_ch" + std::to_string(channels) + "_temp" + std::to_string(temperature);
        SCOPED_TRACE(label);
        HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, label);
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t t = 0; t < c.frames; ++t) {
                const double factor = (g() % 2 ? -1.0 : 1.0) * static_cast<double>(1 + g() % 5);
                const double shift = static_cast<double>(g() % 3);
                for (int64_t h = 0; h < c.height; ++h)
                    for (int64_t w = 0; w < c.width; ++w)
                        for (int64_t ch = 0; ch < c.channels; ++ch)
                            x.set(b, t, h, w, ch, static_cast<float>(x.get(b, t, h, w, ch) * factor + shift));
            }
        const VideoMethod m = kVidCom2.with(channels, temperature);
        const int64_t retained = m.retained(c, r);
        const int64_t positions = c.height * c.width;
        ASSERT_EQ(retained, std::max<int64_t>(c.frames, static_cast<int64_t>(static_cast<double>(c.frames * positions) * r)));
        VideoOutputs o(c, TK_DTYPE_F32, retained);
        ASSERT_EQ(run_host(m, c, r, x, o, trial % 2 == 0), TK_STATUS_OK) << tk_last_error();
        const std::vector<std::vector<int64_t>> counts = kept_per_frame(c, o.indices, retained);
        for (int64_t b = 0; b < c.batch; ++b) {
            int64_t total = 0, kept_in_mask = 0;
            for (int64_t t = 0; t < c.frames; ++t) {
                const int64_t k = counts[static_cast<size_t>(b)][static_cast<size_t>(t)];
                EXPECT_GE(k, 1) << "item " << b << " frame " << t;
                EXPECT_LE(k, positions) << "item " << b << " frame " << t;
                total += k;
            }
            EXPECT_EQ(total, retained) << "item " << b;
            for (int64_t i = 1; i < retained; ++i) EXPECT_LT(o.indices.get(b, i - 1), o.indices.get(b, i)) << "item " << b;
            for (int64_t i = 0; i < c.frames * positions; ++i) kept_in_mask += static_cast<int64_t>(o.mask.get(b, i));
            EXPECT_EQ(kept_in_mask, retained) << "item " << b;
        }
        if (HasFailure()) return;
    }
}

// A video of T frames of P tokens: every token near the vector a (noise 0.05 * U[-1.5, 2.5)), but the
// tokens of frame `distinct` near -a, so that frame is far from the video's centre. |a_c| = 1 + 0.05 *
// rank: every channel's variance (about a_c^2 times a constant) stands apart from the next one's.
HostTensor make_one_distinct_frame(const VideoCase& c, int64_t distinct, const std::string& name) {
    HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, name);
    for (int64_t t = 0; t < c.frames; ++t)
        for (int64_t h = 0; h < c.height; ++h)
            for (int64_t w = 0; w < c.width; ++w)
                for (int64_t ch = 0; ch < c.channels; ++ch) {
                    const double a = (ch % 2 == 0 ? 1.0 : -1.0) * (1.0 + 0.05 * static_cast<double>((ch * 7919) % c.channels));
                    x.set(0, t, h, w, ch, static_cast<float>((t == distinct ? -a : a) + 0.05 * x.get(0, t, h, w, ch)));
                }
    return x;
}

TEST(VidCom2, TheFrameLeastLikeTheVideoGetsMoreTokens) {
    // VidCom2's point: frame 2 is unlike the rest, its share p_2 is near 1 at temperature 0.01, so its
    // ideal count is about 0.25 * 16 * (2 - 1/5) = 7.2 against 3.2 for the others.
    const VideoCase c{1, 5, 4, 4, 24};
    const HostTensor x = make_one_distinct_frame(c, 2, "vidcom2_distinct");
    run_and_expect_vidcom2(c, TK_DTYPE_F32, x, 0.25, 0.5, 0.01, false, "distinct");
    VideoOutputs o(c, TK_DTYPE_F32, kVidCom2.retained(c, 0.25));
    ASSERT_EQ(run_host(kVidCom2, c, 0.25, x, o, false), TK_STATUS_OK) << tk_last_error();
    const std::vector<int64_t> k = kept_per_frame(c, o.indices, 20)[0];
    EXPECT_GE(k[2], 7);
    for (int64_t t : {0, 1, 3, 4}) EXPECT_GT(k[2], k[static_cast<size_t>(t)] + 2) << "frame " << t;
}

TEST(VidCom2, AFrameHeldAtAllItsTokensGivesItsExcessToTheOthers) {
    // r = 0.7, T = 4, P = 9: K = 25. Frame 1 is unlike the rest: its scale min(0.7 * 1.75, 1) = 1 keeps all
    // 9 tokens; the others' ideal counts 9 * 0.7 * 0.75 = 4.725 add up to 14.2, yet they keep the other
    // 16 (5, 5 and 6, the sixth to a frame of the largest remainder) so that the total stays K.
    const VideoCase c{1, 4, 3, 3, 20};
    const HostTensor x = make_one_distinct_frame(c, 1, "vidcom2_clamped");
    run_and_expect_vidcom2(c, TK_DTYPE_F32, x, 0.7, 0.5, 0.01, true, "clamped");
    VideoOutputs o(c, TK_DTYPE_F32, 25);
    ASSERT_EQ(kVidCom2.retained(c, 0.7), 25);
    ASSERT_EQ(run_host(kVidCom2, c, 0.7, x, o, false), TK_STATUS_OK) << tk_last_error();
    const std::vector<int64_t> k = kept_per_frame(c, o.indices, 25)[0];
    EXPECT_EQ(k[1], 9);
    std::vector<int64_t> others = {k[0], k[2], k[3]};
    std::sort(others.begin(), others.end());
    EXPECT_EQ(others, (std::vector<int64_t>{5, 5, 6}));
}

TEST(VidCom2, RetentionOneKeepsEveryToken) {
    const VideoCase c{2, 5, 3, 4, 13};
    const HostTensor x = make_vidcom2_video(c, TK_DTYPE_BF16, Layout{}, "vidcom2_all");
    VideoOutputs o(c, TK_DTYPE_BF16, 60);
    ASSERT_EQ(run_host(kVidCom2, c, 1.0, x, o, false), TK_STATUS_OK) << tk_last_error();
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t i = 0; i < 60; ++i) {
            ASSERT_EQ(o.indices.get(b, i), i);
            ASSERT_EQ(o.mask.get(b, i), 1);
            for (int64_t ch = 0; ch < c.channels; ++ch) ASSERT_EQ(o.out.get(b, i, ch), x.get(b, i / 12, i % 12 / 4, i % 4, ch));
        }
}

TEST(VidCom2, TiesGoToTheLowerPositionAndFrame) {
    // Every token the same vector: every frame has the same share (ideal 0.4 * 6 = 2.4) and every token
    // of a frame the same score. K = int(24 * 0.4) = 9: one per frame, the four slots of priority 1.4,
    // then the first of priority 0.4 to frame 0; each frame keeps its first positions.
    const VideoCase c{1, 4, 2, 3, 19};
    HostTensor x = make_video(c, TK_DTYPE_F32, Layout{}, "vidcom2_ties");
    for (int64_t t = 0; t < c.frames; ++t)
        for (int64_t h = 0; h < c.height; ++h)
            for (int64_t w = 0; w < c.width; ++w)
                for (int64_t ch = 0; ch < c.channels; ++ch) x.set(0, t, h, w, ch, static_cast<float>(x.get(0, 0, 0, 0, ch)));
    VideoOutputs o(c, TK_DTYPE_F32, 9);
    ASSERT_EQ(kVidCom2.retained(c, 0.4), 9);
    ASSERT_EQ(run_host(kVidCom2, c, 0.4, x, o, false), TK_STATUS_OK) << tk_last_error();
    const std::vector<int64_t> want = {0, 1, 2, 6, 7, 12, 13, 18, 19};
    for (int64_t k = 0; k < 9; ++k) EXPECT_EQ(o.indices.get(0, k), want[static_cast<size_t>(k)]) << "slot " << k;
}

TEST(VidCom2, NanRanksLast) {
    // A NaN in one channel makes that channel's variance NaN: it ranks after every number and is not
    // scored (C' = 9 of 19), so nothing else changes: the choice is the reference's.
    const VideoCase c{1, 4, 2, 3, 19};
    {
        HostTensor x = make_vidcom2_video(c, TK_DTYPE_F32, Layout{}, "vidcom2_nan_channel");
        const VidCom2Reference clean = reference_vidcom2(x, 0.5, 0.5, 0.01);
        const int64_t channel = clean.channels[0][0];  // a channel it would score
        x.set(0, 1, 0, 2, channel, std::numeric_limits<float>::quiet_NaN());
        const VidCom2Reference ref = reference_vidcom2(x, 0.5, 0.5, 0.01);
        EXPECT_TRUE(std::find(ref.channels[0].begin(), ref.channels[0].end(), channel) == ref.channels[0].end());
        run_and_expect_vidcom2(c, TK_DTYPE_F32, x, 0.5, 0.5, 0.01, false, "nan_channel");
    }
    {
        // Every channel scored: the NaN reaches the token's features, both centres, every score and every
        // share. Each frame's ideal count counts as 0, so the slots (priority -j) go to the lower frames
        // first: K = int(24 * 0.6) = 14 is 4 + 4 + 3 + 3, and NaN scores tie, so each frame keeps its
        // first positions.
        HostTensor x = make_vidcom2_video(c, TK_DTYPE_F32, Layout{}, "vidcom2_nan_token");
        x.set(0, 2, 1, 1, 5, std::numeric_limits<float>::quiet_NaN());
        const VideoMethod every_channel = kVidCom2.with(1.0, 0.01);
        VideoOutputs o(c, TK_DTYPE_F32, 14);
        ASSERT_EQ(every_channel.retained(c, 0.6), 14);
        ASSERT_EQ(run_host(every_channel, c, 0.6, x, o, false), TK_STATUS_OK) << tk_last_error();
        const std::vector<int64_t> want = {0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 18, 19, 20};
        for (int64_t k = 0; k < 14; ++k) EXPECT_EQ(o.indices.get(0, k), want[static_cast<size_t>(k)]) << "slot " << k;
        const VidCom2Reference ref = reference_vidcom2(x, 0.6, 1.0, 0.01);
        EXPECT_EQ(ref.frame_keeps[0], (std::vector<int64_t>{4, 4, 3, 3}));
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

// Videos with no tokens (T = 0 or P = 0; the fuzzer found the empty-frame case dividing by zero): the ops
// succeed, FrameFusion counts no merge, and the similarity writes nothing.
TEST(FrameFusion, EmptyVideosMergeNothing) {
    for (const auto& shape : {std::vector<int64_t>{2, 0, 3, 4}, std::vector<int64_t>{2, 3, 0, 4}}) {
        const int64_t batch = shape[0], tokens = shape[1] * shape[2], channels = shape[3];
        SCOPED_TRACE("T = " + std::to_string(shape[1]) + ", P = " + std::to_string(shape[2]));
        float x_storage[1] = {0.0f}, out_storage[1] = {0.0f}, size_storage[1] = {0.0f};
        int32_t map_storage[1] = {0}, counts[2] = {-7, -7};
        const tk_tensor x{x_storage, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 4, {batch, shape[1], shape[2], channels},
                          {tokens * channels, shape[2] * channels, channels, 1}};
        const tk_tensor out{out_storage, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 3, {batch, tokens, channels}, {tokens * channels, channels, 1}};
        const tk_tensor out_size{size_storage, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 2, {batch, tokens}, {tokens, 1}};
        const tk_tensor source_map{map_storage, TK_DTYPE_I32, TK_DEVICE_CPU, 0, 2, {batch, tokens}, {tokens, 1}};
        const tk_tensor merge_count{counts, TK_DTYPE_I32, TK_DEVICE_CPU, 0, 1, {batch}, {1}};
        const tk_framefusion_params params{0.6f, -1};
        ASSERT_EQ(tk_framefusion_merge(&params, &x, &out, &out_size, &source_map, &merge_count, nullptr, 0, nullptr), TK_STATUS_OK)
            << tk_last_error();
        EXPECT_EQ(counts[0], 0);
        EXPECT_EQ(counts[1], 0);
        const tk_tensor similarity{out_storage, TK_DTYPE_F32, TK_DEVICE_CPU, 0, 3, {batch, shape[1], shape[2]}, {tokens, shape[2], 1}};
        ASSERT_EQ(tk_temporal_similarity(&x, nullptr, &similarity, nullptr), TK_STATUS_OK) << tk_last_error();
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

    // A video method on the device equals the same call on the CPU, every output bit for bit; with the
    // queried workspace or none (the op then allocates it on the stream).
    void expect_equal_to_the_cpu(const VideoMethod& m, const VideoCase& c, double rate, const HostTensor& x, bool given) {
        const int64_t retained = m.retained(c, rate);
        VideoOutputs cpu(c, x.dtype(), retained);
        VideoOutputs gpu = cpu;
        ASSERT_EQ(run_host(m, c, rate, x, cpu, false), TK_STATUS_OK) << tk_last_error();
        DeviceBuffer xd(x.bytes().size()), od(gpu.out.bytes().size()), id(gpu.indices.bytes().size()), pd(gpu.positions.bytes().size()),
            md(gpu.mask.bytes().size());
        upload(xd, x.bytes());
        upload(od, gpu.out.bytes());
        upload(id, gpu.indices.bytes());
        upload(pd, gpu.positions.bytes());
        upload(md, gpu.mask.bytes());
        const tk_tensor x_desc = video_desc(x.device_desc(xd.get(), 0));
        const tk_tensor out = gpu.out.device_desc(od.get(), 0), indices = gpu.indices.device_desc(id.get(), 0),
                        positions = gpu.positions.device_desc(pd.get(), 0), mask = gpu.mask.device_desc(md.get(), 0);
        const uint64_t bytes = m.workspace_bytes(c, rate, x_desc);
        DeviceBuffer workspace(given ? bytes : 0);
        ASSERT_EQ(m.run(c, rate, x_desc, &out, &indices, &positions, &mask, given ? workspace.get() : nullptr, given ? bytes : 0, stream_),
                  TK_STATUS_OK)
            << tk_last_error();
        download(gpu.out.bytes(), od);
        download(gpu.indices.bytes(), id);
        download(gpu.positions.bytes(), pd);
        download(gpu.mask.bytes(), md);
        sync();
        EXPECT_TRUE(gpu.indices.bytes() == cpu.indices.bytes()) << m.name << ": the CUDA indices differ from the CPU's";
        EXPECT_TRUE(gpu.out.bytes() == cpu.out.bytes()) << m.name;
        EXPECT_TRUE(gpu.positions.bytes() == cpu.positions.bytes()) << m.name;
        EXPECT_TRUE(gpu.mask.bytes() == cpu.mask.bytes()) << m.name;
    }
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
    for (const VideoMethod& m : kAllMethods)
        for (const VideoCase& c : kCases)
            for (tk_dtype dtype : kDtypes)
                for (double rate : rates_of(m)) {
                    if (!runs_at_scale(index++, 7)) continue;
                    const std::string label = std::string(m.name) + "_" + case_label(c, dtype) + "_rate" + std::to_string(rate);
                    SCOPED_TRACE(label);
                    // Without a workspace on even cases, with the queried one on odd ones.
                    expect_equal_to_the_cpu(m, c, rate, make_video(c, dtype, Layout{}, label), index % 2 == 1);
                }
}

TEST_F(TemporalCuda, VidCom2EqualsTheCpuForEverySetting) {
    // Indices, out, positions and mask bit for bit: the scores and frame budgets are the same float32
    // bits on both backends (SPEC section 5, "VidCom2"), so ties break alike too. A padded, misaligned
    // layout, the settings of the CPU test, the constant video, where every score ties, and NaN.
    int64_t index = 0;
    const Layout layout{5, 0, 1, false, 1};
    for (const std::vector<VideoCase>& cases : {std::vector<VideoCase>(std::begin(kCases), std::end(kCases)),
                                                std::vector<VideoCase>(std::begin(kWindowCases), std::end(kWindowCases))})
        for (const VideoCase& c : cases)
            for (tk_dtype dtype : kDtypes)
                for (const VidCom2Setting& s : kVidCom2Settings) {
                    if (!runs_at_scale(index++, 7)) continue;
                    const std::string label = "vidcom2_" + case_label(c, dtype) + setting_label(s);
                    SCOPED_TRACE(label);
                    const VideoMethod m = kVidCom2.with(s.channel_ratio, s.temperature);
                    expect_equal_to_the_cpu(m, c, s.retention_ratio, make_vidcom2_video(c, dtype, layout, label), index % 2 == 1);
                }
    const VideoCase c{2, 6, 3, 5, 40};
    HostTensor constant = make_video(c, TK_DTYPE_BF16, Layout{}, "vidcom2_constant");
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t t = 0; t < c.frames; ++t)
            for (int64_t h = 0; h < c.height; ++h)
                for (int64_t w = 0; w < c.width; ++w)
                    for (int64_t ch = 0; ch < c.channels; ++ch) constant.set(b, t, h, w, ch, static_cast<float>(constant.get(b, 0, 0, 0, ch)));
    expect_equal_to_the_cpu(kVidCom2, c, 0.3, constant, false);
    // A NaN: in a channel that is then not scored (its variance ranks last), and with every channel
    // scored, where it reaches every score and share (the norm's clamp must keep the NaN, as the CPU's).
    HostTensor nan_video = make_vidcom2_video(c, TK_DTYPE_F32, Layout{}, "vidcom2_cuda_nan");
    nan_video.set(1, 2, 1, 3, 7, std::numeric_limits<float>::quiet_NaN());
    expect_equal_to_the_cpu(kVidCom2, c, 0.3, nan_video, true);
    expect_equal_to_the_cpu(kVidCom2.with(1.0, 0.01), c, 0.3, nan_video, false);
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
