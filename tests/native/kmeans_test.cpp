// Batched k-means (SPEC section 6, "k-means"): the CPU backend against the float64 reference on fresh
// random inputs (redrawn until no decision is a near-tie), both initialisations, every dtype, strided
// views, lengths and per-item cluster counts, K = 1 and K = N; exact ties and empty-cluster
// relocation; the random stream; determinism across thread counts and workspaces; CUDA against the
// reference and the CPU (skipped without a device).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kmeans_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

constexpr tk_dtype kFloatDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};
// Decisions closer than this (relative) are redrawn: float32 sums of a few dozen terms are far inside it.
constexpr double kMinMargin = 1e-4;

::testing::AssertionResult ok(tk_status status) {
    if (status != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    return ::testing::AssertionSuccess();
}

std::string test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->test_suite_name()) + "." + info->name();
}

tk_kmeans_params kmeans_params(int64_t clusters, tk_kmeans_init init, uint64_t seed, double tolerance, int32_t max_iterations) {
    tk_kmeans_params p{};
    p.seed = seed;
    p.tolerance = tolerance;
    p.clusters = static_cast<int32_t>(clusters);
    p.max_iterations = max_iterations;
    p.init = init;
    return p;
}

// Every tensor of one call, in padded buffers so that a write outside a view shows.
struct KMeansBuffers {
    tk_kmeans_params params{};
    HostArray x, lengths, item_clusters, initial, centres, assignment, sizes, iterations;
    bool has_lengths = false, has_item_clusters = false;

    KMeansInputs inputs() const {
        KMeansInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.x = x.values();
        if (has_lengths)
            for (double v : lengths.values()) in.lengths.push_back(static_cast<int64_t>(v));
        if (has_item_clusters)
            for (double v : item_clusters.values()) in.item_clusters.push_back(static_cast<int64_t>(v));
        if (params.init == TK_KMEANS_INIT_GIVEN) in.initial_centres = initial.values();
        return in;
    }

    tk_status run(void* workspace = nullptr, uint64_t workspace_bytes = 0) {
        const tk_tensor xd = x.desc(), ld = lengths.desc(), kd = item_clusters.desc(), id = initial.desc(), cd = centres.desc(),
                        ad = assignment.desc(), sd = sizes.desc(), td = iterations.desc();
        return tk_kmeans(&params, &xd, has_lengths ? &ld : nullptr, has_item_clusters ? &kd : nullptr,
                         params.init == TK_KMEANS_INIT_GIVEN ? &id : nullptr, &cd, &ad, &sd, &td, workspace, workspace_bytes,
                         nullptr);
    }
};

// Points around `clusters` random blob centres (standard normal spread `spread` around centres of
// scale 3), so that k-means has structure to find; x in `layout`, gaps NaN.
KMeansBuffers kmeans_buffers(const tk_kmeans_params& params, tk_dtype dtype, int64_t batch, int64_t tokens, int64_t channels,
                             const ArrayLayout& layout, bool has_lengths, bool has_item_clusters, std::mt19937_64& g,
                             double spread = 1.0) {
    KMeansBuffers d;
    d.params = params;
    d.has_lengths = has_lengths;
    d.has_item_clusters = has_item_clusters;
    d.x = HostArray(dtype, {batch, tokens, channels}, layout);
    std::normal_distribution<double> normal(0.0, 1.0);
    const int64_t blobs = std::max<int64_t>(params.clusters, 1);
    for (int64_t b = 0; b < batch; ++b) {
        std::vector<double> blob(static_cast<size_t>(blobs * channels));
        for (double& v : blob) v = 3.0 * normal(g);
        for (int64_t i = 0; i < tokens; ++i) {
            const int64_t which = std::uniform_int_distribution<int64_t>(0, blobs - 1)(g);
            for (int64_t c = 0; c < channels; ++c)
                d.x.set(b, i, c, blob[static_cast<size_t>(which * channels + c)] + spread * normal(g));
        }
    }
    d.x.fill_gaps_with_nan();
    d.lengths = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 0});
    d.item_clusters = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{2, false, 0});
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t length = has_lengths && b > 0 ? std::uniform_int_distribution<int64_t>(0, tokens)(g) : tokens;
        d.lengths.set(b, 0, 0, static_cast<double>(length));
        d.item_clusters.set(b, 0, 0,
                            has_item_clusters ? static_cast<double>(std::uniform_int_distribution<int64_t>(0, params.clusters)(g))
                                              : params.clusters);
    }
    // Given centres: random tokens of the item moved a little (several may start in one blob, leaving
    // clusters empty); with K = N the item's tokens themselves, permuted.
    d.initial = HostArray(TK_DTYPE_F32, {batch, params.clusters, channels}, ArrayLayout{3, false, 0});
    std::vector<int64_t> permutation(static_cast<size_t>(tokens));
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t length = static_cast<int64_t>(d.lengths.get(b));
        for (int64_t i = 0; i < tokens; ++i) permutation[static_cast<size_t>(i)] = i;
        std::shuffle(permutation.begin(), permutation.begin() + length, g);
        for (int64_t k = 0; k < params.clusters; ++k) {
            const bool exact = params.clusters == tokens;
            const int64_t from = exact ? permutation[static_cast<size_t>(k)] : std::uniform_int_distribution<int64_t>(0, tokens - 1)(g);
            for (int64_t c = 0; c < channels; ++c) d.initial.set(b, k, c, d.x.get(b, from, c) + (exact ? 0.0 : 0.1 * normal(g)));
        }
    }
    d.initial.fill_gaps_with_nan();
    d.centres = HostArray(TK_DTYPE_F32, {batch, params.clusters, channels}, ArrayLayout{1, false, 0});
    d.assignment = HostArray(TK_DTYPE_I32, {batch, tokens}, ArrayLayout{0, true, 0});
    d.sizes = HostArray(TK_DTYPE_F32, {batch, params.clusters}, ArrayLayout{1, false, 0});
    d.iterations = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 0});
    for (HostArray* out : {&d.centres, &d.assignment, &d.sizes, &d.iterations}) out->fill_bytes(0x5a);
    return d;
}

// The op's outputs equal the reference's: assignment, sizes and iterations exactly, centres to float32
// rounding of means of a few dozen values; and nothing written outside the output views.
void expect_matches_reference(const KMeansBuffers& d, const KMeansResult& want, const std::string& what) {
    const int64_t batch = d.x.shape()[0], n = d.x.shape()[1], channels = d.x.shape()[2], k = d.params.clusters;
    const std::vector<double> assignment = d.assignment.values(), sizes = d.sizes.values(), centres = d.centres.values(),
                              iterations = d.iterations.values();
    for (int64_t i = 0; i < batch * n; ++i)
        ASSERT_EQ(assignment[static_cast<size_t>(i)], want.assignment[static_cast<size_t>(i)]) << what << " assignment " << i;
    for (int64_t b = 0; b < batch; ++b)
        ASSERT_EQ(iterations[static_cast<size_t>(b)], want.iterations[static_cast<size_t>(b)]) << what << " iterations " << b;
    for (int64_t i = 0; i < batch * k; ++i) ASSERT_EQ(sizes[static_cast<size_t>(i)], want.sizes[static_cast<size_t>(i)]) << what << " sizes " << i;
    for (int64_t i = 0; i < batch * k * channels; ++i) {
        const double expected = want.centres[static_cast<size_t>(i)];
        ASSERT_NEAR(centres[static_cast<size_t>(i)], expected, 2e-5 * (1.0 + std::abs(expected)) * 10.0) << what << " centre " << i;
    }
    for (const HostArray* out : {&d.centres, &d.assignment, &d.sizes, &d.iterations}) {
        HostArray pristine = *out;
        pristine.fill_bytes(0x5a);
        ASSERT_EQ(first_changed_gap(pristine, *out), "") << what << ": written outside a view";
    }
}

struct Shape {
    int64_t batch, tokens, channels, clusters;
};

// Draws inputs until the reference makes no near-tie decision, runs the op, compares.
void check_case(const tk_kmeans_params& params, tk_dtype dtype, const Shape& s, const ArrayLayout& layout, bool has_lengths,
                bool has_item_clusters, std::mt19937_64& g, const std::string& what) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        KMeansBuffers d = kmeans_buffers(params, dtype, s.batch, s.tokens, s.channels, layout, has_lengths, has_item_clusters, g);
        const KMeansResult want = reference_kmeans(params, d.inputs());
        if (want.margin < kMinMargin) continue;
        ASSERT_TRUE(ok(d.run())) << what;
        expect_matches_reference(d, want, what);
        return;
    }
    FAIL() << what << ": no draw without near-ties in 50 attempts";
}

TEST(KMeans, MatchesReferenceAcrossShapesDtypesAndInits) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const Shape shapes[] = {{3, 37, 19, 5}, {2, 50, 1, 4}, {4, 23, 33, 1}, {2, 17, 8, 17}, {5, 64, 16, 8}};
    int64_t cases = 0;
    for (tk_dtype dtype : kFloatDtypes)
        for (tk_kmeans_init init : {TK_KMEANS_INIT_GIVEN, TK_KMEANS_INIT_PLUS_PLUS})
            for (const Shape& s : shapes)
                for (int variant = 0; variant < 3; ++variant) {
                    const double tolerance = variant == 1 ? 0.0 : 1e-4;
                    const int32_t max_iterations = variant == 2 ? 3 : 300;
                    const tk_kmeans_params params = kmeans_params(s.clusters, init, 1000 + cases, tolerance, max_iterations);
                    const ArrayLayout layout = variant == 0 ? ArrayLayout{} : ArrayLayout{variant == 1 ? 3 : 0, variant == 2, 0};
                    std::ostringstream what;
                    what << dtype_label(dtype) << (init == TK_KMEANS_INIT_GIVEN ? " given" : " k-means++") << " B=" << s.batch
                         << " N=" << s.tokens << " C=" << s.channels << " K=" << s.clusters << " variant " << variant;
                    check_case(params, dtype, s, layout, variant != 0, variant == 2, g, what.str());
                    ++cases;
                }
}

// K = N: every token its own cluster, each at distance zero from its own centre.
TEST(KMeans, AsManyClustersAsTokens) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_kmeans_init init : {TK_KMEANS_INIT_GIVEN, TK_KMEANS_INIT_PLUS_PLUS}) {
        const tk_kmeans_params params = kmeans_params(9, init, 5, 1e-4, 300);
        check_case(params, TK_DTYPE_F32, {2, 9, 5, 9}, ArrayLayout{}, false, false, g, "K = N");
        KMeansBuffers d = kmeans_buffers(params, TK_DTYPE_F32, 1, 9, 5, ArrayLayout{}, false, false, g);
        ASSERT_TRUE(ok(d.run()));
        std::vector<double> labels = d.assignment.values();
        std::sort(labels.begin(), labels.end());
        for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(labels[static_cast<size_t>(i)], i);
        for (double size : d.sizes.values()) EXPECT_EQ(size, 1.0);
    }
}

// Two identical initial centres: every token ties between them and goes to the lower one; the other is
// empty and takes the token farthest from its centre, which leaves the first cluster's sum. Exact ties
// in float32 and float64 alike, so the reference still applies (without its margin).
TEST(KMeans, TiesGoToTheLowerClusterAndEmptyClustersTakeTheFarthestToken) {
    std::mt19937_64 g(seed_from_name(test_name()));
    tk_kmeans_params params = kmeans_params(3, TK_KMEANS_INIT_GIVEN, 0, 0.0, 1);
    KMeansBuffers d = kmeans_buffers(params, TK_DTYPE_F32, 2, 12, 3, ArrayLayout{}, false, false, g);
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t c = 0; c < 3; ++c) {
            d.initial.set(b, 0, c, 0.25 * static_cast<double>(c));
            d.initial.set(b, 1, c, 0.25 * static_cast<double>(c));  // a duplicate of centre 0
            d.initial.set(b, 2, c, 1000.0);                         // far from every token: empty
        }
    const KMeansResult want = reference_kmeans(params, d.inputs());
    ASSERT_TRUE(ok(d.run()));
    // One iteration (then the labels of its centres): cluster 2 took the farthest token from centre 0,
    // and cluster 1, empty, the next farthest; both are tokens, so each keeps at least itself.
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t k = 0; k < 3; ++k) EXPECT_GE(d.sizes.get(b, k), 1.0);
    expect_matches_reference(d, want, "one iteration");
    params.max_iterations = 50;
    d.params = params;
    const KMeansResult converged = reference_kmeans(params, d.inputs());
    ASSERT_TRUE(ok(d.run()));
    expect_matches_reference(d, converged, "converged");
}

// The empty clusters are listed before any relocation (sklearn's rule): tokens {0.5, 1, 2, 50} from
// centres {1, -1000, 30, -2000} label {0, 0, 0, 2}, leaving clusters 1 and 3 empty. Cluster 1 takes the
// farthest token, 50, which empties cluster 2 (the zero vector from then on, not relocated in turn);
// cluster 3 takes the next farthest, 2, which leaves cluster 0 with {0.5, 1}: centres {0.75, 50, 0, 2}.
// After that one iteration the tokens are labelled from those centres: {0, 0, 3, 1}.
TEST(KMeans, EmptyClustersAreListedBeforeRelocating) {
    tk_kmeans_params params = kmeans_params(4, TK_KMEANS_INIT_GIVEN, 0, 0.0, 1);
    KMeansBuffers d;
    d.params = params;
    d.x = HostArray(TK_DTYPE_F32, {1, 4, 1});
    d.initial = HostArray(TK_DTYPE_F32, {1, 4, 1});
    const double tokens[] = {0.5, 1, 2, 50}, initial[] = {1, -1000, 30, -2000};
    for (int64_t i = 0; i < 4; ++i) {
        d.x.set(0, i, 0, tokens[i]);
        d.initial.set(0, i, 0, initial[i]);
    }
    d.lengths = HostArray(TK_DTYPE_I32, {1});
    d.item_clusters = HostArray(TK_DTYPE_I32, {1});
    d.centres = HostArray(TK_DTYPE_F32, {1, 4, 1});
    d.assignment = HostArray(TK_DTYPE_I32, {1, 4});
    d.sizes = HostArray(TK_DTYPE_F32, {1, 4});
    d.iterations = HostArray(TK_DTYPE_I32, {1});
    ASSERT_TRUE(ok(d.run()));
    EXPECT_EQ(d.centres.values(), (std::vector<double>{0.75, 50, 0, 2}));
    EXPECT_EQ(d.assignment.values(), (std::vector<double>{0, 0, 3, 1}));
    EXPECT_EQ(d.sizes.values(), (std::vector<double>{2, 1, 0, 1}));
    const KMeansResult want = reference_kmeans(params, d.inputs());
    EXPECT_EQ(want.assignment, (std::vector<int32_t>{0, 0, 3, 1}));
    EXPECT_EQ(want.centres, (std::vector<double>{0.75, 50, 0, 2}));
}

// Duplicated tokens land in the same cluster; exact duplicates of every token do not change the clustering.
TEST(KMeans, DuplicateTokens) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const tk_kmeans_params params = kmeans_params(4, TK_KMEANS_INIT_PLUS_PLUS, 11, 1e-4, 300);
    for (int attempt = 0; attempt < 20; ++attempt) {
        KMeansBuffers d = kmeans_buffers(params, TK_DTYPE_BF16, 3, 40, 7, ArrayLayout{}, false, false, g);
        for (int64_t b = 0; b < 3; ++b)
            for (int64_t i = 20; i < 40; ++i)
                for (int64_t c = 0; c < 7; ++c) d.x.set(b, i, c, d.x.get(b, i - 20, c));
        const KMeansResult want = reference_kmeans(params, d.inputs());
        if (want.margin < kMinMargin) continue;
        ASSERT_TRUE(ok(d.run()));
        expect_matches_reference(d, want, "duplicates");
        for (int64_t b = 0; b < 3; ++b)
            for (int64_t i = 20; i < 40; ++i) EXPECT_EQ(d.assignment.get(b, i), d.assignment.get(b, i - 20));
        return;
    }
    FAIL() << "no draw without near-ties";
}

// Empty items and zero clusters: assignment -1, centres and sizes zero, no iterations.
TEST(KMeans, EmptyItemsAndZeroClusters) {
    std::mt19937_64 g(seed_from_name(test_name()));
    KMeansBuffers d = kmeans_buffers(kmeans_params(3, TK_KMEANS_INIT_PLUS_PLUS, 1, 1e-4, 10), TK_DTYPE_F32, 3, 6, 2,
                                     ArrayLayout{}, true, true, g);
    d.lengths.set(0, 0, 0, 6);
    d.lengths.set(1, 0, 0, 0);
    d.lengths.set(2, 0, 0, 6);
    d.item_clusters.set(0, 0, 0, 3);
    d.item_clusters.set(1, 0, 0, 3);
    d.item_clusters.set(2, 0, 0, 0);
    ASSERT_TRUE(ok(d.run()));
    for (int64_t b = 1; b < 3; ++b) {
        for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(d.assignment.get(b, i), -1);
        for (int64_t k = 0; k < 3; ++k) {
            EXPECT_EQ(d.sizes.get(b, k), 0.0);
            for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(d.centres.get(b, k, c), 0.0);
        }
        EXPECT_EQ(d.iterations.get(b), 0);
    }
    EXPECT_GE(d.iterations.get(0), 1);
}

// The stream of the SPEC: fixed values, so a change of the formula shows (the reference re-derives it).
TEST(KMeans, RandomStreamIsTheSpecs) {
    EXPECT_DOUBLE_EQ(reference_kmeans_uniform(0, 0, 0), reference_kmeans_uniform(0, 0, 0));
    EXPECT_NE(reference_kmeans_uniform(0, 0, 0), reference_kmeans_uniform(0, 0, 1));
    EXPECT_NE(reference_kmeans_uniform(0, 0, 0), reference_kmeans_uniform(0, 1, 0));
    EXPECT_NE(reference_kmeans_uniform(0, 0, 0), reference_kmeans_uniform(1, 0, 0));
    // k-means++ on the op's stream equals the reference's on the stream it re-derives, for extreme seeds.
    std::mt19937_64 g(seed_from_name(test_name()));
    for (uint64_t seed : {0ull, 1ull, 0xDEADBEEFull, ~0ull}) {
        const tk_kmeans_params params = kmeans_params(3, TK_KMEANS_INIT_PLUS_PLUS, seed, 0.0, 1);
        check_case(params, TK_DTYPE_F32, {4, 30, 6, 3}, ArrayLayout{}, false, false, g, "seed " + std::to_string(seed));
    }
}

// The same results, bit for bit, with 1 or 2 threads, with or without a workspace (of the queried size
// or of one thread's).
TEST(KMeans, DeterministicAcrossThreadsAndWorkspaces) {
    std::mt19937_64 g(seed_from_name(test_name()));
    KMeansBuffers d = kmeans_buffers(kmeans_params(8, TK_KMEANS_INIT_PLUS_PLUS, 3, 1e-4, 300), TK_DTYPE_F16, 13, 70, 24,
                                     ArrayLayout{}, true, true, g);
    std::vector<std::vector<uint8_t>> first;
    for (int variant = 0; variant < 4; ++variant) {
        const ScopedNumThreads threads(variant == 0 ? 1 : 2);
        std::vector<uint8_t> workspace;
        if (variant >= 2) {
            const ScopedNumThreads query_threads(variant == 2 ? 2 : 1);
            uint64_t bytes = 0;
            const tk_tensor xd = d.x.desc();
            ASSERT_TRUE(ok(tk_kmeans_workspace_size(&d.params, &xd, &bytes)));
            workspace.assign(bytes, 0);
        }
        for (HostArray* out : {&d.centres, &d.assignment, &d.sizes, &d.iterations}) out->fill_bytes(0x5a);
        ASSERT_TRUE(ok(d.run(workspace.empty() ? nullptr : workspace.data(), workspace.size())));
        std::vector<std::vector<uint8_t>> now = {d.centres.bytes(), d.assignment.bytes(), d.sizes.bytes(), d.iterations.bytes()};
        if (variant == 0) {
            first = now;
        } else {
            EXPECT_TRUE(now == first) << "variant " << variant << " differs from one thread";
        }
    }
}

// Given a workspace the op allocates nothing large; without one it allocates its scratch (once per call).
TEST(KMeans, AllocatesNothingLargeGivenAWorkspace) {
    std::mt19937_64 g(seed_from_name(test_name()));
    KMeansBuffers d = kmeans_buffers(kmeans_params(8, TK_KMEANS_INIT_PLUS_PLUS, 3, 1e-4, 50), TK_DTYPE_F32, 4, 100, 64,
                                     ArrayLayout{}, false, false, g);
    uint64_t bytes = 0;
    const tk_tensor xd = d.x.desc();
    ASSERT_TRUE(ok(tk_kmeans_workspace_size(&d.params, &xd, &bytes)));
    std::vector<uint8_t> workspace(bytes);
    {
        const LargeAllocationCount without(4096);
        ASSERT_TRUE(ok(d.run()));
        if (without.count() == 0) GTEST_SKIP() << "the library's allocations are not counted here (Windows, AddressSanitizer)";
    }
    const LargeAllocationCount with(4096);
    ASSERT_TRUE(ok(d.run(workspace.data(), workspace.size())));
    EXPECT_EQ(with.count(), 0);
}

// A NaN token never crashes the op: it is nobody's nearest (its distances are NaN), so it goes to
// cluster 0, and the other tokens' labels stay in range.
TEST(KMeans, NaNTokensGoToClusterZero) {
    std::mt19937_64 g(seed_from_name(test_name()));
    KMeansBuffers d = kmeans_buffers(kmeans_params(3, TK_KMEANS_INIT_GIVEN, 0, 1e-4, 5), TK_DTYPE_F32, 1, 10, 4, ArrayLayout{},
                                     false, false, g);
    d.x.set(0, 4, 2, std::nan(""));
    ASSERT_TRUE(ok(d.run()));
    EXPECT_EQ(d.assignment.get(0, 4), 0);
    for (int64_t i = 0; i < 10; ++i) {
        EXPECT_GE(d.assignment.get(0, i), 0);
        EXPECT_LT(d.assignment.get(0, i), 3);
    }
}

// ---- CUDA ----------------------------------------------------------------------------------------

// tk_kmeans on device copies of d's tensors (outputs copied back into d), with or without a workspace.
::testing::AssertionResult run_kmeans_cuda(KMeansBuffers& d, tk_stream stream, bool caller_workspace) {
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    const auto upload = [&](const HostArray& a) {
        buffers.push_back(std::make_unique<DeviceBuffer>(std::max<size_t>(a.bytes().size(), 1)));
        if (!a.bytes().empty()) {
            EXPECT_EQ(tk_cuda_memcpy_async(buffers.back()->get(), a.bytes().data(), a.bytes().size(), stream), TK_STATUS_OK);
        }
        return a.device_desc(buffers.back()->get(), 0);
    };
    const tk_tensor x = upload(d.x), l = upload(d.lengths), k = upload(d.item_clusters), i = upload(d.initial), c = upload(d.centres),
                    a = upload(d.assignment), s = upload(d.sizes), t = upload(d.iterations);
    uint64_t bytes = 0;
    const tk_status size_status = tk_kmeans_workspace_size(&d.params, &x, &bytes);
    if (size_status != TK_STATUS_OK) return ok(size_status);
    std::unique_ptr<DeviceBuffer> workspace;
    if (caller_workspace && bytes > 0) workspace = std::make_unique<DeviceBuffer>(bytes);
    const tk_status status = tk_kmeans(&d.params, &x, d.has_lengths ? &l : nullptr, d.has_item_clusters ? &k : nullptr,
                                       d.params.init == TK_KMEANS_INIT_GIVEN ? &i : nullptr, &c, &a, &s, &t,
                                       workspace ? workspace->get() : nullptr, workspace ? bytes : 0, stream);
    if (status != TK_STATUS_OK) return ok(status);
    const auto copy_back = [&](const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) - (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream), TK_STATUS_OK);
    };
    copy_back(c, d.centres);
    copy_back(a, d.assignment);
    copy_back(s, d.sizes);
    copy_back(t, d.iterations);
    return ok(tk_cuda_stream_synchronize(stream));
}

// CUDA against the reference on draws without near-ties, and against the CPU: the same labels, sizes and
// iterations, and (the sums running in the same order) the same centre bits. Its distances are the CPU's
// portable ones; the default CPU run (AVX-512's fused multiply-add) agrees with them away from near-ties,
// which these draws exclude.
TEST(KMeansCuda, SameClusteringAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    const Shape shapes[] = {{3, 37, 19, 5}, {2, 50, 1, 4}, {2, 17, 8, 17}, {5, 64, 40, 8}};
    int64_t index = 0;
    for (tk_dtype dtype : kFloatDtypes)
        for (tk_kmeans_init init : {TK_KMEANS_INIT_GIVEN, TK_KMEANS_INIT_PLUS_PLUS})
            for (const Shape& s : shapes)
                for (bool caller_workspace : {false, true}) {
                    if (!runs_at_scale(index++, 5)) continue;
                    const tk_kmeans_params params = kmeans_params(s.clusters, init, 77 + index, 1e-4, 300);
                    SCOPED_TRACE(std::string(dtype_label(dtype)) + (init == TK_KMEANS_INIT_GIVEN ? " given" : " k-means++") +
                                 " K=" + std::to_string(s.clusters) + (caller_workspace ? " workspace" : ""));
                    for (int attempt = 0; attempt < 50; ++attempt) {
                        KMeansBuffers cpu = kmeans_buffers(params, dtype, s.batch, s.tokens, s.channels, ArrayLayout{2, false, 1},
                                                           true, s.batch > 2, g);
                        const KMeansResult want = reference_kmeans(params, cpu.inputs());
                        if (want.margin < kMinMargin) continue;
                        KMeansBuffers cuda = cpu;
                        ASSERT_TRUE(ok(cpu.run()));
                        ASSERT_TRUE(run_kmeans_cuda(cuda, stream.get(), caller_workspace));
                        expect_matches_reference(cuda, want, "cuda");
                        EXPECT_EQ(cuda.assignment.values(), cpu.assignment.values());
                        EXPECT_EQ(cuda.iterations.values(), cpu.iterations.values());
                        EXPECT_EQ(cuda.sizes.values(), cpu.sizes.values());
                        EXPECT_EQ(cuda.centres.values(), cpu.centres.values()) << "centre bits";
                        break;
                    }
                }
}

}  // namespace
}  // namespace tkt
