// Clustering and aggregation (SPEC section 6): DPC-kNN's CPU backend against the float64 reference on
// fresh clustered random inputs (redrawn until no decision is a float32 near-tie), every dtype,
// strided views, lengths and per-item cluster counts, k = 1 and k = N, exact duplicates, workspace
// and thread-count independence; the aggregation in every mode, empty clusters included; and the CUDA
// backend against the CPU (skipped without a device; CUDA tensors refused without a CUDA build).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cluster_reference.hpp"
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

struct DpcCase {
    int64_t batch, tokens, channels, clusters, neighbours;
    bool lengths, item_clusters, strided;
};

// Tokens around a few random points with a per-token spread, so densities differ clearly.
void fill_clustered(HostArray& x, std::mt19937_64& gen) {
    const int64_t b_count = x.shape()[0], n = x.shape()[1], c = x.shape()[2];
    std::uniform_real_distribution<double> uniform(-2.0, 2.0), spread(0.05, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int64_t b = 0; b < b_count; ++b) {
        const int64_t groups = 1 + static_cast<int64_t>(gen() % 6);
        std::vector<double> centre(static_cast<size_t>(groups * c));
        for (double& v : centre) v = uniform(gen);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t g = static_cast<int64_t>(gen() % static_cast<uint64_t>(groups));
            const double s = spread(gen);
            for (int64_t ch = 0; ch < c; ++ch) x.set(b, i, ch, centre[g * c + ch] + s * normal(gen));
        }
    }
}

struct DpcRun {
    HostArray x, lengths, item_clusters, centres, assignment, density, delta;
    tk_dpc_knn_params params{};
    bool has_lengths = false, has_item_clusters = false;

    DpcRun(const DpcCase& k, tk_dtype dtype) {
        const ArrayLayout layout = k.strided ? ArrayLayout{3, false, 1} : ArrayLayout{};
        const ArrayLayout index_layout = k.strided ? ArrayLayout{1, true, 0} : ArrayLayout{};
        x = HostArray(dtype, {k.batch, k.tokens, k.channels}, layout);
        lengths = HostArray(TK_DTYPE_I32, {k.batch});
        item_clusters = HostArray(TK_DTYPE_I32, {k.batch});
        centres = HostArray(TK_DTYPE_I32, {k.batch, k.clusters}, index_layout);
        assignment = HostArray(TK_DTYPE_I32, {k.batch, k.tokens}, index_layout);
        density = HostArray(TK_DTYPE_F32, {k.batch, k.tokens}, index_layout);
        delta = HostArray(TK_DTYPE_F32, {k.batch, k.tokens}, index_layout);
        params.clusters = static_cast<int32_t>(k.clusters);
        params.neighbours = static_cast<int32_t>(k.neighbours);
        has_lengths = k.lengths;
        has_item_clusters = k.item_clusters;
        for (HostArray* a : {&centres, &assignment, &density, &delta}) a->fill_bytes(0xA5);
    }

    DpcInputs inputs() const {
        DpcInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.clusters = params.clusters;
        in.neighbours = params.neighbours;
        in.x = x.values();
        if (has_lengths)
            for (double v : lengths.values()) in.lengths.push_back(static_cast<int64_t>(v));
        if (has_item_clusters)
            for (double v : item_clusters.values()) in.item_clusters.push_back(static_cast<int64_t>(v));
        return in;
    }

    tk_status run(void* workspace = nullptr, uint64_t workspace_bytes = 0) {
        const tk_tensor xd = x.desc(), ld = lengths.desc(), kd = item_clusters.desc(), cd = centres.desc(),
                        ad = assignment.desc(), dd = density.desc(), ed = delta.desc();
        return tk_dpc_knn(&params, &xd, has_lengths ? &ld : nullptr, has_item_clusters ? &kd : nullptr, &cd, &ad, &dd, &ed,
                          workspace, workspace_bytes, nullptr);
    }
};

void expect_matches(const DpcRun& run, const DpcResult& ref, const std::string& what) {
    const std::vector<double> centres = run.centres.values(), assignment = run.assignment.values();
    const std::vector<double> density = run.density.values(), delta = run.delta.values();
    for (size_t i = 0; i < centres.size(); ++i)
        ASSERT_EQ(static_cast<int64_t>(centres[i]), ref.centres[i]) << what << " centres flat " << i;
    for (size_t i = 0; i < assignment.size(); ++i)
        ASSERT_EQ(static_cast<int64_t>(assignment[i]), ref.assignment[i]) << what << " assignment flat " << i;
    for (size_t i = 0; i < density.size(); ++i) {
        ASSERT_NEAR(density[i], ref.density[i], 1e-5 + 1e-4 * std::fabs(ref.density[i]) + ref.density_error[i])
            << what << " density " << i;
        ASSERT_NEAR(delta[i], ref.delta[i], 1e-5 + 1e-4 * std::fabs(ref.delta[i]) + ref.delta_error[i]) << what << " delta " << i;
    }
}

// Draws inputs (lengths and cluster counts too) until the reference decides nothing by a near-tie.
void draw(DpcRun& run, const DpcCase& k, std::mt19937_64& gen, DpcResult& ref) {
    for (int attempt = 0; attempt < 40; ++attempt) {
        fill_clustered(run.x, gen);
        for (int64_t b = 0; b < k.batch; ++b) {
            const int64_t length = b == 0 ? k.tokens : static_cast<int64_t>(gen() % static_cast<uint64_t>(k.tokens + 1));
            run.lengths.set(b, 0, 0, static_cast<double>(length));
            run.item_clusters.set(b, 0, 0, static_cast<double>(gen() % static_cast<uint64_t>(k.clusters + 1)));
        }
        ref = dpc_knn_reference(run.inputs());
        if (!ref.near_tie) return;
    }
    FAIL() << "no draw without a near-tie in 40 attempts: B=" << k.batch << " N=" << k.tokens << " C=" << k.channels;
}

TEST(DpcKnn, MatchesReference) {
    const DpcCase cases[] = {
        {3, 37, 1, 5, 5, false, false, false},  {2, 50, 19, 7, 3, true, false, true},
        {4, 64, 48, 8, 5, true, true, false},   {2, 29, 7, 29, 1, false, false, true},
        {2, 41, 33, 1, 7, true, false, false},  {1, 200, 65, 16, 5, false, true, true},
        {5, 23, 3, 4, 40, true, true, true},
    };
    std::mt19937_64 gen(seed_from_name(test_name()));
    for (const DpcCase& k : cases)
        for (tk_dtype dtype : kFloatDtypes) {
            const std::string what = "B=" + std::to_string(k.batch) + " N=" + std::to_string(k.tokens) + " C=" +
                                     std::to_string(k.channels) + " K=" + std::to_string(k.clusters) + " k=" +
                                     std::to_string(k.neighbours) + " " + dtype_label(dtype);
            DpcRun run(k, dtype);
            DpcResult ref;
            draw(run, k, gen, ref);
            const DpcRun before = run;
            ASSERT_TRUE(ok(run.run())) << what;
            expect_matches(run, ref, what);
            for (const auto& [a, b] : {std::pair{&before.centres, &run.centres}, {&before.assignment, &run.assignment},
                                       {&before.density, &run.density}, {&before.delta, &run.delta}})
                EXPECT_EQ(first_changed_gap(*a, *b), "") << what;
        }
}

// Every token duplicated: the later copy has delta 0 (its twin ranks before it at distance 0), so no
// two copies are both centres while a distinct token remains; ties everywhere go to the lower index.
TEST(DpcKnn, Duplicates) {
    std::mt19937_64 gen(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes) {
        const DpcCase k{2, 30, 9, 10, 4, false, false, false};
        DpcRun run(k, dtype);
        fill_clustered(run.x, gen);
        for (int64_t b = 0; b < 2; ++b)
            for (int64_t i = 15; i < 30; ++i)
                for (int64_t c = 0; c < 9; ++c) run.x.set(b, i, c, run.x.get(b, i - 15, c));
        const DpcResult ref = dpc_knn_reference(run.inputs(), 0.0);
        ASSERT_TRUE(ok(run.run()));
        expect_matches(run, ref, dtype_label(dtype));
        for (int64_t b = 0; b < 2; ++b)
            for (int64_t j = 0; j < 10; ++j) EXPECT_LT(run.centres.get(b, j), 15) << "a later duplicate became a centre";
    }
    // All tokens equal: every score is 0 but the first token's, and the centres are 0, 1, 2, ...
    DpcRun same({1, 12, 4, 5, 3, false, false, false}, TK_DTYPE_F32);
    for (int64_t i = 0; i < 12; ++i)
        for (int64_t c = 0; c < 4; ++c) same.x.set(0, i, c, 0.25 * c);
    ASSERT_TRUE(ok(same.run()));
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(same.centres.get(0, j), j);
}

TEST(DpcKnn, WorkspaceAndThreadsGiveTheSameResult) {
    std::mt19937_64 gen(seed_from_name(test_name()));
    const DpcCase k{9, 70, 21, 6, 5, true, true, false};
    DpcRun run(k, TK_DTYPE_F32);
    DpcResult ref;
    draw(run, k, gen, ref);
    ASSERT_TRUE(ok(run.run()));
    const std::vector<double> expected = run.assignment.values(), expected_centres = run.centres.values();
    for (int32_t threads : {1, 2, 3}) {
        const ScopedNumThreads scoped(threads);
        uint64_t bytes = 0;
        const tk_tensor xd = run.x.desc();
        ASSERT_TRUE(ok(tk_dpc_knn_workspace_size(&run.params, &xd, &bytes)));
        std::vector<uint8_t> workspace(bytes);
        run.assignment.fill_bytes(0xA5);
        run.centres.fill_bytes(0xA5);
        ASSERT_TRUE(ok(run.run(workspace.data(), bytes))) << threads << " threads";
        EXPECT_EQ(run.assignment.values(), expected) << threads << " threads";
        EXPECT_EQ(run.centres.values(), expected_centres) << threads << " threads";
    }
}

TEST(DpcKnn, AssignmentIsASourceMapForUnmerge) {
    std::mt19937_64 gen(seed_from_name(test_name()));
    const DpcCase k{3, 40, 8, 6, 5, false, false, false};
    DpcRun run(k, TK_DTYPE_F32);
    DpcResult ref;
    draw(run, k, gen, ref);
    ASSERT_TRUE(ok(run.run()));
    for (int64_t b = 0; b < 3; ++b)
        for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(run.assignment.get(b, static_cast<int64_t>(run.centres.get(b, j))), j);
}

// Without a CUDA build, CUDA tensors are refused as for every op.
TEST(DpcKnn, CudaTensorsWithoutACudaBuildAreRefused) {
    if (tk_cuda_is_built()) GTEST_SKIP() << "a CUDA build: DpcKnnCuda compares the backends";
    HostArray x(TK_DTYPE_F32, {1, 4, 2}), centres(TK_DTYPE_I32, {1, 2}), assignment(TK_DTYPE_I32, {1, 4});
    HostArray out(TK_DTYPE_F32, {1, 2, 2});
    fill_values(x);
    tk_tensor xd = x.desc(), cd = centres.desc(), ad = assignment.desc(), od = out.desc();
    for (tk_tensor* t : {&xd, &cd, &ad, &od}) t->device_kind = TK_DEVICE_CUDA;
    const tk_dpc_knn_params params{2, 2};
    expect_rejected(tk_dpc_knn(&params, &xd, nullptr, nullptr, &cd, &ad, nullptr, nullptr, nullptr, 0, nullptr), "CUDA",
                    TK_STATUS_BACKEND_UNAVAILABLE);
    const tk_cluster_merge_params merge{2, TK_CLUSTER_MERGE_MEAN, 0.0f};
    expect_rejected(tk_cluster_merge(&merge, &xd, &ad, nullptr, nullptr, &od, nullptr, nullptr), "CUDA",
                    TK_STATUS_BACKEND_UNAVAILABLE);
}

// The arrays of a call copied to the device, run there, and the outputs copied back into the same
// HostArrays (so their gaps can be checked as on the CPU).
class DeviceCopies {
public:
    explicit DeviceCopies(tk_stream stream) : stream_(stream) {}
    tk_tensor upload(const HostArray& a) {
        buffers_.push_back(std::make_unique<DeviceBuffer>(std::max<size_t>(a.bytes().size(), 1)));
        if (!a.bytes().empty()) {
            EXPECT_EQ(tk_cuda_memcpy_async(buffers_.back()->get(), a.bytes().data(), a.bytes().size(), stream_), TK_STATUS_OK);
        }
        return a.device_desc(buffers_.back()->get(), 0);
    }
    void download(const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) - (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream_), TK_STATUS_OK);
    }

private:
    tk_stream stream_;
    std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

// Whether the CPU backend's dot products fuse their multiply-adds, as CUDA's do: its AVX-512 and AVX2
// variants (cpu/isa.cpp's choice, capped by TK_CPU_ISA), not the portable one.
bool cpu_dot_products_fuse() {
    const char* cap = std::getenv("TK_CPU_ISA");
    if (cap != nullptr && std::string(cap) == "portable") return false;
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
#else
    return false;
#endif
}

// CUDA against the CPU on draws without a near-tie: the same centres and assignment, the density and
// delta the CPU's bits where its dot products fuse multiply-adds (AVX-512, AVX2), within float32
// rounding otherwise.
TEST(DpcKnnCuda, SameAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 gen(seed_from_name(test_name()));
    const DpcCase cases[] = {{3, 37, 1, 5, 5, true, true, true}, {2, 50, 19, 7, 3, false, false, false},
                             {2, 200, 65, 16, 7, true, false, true}, {2, 29, 7, 29, 1, false, true, false}};
    for (const DpcCase& k : cases)
        for (tk_dtype dtype : kFloatDtypes)
            for (bool caller_workspace : {false, true}) {
                SCOPED_TRACE("N=" + std::to_string(k.tokens) + " " + dtype_label(dtype) + (caller_workspace ? " workspace" : ""));
                DpcRun cpu(k, dtype);
                DpcResult ref;
                draw(cpu, k, gen, ref);
                DpcRun cuda = cpu;
                ASSERT_TRUE(ok(cpu.run()));
                DeviceCopies copies(stream.get());
                const tk_tensor x = copies.upload(cuda.x), l = copies.upload(cuda.lengths), kc = copies.upload(cuda.item_clusters);
                const tk_tensor c = copies.upload(cuda.centres), a = copies.upload(cuda.assignment);
                const tk_tensor d = copies.upload(cuda.density), e = copies.upload(cuda.delta);
                uint64_t bytes = 0;
                ASSERT_TRUE(ok(tk_dpc_knn_workspace_size(&cuda.params, &x, &bytes)));
                std::unique_ptr<DeviceBuffer> workspace;
                if (caller_workspace && bytes > 0) workspace = std::make_unique<DeviceBuffer>(bytes);
                ASSERT_TRUE(ok(tk_dpc_knn(&cuda.params, &x, cuda.has_lengths ? &l : nullptr, cuda.has_item_clusters ? &kc : nullptr,
                                          &c, &a, &d, &e, workspace ? workspace->get() : nullptr, workspace ? bytes : 0,
                                          stream.get())));
                copies.download(c, cuda.centres);
                copies.download(a, cuda.assignment);
                copies.download(d, cuda.density);
                copies.download(e, cuda.delta);
                ASSERT_TRUE(ok(tk_cuda_stream_synchronize(stream.get())));
                EXPECT_EQ(cuda.centres.values(), cpu.centres.values());
                EXPECT_EQ(cuda.assignment.values(), cpu.assignment.values());
                expect_matches(cuda, ref, "cuda");
                if (cpu_dot_products_fuse()) {
                    EXPECT_EQ(cuda.density.values(), cpu.density.values());
                    EXPECT_EQ(cuda.delta.values(), cpu.delta.values());
                }
                for (const auto& [gpu, host] : {std::pair{&cuda.density, &cpu.density}, {&cuda.delta, &cpu.delta}})
                    EXPECT_EQ(first_changed_gap(*host, *gpu), "");
            }
}

// ---- Aggregation ----------------------------------------------------------------------------------

struct MergeRun {
    HostArray x, assignment, sizes, centres, out, out_size;
    tk_cluster_merge_params params{};
    bool has_sizes = false, has_centres = false;

    MergeRun(int64_t batch, int64_t tokens, int64_t channels, int64_t clusters, tk_dtype dtype, bool strided) {
        const ArrayLayout layout = strided ? ArrayLayout{2, false, 1} : ArrayLayout{};
        const ArrayLayout small = strided ? ArrayLayout{1, true, 0} : ArrayLayout{};
        x = HostArray(dtype, {batch, tokens, channels}, layout);
        assignment = HostArray(TK_DTYPE_I32, {batch, tokens}, small);
        sizes = HostArray(TK_DTYPE_F32, {batch, tokens}, small);
        centres = HostArray(TK_DTYPE_I32, {batch, clusters}, small);
        out = HostArray(dtype, {batch, clusters, channels}, layout);
        out_size = HostArray(TK_DTYPE_F32, {batch, clusters}, small);
        params.clusters = static_cast<int32_t>(clusters);
        out.fill_bytes(0xA5);
        out_size.fill_bytes(0xA5);
    }

    ClusterMergeInputs inputs() const {
        ClusterMergeInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.clusters = params.clusters;
        in.mode = static_cast<MergeMode>(params.mode);
        in.beta = params.beta;
        in.x = x.values();
        for (double v : assignment.values()) in.assignment.push_back(static_cast<int64_t>(v));
        if (has_sizes) in.sizes = sizes.values();
        if (has_centres)
            for (double v : centres.values()) in.centres.push_back(static_cast<int64_t>(v));
        return in;
    }

    tk_status run() {
        const tk_tensor xd = x.desc(), ad = assignment.desc(), sd = sizes.desc(), cd = centres.desc(), od = out.desc(),
                        osd = out_size.desc();
        return tk_cluster_merge(&params, &xd, &ad, has_sizes ? &sd : nullptr, has_centres ? &cd : nullptr, &od, &osd, nullptr);
    }
};

double dtype_tolerance(tk_dtype dtype) {
    return dtype == TK_DTYPE_F32 ? 2e-6 : dtype == TK_DTYPE_F16 ? 1.0 / 1024 : 1.0 / 128;
}

TEST(ClusterMerge, MatchesReference) {
    std::mt19937_64 gen(seed_from_name(test_name()));
    struct Shape {
        int64_t batch, tokens, channels, clusters;
    };
    const Shape shapes[] = {{3, 37, 1, 5}, {2, 50, 19, 7}, {1, 9, 130, 12}, {4, 64, 48, 1}};
    for (const Shape& s : shapes)
        for (tk_dtype dtype : kFloatDtypes)
            for (int mode = 0; mode < 4; ++mode)
                for (bool strided : {false, true}) {
                    const std::string what = "N=" + std::to_string(s.tokens) + " C=" + std::to_string(s.channels) + " K=" +
                                             std::to_string(s.clusters) + " mode " + std::to_string(mode) + " " +
                                             dtype_label(dtype) + (strided ? " strided" : "");
                    MergeRun run(s.batch, s.tokens, s.channels, s.clusters, dtype, strided);
                    fill_uniform(run.x, gen, -3.0, 3.0);
                    fill_uniform(run.sizes, gen, 0.5, 4.0);
                    run.params.mode = mode;
                    run.params.beta = 0.6f;
                    run.has_sizes = mode == 1 || gen() % 2 == 0;
                    run.has_centres = mode >= 2;
                    // Some clusters stay empty: members drawn from the first K - 1 clusters or none.
                    for (int64_t b = 0; b < s.batch; ++b) {
                        for (int64_t i = 0; i < s.tokens; ++i)
                            run.assignment.set(b, i, 0, static_cast<double>(static_cast<int64_t>(gen() % static_cast<uint64_t>(s.clusters + 1)) - 1));
                        for (int64_t j = 0; j < s.clusters; ++j) {
                            int64_t centre = -1;
                            for (int64_t i = 0; i < s.tokens; ++i)
                                if (run.assignment.get(b, i) == j && gen() % 3 != 0) centre = i;
                            run.centres.set(b, j, 0, static_cast<double>(centre));
                        }
                    }
                    const ClusterMergeResult ref = cluster_merge_reference(run.inputs());
                    const HostArray before_out = run.out, before_size = run.out_size;
                    ASSERT_TRUE(ok(run.run())) << what;
                    const std::vector<double> out = run.out.values(), out_size = run.out_size.values();
                    for (size_t i = 0; i < out.size(); ++i)
                        ASSERT_NEAR(out[i], ref.out[i], dtype_tolerance(dtype) * (1 + std::fabs(ref.out[i]))) << what << " out " << i;
                    for (size_t i = 0; i < out_size.size(); ++i)
                        ASSERT_NEAR(out_size[i], ref.out_size[i], 1e-5 * (1 + ref.out_size[i])) << what << " size " << i;
                    EXPECT_EQ(first_changed_gap(before_out, run.out), "") << what;
                    EXPECT_EQ(first_changed_gap(before_size, run.out_size), "") << what;
                }
}

// An exact case: integers and a power-of-two count give exact means, so the bits are known.
TEST(ClusterMerge, EmptyClustersGetZerosAndSizeZero) {
    MergeRun run(1, 4, 2, 3, TK_DTYPE_F32, false);
    const double x[4][2] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
    const int assignment[4] = {0, 2, 0, -1};
    for (int64_t i = 0; i < 4; ++i) {
        run.assignment.set(0, i, 0, assignment[i]);
        for (int64_t c = 0; c < 2; ++c) run.x.set(0, i, c, x[i][c]);
    }
    ASSERT_TRUE(ok(run.run()));
    const std::vector<double> expected = {3, 4, 0, 0, 3, 4};
    EXPECT_EQ(run.out.values(), expected);
    EXPECT_EQ(run.out_size.values(), (std::vector<double>{2, 0, 1}));
}

// The aggregation adds in the same order on both backends: the same bits.
TEST(ClusterMergeCuda, SameBitsAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 gen(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (int mode = 0; mode < 4; ++mode) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " mode " + std::to_string(mode));
            MergeRun cpu(3, 41, 300, 7, dtype, true);
            fill_uniform(cpu.x, gen, -3.0, 3.0);
            fill_uniform(cpu.sizes, gen, 0.5, 4.0);
            cpu.params.mode = mode;
            cpu.params.beta = 0.3f;
            cpu.has_sizes = mode != 0;
            cpu.has_centres = mode >= 2;
            for (int64_t b = 0; b < 3; ++b) {
                for (int64_t i = 0; i < 41; ++i) cpu.assignment.set(b, i, 0, static_cast<double>(static_cast<int64_t>(gen() % 8) - 1));
                for (int64_t j = 0; j < 7; ++j) cpu.centres.set(b, j, 0, static_cast<double>(static_cast<int64_t>(gen() % 42) - 1));
            }
            MergeRun cuda = cpu;
            ASSERT_TRUE(ok(cpu.run()));
            DeviceCopies copies(stream.get());
            const tk_tensor x = copies.upload(cuda.x), a = copies.upload(cuda.assignment), s = copies.upload(cuda.sizes);
            const tk_tensor c = copies.upload(cuda.centres), o = copies.upload(cuda.out), os = copies.upload(cuda.out_size);
            ASSERT_TRUE(ok(tk_cluster_merge(&cuda.params, &x, &a, cuda.has_sizes ? &s : nullptr, cuda.has_centres ? &c : nullptr, &o,
                                            &os, stream.get())));
            copies.download(o, cuda.out);
            copies.download(os, cuda.out_size);
            ASSERT_TRUE(ok(tk_cuda_stream_synchronize(stream.get())));
            EXPECT_TRUE(cuda.out.bytes() == cpu.out.bytes());
            EXPECT_TRUE(cuda.out_size.bytes() == cpu.out_size.bytes());
        }
}

// FastVID's weight max(1 / (n + 1), beta): with beta 0.25, a centre with one other member weighs 1/2,
// one with four weighs 1/4 (the clamp); exact in binary.
TEST(ClusterMerge, CentreCountBlendWeighsByCount) {
    MergeRun run(1, 7, 1, 3, TK_DTYPE_F32, false);
    const double x[7] = {8, 4, 16, 0, 4, 8, 12};
    const int assignment[7] = {0, 0, 1, 1, 1, 1, 1};
    const int centres[3] = {0, 3, 2};  // cluster 2's centre belongs to cluster 1: no other member
    for (int64_t i = 0; i < 7; ++i) {
        run.assignment.set(0, i, 0, assignment[i]);
        run.x.set(0, i, 0, x[i]);
    }
    for (int64_t j = 0; j < 3; ++j) run.centres.set(0, j, 0, centres[j]);
    run.params.mode = TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
    run.params.beta = 0.25f;
    run.has_centres = true;
    ASSERT_TRUE(ok(run.run()));
    // cluster 0: 0.5 * 8 + 0.5 * 4; cluster 1: centre 0, the others 16, 4, 8, 12 (mean 10) at weight
    // max(1/5, 1/4); cluster 2: its centre alone (no member).
    EXPECT_EQ(run.out.values(), (std::vector<double>{6, 7.5, 16}));
    EXPECT_EQ(run.out_size.values(), (std::vector<double>{2, 5, 0}));
}

// ---- Assignment to given centres ------------------------------------------------------------------

struct AssignRun {
    HostArray x, lengths, centres, assignment;
    tk_cluster_assign_params params{};
    bool has_lengths = false;

    AssignRun(int64_t batch, int64_t tokens, int64_t channels, int64_t clusters, tk_dtype dtype, bool strided) {
        const ArrayLayout layout = strided ? ArrayLayout{3, false, 1} : ArrayLayout{};
        const ArrayLayout small = strided ? ArrayLayout{1, true, 0} : ArrayLayout{};
        x = HostArray(dtype, {batch, tokens, channels}, layout);
        lengths = HostArray(TK_DTYPE_I32, {batch});
        centres = HostArray(TK_DTYPE_I32, {batch, clusters}, small);
        assignment = HostArray(TK_DTYPE_I32, {batch, tokens}, small);
        params.clusters = static_cast<int32_t>(clusters);
        assignment.fill_bytes(0xA5);
    }

    ClusterAssignInputs inputs() const {
        ClusterAssignInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.clusters = params.clusters;
        in.x = x.values();
        if (has_lengths)
            for (double v : lengths.values()) in.lengths.push_back(static_cast<int64_t>(v));
        for (double v : centres.values()) in.centres.push_back(static_cast<int64_t>(v));
        return in;
    }

    // Lengths and centres at random: distinct tokens of the item, some columns -1.
    void draw_indices(std::mt19937_64& gen) {
        const int64_t batch = x.shape()[0], n = x.shape()[1], k = params.clusters;
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t length = has_lengths && b > 0 ? static_cast<int64_t>(gen() % static_cast<uint64_t>(n + 1)) : n;
            lengths.set(b, 0, 0, static_cast<double>(length));
            std::vector<int64_t> order(static_cast<size_t>(length));
            std::iota(order.begin(), order.end(), 0);
            std::shuffle(order.begin(), order.end(), gen);
            for (int64_t j = 0; j < k; ++j)
                centres.set(b, j, 0, j < length && gen() % 5 != 0 ? static_cast<double>(order[j]) : -1.0);
        }
    }

    std::vector<int64_t> result() const {
        std::vector<int64_t> r;
        for (double v : assignment.values()) r.push_back(static_cast<int64_t>(v));
        return r;
    }

    tk_status run() {
        const tk_tensor xd = x.desc(), ld = lengths.desc(), cd = centres.desc(), ad = assignment.desc();
        return tk_cluster_assign(&params, &xd, has_lengths ? &ld : nullptr, &cd, &ad, nullptr);
    }
};

TEST(ClusterAssign, MatchesReference) {
    std::mt19937_64 gen(seed_from_name(test_name()));
    struct Shape {
        int64_t batch, tokens, channels, clusters;
    };
    const Shape shapes[] = {{3, 37, 1, 5}, {2, 50, 19, 7}, {1, 9, 130, 1}, {4, 64, 48, 12}, {2, 33, 17, 33}, {1, 5, 3, 0}};
    for (const Shape& s : shapes)
        for (tk_dtype dtype : kFloatDtypes)
            for (bool strided : {false, true}) {
                const std::string what = "N=" + std::to_string(s.tokens) + " C=" + std::to_string(s.channels) +
                                         " K=" + std::to_string(s.clusters) + " " + dtype_label(dtype) +
                                         (strided ? " strided" : "");
                AssignRun run(s.batch, s.tokens, s.channels, s.clusters, dtype, strided);
                run.has_lengths = strided;
                ClusterAssignResult ref;
                for (int attempt = 0; attempt < 40; ++attempt) {
                    fill_uniform(run.x, gen, -3.0, 3.0);
                    run.draw_indices(gen);
                    ref = cluster_assign_reference(run.inputs());
                    if (!ref.near_tie) break;
                }
                ASSERT_FALSE(ref.near_tie) << what;
                const HostArray before = run.assignment;
                ASSERT_TRUE(ok(run.run())) << what;
                EXPECT_EQ(run.result(), ref.assignment) << what;
                EXPECT_EQ(first_changed_gap(before, run.assignment), "") << what;
            }
}

// Exact decisions: a repeated centre (its later column gets nothing), equal similarities (the lower
// column), a zero row (similarity 0 to all: the first valid column), a NaN row (the first valid
// column), a zero centre (similarity 0) and a token past the length (-1).
TEST(ClusterAssign, TiesZeroRowsAndNaN) {
    AssignRun run(1, 8, 2, 4, TK_DTYPE_F32, false);
    const double x[8][2] = {{1, 0}, {0, 1}, {0, 0}, {1, 1}, {0, 0}, {NAN, 1}, {-1, -1}, {1, 0}};
    for (int64_t i = 0; i < 8; ++i)
        for (int64_t c = 0; c < 2; ++c) run.x.set(0, i, c, x[i][c]);
    const int centres[4] = {-1, 0, 2, 1};  // column 0 empty; column 2 the zero row
    for (int64_t j = 0; j < 4; ++j) run.centres.set(0, j, 0, centres[j]);
    run.lengths.set(0, 0, 0, 7);
    run.has_lengths = true;
    ASSERT_TRUE(ok(run.run()));
    // token 3 (1, 1): cos 0.7071 to (1, 0) and (0, 1), bit-equal: column 1; token 6: -0.707 to both, 0
    // to the zero centre: column 2.
    EXPECT_EQ(run.result(), (std::vector<int64_t>{1, 3, 2, 1, 1, 1, 2, -1}));
    EXPECT_EQ(run.result(), cluster_assign_reference(run.inputs()).assignment);

    AssignRun twice(1, 3, 2, 2, TK_DTYPE_F32, false);
    for (int64_t i = 0; i < 3; ++i)
        for (int64_t c = 0; c < 2; ++c) twice.x.set(0, i, c, static_cast<double>(i + c));
    twice.centres.set(0, 0, 0, 1);
    twice.centres.set(0, 1, 0, 1);
    ASSERT_TRUE(ok(twice.run()));
    EXPECT_EQ(twice.result(), (std::vector<int64_t>{0, 0, 0}));
}

TEST(ClusterAssign, CudaTensorsWithoutACudaBuildAreRefused) {
    if (tk_cuda_is_built()) GTEST_SKIP() << "a CUDA build: ClusterAssignCuda compares the backends";
    AssignRun run(1, 4, 2, 1, TK_DTYPE_F32, false);
    tk_tensor xd = run.x.desc(), cd = run.centres.desc(), ad = run.assignment.desc();
    for (tk_tensor* t : {&xd, &cd, &ad}) t->device_kind = TK_DEVICE_CUDA;
    expect_rejected(tk_cluster_assign(&run.params, &xd, nullptr, &cd, &ad, nullptr), "CUDA", TK_STATUS_BACKEND_UNAVAILABLE);
}

// One sum order on both backends: the same assignment on any input.
TEST(ClusterAssignCuda, SameAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 gen(seed_from_name(test_name()));
    for (tk_dtype dtype : kFloatDtypes)
        for (int64_t channels : {1, 7, 300}) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " C=" + std::to_string(channels));
            AssignRun cpu(3, 45, channels, 9, dtype, true);
            cpu.has_lengths = true;
            fill_uniform(cpu.x, gen, -3.0, 3.0);
            cpu.draw_indices(gen);
            AssignRun cuda = cpu;
            ASSERT_TRUE(ok(cpu.run()));
            DeviceCopies copies(stream.get());
            const tk_tensor x = copies.upload(cuda.x), l = copies.upload(cuda.lengths), c = copies.upload(cuda.centres);
            const tk_tensor a = copies.upload(cuda.assignment);
            ASSERT_TRUE(ok(tk_cluster_assign(&cuda.params, &x, &l, &c, &a, stream.get())));
            copies.download(a, cuda.assignment);
            ASSERT_TRUE(ok(tk_cuda_stream_synchronize(stream.get())));
            EXPECT_EQ(cuda.result(), cpu.result());
        }
}

}  // namespace
}  // namespace tkt
