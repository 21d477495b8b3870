// CPU backend of temporal redundancy (SPEC section 5). The similarity pass runs its tasks in frame order
// (a frame each, or blocks of one when the frames are few), so the frame a token is compared with was
// mostly read just before and is still in cache: the input comes from memory about once. Its sums
// run on AVX-512 or AVX2 where the CPU has them (cpu/isa.hpp), one vector lane per lane of
// ops/temporal.hpp's order with separate multiplies and adds, so every variant gives the portable
// one's bits. EVS composes that pass with the top-k and gather ops (cpu/attention.cpp) over its
// scratch; VidCom2 scores in cpu/vidcom2.cpp, then ranks each frame with top-k; DyCoke runs frame by
// frame, each task scoring, ranking and copying one frame while it is in cache.
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "cpu/streaming_copy.hpp"
#include "ops/attention.hpp"
#include "ops/temporal.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_TEMPORAL_X86_KERNELS 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace tk::cpu {

namespace {

// Positions per task: 8 rows of a frame and 8 of its reference stay in L1/L2 for C up to a few
// thousand channels.
constexpr int64_t kPositionBlock = 8;

// The three lane sums of temporal_cosine, split at the channels a vector loop covered: the rest are added
// lane by lane in the same order, then finished alike.
struct LaneSums {
    float dot[kSumLanes];
    float aa[kSumLanes];
    float bb[kSumLanes];
};

template <class T>
float finish_tail(const T* a, const T* b, int64_t from, int64_t channels, LaneSums& s) {
    for (int l = 0; from + l < channels; ++l) {
        const float u = to_float(a[from + l]);
        const float v = to_float(b[from + l]);
        s.dot[l] += u * v;
        s.aa[l] += u * u;
        s.bb[l] += v * v;
    }
    return finish_cosine(s.dot, s.aa, s.bb);
}

template <class T>
float cosine_portable(const T* a, const T* b, int64_t channels) {
    return temporal_cosine(a, b, channels, [](T v) { return to_float(v); });
}

#if defined(TK_TEMPORAL_X86_KERNELS)

// The zero-masking forms with every lane set: GCC 12 warns that the plain forms' undefined source
// may be used uninitialised.
constexpr __mmask16 kAllLanes = 0xFFFF;

__attribute__((target("avx512f"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f"))) inline __m512 load16(const Half* p) {
    return _mm512_maskz_cvtph_ps(kAllLanes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
__attribute__((target("avx512f"))) inline __m512 load16(const BFloat16* p) {
    const __m512i wide = _mm512_maskz_cvtepu16_epi32(kAllLanes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, wide, 16));
}

template <class T>
__attribute__((target("avx512f"))) float cosine_avx512(const T* a, const T* b, int64_t channels) {
    __m512 dot = _mm512_setzero_ps(), aa = _mm512_setzero_ps(), bb = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + kSumLanes <= channels; c += kSumLanes) {
        const __m512 u = load16(a + c);
        const __m512 v = load16(b + c);
        dot = _mm512_add_ps(dot, _mm512_mul_ps(u, v));
        aa = _mm512_add_ps(aa, _mm512_mul_ps(u, u));
        bb = _mm512_add_ps(bb, _mm512_mul_ps(v, v));
    }
    LaneSums s;
    _mm512_storeu_ps(s.dot, dot);
    _mm512_storeu_ps(s.aa, aa);
    _mm512_storeu_ps(s.bb, bb);
    return finish_tail(a, b, c, channels, s);
}

// AVX2: lanes 0-7 in one vector, 8-15 in another.
__attribute__((target("avx2"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,f16c"))) inline __m256 load8(const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx2"))) inline __m256 load8(const BFloat16* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <class T>
__attribute__((target("avx2,f16c"))) float cosine_avx2(const T* a, const T* b, int64_t channels) {
    __m256 dot0 = _mm256_setzero_ps(), aa0 = _mm256_setzero_ps(), bb0 = _mm256_setzero_ps();
    __m256 dot1 = _mm256_setzero_ps(), aa1 = _mm256_setzero_ps(), bb1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + kSumLanes <= channels; c += kSumLanes) {
        const __m256 u0 = load8(a + c), u1 = load8(a + c + 8);
        const __m256 v0 = load8(b + c), v1 = load8(b + c + 8);
        dot0 = _mm256_add_ps(dot0, _mm256_mul_ps(u0, v0));
        dot1 = _mm256_add_ps(dot1, _mm256_mul_ps(u1, v1));
        aa0 = _mm256_add_ps(aa0, _mm256_mul_ps(u0, u0));
        aa1 = _mm256_add_ps(aa1, _mm256_mul_ps(u1, u1));
        bb0 = _mm256_add_ps(bb0, _mm256_mul_ps(v0, v0));
        bb1 = _mm256_add_ps(bb1, _mm256_mul_ps(v1, v1));
    }
    LaneSums s;
    _mm256_storeu_ps(s.dot, dot0);
    _mm256_storeu_ps(s.dot + 8, dot1);
    _mm256_storeu_ps(s.aa, aa0);
    _mm256_storeu_ps(s.aa + 8, aa1);
    _mm256_storeu_ps(s.bb, bb0);
    _mm256_storeu_ps(s.bb + 8, bb1);
    return finish_tail(a, b, c, channels, s);
}

#endif

template <class T>
using CosineFn = float (*)(const T*, const T*, int64_t);

#if defined(TK_TEMPORAL_X86_KERNELS)
// The AVX2 variant converts f16 with F16C (CPUID leaf 1, ECX bit 29), which AVX2 CPUs have; asked
// directly, as clang's __builtin_cpu_supports does not know it.
bool has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}
#endif

// The widest variant this CPU runs.
template <class T>
CosineFn<T> cosine_variant() {
#if defined(TK_TEMPORAL_X86_KERNELS)
    if (cpu_isa() == CpuIsa::kAvx512) return cosine_avx512<T>;
    static const bool f16c = has_f16c();
    if (cpu_isa() == CpuIsa::kAvx2 && f16c) return cosine_avx2<T>;
#endif
    return cosine_portable<T>;
}

// Positions [begin, end) of one frame's scores, out[i * out_stride] for each: its token against the same
// position of the frame's reference frame.
template <class T>
void score_frame(const TemporalSimilarityPlan& p, CosineFn<T> cosine, int64_t b, int64_t t, int64_t begin, int64_t end, float* out,
                 int64_t out_stride) {
    const int64_t r = reference_frame(p, t);
    const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0];
    for (int64_t i = begin; i < end; ++i) {
        float value = -std::numeric_limits<float>::infinity();  // no reference: most dissimilar
        if (r >= 0) value = cosine(x + t * p.x.strides[1] + i * p.x.strides[2], x + r * p.x.strides[1] + i * p.x.strides[2], p.channels);
        out[i * out_stride] = temporal_score(p.score, value);
    }
}

// Tasks in frame order, so a thread's previous frame, usually the reference, is in cache: a frame each,
// or a frame split into equal blocks of positions where the frames are fewer than the threads can share.
template <class T>
void temporal_similarity_typed(const TemporalSimilarityPlan& p) {
    const CosineFn<T> cosine = cosine_variant<T>();
    float* out = static_cast<float*>(p.out.data);
    const int64_t frames = p.batch * p.frames;
    if (frames * p.positions == 0) return;  // FrameFusion passes empty videos on
    const int64_t splits = std::min<int64_t>(p.positions, (4 * int64_t{num_threads()} + frames - 1) / frames);
    const int64_t block = (p.positions + splits - 1) / splits;
    parallel_for(frames * splits, min_tasks_per_chunk(block * p.channels), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t f = task / splits, i0 = task % splits * block;
            const int64_t b = f / p.frames, t = f % p.frames;
            score_frame(p, cosine, b, t, std::min(i0, p.positions), std::min(i0 + block, p.positions),
                        out + b * p.out.strides[0] + t * p.out.strides[1], p.out.strides[2]);
        }
    });
}

}  // namespace

void temporal_similarity(const TemporalSimilarityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { temporal_similarity_typed<storage_t<decltype(tag)>>(plan); });
}

namespace {

// The caller's workspace, or one allocated for the call; regions start at its first aligned address.
class HostScratch {
public:
    HostScratch(void* workspace, uint64_t bytes) {
        if (workspace == nullptr) {
            owned_.reset(new char[bytes]);
            workspace = owned_.get();
        }
        base_ = aligned_start(workspace);
    }
    void* base() const { return base_; }

private:
    std::unique_ptr<char[]> owned_;
    void* base_;
};

// The plan's scores of every token into scores [B, T * P], contiguous.
void score_tokens(const TemporalSimilarityPlan& s, float* scores) {
    TemporalSimilarityPlan scoring = s;
    scoring.out = StridedTensor{scores, TK_DTYPE_F32, {s.frames * s.positions, s.positions, 1, 0}};
    temporal_similarity(scoring);
}

// DyCoke in one task per frame: the frame's cosines to its reference frame, its top-k, and its kept
// rows copied while the frame is still in cache (a window start is copied whole), so that the input is
// read about once. The scores, choices and rows are those of the similarity pass, top-k and gather.
template <class T>
void dycoke_by_frame(const VideoSelectionPlan& plan, float* scores, const StridedTensor& indices) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const CosineFn<T> cosine = cosine_variant<T>();
    const T* x = static_cast<const T*>(s.x.data);
    const size_t row_bytes = static_cast<size_t>(s.channels) * sizeof(T);
    const bool streaming = streams_output(s.batch * plan.retained, row_bytes);
    const auto row = [&](int64_t b, int64_t t, int64_t i) { return x + b * s.x.strides[0] + t * s.x.strides[1] + i * s.x.strides[2]; };
    parallel_for(s.batch * s.frames, min_tasks_per_chunk(s.positions * s.channels), [&](int64_t begin, int64_t end) {
        std::vector<int32_t> order(static_cast<size_t>(s.positions));
        std::vector<uint32_t> keys;
        for (int64_t f = begin; f < end; ++f) {
            const int64_t b = f / s.frames, t = f % s.frames;
            const int64_t keeps = dycoke_frame_keeps(t, s.positions, plan.frame_keeps);
            const int64_t offset = dycoke_frame_offset(t, s.positions, plan.frame_keeps);
            float* frame_scores = scores + f * s.positions;
            score_frame(s, cosine, b, t, 0, s.positions, frame_scores, 1);
            choose_best_in_position_order(frame_scores, s.positions, keeps, order.data(), keys);
            for (int64_t j = 0; j < keeps; ++j) {
                const int64_t slot = offset + j;
                static_cast<int32_t*>(indices.data)[b * indices.strides[0] + slot * indices.strides[1]] =
                    static_cast<int32_t>(t * s.positions + order[static_cast<size_t>(j)]);
                if (plan.out.data != nullptr)
                    copy_bytes(static_cast<T*>(plan.out.data) + b * plan.out.strides[0] + slot * plan.out.strides[1],
                               row(b, t, order[static_cast<size_t>(j)]), row_bytes, streaming);
            }
        }
        if (streaming) streaming_fence();
    });
}

}  // namespace

void select_video_tokens(const VideoSelectionPlan& plan, void* workspace) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const VideoSelectionLayout layout = video_selection_layout(plan);
    const HostScratch scratch(workspace, layout.total);
    void* base = scratch.base();
    float* scores = at_offset<float>(base, layout.scores);
    StridedTensor indices = plan.indices;
    if (indices.data == nullptr) indices = StridedTensor{at_offset<int32_t>(base, layout.indices), TK_DTYPE_I32, {plan.retained, 1, 0, 0}};
    auto* kept = static_cast<int32_t*>(indices.data);
    // Higher is kept first; a frame with no reference scores +inf and is kept whole.
    if (plan.method == VideoMethod::kDyCoke) {
        dispatch_float(s.x.dtype, [&](auto tag) { dycoke_by_frame<storage_t<decltype(tag)>>(plan, scores, indices); });
    } else if (plan.method == VideoMethod::kEvs) {
        score_tokens(s, scores);
        // The K highest over the whole video, ties to the lower position: the stable descending order's first K.
        topk(video_topk_plan(plan, scores, indices));
    } else {
        // VidCom2: each frame on its own, keeping its budget; then the frames' kept positions one after
        // another.
        vidcom2_scores(plan, base, layout);
        auto* frame_keeps = at_offset<int32_t>(base, layout.frame_keeps);
        auto* frame_offsets = at_offset<int32_t>(base, layout.frame_offsets);
        auto* frame_indices = at_offset<int32_t>(base, layout.frame_indices);
        topk(frame_topk_plan(plan, scores, frame_keeps, frame_indices));
        for (int64_t f = 0; f < s.batch * s.frames; ++f) {
            const int64_t b = f / s.frames, t = f % s.frames;
            const int32_t* chosen = frame_indices + f * s.positions;
            for (int64_t j = 0; j < frame_keeps[f]; ++j)
                kept[b * indices.strides[0] + (frame_offsets[f] + j) * indices.strides[1]] = static_cast<int32_t>(t * s.positions + chosen[j]);
        }
    }

    if (plan.out.data != nullptr && plan.method != VideoMethod::kDyCoke) gather(kept_rows_plan(plan, indices));
    const auto kept_at = [&](int64_t b, int64_t i) { return int64_t{kept[b * indices.strides[0] + i * indices.strides[1]]}; };
    if (plan.positions.data != nullptr) {
        auto* positions = static_cast<int32_t*>(plan.positions.data);
        for (int64_t b = 0; b < s.batch; ++b)
            for (int64_t i = 0; i < plan.retained; ++i) {
                const int64_t token = kept_at(b, i);
                const int64_t cell = token % s.positions;
                int32_t* at = positions + b * plan.positions.strides[0] + i * plan.positions.strides[1];
                at[0] = static_cast<int32_t>(token / s.positions);
                at[plan.positions.strides[2]] = static_cast<int32_t>(cell / plan.width);
                at[2 * plan.positions.strides[2]] = static_cast<int32_t>(cell % plan.width);
            }
    }
    if (plan.mask.data != nullptr) {
        auto* mask = static_cast<int32_t*>(plan.mask.data);
        for (int64_t b = 0; b < s.batch; ++b) {
            for (int64_t i = 0; i < tokens; ++i) mask[b * plan.mask.strides[0] + i * plan.mask.strides[1]] = 0;
            for (int64_t i = 0; i < plan.retained; ++i) mask[b * plan.mask.strides[0] + kept_at(b, i) * plan.mask.strides[1]] = 1;
        }
    }
}

namespace {

// The run means of FrameFusion: each position's head token (one nothing merged into) and the tokens of
// the later frames that merged into it, summed in frame order and divided once; a head with nothing
// merged is copied bit for bit. rows holds every token's output row; a merged token has its head's.
// Tasks are blocks of positions walking the frames, so each frame's rows of a block are read together.
template <class T>
void framefusion_means(const FrameFusionPlan& plan, const int32_t* rows) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const int64_t blocks = (s.positions + kPositionBlock - 1) / kPositionBlock;
    const T* x = static_cast<const T*>(s.x.data);
    T* out = static_cast<T*>(plan.out.data);
    auto* out_size = static_cast<float*>(plan.out_size.data);
    const size_t row_bytes = static_cast<size_t>(s.channels) * sizeof(T);
    parallel_for(s.batch * blocks, min_tasks_per_chunk(s.frames * kPositionBlock * s.channels), [&](int64_t begin, int64_t end) {
        std::vector<float> sums(static_cast<size_t>(kPositionBlock * s.channels));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / blocks;
            const int64_t p0 = task % blocks * kPositionBlock;
            const int64_t p1 = std::min(p0 + kPositionBlock, s.positions);
            const int32_t* item_rows = rows + b * tokens;
            const auto token_row = [&](int64_t t, int64_t p) { return x + b * s.x.strides[0] + t * s.x.strides[1] + p * s.x.strides[2]; };
            int64_t head[kPositionBlock];      // the open run's first frame, per position
            int64_t members[kPositionBlock];
            const auto close_run = [&](int64_t p) {
                const int64_t slot = p - p0;
                const int32_t row = item_rows[head[slot] * s.positions + p];
                T* target = out + b * plan.out.strides[0] + row * plan.out.strides[1];
                if (members[slot] == 1) {
                    std::memcpy(target, token_row(head[slot], p), row_bytes);
                } else {
                    const float* sum = sums.data() + slot * s.channels;
                    const auto count = static_cast<float>(members[slot]);
                    for (int64_t c = 0; c < s.channels; ++c) target[c] = from_float<T>(sum[c] / count);
                }
                if (out_size != nullptr) out_size[b * plan.out_size.strides[0] + row * plan.out_size.strides[1]] = static_cast<float>(members[slot]);
            };
            for (int64_t t = 0; t < s.frames; ++t)
                for (int64_t p = p0; p < p1; ++p) {
                    const int64_t slot = p - p0;
                    float* sum = sums.data() + slot * s.channels;
                    const T* row = token_row(t, p);
                    const bool merges = t > 0 && item_rows[t * s.positions + p] == item_rows[(t - 1) * s.positions + p];
                    if (!merges) {
                        if (t > 0) close_run(p);
                        head[slot] = t;
                        members[slot] = 1;
                        continue;
                    }
                    // The sum starts from the head when its first member arrives: a lone head is copied.
                    if (members[slot]++ == 1) {
                        const T* first = token_row(head[slot], p);
                        for (int64_t c = 0; c < s.channels; ++c) sum[c] = to_float(first[c]);
                    }
                    for (int64_t c = 0; c < s.channels; ++c) sum[c] += to_float(row[c]);
                }
            if (s.frames > 0)
                for (int64_t p = p0; p < p1; ++p) close_run(p);
        }
    });
}

}  // namespace

void framefusion_merge(const FrameFusionPlan& plan, void* workspace) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const FrameFusionLayout layout = framefusion_layout(plan);
    const HostScratch scratch(workspace, layout.total);
    void* base = scratch.base();
    float* scores = at_offset<float>(base, layout.scores);
    auto* rows = at_offset<int32_t>(base, layout.rows);
    score_tokens(s, scores);

    // Which tokens merge, as 1 in rows: those reaching the threshold, and with a cap only the highest.
    if (plan.max_merges < 0) {
        for (int64_t i = 0; i < s.batch * tokens; ++i) rows[i] = fuses(scores[i], plan.threshold) ? 1 : 0;
    } else {
        auto* capped = at_offset<int32_t>(base, layout.capped);
        topk(capped_merges_plan(plan, scores, capped));
        std::fill(rows, rows + s.batch * tokens, 0);
        for (int64_t b = 0; b < s.batch; ++b)
            for (int64_t r = 0; r < plan.max_merges; ++r) {
                const int64_t i = b * tokens + capped[b * plan.max_merges + r];
                rows[i] = fuses(scores[i], plan.threshold) ? 1 : 0;
            }
    }
    // Output rows: the tokens that stay, in order; a merged token takes the row of the token at its
    // position in the previous frame (frame 0 never merges).
    auto* merge_count = static_cast<int32_t*>(plan.merge_count.data);
    for (int64_t b = 0; b < s.batch; ++b) {
        int32_t* item_rows = rows + b * tokens;
        int32_t kept = 0;
        for (int64_t i = 0; i < tokens; ++i) item_rows[i] = item_rows[i] != 0 ? item_rows[i - s.positions] : kept++;
        merge_count[b * plan.merge_count.strides[0]] = static_cast<int32_t>(tokens - kept);
    }
    dispatch_float(s.x.dtype, [&](auto tag) { framefusion_means<storage_t<decltype(tag)>>(plan, rows); });
    // The rows past each item's count are zero, out_size too; the source map is the rows. Parallel over
    // output rows: the zero rows can be most of a video.
    const int64_t element = tk_dtype_size(s.x.dtype);
    const size_t row_bytes = static_cast<size_t>(s.channels * element);
    parallel_for(s.batch * tokens, min_tasks_per_chunk(s.channels), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / tokens;
            const int64_t r = task % tokens;
            if (plan.source_map.data != nullptr)
                static_cast<int32_t*>(plan.source_map.data)[b * plan.source_map.strides[0] + r * plan.source_map.strides[1]] = rows[task];
            if (r < tokens - merge_count[b * plan.merge_count.strides[0]]) continue;
            std::memset(static_cast<char*>(plan.out.data) + (b * plan.out.strides[0] + r * plan.out.strides[1]) * element, 0, row_bytes);
            if (plan.out_size.data != nullptr)
                static_cast<float*>(plan.out_size.data)[b * plan.out_size.strides[0] + r * plan.out_size.strides[1]] = 0.0f;
        }
    });
}

}  // namespace tk::cpu
