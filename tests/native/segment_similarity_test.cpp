// tk_segment_similarity (SPEC section 5): against the float64 reference on random inputs of awkward
// sizes and segmentations (W = 1 and 2 included), every float dtype and strided layouts; zero, NaN and
// repeated rows; CUDA against the CPU, bit for bit, where a device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "segment_similarity_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

struct SegmentCase {
    int64_t positions, channels;
    std::vector<int32_t> lengths;  // T is their sum
};

// Odd positions and channels around and off the 16 lanes; single frames, pairs, one long segment.
const SegmentCase kCases[] = {
    {13, 37, {3, 1, 2, 1}}, {5, 16, {1}}, {1, 1, {2, 7}}, {10, 130, {4, 4, 5, 3}},
    {27, 24, {5}},          {3, 17, {2, 2, 2}}, {9, 5, {1, 1, 1}},
};
const tk_dtype kDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};

int64_t frames_of(const SegmentCase& c) {
    int64_t t = 0;
    for (int32_t l : c.lengths) t += l;
    return t;
}

std::string case_label(const SegmentCase& c, tk_dtype dtype) {
    std::string label = std::string(dtype_label(dtype)) + "_N" + std::to_string(c.positions) + "_C" + std::to_string(c.channels) + "_W";
    for (int32_t l : c.lengths) label += "-" + std::to_string(l);
    return label;
}

// Random frames in which about half the positions are static: each frame's row there is a shared row
// plus small noise, so the similarities cover both sides of PruneVid's threshold.
HostArray make_frames(const SegmentCase& c, tk_dtype dtype, const ArrayLayout& layout, const std::string& name) {
    HostArray x(dtype, {frames_of(c), c.positions, c.channels}, layout);
    x.fill_bytes(0xA5);
    x.fill_gaps_with_nan();
    std::mt19937_64 generator(seed_from_name(name));
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    std::vector<double> shared(static_cast<size_t>(c.positions * c.channels));
    for (double& v : shared) v = uniform(generator);
    for (int64_t t = 0; t < frames_of(c); ++t)
        for (int64_t p = 0; p < c.positions; ++p)
            for (int64_t ch = 0; ch < c.channels; ++ch) {
                const double noise = uniform(generator);
                x.set(t, p, ch, p % 2 == 0 ? shared[static_cast<size_t>(p * c.channels + ch)] + 0.2 * noise : noise);
            }
    return x;
}

HostArray lengths_tensor(const std::vector<int32_t>& lengths, int64_t pad = 0) {
    HostArray a(TK_DTYPE_I32, {static_cast<int64_t>(lengths.size())}, ArrayLayout{pad, false, 0});
    for (size_t s = 0; s < lengths.size(); ++s) a.set(static_cast<int64_t>(s), 0, 0, lengths[s]);
    return a;
}

tk_status run(const HostArray& x, const HostArray& lengths, const HostArray& out) {
    const tk_tensor xd = x.desc(), ld = lengths.desc(), od = out.desc();
    return tk_segment_similarity(&xd, &ld, &od, nullptr);
}

TEST(SegmentSimilarity, MatchesReferenceForEveryDtypeLayoutAndSegmentation) {
    // Contiguous; padded rows with the frames inner (T stride < N stride); padded and misaligned-free offset.
    const ArrayLayout layouts[] = {ArrayLayout{}, ArrayLayout{3, true, 0}, ArrayLayout{1, false, 2}};
    for (const SegmentCase& c : kCases)
        for (tk_dtype dtype : kDtypes)
            for (size_t l = 0; l < std::size(layouts); ++l) {
                const std::string label = case_label(c, dtype) + "_layout" + std::to_string(l);
                SCOPED_TRACE(label);
                const HostArray x = make_frames(c, dtype, layouts[l], label);
                const HostArray lengths = lengths_tensor(c.lengths, static_cast<int64_t>(l));
                HostArray out(TK_DTYPE_F32, {static_cast<int64_t>(c.lengths.size()), c.positions}, ArrayLayout{static_cast<int64_t>(l), l == 1, 0});
                out.fill_bytes(0x7F);
                const HostArray before = out;
                ASSERT_EQ(run(x, lengths, out), TK_STATUS_OK) << tk_last_error();
                const std::vector<double> expected = reference_segment_similarity(x, c.lengths);
                const std::vector<double> got = out.values();
                ASSERT_EQ(got.size(), expected.size());
                for (size_t i = 0; i < got.size(); ++i) {
                    if (std::isnan(expected[i])) {
                        ASSERT_TRUE(std::isnan(got[i])) << label << " output " << i;
                    } else {
                        ASSERT_NEAR(got[i], expected[i], 4e-6 * std::sqrt(static_cast<double>(c.channels) + 16)) << label << " output " << i;
                    }
                }
                // The contract's float32 recipe, bit for bit (what the CUDA backend computes too).
                const std::vector<float> exact = reference_segment_similarity_f32(x, c.lengths);
                for (size_t i = 0; i < exact.size(); ++i) {
                    if (std::isnan(exact[i])) continue;
                    ASSERT_EQ(static_cast<float>(got[i]), exact[i]) << label << " output " << i;
                }
                EXPECT_EQ(first_changed_gap(before, out), "");
            }
}

TEST(SegmentSimilarity, ThreadCountChangesNoBit) {
    const SegmentCase c{41, 70, {3, 6, 1, 4}};
    const HostArray x = make_frames(c, TK_DTYPE_BF16, ArrayLayout{}, "threads");
    const HostArray lengths = lengths_tensor(c.lengths);
    std::vector<std::vector<uint8_t>> results;
    for (int32_t threads : {1, 2, 3, 7}) {
        const ScopedNumThreads scoped(threads);
        HostArray out(TK_DTYPE_F32, {4, c.positions});
        ASSERT_EQ(run(x, lengths, out), TK_STATUS_OK) << tk_last_error();
        results.push_back(out.bytes());
    }
    for (const auto& r : results) EXPECT_TRUE(r == results.front());
}

TEST(SegmentSimilarity, RepeatedZeroAndNanRows) {
    // One segment of 3 frames, 4 positions of 20 channels: position 0 the same row in every frame
    // (similarity 1), position 1 zero in frame 1 (its two pairs with it count 0), position 2 NaN in one
    // channel of frame 2 (NaN there only), position 3 opposite rows in frames 0 and 2.
    const int64_t channels = 20;
    HostArray x(TK_DTYPE_F32, {3, 4, channels});
    fill_values(x);
    for (int64_t t = 0; t < 3; ++t)
        for (int64_t c = 0; c < channels; ++c) {
            x.set(t, 0, c, x.get(0, 0, c));
            if (t == 1) x.set(t, 1, c, 0.0);
            x.set(2, 3, c, -x.get(0, 3, c));
        }
    x.set(2, 2, 7, std::numeric_limits<double>::quiet_NaN());
    const HostArray lengths = lengths_tensor({3});
    HostArray out(TK_DTYPE_F32, {1, 4});
    ASSERT_EQ(run(x, lengths, out), TK_STATUS_OK) << tk_last_error();
    EXPECT_NEAR(out.get(0, 0), 1.0, 1e-6);
    const std::vector<double> expected = reference_segment_similarity(x, {3});
    EXPECT_NEAR(out.get(0, 1), expected[1], 1e-6);
    double dot = 0, uu = 0, vv = 0;  // only the pair (0, 2) counts: the mean is its cosine / 3
    for (int64_t c = 0; c < channels; ++c) {
        dot += x.get(0, 1, c) * x.get(2, 1, c);
        uu += x.get(0, 1, c) * x.get(0, 1, c);
        vv += x.get(2, 1, c) * x.get(2, 1, c);
    }
    EXPECT_NEAR(expected[1] * 3.0, dot / std::sqrt(uu * vv), 1e-12);
    EXPECT_TRUE(std::isnan(out.get(0, 2)));
    EXPECT_NEAR(out.get(0, 3), expected[3], 1e-6);
    // W = 2 is the cosine of the two frames; W = 1 is NaN (PruneVid's 0 / 0).
    const HostArray split = lengths_tensor({2, 1});
    HostArray pairs(TK_DTYPE_F32, {2, 4});
    ASSERT_EQ(run(x, split, pairs), TK_STATUS_OK) << tk_last_error();
    EXPECT_NEAR(pairs.get(0, 0), 1.0, 1e-6);
    EXPECT_EQ(pairs.get(0, 1), 0.0);  // frame 1's row is zero
    for (int64_t p = 0; p < 4; ++p) EXPECT_TRUE(std::isnan(pairs.get(1, p))) << p;
}

TEST(SegmentSimilarity, EmptyShapesWriteNothing) {
    const HostArray x(TK_DTYPE_F32, {0, 3, 4});
    const HostArray lengths(TK_DTYPE_I32, {0});
    HostArray out(TK_DTYPE_F32, {0, 3});
    EXPECT_EQ(run(x, lengths, out), TK_STATUS_OK) << tk_last_error();
    HostArray no_positions_x(TK_DTYPE_F32, {4, 0, 4});
    const HostArray four = lengths_tensor({1, 3});
    HostArray no_positions(TK_DTYPE_F32, {2, 0});
    EXPECT_EQ(run(no_positions_x, four, no_positions), TK_STATUS_OK) << tk_last_error();
}

// ---- CUDA against the CPU --------------------------------------------------------------------------

class SegmentSimilarityCuda : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string why = cuda_unavailable_reason();
        if (!why.empty()) GTEST_SKIP() << why;
        stream_ = std::make_unique<CudaStream>();
    }
    void upload(const DeviceBuffer& device, const std::vector<uint8_t>& bytes) {
        ASSERT_EQ(tk_cuda_memcpy_async(device.get(), bytes.data(), bytes.size(), stream_->get()), TK_STATUS_OK) << tk_last_error();
    }
    std::unique_ptr<CudaStream> stream_;
};

TEST_F(SegmentSimilarityCuda, EqualsTheCpuBitForBit) {
    int64_t index = 0;
    for (const SegmentCase& c : kCases)
        for (tk_dtype dtype : kDtypes) {
            if (!runs_at_scale(index++, 4)) continue;
            const std::string label = case_label(c, dtype);
            SCOPED_TRACE(label);
            const HostArray x = make_frames(c, dtype, ArrayLayout{1, true, 0}, label);
            const HostArray lengths = lengths_tensor(c.lengths);
            HostArray cpu(TK_DTYPE_F32, {static_cast<int64_t>(c.lengths.size()), c.positions}, ArrayLayout{1, false, 0});
            cpu.fill_bytes(0x11);
            HostArray gpu = cpu;
            ASSERT_EQ(run(x, lengths, cpu), TK_STATUS_OK) << tk_last_error();
            DeviceBuffer x_device(x.bytes().size()), lengths_device(lengths.bytes().size()), out_device(gpu.bytes().size());
            upload(x_device, x.bytes());
            upload(lengths_device, lengths.bytes());
            upload(out_device, gpu.bytes());
            const tk_tensor xd = x.device_desc(x_device.get(), 0), ld = lengths.device_desc(lengths_device.get(), 0),
                            od = gpu.device_desc(out_device.get(), 0);
            ASSERT_EQ(tk_segment_similarity(&xd, &ld, &od, stream_->get()), TK_STATUS_OK) << tk_last_error();
            ASSERT_EQ(tk_cuda_memcpy_async(gpu.bytes().data(), out_device.get(), gpu.bytes().size(), stream_->get()), TK_STATUS_OK);
            ASSERT_EQ(tk_cuda_stream_synchronize(stream_->get()), TK_STATUS_OK) << tk_last_error();
            EXPECT_TRUE(gpu.bytes() == cpu.bytes()) << "the CUDA similarities differ from the CPU's";
        }
}

}  // namespace
}  // namespace tkt
