// CPU backend of spatio-temporal pooling. Parallel over output pixels; the inner loops run over the
// contiguous channel dimension with a float32 accumulator row, so they vectorise.
#include <limits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "ops/pool.hpp"

namespace tk::cpu {

namespace {

struct Pixel {
    int64_t b, t, h, w;
};

Pixel unflatten(int64_t index, const int64_t* out_size) {
    Pixel p{};
    p.w = index % out_size[3];
    index /= out_size[3];
    p.h = index % out_size[2];
    index /= out_size[2];
    p.t = index % out_size[1];
    p.b = index / out_size[1];
    return p;
}

int64_t pixel_count(const PoolPlan& plan) { return plan.out_size[0] * plan.out_size[1] * plan.out_size[2] * plan.out_size[3]; }

int64_t out_offset(const PoolPlan& plan, const Pixel& p) {
    return p.b * plan.out_stride[0] + p.t * plan.out_stride[1] + p.h * plan.out_stride[2] + p.w * plan.out_stride[3];
}

template <bool IsMax>
inline float reduce(float acc, float v) {
    if constexpr (IsMax) {
        return max_propagate_nan(acc, v);
    } else {
        return acc + v;
    }
}

// Window and adaptive modes: reduce the box of input rows pool_range gives for each output pixel.
template <class T, bool IsMax>
void pool_box(const PoolPlan& plan) {
    const T* x = static_cast<const T*>(plan.x);
    T* out = static_cast<T*>(plan.out);
    const int64_t channels = plan.in_size[4];
    int64_t box_rows = 1;  // of the first pixel: adaptive boxes vary by one row at most
    for (int d = 0; d < 3; ++d) {
        const Range r = pool_range(plan, d, 0);
        box_rows *= r.end - r.start;
    }
    parallel_for(pixel_count(plan), min_tasks_per_chunk(channels * box_rows), [&](int64_t begin, int64_t end) {
        std::vector<float> acc(static_cast<size_t>(channels));
        std::vector<const T*> rows;
        float* a = acc.data();
        for (int64_t index = begin; index < end; ++index) {
            const Pixel p = unflatten(index, plan.out_size);
            const Range rt = pool_range(plan, 0, p.t);
            const Range rh = pool_range(plan, 1, p.h);
            const Range rw = pool_range(plan, 2, p.w);
            rows.clear();
            for (int64_t t = rt.start; t < rt.end; ++t)
                for (int64_t h = rh.start; h < rh.end; ++h)
                    for (int64_t w = rw.start; w < rw.end; ++w)
                        rows.push_back(x + p.b * plan.in_stride[0] + t * plan.in_stride[1] + h * plan.in_stride[2] +
                                       w * plan.in_stride[3]);
            const float init = IsMax ? -std::numeric_limits<float>::infinity() : 0.0f;
            for (int64_t c = 0; c < channels; ++c) a[c] = init;
            // Four rows per pass over the accumulator row: a quarter of its loads and stores, and
            // the same (t, h, w) order of float operations as one row at a time (and as CUDA).
            size_t k = 0;
            for (; k + 4 <= rows.size(); k += 4) {
                const T* r0 = rows[k];
                const T* r1 = rows[k + 1];
                const T* r2 = rows[k + 2];
                const T* r3 = rows[k + 3];
                for (int64_t c = 0; c < channels; ++c)
                    a[c] = reduce<IsMax>(reduce<IsMax>(reduce<IsMax>(reduce<IsMax>(a[c], to_float(r0[c])), to_float(r1[c])),
                                                       to_float(r2[c])),
                                         to_float(r3[c]));
            }
            for (; k < rows.size(); ++k) {
                const T* r = rows[k];
                for (int64_t c = 0; c < channels; ++c) a[c] = reduce<IsMax>(a[c], to_float(r[c]));
            }
            T* out_row = out + out_offset(plan, p);
            if constexpr (IsMax) {
                for (int64_t c = 0; c < channels; ++c) out_row[c] = from_float<T>(a[c]);
            } else {
                const float count = static_cast<float>((rt.end - rt.start) * (rh.end - rh.start) * (rw.end - rw.start));
                for (int64_t c = 0; c < channels; ++c) out_row[c] = from_float<T>(a[c] / count);
            }
        }
    });
}

template <class T>
void pool_bilinear(const PoolPlan& plan) {
    const T* x = static_cast<const T*>(plan.x);
    T* out = static_cast<T*>(plan.out);
    const int64_t channels = plan.in_size[4];
    parallel_for(pixel_count(plan), min_tasks_per_chunk(channels * 4), [&](int64_t begin, int64_t end) {
        for (int64_t index = begin; index < end; ++index) {
            const Pixel p = unflatten(index, plan.out_size);
            const LinearTaps th = linear_taps(p.h, plan.in_size[2], plan.out_size[2]);
            const LinearTaps tw = linear_taps(p.w, plan.in_size[3], plan.out_size[3]);
            const T* frame = x + p.b * plan.in_stride[0] + p.t * plan.in_stride[1];
            const T* x00 = frame + th.lo * plan.in_stride[2] + tw.lo * plan.in_stride[3];
            const T* x01 = frame + th.lo * plan.in_stride[2] + tw.hi * plan.in_stride[3];
            const T* x10 = frame + th.hi * plan.in_stride[2] + tw.lo * plan.in_stride[3];
            const T* x11 = frame + th.hi * plan.in_stride[2] + tw.hi * plan.in_stride[3];
            T* out_row = out + out_offset(plan, p);
            for (int64_t c = 0; c < channels; ++c) {
                const float top = tw.w_lo * to_float(x00[c]) + tw.w_hi * to_float(x01[c]);
                const float bottom = tw.w_lo * to_float(x10[c]) + tw.w_hi * to_float(x11[c]);
                out_row[c] = from_float<T>(th.w_lo * top + th.w_hi * bottom);
            }
        }
    });
}

}  // namespace

void pool(const PoolPlan& plan) {
    dispatch_float(plan.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        if (plan.mode == TK_POOL_BILINEAR) {
            pool_bilinear<T>(plan);
        } else if (pool_is_max(plan.mode)) {
            pool_box<T, true>(plan);
        } else {
            pool_box<T, false>(plan);
        }
    });
}

}  // namespace tk::cpu
