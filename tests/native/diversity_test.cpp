// Diversity selection (SPEC section 4): the CPU backend against the float64 reference on fresh random
// inputs (redrawn until no choice is a near-tie), every objective, first-center policy, distance and
// dtype, strided views, lengths and per-item k; exact duplicates and NaN rows; DivPrune's published
// algorithm; determinism across thread counts; and the CUDA backend against the CPU backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "diversity_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

constexpr tk_dtype kFloatDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};
constexpr tk_distance kDistances[] = {TK_DISTANCE_COSINE, TK_DISTANCE_L2};
constexpr tk_first_center kFirstCenters[] = {TK_FIRST_MOST_ISOLATED, TK_FIRST_INDEX, TK_FIRST_SCORE};
constexpr tk_diversity_objective kObjectives[] = {TK_DIVERSITY_MAX_MIN, TK_DIVERSITY_MAX_SUM};

::testing::AssertionResult ok(tk_status status) {
    if (status != TK_STATUS_OK) return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    return ::testing::AssertionSuccess();
}

std::string test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->test_suite_name()) + "." + info->name();
}

const char* distance_label(tk_distance d) { return d == TK_DISTANCE_L2 ? "l2" : "cosine"; }
const char* first_label(tk_first_center f) {
    return f == TK_FIRST_MOST_ISOLATED ? "most_isolated" : f == TK_FIRST_INDEX ? "index" : "score";
}
const char* objective_label(tk_diversity_objective o) { return o == TK_DIVERSITY_MAX_MIN ? "max_min" : "max_sum"; }

tk_diversity_params diversity_params(int64_t k, tk_distance distance, tk_first_center first, tk_diversity_objective objective) {
    tk_diversity_params p{};
    p.k = static_cast<int32_t>(k);
    p.distance = distance;
    p.first = first;
    p.objective = objective;
    return p;
}

std::string describe(const tk_diversity_params& p) {
    std::ostringstream s;
    s << "k=" << p.k << " " << distance_label(p.distance) << " " << first_label(p.first) << " " << objective_label(p.objective);
    return s.str();
}

std::vector<int32_t> as_int32(const HostArray& a) {
    std::vector<int32_t> v;
    for (double d : a.values()) v.push_back(static_cast<int32_t>(d));
    return v;
}

// Every tensor of one call, in padded buffers so that a write outside a view shows.
struct DiversityBuffers {
    tk_diversity_params params{};
    HostArray x, lengths, item_k, first_index, first_score, order, sorted;
    bool has_lengths = false, has_item_k = false, has_sorted = true;

    DiversityInputs inputs() const {
        DiversityInputs in;
        in.batch = x.shape()[0];
        in.tokens = x.shape()[1];
        in.channels = x.shape()[2];
        in.x = x.values();
        for (double v : lengths.values())
            if (has_lengths) in.lengths.push_back(static_cast<int64_t>(v));
        for (double v : item_k.values())
            if (has_item_k) in.item_k.push_back(static_cast<int64_t>(v));
        if (params.first == TK_FIRST_INDEX)
            for (double v : first_index.values()) in.first_index.push_back(static_cast<int64_t>(v));
        if (params.first == TK_FIRST_SCORE) in.first_score = first_score.values();
        return in;
    }
};

// x [B, N, C] of dtype, standard normal, with layout; optional lengths and item_k drawn per item;
// first_index and first_score as the policy needs.
DiversityBuffers diversity_buffers(const tk_diversity_params& params, tk_dtype dtype, int64_t batch, int64_t tokens,
                                   int64_t channels, const ArrayLayout& layout, bool has_lengths, bool has_item_k,
                                   std::mt19937_64& g) {
    DiversityBuffers d;
    d.params = params;
    d.has_lengths = has_lengths;
    d.has_item_k = has_item_k;
    d.x = HostArray(dtype, {batch, tokens, channels}, layout);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < tokens; ++i)
            for (int64_t c = 0; c < channels; ++c) d.x.set(b, i, c, normal(g));
    d.x.fill_gaps_with_nan();
    d.lengths = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 1});
    d.item_k = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{2, false, 0});
    std::vector<int64_t> length(static_cast<size_t>(batch), tokens);
    for (int64_t b = 0; b < batch; ++b) {
        if (has_lengths) length[static_cast<size_t>(b)] = b == 0 ? tokens : std::uniform_int_distribution<int64_t>(0, tokens)(g);
        d.lengths.set(b, 0, 0, static_cast<double>(length[static_cast<size_t>(b)]));
        d.item_k.set(b, 0, 0, has_item_k ? static_cast<double>(std::uniform_int_distribution<int64_t>(0, params.k)(g)) : params.k);
    }
    if (params.first == TK_FIRST_INDEX) {
        d.first_index = HostArray(TK_DTYPE_I32, {batch}, ArrayLayout{1, false, 0});
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t l = length[static_cast<size_t>(b)];
            d.first_index.set(b, 0, 0, l == 0 ? 0.0 : static_cast<double>(std::uniform_int_distribution<int64_t>(0, l - 1)(g)));
        }
    }
    if (params.first == TK_FIRST_SCORE) {
        d.first_score = HostArray(dtype, {batch, tokens}, ArrayLayout{1, false, 0});
        // Distinct in every dtype: a permutation of small integers.
        std::vector<int64_t> values(static_cast<size_t>(tokens));
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t i = 0; i < tokens; ++i) values[static_cast<size_t>(i)] = i;
            std::shuffle(values.begin(), values.end(), g);
            for (int64_t i = 0; i < tokens; ++i) d.first_score.set(b, i, 0, static_cast<double>(values[static_cast<size_t>(i)] % 256) + 0.5 * (i >= 256));
        }
    }
    d.order = HostArray(TK_DTYPE_I32, {batch, params.k}, ArrayLayout{1, false, 1});
    d.sorted = HostArray(TK_DTYPE_I32, {batch, params.k}, ArrayLayout{0, true, 0});
    d.order.fill_bytes(0x5a);
    d.sorted.fill_bytes(0x5a);
    return d;
}

// tk_diversity_select on d's tensors (on the CPU).
tk_status select_on_cpu(DiversityBuffers& d, void* workspace, uint64_t workspace_bytes) {
    const tk_tensor x = d.x.desc(), l = d.lengths.desc(), ik = d.item_k.desc(), o = d.order.desc(), s = d.sorted.desc();
    const tk_tensor fi = d.params.first == TK_FIRST_INDEX ? d.first_index.desc() : tk_tensor{};
    const tk_tensor fs = d.params.first == TK_FIRST_SCORE ? d.first_score.desc() : tk_tensor{};
    return tk_diversity_select(&d.params, &x, d.has_lengths ? &l : nullptr, d.has_item_k ? &ik : nullptr,
                               d.params.first == TK_FIRST_INDEX ? &fi : nullptr, d.params.first == TK_FIRST_SCORE ? &fs : nullptr,
                               &o, d.has_sorted ? &s : nullptr, workspace, workspace_bytes, nullptr);
}

// The workspace size tk_diversity_workspace_size gives for d, queried with query_threads threads (the
// current count when 0).
uint64_t queried_workspace_bytes(const DiversityBuffers& d, int32_t query_threads = 0) {
    const ScopedNumThreads query(query_threads != 0 ? query_threads : tk_get_num_threads());
    const tk_tensor x = d.x.desc();
    uint64_t bytes = 0;
    EXPECT_EQ(tk_diversity_workspace_size(&d.params, &x, &bytes), TK_STATUS_OK) << tk_last_error();
    return bytes;
}

// Runs tk_diversity_select on d's tensors (on the CPU; with a workspace of the queried size at an
// odd address when caller_workspace, queried with query_threads threads when that is not 0) and
// checks that nothing outside the views changed.
::testing::AssertionResult run_diversity(DiversityBuffers& d, bool caller_workspace = false, int32_t query_threads = 0) {
    const HostArray order_before = d.order, sorted_before = d.sorted;
    const uint64_t bytes = caller_workspace ? queried_workspace_bytes(d, query_threads) : 0;
    std::vector<uint8_t> workspace(static_cast<size_t>(bytes) + 1);
    const tk_status status = select_on_cpu(d, caller_workspace ? workspace.data() + 1 : nullptr, bytes);
    if (status != TK_STATUS_OK) return ok(status);
    const std::string order_gap = first_changed_gap(order_before, d.order), sorted_gap = first_changed_gap(sorted_before, d.sorted);
    if (!order_gap.empty()) return ::testing::AssertionFailure() << "order written outside its view: " << order_gap;
    if (!sorted_gap.empty()) return ::testing::AssertionFailure() << "sorted written outside its view: " << sorted_gap;
    return ::testing::AssertionSuccess();
}

// The smallest score gap the float32 backend must resolve as the float64 reference does: its
// distances are sums of C products of values of order 1 (squared L2: of order C).
double required_margin(const tk_diversity_params& p, int64_t channels) {
    return (p.distance == TK_DISTANCE_L2 ? 2e-5 * static_cast<double>(channels) : 2e-5) *
           (p.objective == TK_DIVERSITY_MAX_SUM ? static_cast<double>(p.k) : 1.0);
}

// Draws inputs (diversity_buffers) until the reference has no near-tie: d and the reference's result,
// or false and a test failure when 20 draws all had one.
bool draw_without_near_tie(const tk_diversity_params& p, tk_dtype dtype, int64_t batch, int64_t tokens, int64_t channels,
                           const ArrayLayout& layout, bool has_lengths, bool has_item_k, std::mt19937_64& g,
                           DiversityBuffers& d, DiversityResult& want) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        d = diversity_buffers(p, dtype, batch, tokens, channels, layout, has_lengths, has_item_k, g);
        want = reference_diversity(p, d.inputs());
        if (want.margin >= required_margin(p, channels)) return true;
    }
    ADD_FAILURE() << "no draw without a near-tie in 20 attempts";
    return false;
}

// Draws inputs until the reference has no near-tie, runs the library and compares exactly.
void expect_matches_reference(const tk_diversity_params& p, tk_dtype dtype, int64_t batch, int64_t tokens, int64_t channels,
                              const ArrayLayout& layout, bool has_lengths, bool has_item_k, std::mt19937_64& g,
                              bool caller_workspace = false) {
    DiversityBuffers d;
    DiversityResult want;
    if (!draw_without_near_tie(p, dtype, batch, tokens, channels, layout, has_lengths, has_item_k, g, d, want)) return;
    ASSERT_TRUE(run_diversity(d, caller_workspace));
    EXPECT_EQ(as_int32(d.order), want.order);
    EXPECT_EQ(as_int32(d.sorted), want.sorted);
}

// Sets every token of x to +-1 at `nonzero` random channels and 0 elsewhere. With nonzero a power of 4,
// every unit row is exact (entries +-1 / sqrt(nonzero), a power of two), so every distance and every
// max-sum score is exact in float32 whatever the order of its sums, and backends that round
// differently meet the same ties, broken to the lower token alike.
void set_sign_tokens(HostArray& x, int64_t nonzero, std::mt19937_64& g) {
    const int64_t batch = x.shape()[0], tokens = x.shape()[1], channels = x.shape()[2];
    std::vector<int64_t> channel(static_cast<size_t>(channels));
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < tokens; ++i) {
            std::iota(channel.begin(), channel.end(), int64_t{0});
            std::shuffle(channel.begin(), channel.end(), g);
            for (int64_t c = 0; c < channels; ++c) x.set(b, i, c, 0.0);
            for (int64_t c = 0; c < nonzero; ++c) x.set(b, i, channel[static_cast<size_t>(c)], g() % 2 ? 1.0 : -1.0);
        }
}

TEST(Diversity, EveryPolicyObjectiveAndDistanceMatchesReference) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const ArrayLayout padded{3, false, 1};
    const ArrayLayout batch_inner{2, true, 0};
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives)
                for (int64_t batch : {1, 3})
                    for (int64_t k : {1, 9, 37}) {
                        const tk_diversity_params p = diversity_params(k, distance, first, objective);
                        SCOPED_TRACE(describe(p) + " B=" + std::to_string(batch));
                        expect_matches_reference(p, TK_DTYPE_F32, batch, 37, 19, batch == 1 ? padded : batch_inner, false, false, g);
                    }
}

TEST(Diversity, LengthsAndPerItemK) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives)
                for (int options = 1; options < 4; ++options) {
                    const tk_diversity_params p = diversity_params(11, distance, first, objective);
                    SCOPED_TRACE(describe(p) + " options " + std::to_string(options));
                    expect_matches_reference(p, TK_DTYPE_F32, 3, 29, 13, ArrayLayout{1, false, 0}, options & 1, options & 2, g);
                }
}

// With the caller's workspace the items run one after another in it, each split across threads.
TEST(Diversity, CallerWorkspaceMatchesReference) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives) {
                const tk_diversity_params p = diversity_params(17, distance, first, objective);
                SCOPED_TRACE(describe(p));
                expect_matches_reference(p, TK_DTYPE_F32, 3, 131, 21, ArrayLayout{1, false, 0}, true, true, g, true);
            }
}

// The most isolated search keeps a score tile for each thread in the workspace: one queried with one
// thread serves a call on two (the search then runs on one), and one queried with two a call on one.
// Both give the reference's selection.
TEST(Diversity, WorkspaceQueriedAtAnotherThreadCount) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (const auto& [query_threads, call_threads] : {std::pair{1, 2}, std::pair{2, 1}}) {
            const tk_diversity_params p = diversity_params(9, distance, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN);
            SCOPED_TRACE(describe(p) + " queried with " + std::to_string(query_threads) + " threads, run on " +
                         std::to_string(call_threads));
            const ScopedNumThreads threads(call_threads);
            DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 2, 301, 45, ArrayLayout{}, false, false, g);
            ASSERT_TRUE(run_diversity(d, true, query_threads));
            const DiversityResult want = reference_diversity(p, d.inputs());
            EXPECT_EQ(as_int32(d.order), want.order);
        }
}

// The most isolated search keeps a tile of scores per thread, but no more tiles than panels of tokens:
// at 1024 threads N = 24 tokens need what they need at 24 threads (at most one panel per token), and a
// selection at 1024 threads in that workspace selects what one thread does.
TEST(Diversity, WorkspaceTilesCappedByTheTokens) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const tk_diversity_params p = diversity_params(5, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN);
    DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 1, 24, 16, ArrayLayout{}, false, false, g);
    EXPECT_EQ(queried_workspace_bytes(d, 1024), queried_workspace_bytes(d, 24));
    EXPECT_LT(queried_workspace_bytes(d, 24), queried_workspace_bytes(d, 1) * 24);
    const ScopedNumThreads many(1024);
    ASSERT_TRUE(run_diversity(d, true, 1024));
    EXPECT_EQ(as_int32(d.order), reference_diversity(p, d.inputs()).order);
}

// The header's promise: with the caller's workspace the op allocates nothing large. Here no allocation
// reaches 16 rows of C floats (the per-token bookkeeping at this N is far below that); the packed copy
// and the most isolated search's column panels would. Without the workspace the packed copy is
// allocated, which shows first that the library's allocations are seen at all.
TEST(Diversity, CallerWorkspaceAllocatesNothingLarge) {
    std::mt19937_64 g(seed_from_name(test_name()));
    constexpr int64_t kTokens = 600, kChannels = 4000;
    const ScopedNumThreads threads(2);
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives) {
                const tk_diversity_params p = diversity_params(20, distance, first, objective);
                SCOPED_TRACE(describe(p));
                DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 1, kTokens, kChannels, ArrayLayout{}, false, false, g);
                {
                    const LargeAllocationCount without(16 * kChannels * sizeof(float));
                    ASSERT_EQ(select_on_cpu(d, nullptr, 0), TK_STATUS_OK) << tk_last_error();
                    if (without.count() == 0) GTEST_SKIP() << "the library's allocations are not counted here (Windows, AddressSanitizer)";
                }
                const uint64_t bytes = queried_workspace_bytes(d);
                std::vector<uint8_t> workspace(static_cast<size_t>(bytes));
                const LargeAllocationCount with(16 * kChannels * sizeof(float));
                ASSERT_EQ(select_on_cpu(d, workspace.data(), bytes), TK_STATUS_OK) << tk_last_error();
                EXPECT_EQ(with.count(), 0);
            }
}

TEST(Diversity, HalfAndBfloat16InputsRoundedToTheirDtype) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_dtype dtype : {TK_DTYPE_F16, TK_DTYPE_BF16})
        for (tk_distance distance : kDistances)
            for (tk_first_center first : kFirstCenters)
                for (tk_diversity_objective objective : kObjectives) {
                    const tk_diversity_params p = diversity_params(13, distance, first, objective);
                    SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p));
                    expect_matches_reference(p, dtype, 2, 41, 24, ArrayLayout{2, false, 1}, false, true, g);
                }
}

// Sizes that cross the CPU's blocks: 256-channel GEMM blocks (a short last one, and whole ones only),
// 256-token update blocks and column tiles, partial micro-kernel panels; and no channels at all.
TEST(Diversity, LargerThanTheCpuBlocks) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_diversity_objective objective : kObjectives) {
            const tk_diversity_params p = diversity_params(40, distance, TK_FIRST_MOST_ISOLATED, objective);
            SCOPED_TRACE(describe(p));
            expect_matches_reference(p, TK_DTYPE_F32, 1, 531, 270, ArrayLayout{1, false, 0}, false, false, g);
            expect_matches_reference(p, TK_DTYPE_F32, 1, 203, 512, ArrayLayout{}, false, false, g);
            expect_matches_reference(p, TK_DTYPE_F32, 2, 77, 0, ArrayLayout{}, false, false, g);
        }
}

// Runs unrun's call into `one` on one thread, then on teams of two and of three (uneven shares of a
// chunk of centers, and empty ones where a chunk has fewer centers than threads), and expects each
// team's selection to be the one thread's.
void expect_teams_match_one_thread(const DiversityBuffers& unrun, DiversityBuffers& one) {
    one = unrun;
    {
        const ScopedNumThreads single(1);
        ASSERT_TRUE(run_diversity(one));
    }
    for (int32_t team_size : {2, 3}) {
        SCOPED_TRACE(std::to_string(team_size) + " threads");
        DiversityBuffers team = unrun;
        const ScopedNumThreads threads(team_size);
        ASSERT_TRUE(run_diversity(team));
        EXPECT_TRUE(team.order.bytes() == one.order.bytes());
    }
}

// Enough tokens, channels and centers that the threads work as a team: max-min refreshes stale scores
// in batches whose centers are split across threads, max-sum splits the tokens. The reference's
// selection, and the same selection with one thread and with teams of two and three, on sign tokens
// (set_sign_tokens: exact distances, many ties).
TEST(Diversity, ThreadTeamsMatchReferenceAndOneThread) {
    std::mt19937_64 g(seed_from_name(test_name()));
    constexpr int64_t kTokens = 600, kChannels = 4000, kNonzero = 1024;
    for (tk_distance distance : kDistances)
        for (tk_diversity_objective objective : kObjectives) {
            const tk_diversity_params p = diversity_params(64, distance, TK_FIRST_INDEX, objective);
            SCOPED_TRACE(describe(p));
            DiversityBuffers unrun = diversity_buffers(p, TK_DTYPE_F32, 1, kTokens, kChannels, ArrayLayout{}, false, false, g);
            set_sign_tokens(unrun.x, kNonzero, g);
            DiversityBuffers one;
            expect_teams_match_one_thread(unrun, one);
            EXPECT_EQ(as_int32(one.order), reference_diversity(p, one.inputs()).order);
        }
}

TEST(Diversity, KEqualsNAndSingleToken) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives) {
                SCOPED_TRACE(describe(diversity_params(0, distance, first, objective)));
                expect_matches_reference(diversity_params(23, distance, first, objective), TK_DTYPE_F32, 2, 23, 7,
                                         ArrayLayout{}, false, false, g);
                expect_matches_reference(diversity_params(1, distance, first, objective), TK_DTYPE_F32, 3, 1, 5, ArrayLayout{},
                                         false, false, g);
            }
}

// Exact duplicate rows tie exactly on both sides; each token is chosen once even with k = N.
TEST(Diversity, ExactDuplicatesAreNeverChosenTwice) {
    std::mt19937_64 g(seed_from_name(test_name()));
    constexpr int64_t kDistinct = 30, kCopies = 8, kTokens = kDistinct + kCopies;
    for (tk_distance distance : kDistances)
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives) {
                const tk_diversity_params p = diversity_params(kTokens, distance, first, objective);
                SCOPED_TRACE(describe(p));
                bool compared = false;
                for (int attempt = 0; attempt < 20 && !compared; ++attempt) {
                    DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 1, kTokens, 9, ArrayLayout{}, false, false, g);
                    for (int64_t i = 0; i < kCopies; ++i)
                        for (int64_t c = 0; c < 9; ++c) d.x.set(0, kDistinct + i, c, d.x.get(0, 3 * i, c));
                    // Scores of the first center tie between a row and its copy too.
                    if (first == TK_FIRST_SCORE)
                        for (int64_t i = 0; i < kCopies; ++i) d.first_score.set(0, kDistinct + i, 0, d.first_score.get(0, 3 * i, 0));
                    // Compare the choices made among the distinct rows: past them, max-min scores are
                    // rounding noise around 0.
                    tk_diversity_params distinct_p = p;
                    distinct_p.k = objective == TK_DIVERSITY_MAX_MIN ? static_cast<int32_t>(kDistinct) : static_cast<int32_t>(kTokens);
                    const DiversityResult want = reference_diversity(distinct_p, d.inputs());
                    if (want.margin < required_margin(distinct_p, 9)) continue;
                    ASSERT_TRUE(run_diversity(d));
                    const std::vector<int32_t> got = as_int32(d.order);
                    for (int64_t i = 0; i < distinct_p.k; ++i)
                        EXPECT_EQ(got[static_cast<size_t>(i)], want.order[static_cast<size_t>(i)]) << "choice " << i;
                    std::vector<int32_t> seen = got;
                    std::sort(seen.begin(), seen.end());
                    for (int64_t i = 0; i < kTokens; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i) << "not a permutation";
                    compared = true;
                }
                EXPECT_TRUE(compared) << "no draw without a near-tie";
            }
}

// A row holding NaN has NaN distances: nobody's nearest neighbour, its score NaN, chosen last.
TEST(Diversity, NanRowsAreChosenLast) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_first_center first : {TK_FIRST_MOST_ISOLATED, TK_FIRST_SCORE})
            for (tk_diversity_objective objective : kObjectives) {
                const tk_diversity_params p = diversity_params(26, distance, first, objective);
                SCOPED_TRACE(describe(p));
                bool compared = false;
                for (int attempt = 0; attempt < 20 && !compared; ++attempt) {
                    DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 1, 26, 8, ArrayLayout{}, false, false, g);
                    for (int64_t i : {2, 11, 17}) d.x.set(0, i, 5, std::numeric_limits<double>::quiet_NaN());
                    const DiversityResult want = reference_diversity(p, d.inputs());
                    if (want.margin < required_margin(p, 8)) continue;
                    ASSERT_TRUE(run_diversity(d));
                    EXPECT_EQ(as_int32(d.order), want.order);
                    if (first == TK_FIRST_MOST_ISOLATED) {
                        const std::vector<int32_t> tail(want.order.end() - 3, want.order.end());
                        EXPECT_EQ(tail, (std::vector<int32_t>{2, 11, 17}));
                    }
                    compared = true;
                }
                EXPECT_TRUE(compared) << "no draw without a near-tie";
            }
}

// DivPrune's code, literally (full matrix, second smallest per column, min over the chosen rows),
// against tk_diversity_select with cosine, most isolated, max-min.
TEST(DiversityDivPrune, SameSelectionAsThePublishedAlgorithm) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const tk_diversity_params p = diversity_params(19, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN);
    for (int trial = 0; trial < 3; ++trial) {
        bool compared = false;
        for (int attempt = 0; attempt < 20 && !compared; ++attempt) {
            DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, 1, 96, 48, ArrayLayout{}, false, false, g);
            const DiversityInputs in = d.inputs();
            if (reference_diversity(p, in).margin < required_margin(p, 48)) continue;
            const std::vector<int64_t> divprune = reference_divprune(in.x, 96, 48, p.k);
            ASSERT_TRUE(run_diversity(d));
            const std::vector<int32_t> got = as_int32(d.order);
            EXPECT_EQ(std::vector<int64_t>(got.begin(), got.end()), divprune);
            compared = true;
        }
        EXPECT_TRUE(compared) << "no draw without a near-tie";
    }
}

TEST(Diversity, DeterministicAcrossThreadCounts) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances)
        for (tk_diversity_objective objective : kObjectives)
            for (int64_t batch : {1, 3}) {
                const tk_diversity_params p = diversity_params(120, distance, TK_FIRST_MOST_ISOLATED, objective);
                SCOPED_TRACE(describe(p) + " B=" + std::to_string(batch));
                DiversityBuffers one = diversity_buffers(p, TK_DTYPE_BF16, batch, 777, 33, ArrayLayout{}, false, false, g);
                DiversityBuffers two = one;
                {
                    const ScopedNumThreads threads(1);
                    ASSERT_TRUE(run_diversity(one));
                }
                {
                    const ScopedNumThreads threads(2);
                    ASSERT_TRUE(run_diversity(two));
                }
                EXPECT_TRUE(one.order.bytes() == two.order.bytes());
                EXPECT_TRUE(one.sorted.bytes() == two.sorted.bytes());
            }
}

// Max-min at a size where a refresh runs many chunks of centers on each thread of a team, so the
// threads reach different chunks for an entry before they meet: the selection of one thread, for teams
// of two and of three.
TEST(Diversity, MaxMinTeamsOverManyChunksMatchOneThread) {
    std::mt19937_64 g(seed_from_name(test_name()));
    for (tk_distance distance : kDistances) {
        const tk_diversity_params p = diversity_params(600, distance, TK_FIRST_INDEX, TK_DIVERSITY_MAX_MIN);
        SCOPED_TRACE(describe(p));
        DiversityBuffers one;
        expect_teams_match_one_thread(diversity_buffers(p, TK_DTYPE_F32, 1, 3001, 1152, ArrayLayout{}, false, false, g), one);
    }
}

// ---- CUDA against CPU --------------------------------------------------------------------------------

// Runs tk_diversity_select on device copies of d's buffers and copies order and sorted back.
::testing::AssertionResult run_diversity_cuda(DiversityBuffers& d, tk_stream stream, bool caller_workspace) {
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    const auto upload = [&](const HostArray& a) {
        buffers.push_back(std::make_unique<DeviceBuffer>(std::max<size_t>(a.bytes().size(), 1)));
        if (!a.bytes().empty()) {
            EXPECT_EQ(tk_cuda_memcpy_async(buffers.back()->get(), a.bytes().data(), a.bytes().size(), stream), TK_STATUS_OK);
        }
        return a.device_desc(buffers.back()->get(), 0);
    };
    const tk_tensor x = upload(d.x), l = upload(d.lengths), ik = upload(d.item_k), o = upload(d.order), s = upload(d.sorted);
    const tk_tensor fi = d.params.first == TK_FIRST_INDEX ? upload(d.first_index) : tk_tensor{};
    const tk_tensor fs = d.params.first == TK_FIRST_SCORE ? upload(d.first_score) : tk_tensor{};
    uint64_t bytes = 0;
    const tk_status size_status = tk_diversity_workspace_size(&d.params, &x, &bytes);
    if (size_status != TK_STATUS_OK) return ok(size_status);
    std::unique_ptr<DeviceBuffer> workspace;
    if (caller_workspace && bytes > 0) workspace = std::make_unique<DeviceBuffer>(bytes);
    const tk_status status = tk_diversity_select(&d.params, &x, d.has_lengths ? &l : nullptr, d.has_item_k ? &ik : nullptr,
                                                 d.params.first == TK_FIRST_INDEX ? &fi : nullptr,
                                                 d.params.first == TK_FIRST_SCORE ? &fs : nullptr, &o, &s,
                                                 workspace ? workspace->get() : nullptr, workspace ? bytes : 0, stream);
    if (status != TK_STATUS_OK) return ok(status);
    const auto copy_back = [&](const tk_tensor& device, HostArray& host) {
        const auto* base = static_cast<const uint8_t*>(device.data) - (static_cast<const uint8_t*>(host.desc().data) - host.bytes().data());
        EXPECT_EQ(tk_cuda_memcpy_async(host.bytes().data(), base, host.bytes().size(), stream), TK_STATUS_OK);
    };
    copy_back(o, d.order);
    copy_back(s, d.sorted);
    return ok(tk_cuda_stream_synchronize(stream));
}

// The backends round differently (the CPU divides each row by its norm and sums 16 lanes; CUDA sums 32
// lanes and scales the dot product by both norms), so on normal tokens they agree only away from
// near-ties: at small sizes each is compared with the reference on draws without one. At N = 2100 (the
// greedy split across blocks; N = 300 of 224 channels at reduced scale), sign tokens at 64 of 72
// channels make every distance exact on both, and the ties many: in a padded, misaligned layout
// (CUDA's element loads) and a contiguous one (its 16-byte vector loads), CUDA's indices are the CPU's.
// Calls check(dtype, params, caller_workspace) for every float dtype, distance, first-center policy and
// objective (params with k centers), with and without the caller's workspace; at reduced scale for
// every 5th of these 72 cases (5 is coprime with each dimension, so every value of each stays).
template <class Check>
void for_each_cuda_case(int64_t k, Check check) {
    int64_t index = 0;
    for (tk_dtype dtype : kFloatDtypes)
        for (tk_distance distance : kDistances)
            for (tk_first_center first : kFirstCenters)
                for (tk_diversity_objective objective : kObjectives)
                    for (bool caller_workspace : {false, true})
                        if (runs_at_scale(index++, 5)) check(dtype, diversity_params(k, distance, first, objective), caller_workspace);
}

TEST(DiversityCuda, SameIndicesAsCpu) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    std::mt19937_64 g(seed_from_name(test_name()));
    struct Shape {
        int64_t batch, tokens, channels, k;
        ArrayLayout layout;
    };
    // Padded, misaligned rows (element loads), and contiguous rows of 16 channels (the greedy's vector
    // loads in every dtype).
    const ArrayLayout padded{2, false, 1};
    for (const Shape& shape : {Shape{3, 37, 19, 9, padded}, Shape{1, 1, 4, 1, padded}, Shape{2, 23, 7, 23, padded},
                               Shape{2, 29, 16, 11, ArrayLayout{}}})
        for_each_cuda_case(shape.k, [&](tk_dtype dtype, const tk_diversity_params& p, bool caller_workspace) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p) + " B=" + std::to_string(shape.batch) +
                         " N=" + std::to_string(shape.tokens) + " C=" + std::to_string(shape.channels) +
                         (caller_workspace ? " workspace" : ""));
            DiversityBuffers cpu;
            DiversityResult want;
            if (!draw_without_near_tie(p, dtype, shape.batch, shape.tokens, shape.channels, shape.layout,
                                       shape.batch > 1, shape.batch > 1, g, cpu, want))
                return;
            DiversityBuffers cuda = cpu;
            ASSERT_TRUE(run_diversity(cpu));
            ASSERT_TRUE(run_diversity_cuda(cuda, stream.get(), caller_workspace));
            EXPECT_EQ(as_int32(cpu.order), want.order);
            EXPECT_EQ(as_int32(cuda.order), want.order);
            EXPECT_EQ(as_int32(cuda.sorted), want.sorted);
        });
    // Reduced scale: N = 300 of C = 224 channels, still split over two CTAs per greedy step (N * C >
    // 65536) and over five column splits of the nearest-neighbour pass, with a fifth of its products.
    const int64_t split_tokens = scaled(2100, 300);
    const int64_t split_channels = scaled(72, 224);
    for (const ArrayLayout& layout : {ArrayLayout{2, false, 1}, ArrayLayout{}})
        for_each_cuda_case(scaled(200, 24), [&](tk_dtype dtype, const tk_diversity_params& p, bool caller_workspace) {
            SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p) + " N=" + std::to_string(split_tokens) +
                         " C=" + std::to_string(split_channels) + (layout.offset != 0 ? " misaligned" : " contiguous") +
                         (caller_workspace ? " workspace" : ""));
            DiversityBuffers cpu = diversity_buffers(p, dtype, 1, split_tokens, split_channels, layout, false, false, g);
            set_sign_tokens(cpu.x, 64, g);
            DiversityBuffers cuda = cpu;
            ASSERT_TRUE(run_diversity(cpu));
            ASSERT_TRUE(run_diversity_cuda(cuda, stream.get(), caller_workspace));
            EXPECT_EQ(as_int32(cuda.order), as_int32(cpu.order));
            EXPECT_EQ(as_int32(cuda.sorted), as_int32(cpu.sorted));
        });
}

// A finite row whose float32 sum of squares overflows (|x| above about 1.8e19) is the zero vector of
// the SPEC's cosine: its distance to every row is exactly 1, on both backends, also to another such
// row, whose dot product with it overflows as well. Tokens 0 and 1 are such rows and token 0 is the
// first center (by index, by score, and as the most isolated: its nearest distance, 1, is the largest),
// so the second center is token 1, the lowest of the tokens at distance 1 (a NaN distance would rank
// it last instead). Sign tokens elsewhere (set_sign_tokens) make every other distance exact too, so the
// CPU equals the reference and CUDA equals the CPU, ties included.
TEST(DiversityOverflow, RowWhoseSquaredNormOverflowsIsTheZeroVector) {
    std::mt19937_64 g(seed_from_name(test_name()));
    const bool with_cuda = cuda_unavailable_reason().empty();
    for (tk_dtype dtype : {TK_DTYPE_F32, TK_DTYPE_BF16})
        for (tk_first_center first : kFirstCenters)
            for (tk_diversity_objective objective : kObjectives) {
                const tk_diversity_params p = diversity_params(12, TK_DISTANCE_COSINE, first, objective);
                SCOPED_TRACE(std::string(dtype_label(dtype)) + " " + describe(p));
                DiversityBuffers cpu = diversity_buffers(p, dtype, 2, 30, 16, ArrayLayout{}, false, false, g);
                set_sign_tokens(cpu.x, 4, g);
                for (int64_t b = 0; b < 2; ++b) {
                    for (int64_t token : {0, 1})
                        for (int64_t c = 0; c < 16; ++c) cpu.x.set(b, token, c, c % 3 ? 2e19 : -2e19);
                    if (first == TK_FIRST_INDEX) cpu.first_index.set(b, 0, 0, 0.0);
                    if (first == TK_FIRST_SCORE) cpu.first_score.set(b, 0, 0, 300.0);
                }
                const DiversityResult want = reference_diversity(p, cpu.inputs());
                for (int64_t b = 0; b < 2; ++b) {
                    EXPECT_EQ(want.order[static_cast<size_t>(b * p.k)], 0) << "the reference's first center";
                    EXPECT_EQ(want.order[static_cast<size_t>(b * p.k + 1)], 1) << "the reference's second center";
                }
                DiversityBuffers cuda = cpu;
                ASSERT_TRUE(run_diversity(cpu));
                EXPECT_EQ(as_int32(cpu.order), want.order);
                EXPECT_EQ(as_int32(cpu.sorted), want.sorted);
                if (!with_cuda) continue;
                const CudaStream stream;
                ASSERT_TRUE(run_diversity_cuda(cuda, stream.get(), false));
                EXPECT_EQ(as_int32(cuda.order), as_int32(cpu.order));
                EXPECT_EQ(as_int32(cuda.sorted), as_int32(cpu.sorted));
            }
}

// Nothing to select (no items, or items without tokens and k = 0): accepted by run(d) (a workspace of
// the queried size), nothing written.
template <class Run>
void expect_empty_selections_accepted(Run run) {
    std::mt19937_64 g(seed_from_name(test_name()));
    struct Shape {
        int64_t batch, tokens, k;
    };
    for (const Shape& shape : {Shape{0, 5, 3}, Shape{2, 0, 0}})
        for (tk_first_center first : kFirstCenters) {
            const tk_diversity_params p = diversity_params(shape.k, TK_DISTANCE_COSINE, first, TK_DIVERSITY_MAX_MIN);
            SCOPED_TRACE(describe(p) + " B=" + std::to_string(shape.batch) + " N=" + std::to_string(shape.tokens));
            DiversityBuffers d = diversity_buffers(p, TK_DTYPE_F32, shape.batch, shape.tokens, 8, ArrayLayout{}, false, false, g);
            EXPECT_TRUE(run(d));
        }
}

TEST(Diversity, EmptySelectionsAccepted) {
    expect_empty_selections_accepted([](DiversityBuffers& d) { return run_diversity(d, true); });
}

TEST(DiversityCuda, EmptySelectionsAccepted) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const CudaStream stream;
    expect_empty_selections_accepted([&](DiversityBuffers& d) { return run_diversity_cuda(d, stream.get(), true); });
}

}  // namespace
}  // namespace tkt
