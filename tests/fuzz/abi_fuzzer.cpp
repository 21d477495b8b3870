// libFuzzer target over every function of the C ABI (tokenkernels.h), on the CPU backend, built with
// AddressSanitizer and UndefinedBehaviorSanitizer (tests/fuzz/README.md).
//
// Each input is a sequence of calls. The input chooses each call's params (in range, at the edges, and
// any int32, enum values out of range included) and its tensor descriptors: shapes near and off what
// the op expects, dtypes, ranks, devices and ordinals right and wrong, strides contiguous, padded,
// permuted, zero, negative or beyond the address space, data NULL, misaligned or wrapping around the
// address space, outputs aliasing other tensors, workspaces of the queried size, too small, absent or
// overlapping a tensor. Every tensor, workspace and scalar output lives in one arena. Before a call
// the arena is poisoned for AddressSanitizer except the bytes of the call's tensor elements, workspace
// and scalar arguments, so a read or write of any other byte is reported. After it:
//   - a rejected call changed no byte of the arena and left a message in tk_last_error();
//   - an accepted call changed only the bytes of its outputs' elements and of its workspace;
//   - a call given a descriptor that no valid call has (unknown dtype or device, a CUDA tensor in this
//     CPU-only build, a negative size, an extent beyond the address space, NULL or misaligned data) was
//     rejected.
// DLPack tensors (DLTensor, DLManagedTensor, DLManagedTensorVersioned) are built in the arena too, their
// shape and strides arrays readable and their elements not (no DLPack call reads them). Whether a
// DLPack call is accepted is known exactly from the SPEC's rules, so both ways are checked: taken in,
// an accepted DLPack tensor gives the SPEC's view; exported, a tk_tensor gives a DLPack tensor that
// describes it and is taken back in as the SPEC says (a view taken through DLPack round trips
// unchanged); the export's deleter frees its block alone and touches no arena byte; the library never
// calls a deleter it was given.
// A broken invariant aborts with a description of the call. At exit the target prints how many
// calls it made, accepted and rejected.
#include <fuzzer/FuzzedDataProvider.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace {

// ---- Counts, printed at exit -------------------------------------------------------------------------

struct Counts {
    uint64_t calls = 0;
    uint64_t accepted = 0;
    uint64_t rejected = 0;
    uint64_t inputs = 0;
    uint64_t dlpack_views = 0;        // DLPack tensors taken in
    uint64_t dlpack_exports = 0;      // tk_tensors exported as DLPack tensors
    uint64_t dlpack_round_trips = 0;  // views exported and taken back in
};
Counts counts;

void print_counts() {
    std::fprintf(stderr, "tokenkernels fuzzer: %" PRIu64 " calls (%" PRIu64 " accepted, %" PRIu64 " rejected) from %" PRIu64
                 " inputs\n",
                 counts.calls, counts.accepted, counts.rejected, counts.inputs);
    std::fprintf(stderr, "tokenkernels fuzzer: DLPack %" PRIu64 " views taken, %" PRIu64 " exports, %" PRIu64 " round trips\n",
                 counts.dlpack_views, counts.dlpack_exports, counts.dlpack_round_trips);
}

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "tokenkernels fuzzer: FINDING: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

// ---- Choices from the input, values from a generator seeded by it --------------------------------------

class Choices {
public:
    Choices(const uint8_t* data, size_t size) : in_(data, size), random_(in_.ConsumeIntegral<uint64_t>()) {}

    bool more() { return in_.remaining_bytes() > 0; }
    int64_t range(int64_t lo, int64_t hi) { return in_.ConsumeIntegralInRange<int64_t>(lo, hi); }
    // True once in `n` on average; false once the input is spent.
    bool one_in(int64_t n) { return in_.ConsumeIntegralInRange<int64_t>(0, n - 1) == n - 1; }
    int32_t any_int32() { return in_.ConsumeIntegral<int32_t>(); }
    template <class T, size_t N>
    T pick(const T (&values)[N]) {
        return values[in_.ConsumeIntegralInRange<size_t>(0, N - 1)];
    }

    // Values written into input tensors (many per call) come from splitmix64, not from the input.
    uint64_t random() {
        uint64_t z = (random_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    int64_t random_in(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(random() % static_cast<uint64_t>(hi - lo + 1)); }

private:
    FuzzedDataProvider in_;
    uint64_t random_;
};

// A float from [-2, 2), or now and then a value at the edge of the format.
float random_float(Choices& c) {
    const uint64_t r = c.random();
    if (r % 24 == 0) {
        static const float kEdges[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                                       std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 65504.0f, 1e-30f};
        return kEdges[(r >> 8) % (sizeof kEdges / sizeof kEdges[0])];
    }
    return static_cast<float>(static_cast<double>(r >> 11) * 0x1.0p-53 * 4.0 - 2.0);
}

uint16_t to_half(float value) {  // round toward zero is enough for inputs
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const int32_t exponent = static_cast<int32_t>((bits >> 23) & 0xFF) - 127 + 15;
    const uint32_t mantissa = bits & 0x7FFFFFu;
    if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7E00u);
    if (exponent >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
    if (exponent <= 0) return static_cast<uint16_t>(sign);
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13));
}

// ---- The arena ---------------------------------------------------------------------------------------

constexpr size_t kArenaBytes = size_t{1} << 20;
constexpr uint8_t kSentinel = 0xA5;

struct Region {
    uint8_t* begin;
    size_t bytes;
};

class Arena {
public:
    Arena() : base_(static_cast<uint8_t*>(std::aligned_alloc(4096, kArenaBytes))), before_(kArenaBytes), writable_(kArenaBytes) {
        std::memset(base_, kSentinel, kArenaBytes);
    }
    uint8_t* base() const { return base_; }

    // Forgets the previous input's layout and restores the sentinel where it wrote.
    void reset() {
        std::memset(base_, kSentinel, high_);
        used_ = 0;
        high_ = 0;
    }
    // `bytes` at an `alignment` boundary (a power of two), or NULL when the arena is full.
    uint8_t* take(size_t bytes, size_t alignment) {
        const size_t at = (used_ + alignment - 1) & ~(alignment - 1);
        if (at + bytes + 8 > kArenaBytes) return nullptr;
        used_ = at + bytes + 8;  // 8 spare bytes: room to misalign by up to 7
        high_ = std::max(high_, used_);
        return base_ + at;
    }
    bool contains(const uint8_t* p, size_t bytes) const { return p >= base_ && bytes <= kArenaBytes && p <= base_ + kArenaBytes - bytes; }

    // Snapshot, then poison everything but `readable` (the call's own bytes).
    void arm(const std::vector<Region>& readable) {
        // Compared after the call: every byte handed out, and any an aliasing output reaches past them.
        for (const Region& r : readable)
            if (contains(r.begin, r.bytes)) high_ = std::max(high_, static_cast<size_t>(r.begin - base_) + r.bytes);
        std::memcpy(before_.data(), base_, high_);
        ASAN_POISON_MEMORY_REGION(base_, kArenaBytes);
        for (const Region& r : readable) ASAN_UNPOISON_MEMORY_REGION(r.begin, r.bytes);
    }
    void disarm() { ASAN_UNPOISON_MEMORY_REGION(base_, kArenaBytes); }

    // The first byte that changed outside `writable` (all bytes when the list is empty), or -1.
    int64_t first_stray_write(const std::vector<Region>& writable) {
        if (std::memcmp(before_.data(), base_, high_) == 0) return -1;
        std::fill(writable_.begin(), writable_.begin() + static_cast<std::ptrdiff_t>(high_), 0);
        for (const Region& r : writable) {
            const size_t from = std::min(static_cast<size_t>(r.begin - base_), high_);
            std::fill(writable_.begin() + static_cast<std::ptrdiff_t>(from),
                      writable_.begin() + static_cast<std::ptrdiff_t>(std::min(from + r.bytes, high_)), 1);
        }
        for (size_t i = 0; i < high_; ++i)
            if (base_[i] != before_[i] && !writable_[i]) return static_cast<int64_t>(i);
        return -1;
    }

private:
    uint8_t* base_;
    size_t used_ = 0;
    size_t high_ = 0;  // bytes in use since the last reset
    std::vector<uint8_t> before_;
    std::vector<uint8_t> writable_;
};

// ---- Tensors -----------------------------------------------------------------------------------------

enum class Role { kInput, kOutput };

// What an input tensor holds.
struct Values {
    enum Kind { kFloats, kIndices, kDistinctIndices, kSizes } kind = kFloats;
    int64_t lo = 0;  // kIndices, kDistinctIndices: values in [lo, hi] (each row distinct for the latter)
    int64_t hi = 0;
};
Values floats() { return {}; }
Values indices(int64_t lo, int64_t hi) { return {Values::kIndices, lo, hi}; }
Values distinct_indices(int64_t lo, int64_t hi) { return {Values::kDistinctIndices, lo, hi}; }
Values sizes() { return {Values::kSizes, 0, 0}; }

struct TensorRecord {
    const tk_tensor* desc;
    Role role;
    bool elements_in_arena;  // a known dtype and every element inside the arena
    std::string why_invalid;  // non-empty: no valid call has this descriptor
};

int64_t saturating_numel(const tk_tensor& t) {
    __int128 n = 1;
    for (int32_t d = 0; d < std::clamp(t.rank, 0, TK_MAX_RANK); ++d) {
        if (t.shape[d] <= 0) return t.shape[d] == 0 ? 0 : -1;
        n *= t.shape[d];
        if (n > INT64_MAX) return INT64_MAX;
    }
    return static_cast<int64_t>(n);
}

// Calls f(pointer, bytes) for each run of contiguous element bytes of t (rank 1-8, known dtype,
// every element addressable).
template <class F>
void for_each_run(const tk_tensor& t, F&& f) {
    const int64_t element = tk_dtype_size(t.dtype);
    const int32_t last = t.rank - 1;
    const bool rows = t.strides[last] == 1 || t.shape[last] == 1;
    std::array<int64_t, TK_MAX_RANK> index{};
    const int32_t outer = rows ? last : t.rank;
    for (;;) {
        int64_t offset = 0;
        for (int32_t d = 0; d < outer; ++d) offset += index[static_cast<size_t>(d)] * t.strides[d];
        uint8_t* p = static_cast<uint8_t*>(t.data) + offset * element;
        f(p, static_cast<size_t>(rows ? t.shape[last] * element : element));
        int32_t d = outer - 1;
        while (d >= 0 && ++index[static_cast<size_t>(d)] == t.shape[d]) index[static_cast<size_t>(d--)] = 0;
        if (d < 0) return;
    }
}

void write_value(const tk_tensor& t, uint8_t* p, double value) {
    switch (t.dtype) {
        case TK_DTYPE_F32: {
            const float v = static_cast<float>(value);
            std::memcpy(p, &v, 4);
            break;
        }
        case TK_DTYPE_F16: {
            const uint16_t v = to_half(static_cast<float>(value));
            std::memcpy(p, &v, 2);
            break;
        }
        case TK_DTYPE_BF16: {
            const float f = static_cast<float>(value);
            uint32_t bits;
            std::memcpy(&bits, &f, 4);
            const uint16_t v = static_cast<uint16_t>(bits >> 16);
            std::memcpy(p, &v, 2);
            break;
        }
        case TK_DTYPE_I32: {
            const int32_t v = std::isfinite(value) && std::fabs(value) < 2e9 ? static_cast<int32_t>(value) : -7;
            std::memcpy(p, &v, 4);
            break;
        }
        default: {
            const int64_t v = std::isfinite(value) && std::fabs(value) < 9e18 ? static_cast<int64_t>(value) : -7;
            std::memcpy(p, &v, 8);
            break;
        }
    }
}

class Call {
public:
    Call(Choices& choices, Arena& arena) : c_(choices), arena_(arena) {}

    // A descriptor for a tensor of `shape` and `dtype` in the arena, or, as the input chooses, one
    // that is wrong in some way.
    const tk_tensor* tensor(const std::vector<int64_t>& shape, tk_dtype dtype, Role role, Values values = floats());
    // An optional tensor: absent (NULL) or present as the input chooses.
    const tk_tensor* maybe(const std::vector<int64_t>& shape, tk_dtype dtype, Role role, Values values = floats()) {
        return c_.one_in(3) ? nullptr : tensor(shape, dtype, role, values);
    }
    // A scalar output or input array of `bytes` (NULL now and then).
    template <class T>
    T* scalar(size_t count, Role role) {
        if (c_.one_in(40)) return nullptr;
        uint8_t* p = arena_.take(sizeof(T) * count, alignof(T));
        if (p == nullptr) return nullptr;
        readable_.push_back({p, sizeof(T) * count});
        if (role == Role::kOutput) writable_.push_back({p, sizeof(T) * count});
        return reinterpret_cast<T*>(p);
    }
    // `bytes` of the arena that no call may touch (the elements of a DLPack tensor: taking a view or
    // exporting one reads none of them), or NULL when the arena is full.
    uint8_t* untouchable(size_t bytes, size_t alignment) { return arena_.take(bytes, alignment); }
    // A workspace for an op that queried `queried` bytes (or NULL when the query failed).
    struct Workspace {
        void* data = nullptr;
        uint64_t bytes = 0;
    };
    Workspace workspace(const uint64_t* queried);

    // Runs one call of `entry`, which takes the tensors `args`, with the arena armed, then checks the
    // invariants.
    template <class F>
    tk_status run(const char* entry, std::initializer_list<const tk_tensor*> args, F&& call) {
        arena_.arm(readable_);
        const tk_status status = call();
        arena_.disarm();
        check(entry, std::vector<const tk_tensor*>(args), status);
        return status;
    }
    // Runs `call`, which returns nothing, with the whole arena poisoned, then checks that it changed
    // no byte of it.
    template <class F>
    void run_outside_arena(const char* what, F&& call) {
        arena_.arm({});
        call();
        arena_.disarm();
        const int64_t stray = arena_.first_stray_write({});
        if (stray >= 0) finding(std::string(what) + " wrote arena byte " + std::to_string(stray));
    }

private:
    void place(tk_tensor& t, TensorRecord& record, Role role);
    void fill(const tk_tensor& t, Values values);
    void check(const char* entry, const std::vector<const tk_tensor*>& args, tk_status status);

    Choices& c_;
    Arena& arena_;
    std::deque<tk_tensor> descs_;
    std::vector<TensorRecord> tensors_;
    std::vector<Region> readable_;
    std::vector<Region> writable_;  // scalar outputs and the workspace
    std::string workspace_invalid_;  // non-empty: no valid call has this workspace
};

void set_strides(tk_tensor& t, Choices& c) {
    const int32_t rank = std::clamp(t.rank, 0, TK_MAX_RANK);
    const auto contiguous = [&](const std::array<int32_t, TK_MAX_RANK>& order, int64_t pad) {
        int64_t step = 1;
        for (int32_t i = rank - 1; i >= 0; --i) {
            const int32_t d = order[static_cast<size_t>(i)];
            t.strides[d] = step;
            // Capped at 2^40: the shapes of 2^32 some inputs choose would overflow the product.
            const __int128 next = static_cast<__int128>(step) * std::max<int64_t>(t.shape[d], 1) + (i == rank - 1 ? 0 : pad);
            step = static_cast<int64_t>(std::min<__int128>(next, int64_t{1} << 40));
        }
    };
    std::array<int32_t, TK_MAX_RANK> order{};
    for (int32_t d = 0; d < TK_MAX_RANK; ++d) order[static_cast<size_t>(d)] = d;
    switch (c.range(0, 11)) {
        case 0:  // padded rows: a slice of a larger buffer
            contiguous(order, c.range(1, 5));
            break;
        case 1:  // dimensions laid out in another order (channels not innermost, batch inner)
            for (int32_t i = rank - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(c.range(0, i))]);
            contiguous(order, 0);
            break;
        case 2:  // any small strides: zero and negative ones make outputs overlap themselves
            for (int32_t d = 0; d < rank; ++d) t.strides[d] = c.range(-3, 9);
            break;
        case 3: {  // one stride whose bytes overflow or pass the end of the address space
            static const int64_t kHuge[] = {int64_t{1} << 40, int64_t{1} << 53, int64_t{1} << 60, int64_t{1} << 61,
                                            int64_t{1} << 62, INT64_MAX, INT64_MIN, -(int64_t{1} << 62)};
            contiguous(order, 0);
            if (rank > 0) t.strides[c.range(0, rank - 1)] = c.pick(kHuge);
            break;
        }
        default:
            contiguous(order, 0);
    }
}

const tk_tensor* Call::tensor(const std::vector<int64_t>& shape, tk_dtype dtype, Role role, Values values) {
    if (c_.one_in(50)) return nullptr;
    descs_.emplace_back();
    tk_tensor& t = descs_.back();
    TensorRecord record{&t, role, false, ""};
    const auto invalid = [&](const char* why) {
        if (record.why_invalid.empty()) record.why_invalid = why;
    };

    t.dtype = c_.one_in(40) ? static_cast<tk_dtype>(c_.range(-1, 6)) : dtype;
    if (tk_dtype_size(t.dtype) == 0) invalid("an unknown dtype");
    t.rank = c_.one_in(40) ? static_cast<int32_t>(c_.range(-1, TK_MAX_RANK + 1)) : static_cast<int32_t>(shape.size());
    if (t.rank < 1 || t.rank > TK_MAX_RANK) invalid("a rank outside [1, 8]");
    const int32_t rank = std::clamp(t.rank, 0, TK_MAX_RANK);
    for (int32_t d = 0; d < rank; ++d) t.shape[d] = static_cast<size_t>(d) < shape.size() ? shape[static_cast<size_t>(d)] : c_.range(0, 3);
    if (rank > 0 && c_.one_in(30)) t.shape[c_.range(0, rank - 1)] += c_.range(-2, 2);
    if (rank > 1 && c_.one_in(200)) t.shape[0] = t.shape[1] = int64_t{1} << 32;  // 2^64 elements
    for (int32_t d = 0; d < rank; ++d)
        if (t.shape[d] < 0) invalid("a negative size");
    if (saturating_numel(t) == INT64_MAX) invalid("an element count beyond int64");
    if (c_.one_in(40)) {
        t.device_kind = static_cast<tk_device_kind>(c_.range(-1, 3));
        invalid(t.device_kind == TK_DEVICE_CPU ? "" : "a device other than the CPU, in a CPU-only build");
    }
    if (c_.one_in(60)) {
        t.device_ordinal = static_cast<int32_t>(c_.range(-1, 2));
        if (t.device_ordinal != 0) invalid("a CPU ordinal other than 0");
    }
    set_strides(t, c_);
    place(t, record, role);
    tensors_.push_back(record);
    if (role == Role::kInput && record.elements_in_arena) fill(t, values);
    return &t;
}

void Call::place(tk_tensor& t, TensorRecord& record, Role role) {
    const int64_t numel = saturating_numel(t);
    const int64_t element = tk_dtype_size(t.dtype) != 0 ? tk_dtype_size(t.dtype) : 4;
    if (numel <= 0 || numel == INT64_MAX || !record.why_invalid.empty()) {
        // Nothing to address (or rejected before the data is looked at): any pointer will do.
        uint8_t* p = arena_.take(8, 8);
        t.data = c_.one_in(4) ? nullptr : p;
        return;
    }
    const auto extent = [&](__int128& lowest, __int128& highest) {
        lowest = highest = 0;
        for (int32_t d = 0; d < t.rank; ++d)
            if (t.shape[d] > 1) ((t.strides[d] < 0) ? lowest : highest) += static_cast<__int128>(t.shape[d] - 1) * t.strides[d];
    };
    __int128 lowest, highest;
    extent(lowest, highest);
    __int128 bytes = (highest - lowest + 1) * element;
    if (bytes > PTRDIFF_MAX) {
        record.why_invalid = "an extent beyond the address space";
        t.data = arena_.take(8, 64);
        return;
    }
    // Extents that fit the address space but not the arena would be the caller's lie about its memory:
    // those strides are replaced by contiguous ones (and a tensor that still does not fit is emptied).
    // So are zero strides under a count of elements too large to enumerate in time.
    if (bytes > static_cast<__int128>(kArenaBytes / 4) || numel > (int64_t{1} << 16)) {
        int64_t step = 1;
        for (int32_t d = t.rank - 1; d >= 0; --d) {
            t.strides[d] = step;
            step *= std::max<int64_t>(t.shape[d], 1);
        }
        extent(lowest, highest);
        bytes = (highest - lowest + 1) * element;
    }
    uint8_t* fresh = bytes <= static_cast<__int128>(kArenaBytes / 4) ? arena_.take(static_cast<size_t>(bytes), c_.one_in(4) ? 8 : 64) : nullptr;
    if (fresh == nullptr) {
        t.shape[0] = 0;
        t.data = nullptr;
        return;
    }
    t.data = fresh - static_cast<int64_t>(lowest) * element;
    // An output placed over another tensor of the call (the op must refuse when their spans meet).
    if (role == Role::kOutput && c_.one_in(10) && !tensors_.empty()) {
        const TensorRecord& other = tensors_[static_cast<size_t>(c_.range(0, static_cast<int64_t>(tensors_.size()) - 1))];
        if (other.elements_in_arena) {
            uint8_t* at = static_cast<uint8_t*>(other.desc->data) + c_.range(0, 16) * element;
            if (arena_.contains(at + static_cast<int64_t>(lowest) * element, static_cast<size_t>(bytes))) t.data = at;
        }
    }
    record.elements_in_arena = true;
    // Pointers no valid call has.
    if (c_.one_in(64)) {
        t.data = nullptr;
        record.why_invalid = "NULL data";
        record.elements_in_arena = false;
    } else if (element > 1 && c_.one_in(64)) {
        t.data = static_cast<uint8_t*>(t.data) + c_.range(1, element - 1);
        record.why_invalid = "misaligned data";
        record.elements_in_arena = false;
    } else if (c_.one_in(128)) {
        // Data 8 to 32 bytes below the top of the address space: the elements above it reach the end.
        const int64_t below_top = 8 * c_.range(1, 4);
        if (static_cast<__int128>(highest + 1) * element >= below_top) {
            t.data = reinterpret_cast<void*>(uintptr_t{0} - static_cast<uintptr_t>(below_top));
            record.why_invalid = "an extent that wraps around the address space";
            record.elements_in_arena = false;
        }
    }
    if (record.elements_in_arena) for_each_run(t, [&](uint8_t* p, size_t n) { readable_.push_back({p, n}); });
}

void Call::fill(const tk_tensor& t, Values values) {
    const bool floating = t.dtype == TK_DTYPE_F32 || t.dtype == TK_DTYPE_F16 || t.dtype == TK_DTYPE_BF16;
    const int64_t element = tk_dtype_size(t.dtype);
    const int32_t last = t.rank - 1;
    // Rows of the last dimension, for distinct indices: a shuffled prefix of [lo, hi] per row.
    std::vector<int64_t> pool;
    int64_t in_row = 0;
    for_each_run(t, [&](uint8_t* p, size_t n) {
        for (size_t at = 0; at < n; at += static_cast<size_t>(element)) {
            double v;
            switch (values.kind) {
                case Values::kIndices:
                    v = c_.random() % 32 == 0 ? static_cast<double>(c_.random_in(-3, values.hi + 3)) : static_cast<double>(c_.random_in(values.lo, values.hi));
                    break;
                case Values::kDistinctIndices: {
                    if (in_row == 0 || pool.empty()) {
                        pool.clear();
                        for (int64_t i = values.lo; i <= values.hi; ++i) pool.push_back(i);
                    }
                    if (pool.empty() || c_.random() % 64 == 0) {
                        v = static_cast<double>(c_.random_in(values.lo - 1, values.hi + 1));  // out of range or a repeat
                    } else {
                        const size_t i = static_cast<size_t>(c_.random() % pool.size());
                        v = static_cast<double>(pool[i]);
                        pool[i] = pool.back();
                        pool.pop_back();
                    }
                    in_row = (in_row + 1) % std::max<int64_t>(t.shape[last], 1);
                    break;
                }
                case Values::kSizes:
                    v = c_.random() % 32 == 0 ? static_cast<double>(random_float(c_)) : static_cast<double>(c_.random_in(1, 6));
                    break;
                default:
                    v = floating ? static_cast<double>(random_float(c_)) : static_cast<double>(c_.random_in(-2, 40));
            }
            write_value(t, p + at, v);
        }
    });
}

Call::Workspace Call::workspace(const uint64_t* queried) {
    Workspace w;
    const uint64_t size = queried != nullptr ? *queried : 0;
    switch (c_.range(0, 7)) {
        case 0:  // absent
            return w;
        case 1:  // bytes without a pointer
            w.bytes = static_cast<uint64_t>(c_.range(1, 4096));
            workspace_invalid_ = "workspace_bytes without a workspace";
            return w;
        case 2:  // over a tensor of the call
            if (!tensors_.empty()) {
                const TensorRecord& other = tensors_[static_cast<size_t>(c_.range(0, static_cast<int64_t>(tensors_.size()) - 1))];
                if (other.elements_in_arena) {
                    w.data = other.desc->data;
                    w.bytes = std::max<uint64_t>(size, 4);
                    if (!arena_.contains(static_cast<uint8_t*>(w.data), w.bytes)) return Workspace{};
                    workspace_invalid_ = "a workspace over a tensor of the call";
                }
            }
            return w;
        case 3:  // a size that wraps around the address space
            w.data = arena_.take(64, 64);
            w.bytes = UINT64_MAX - static_cast<uint64_t>(c_.range(0, 64));
            workspace_invalid_ = "a workspace that wraps around the address space";
            return w;
        default: {  // the queried size, a byte short of it, or more
            const int64_t delta = c_.range(-1, 64);
            if (size > kArenaBytes / 4) return w;
            w.bytes = static_cast<uint64_t>(std::max<int64_t>(static_cast<int64_t>(size) + delta, 0));
            w.data = arena_.take(static_cast<size_t>(w.bytes), c_.one_in(4) ? 8 : 256);
            if (w.data == nullptr) {
                w.bytes = 0;
                return w;
            }
            if (c_.one_in(8)) w.data = static_cast<uint8_t*>(w.data) + c_.range(1, 7);  // any alignment is the caller's to pick
            readable_.push_back({static_cast<uint8_t*>(w.data), static_cast<size_t>(w.bytes)});
            writable_.push_back({static_cast<uint8_t*>(w.data), static_cast<size_t>(w.bytes)});
            return w;
        }
    }
}

std::string describe(const tk_tensor& t) {
    std::string s = "dtype " + std::to_string(t.dtype) + " device " + std::to_string(t.device_kind) + ":" +
                    std::to_string(t.device_ordinal) + " rank " + std::to_string(t.rank) + " shape [";
    for (int32_t d = 0; d < std::clamp(t.rank, 0, TK_MAX_RANK); ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
    s += "] strides [";
    for (int32_t d = 0; d < std::clamp(t.rank, 0, TK_MAX_RANK); ++d) s += (d ? ", " : "") + std::to_string(t.strides[d]);
    char pointer[32];
    std::snprintf(pointer, sizeof pointer, "%p", t.data);
    return s + "] data " + pointer;
}

void Call::check(const char* entry, const std::vector<const tk_tensor*>& args, tk_status status) {
    ++counts.calls;
    const auto taken = [&](const TensorRecord& r) { return std::find(args.begin(), args.end(), r.desc) != args.end(); };
    const std::string message = tk_last_error();
    if (status == TK_STATUS_OK) {
        ++counts.accepted;
        if (!message.empty()) finding(std::string(entry) + " returned OK with a message: " + message);
        for (const TensorRecord& r : tensors_)
            if (taken(r) && !r.why_invalid.empty())
                finding(std::string(entry) + " accepted a tensor with " + r.why_invalid + ": " + describe(*r.desc));
        if (!workspace_invalid_.empty()) finding(std::string(entry) + " accepted " + workspace_invalid_);
        std::vector<Region> writable = writable_;
        for (const TensorRecord& r : tensors_)
            if (taken(r) && r.role == Role::kOutput && r.elements_in_arena)
                for_each_run(*r.desc, [&](uint8_t* p, size_t n) { writable.push_back({p, n}); });
        const int64_t stray = arena_.first_stray_write(writable);
        if (stray >= 0)
            finding(std::string(entry) + " returned OK and wrote arena byte " + std::to_string(stray) +
                    ", outside its outputs and workspace");
    } else {
        ++counts.rejected;
        if (message.empty()) finding(std::string(entry) + " returned " + tk_status_name(status) + " without a message");
        if (std::strncmp(tk_status_name(status), "TK_STATUS_", 10) != 0 || status == TK_STATUS_INTERNAL)
            finding(std::string(entry) + " returned " + tk_status_name(status) + ": " + message);
        const int64_t stray = arena_.first_stray_write({});
        if (stray >= 0)
            finding(std::string(entry) + " rejected the call (" + message + ") yet wrote arena byte " + std::to_string(stray));
    }
}

// ---- Params ------------------------------------------------------------------------------------------

// A value in [lo, hi] mostly, else one just outside, else any int32.
int32_t around(Choices& c, int64_t lo, int64_t hi) {
    if (c.one_in(16)) return c.any_int32();
    if (c.one_in(12)) return static_cast<int32_t>(c.one_in(2) ? lo - 1 : hi + 1);
    return static_cast<int32_t>(c.range(lo, std::max(lo, hi)));
}

float some_float(Choices& c, float lo, float hi) {
    if (c.one_in(16)) {
        static const float kOdd[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity(), 0.0f, -1.0f, 1e30f};
        return c.pick(kOdd);
    }
    return lo + (hi - lo) * static_cast<float>(c.range(0, 1000)) / 1000.0f;
}

tk_dtype float_dtype(Choices& c) {
    static const tk_dtype kFloats[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};
    return c.pick(kFloats);
}
tk_dtype index_dtype(Choices& c) { return c.one_in(2) ? TK_DTYPE_I64 : TK_DTYPE_I32; }

// ---- One function per entry point (or family of them) ------------------------------------------------

void fuzz_library_info(Choices& c, Call& call) {
    switch (c.range(0, 6)) {
        case 0: {
            if (tk_version() != TK_VERSION || std::strlen(tk_version_string()) == 0) finding("tk_version disagrees with the header");
            const char* name = tk_status_name(c.any_int32());
            if (name == nullptr) finding("tk_status_name returned NULL");
            const int32_t size = tk_dtype_size(c.any_int32() % 8);
            if (size != 0 && size != 2 && size != 4 && size != 8) finding("tk_dtype_size returned " + std::to_string(size));
            return;
        }
        case 1: {
            static const char* const kStructs[] = {"tk_tensor", "tk_pool_params", "tk_merge_params", "tk_importance_params",
                                                   "tk_topk_params", "tk_diversity_params", "tk_vidcom2_params", "tk_kmeans_params",
                                                   "tk_dlpack_tensor", "tk_dlpack_managed_tensor_versioned", "tk_nope", "", nullptr};
            static const char* const kFields[] = {nullptr, "data", "shape", "strides", "mode", "k", "r", "scale", "temperature",
                                                  "byte_offset", "dl_tensor", "flags", "nope", ""};
            const char* name = c.pick(kStructs);
            const char* field = c.pick(kFields);
            uint64_t* value = call.scalar<uint64_t>(1, Role::kOutput);
            call.run("tk_struct_layout", {}, [&] { return tk_struct_layout(name, field, value); });
            return;
        }
        case 2: {
            static const int32_t kCounts[] = {0, 1, 2, 3, 4, 1024, 1025, -1, 100000, INT32_MAX, INT32_MIN};
            const int32_t count = c.one_in(3) ? c.pick(kCounts) : static_cast<int32_t>(c.range(1, 4));
            const int32_t before = tk_get_num_threads();
            const tk_status status = call.run("tk_set_num_threads", {}, [&] { return tk_set_num_threads(count); });
            const int32_t after = tk_get_num_threads();
            if (status == TK_STATUS_OK ? (count > 0 && after != count) : after != before)
                finding("tk_set_num_threads(" + std::to_string(count) + ") left tk_get_num_threads at " + std::to_string(after));
            if (after < 1 || after > 1024) finding("tk_get_num_threads returned " + std::to_string(after));
            return;
        }
        case 3: {
            if (tk_cuda_is_built() != 0) finding("the fuzz build has CUDA");
            int32_t* count = call.scalar<int32_t>(1, Role::kOutput);
            call.run("tk_cuda_device_count", {}, [&] { return tk_cuda_device_count(count); });
            if (tk_cuda_architectures() == nullptr) finding("tk_cuda_architectures returned NULL");
            return;
        }
        case 4: {
            const int32_t ordinal = around(c, 0, 1);
            const int32_t capacity = around(c, 0, 64);
            char* buffer = call.scalar<char>(static_cast<size_t>(std::clamp(capacity, 0, 64)), Role::kOutput);
            int32_t* major = call.scalar<int32_t>(1, Role::kOutput);
            int32_t* minor = call.scalar<int32_t>(1, Role::kOutput);
            int32_t* supported = call.scalar<int32_t>(1, Role::kOutput);
            if (capacity >= 0 && capacity <= 64)
                call.run("tk_cuda_device_name", {}, [&] { return tk_cuda_device_name(ordinal, buffer, capacity); });
            call.run("tk_cuda_device_capability", {}, [&] { return tk_cuda_device_capability(ordinal, major, minor); });
            const int32_t cc_major = around(c, 3, 12), cc_minor = around(c, 0, 9);
            call.run("tk_cuda_capability_supported", {}, [&] { return tk_cuda_capability_supported(cc_major, cc_minor, supported); });
            return;
        }
        case 5: {
            const int32_t ordinal = around(c, 0, 1);
            tk_stream* stream = call.scalar<tk_stream>(1, Role::kOutput);
            call.run("tk_cuda_stream_create", {}, [&] { return tk_cuda_stream_create(ordinal, stream); });
            call.run("tk_cuda_stream_synchronize", {}, [&] { return tk_cuda_stream_synchronize(nullptr); });
            call.run("tk_cuda_stream_destroy", {}, [&] { return tk_cuda_stream_destroy(nullptr); });
            return;
        }
        default: {
            const int32_t ordinal = around(c, 0, 1);
            const uint64_t bytes = c.one_in(2) ? static_cast<uint64_t>(c.range(0, 4096)) : UINT64_MAX;
            void** ptr = call.scalar<void*>(1, Role::kOutput);
            uint8_t* host = call.scalar<uint8_t>(64, Role::kOutput);
            call.run("tk_cuda_malloc", {}, [&] { return tk_cuda_malloc(ordinal, bytes, ptr); });
            call.run("tk_cuda_free", {}, [&] { return tk_cuda_free(ordinal, nullptr); });
            call.run("tk_cuda_memcpy_async", {}, [&] { return tk_cuda_memcpy_async(host, host, c.one_in(2) ? 64 : bytes, nullptr); });
            call.run("tk_cuda_memset_async", {}, [&] { return tk_cuda_memset_async(host, 0, c.one_in(2) ? 64 : bytes, nullptr); });
            return;
        }
    }
}

void fuzz_pool(Choices& c, Call& call) {
    tk_pool_params p{};
    p.mode = around(c, TK_POOL_WINDOW_AVG, TK_POOL_BILINEAR);
    for (int d = 0; d < 3; ++d) {
        p.kernel[d] = around(c, 1, 4);
        p.stride[d] = around(c, 1, 4);
        p.output_size[d] = around(c, 1, 7);
    }
    const std::vector<int64_t> in = {c.range(0, 2), c.range(0, 6), c.range(0, 13), c.range(0, 13), c.range(0, 24)};
    if (p.mode == TK_POOL_BILINEAR && !c.one_in(8)) p.output_size[0] = static_cast<int32_t>(in[1]);
    int64_t* input_shape = call.scalar<int64_t>(5, Role::kInput);
    if (input_shape != nullptr) std::copy(in.begin(), in.end(), input_shape);
    int64_t* output_shape = call.scalar<int64_t>(5, Role::kOutput);
    const tk_pool_params* params = c.one_in(50) ? nullptr : &p;
    const tk_status shaped =
        call.run("tk_pool_output_shape", {}, [&] { return tk_pool_output_shape(params, input_shape, output_shape); });
    std::vector<int64_t> out = in;
    if (shaped == TK_STATUS_OK) out.assign(output_shape, output_shape + 5);
    const tk_dtype dtype = float_dtype(c);
    const tk_tensor* x = call.tensor(in, dtype, Role::kInput);
    const tk_tensor* y = call.tensor(out, dtype, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried = call.run("tk_pool_workspace_size", {x, y}, [&] { return tk_pool_workspace_size(params, x, y, bytes); });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_pool", {x, y}, [&] { return tk_pool(params, x, y, w.data, w.bytes, nullptr); });
}

void fuzz_merge(Choices& c, Call& call) {
    tk_merge_params p{};
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 41);
    p.r = around(c, 0, tokens / 2 + 1);
    p.use_threshold = around(c, 0, 1);
    p.threshold = some_float(c, -1.0f, 1.0f);
    p.protect_first = around(c, 0, 1);
    p.protect_second = around(c, 0, 1);
    p.mode = around(c, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_DROP);
    p.order = around(c, TK_MERGE_ORDER_POSITIONAL, TK_MERGE_ORDER_TOME);
    const tk_merge_params* params = c.one_in(50) ? nullptr : &p;
    int64_t* effective_r = call.scalar<int64_t>(1, Role::kOutput);
    int64_t* rows = call.scalar<int64_t>(1, Role::kOutput);
    const int64_t asked = c.one_in(16) ? c.pick({int64_t{-1}, int64_t{1} << 31, INT64_MAX}) : tokens;
    const tk_status counted =
        call.run("tk_merge_output_tokens", {}, [&] { return tk_merge_output_tokens(params, asked, effective_r, rows); });
    const int64_t out_tokens = counted == TK_STATUS_OK && asked == tokens ? *rows : tokens - c.range(0, tokens / 2);
    const tk_dtype metric_dtype = float_dtype(c), x_dtype = float_dtype(c);
    const int64_t metric_channels = c.range(0, 24), channels = c.range(0, 24);
    const tk_tensor* metric = call.tensor({batch, tokens, metric_channels}, metric_dtype, Role::kInput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    switch (c.range(0, 2)) {
        case 0: {  // matching alone
            const int64_t sources = (tokens + 1) / 2;
            const tk_tensor* dst = call.tensor({batch, sources}, TK_DTYPE_I32, Role::kOutput);
            const tk_tensor* best = call.tensor({batch, sources}, TK_DTYPE_F32, Role::kOutput);
            const tk_status queried = call.run("tk_merge_workspace_size", {metric}, [&] { return tk_merge_workspace_size(params, metric, nullptr, bytes); });
            const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
            call.run("tk_merge_match", {metric, dst, best}, [&] { return tk_merge_match(params, metric, dst, best, w.data, w.bytes, nullptr); });
            return;
        }
        case 1: {
            const tk_tensor* x = c.one_in(6) ? metric : call.tensor({batch, tokens, channels}, x_dtype, Role::kInput);
            const tk_tensor* size = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kInput, sizes());
            const tk_dtype out_dtype = x != nullptr ? x->dtype : x_dtype;
            const int64_t out_channels = x != nullptr && x->rank == 3 ? x->shape[2] : channels;
            const tk_tensor* out = call.tensor({batch, out_tokens, out_channels}, out_dtype, Role::kOutput);
            const tk_tensor* out_size = call.maybe({batch, out_tokens}, TK_DTYPE_F32, Role::kOutput);
            const tk_tensor* source_map = call.maybe({batch, tokens}, TK_DTYPE_I32, Role::kOutput);
            const tk_tensor* merge_count = c.one_in(4) ? nullptr : call.tensor({batch}, TK_DTYPE_I32, Role::kOutput);
            const tk_status queried = call.run("tk_merge_workspace_size", {metric, x}, [&] { return tk_merge_workspace_size(params, metric, x, bytes); });
            const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
            call.run("tk_merge", {metric, x, size, out, out_size, source_map, merge_count}, [&] {
                return tk_merge(params, metric, x, size, out, out_size, source_map, merge_count, w.data, w.bytes, nullptr);
            });
            return;
        }
        default: {  // unmerge
            const tk_tensor* y = call.tensor({batch, out_tokens, channels}, x_dtype, Role::kInput);
            const tk_tensor* map = call.tensor({batch, tokens}, index_dtype(c), Role::kInput, indices(0, std::max<int64_t>(out_tokens - 1, 0)));
            const tk_tensor* out = call.tensor({batch, tokens, channels}, x_dtype, Role::kOutput);
            call.run("tk_unmerge", {y, map, out}, [&] { return tk_unmerge(y, map, out, nullptr); });
            return;
        }
    }
}

tk_importance_params importance_params(Choices& c, int64_t queries, int64_t keys) {
    tk_importance_params p{};
    p.query_begin = around(c, 0, std::max<int64_t>(queries - 1, 0));
    p.query_end = around(c, p.query_begin + 1, queries);
    p.key_begin = around(c, 0, keys);
    p.key_end = around(c, p.key_begin, keys);
    p.head_reduce = around(c, TK_REDUCE_MEAN, TK_REDUCE_SUM);
    p.query_reduce = around(c, TK_REDUCE_MEAN, TK_REDUCE_SUM);
    p.scale = some_float(c, 0.05f, 1.0f);
    p.causal = around(c, 0, 1);
    return p;
}

void fuzz_importance(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 2), heads = c.range(0, 4), queries = c.range(0, 9), keys = c.range(0, 24);
    tk_importance_params p = importance_params(c, queries, keys);
    const tk_importance_params* params = c.one_in(50) ? nullptr : &p;
    const int64_t kept = std::max<int64_t>(p.key_end - p.key_begin, 0);
    const tk_tensor* out = nullptr;
    if (c.one_in(2)) {
        const tk_tensor* attn = call.tensor({batch, heads, queries, keys}, float_dtype(c), Role::kInput);
        out = call.tensor({batch, kept}, TK_DTYPE_F32, Role::kOutput);
        call.run("tk_attention_importance", {attn, out}, [&] { return tk_attention_importance(params, attn, out, nullptr); });
        return;
    }
    const int64_t kv_heads = heads > 0 && c.one_in(2) ? std::max<int64_t>(heads / 2, 1) : heads;
    const int64_t dim = c.range(0, 20);
    const tk_dtype dtype = float_dtype(c);
    const tk_tensor* q = call.tensor({batch, heads, queries, dim}, dtype, Role::kInput);
    const tk_tensor* k = call.tensor({batch, kv_heads, keys, dim}, dtype, Role::kInput);
    const tk_tensor* lse = call.maybe({batch, heads, queries}, TK_DTYPE_F32, Role::kInput);
    out = call.tensor({batch, kept}, TK_DTYPE_F32, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried =
        call.run("tk_qk_importance_workspace_size", {q, k, lse}, [&] { return tk_qk_importance_workspace_size(params, q, k, lse, bytes); });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_qk_importance", {q, k, lse, out}, [&] { return tk_qk_importance(params, q, k, lse, out, w.data, w.bytes, nullptr); });
}

void fuzz_topk_gather(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 40);
    if (c.one_in(2)) {
        tk_topk_params p{around(c, 0, tokens)};
        const tk_topk_params* params = c.one_in(50) ? nullptr : &p;
        const int64_t k = std::max<int32_t>(p.k, 0);
        const tk_tensor* scores = call.tensor({batch, tokens}, float_dtype(c), Role::kInput);
        const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
        const tk_tensor* item_k = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, k));
        const tk_tensor* kept = call.tensor({batch, k}, TK_DTYPE_I32, Role::kOutput);
        const tk_tensor* ranked = call.maybe({batch, k}, TK_DTYPE_I32, Role::kOutput);
        uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
        const tk_status queried = call.run("tk_topk_workspace_size", {scores}, [&] { return tk_topk_workspace_size(params, scores, bytes); });
        const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
        call.run("tk_topk", {scores, lengths, item_k, kept, ranked}, [&] { return tk_topk(params, scores, lengths, item_k, kept, ranked, w.data, w.bytes, nullptr); });
        return;
    }
    static const tk_dtype kAny[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16, TK_DTYPE_I32, TK_DTYPE_I64};
    const tk_dtype dtype = c.pick(kAny);
    const int64_t k = c.range(0, 12), channels = c.range(0, 20);
    const tk_tensor* x = call.tensor({batch, tokens, channels}, dtype, Role::kInput);
    const tk_tensor* picked = call.tensor({batch, k}, index_dtype(c), Role::kInput, indices(-1, std::max<int64_t>(tokens - 1, 0)));
    const tk_tensor* out = call.tensor({batch, k, channels}, dtype, Role::kOutput);
    call.run("tk_gather", {x, picked, out}, [&] { return tk_gather(x, picked, out, nullptr); });
}

void fuzz_contextual(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 2), tokens = c.range(0, 30);
    const int64_t dominant = c.range(0, tokens);
    const int32_t contextual = around(c, 0, tokens - dominant);
    const tk_tensor* metric = call.tensor({batch, tokens, c.range(0, 16)}, float_dtype(c), Role::kInput);
    const tk_dtype x_dtype = float_dtype(c);
    const int64_t channels = c.range(0, 16);
    const tk_tensor* x = c.one_in(6) ? metric : call.tensor({batch, tokens, channels}, x_dtype, Role::kInput);
    const tk_tensor* kept =
        call.tensor({batch, dominant}, index_dtype(c), Role::kInput, distinct_indices(0, std::max<int64_t>(tokens - 1, 0)));
    const tk_dtype out_dtype = x != nullptr ? x->dtype : x_dtype;
    const int64_t out_channels = x != nullptr && x->rank == 3 ? x->shape[2] : channels;
    const tk_tensor* out = call.tensor({batch, std::max<int32_t>(contextual, 0), out_channels}, out_dtype, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried = call.run("tk_visionzip_contextual_workspace_size", {metric, x, kept}, [&] {
        return tk_visionzip_contextual_workspace_size(contextual, metric, x, kept, bytes);
    });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_visionzip_contextual", {metric, x, kept, out}, [&] { return tk_visionzip_contextual(contextual, metric, x, kept, out, w.data, w.bytes, nullptr); });
}

void fuzz_diversity(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 40);
    tk_diversity_params p{};
    p.k = around(c, 0, tokens);
    p.distance = around(c, TK_DISTANCE_COSINE, TK_DISTANCE_L2);
    p.first = around(c, TK_FIRST_MOST_ISOLATED, TK_FIRST_SCORE);
    p.objective = around(c, TK_DIVERSITY_MAX_MIN, TK_DIVERSITY_MAX_SUM);
    const tk_diversity_params* params = c.one_in(50) ? nullptr : &p;
    const int64_t k = std::max<int32_t>(p.k, 0);
    const tk_tensor* x = call.tensor({batch, tokens, c.range(0, 24)}, float_dtype(c), Role::kInput);
    const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
    const tk_tensor* item_k = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, k));
    // The first center's input goes with its policy, and now and then with another.
    const bool wrong_first = c.one_in(12);
    const tk_tensor* first_index = (p.first == TK_FIRST_INDEX) != wrong_first
                                       ? call.tensor({batch}, TK_DTYPE_I32, Role::kInput, indices(0, std::max<int64_t>(tokens - 1, 0)))
                                       : nullptr;
    const tk_tensor* first_score = (p.first == TK_FIRST_SCORE) != wrong_first ? call.tensor({batch, tokens}, float_dtype(c), Role::kInput) : nullptr;
    const tk_tensor* order = call.tensor({batch, k}, TK_DTYPE_I32, Role::kOutput);
    const tk_tensor* sorted = call.maybe({batch, k}, TK_DTYPE_I32, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried = call.run("tk_diversity_workspace_size", {x}, [&] { return tk_diversity_workspace_size(params, x, bytes); });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_diversity_select", {x, lengths, item_k, first_index, first_score, order, sorted}, [&] {
        return tk_diversity_select(params, x, lengths, item_k, first_index, first_score, order, sorted, w.data, w.bytes, nullptr);
    });
}

void fuzz_cluster(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 40), channels = c.range(0, 24);
    const tk_tensor* x = call.tensor({batch, tokens, channels}, float_dtype(c), Role::kInput);
    if (c.one_in(2)) {
        tk_dpc_knn_params p{around(c, 0, tokens), around(c, 1, 8)};
        const tk_dpc_knn_params* params = c.one_in(50) ? nullptr : &p;
        const int64_t clusters = std::max<int32_t>(p.clusters, 0);
        const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
        const tk_tensor* item_clusters = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, clusters));
        const tk_tensor* centres = call.tensor({batch, clusters}, TK_DTYPE_I32, Role::kOutput);
        const tk_tensor* assignment = call.tensor({batch, tokens}, TK_DTYPE_I32, Role::kOutput);
        const tk_tensor* density = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kOutput);
        const tk_tensor* delta = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kOutput);
        uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
        const tk_status queried = call.run("tk_dpc_knn_workspace_size", {x}, [&] { return tk_dpc_knn_workspace_size(params, x, bytes); });
        const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
        call.run("tk_dpc_knn", {x, lengths, item_clusters, centres, assignment, density, delta}, [&] {
            return tk_dpc_knn(params, x, lengths, item_clusters, centres, assignment, density, delta, w.data, w.bytes, nullptr);
        });
        return;
    }
    if (c.one_in(3)) {
        tk_cluster_assign_params p{static_cast<int32_t>(around(c, 0, 6))};
        const tk_cluster_assign_params* params = c.one_in(50) ? nullptr : &p;
        const int64_t clusters = std::max<int32_t>(p.clusters, 0);
        const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
        const tk_tensor* centres = call.tensor({batch, clusters}, TK_DTYPE_I32, Role::kInput, indices(-1, std::max<int64_t>(tokens - 1, 0)));
        const tk_tensor* assignment = call.tensor({batch, tokens}, TK_DTYPE_I32, Role::kOutput);
        call.run("tk_cluster_assign", {x, lengths, centres, assignment},
                 [&] { return tk_cluster_assign(params, x, lengths, centres, assignment, nullptr); });
        return;
    }
    tk_cluster_merge_params p{static_cast<int32_t>(c.range(0, 6)), around(c, TK_CLUSTER_MERGE_MEAN, TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND),
                              some_float(c, -1.0f, 2.0f)};
    const tk_cluster_merge_params* params = c.one_in(50) ? nullptr : &p;
    const int64_t clusters = std::max<int32_t>(p.clusters, 0);
    const tk_tensor* assignment = call.tensor({batch, tokens}, TK_DTYPE_I32, Role::kInput, indices(-1, std::max<int64_t>(clusters - 1, 0)));
    const tk_tensor* sizes = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kInput);
    const tk_tensor* centres = call.maybe({batch, clusters}, TK_DTYPE_I32, Role::kInput, indices(-1, std::max<int64_t>(tokens - 1, 0)));
    const tk_tensor* out = call.tensor({batch, clusters, channels}, x != nullptr ? x->dtype : TK_DTYPE_F32, Role::kOutput);
    const tk_tensor* out_size = call.maybe({batch, clusters}, TK_DTYPE_F32, Role::kOutput);
    call.run("tk_cluster_merge", {x, assignment, sizes, centres, out, out_size}, [&] {
        return tk_cluster_merge(params, x, assignment, sizes, centres, out, out_size, nullptr);
    });
}

void fuzz_relevance(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 40), channels = c.range(0, 24);
    if (c.one_in(3)) {
        const int64_t text_tokens = c.range(0, 8);
        tk_relevance_params p{around(c, 0, 1)};
        const tk_relevance_params* params = c.one_in(50) ? nullptr : &p;
        const tk_dtype dtype = float_dtype(c);
        const tk_tensor* visual = call.tensor({batch, tokens, channels}, dtype, Role::kInput);
        const tk_tensor* text = call.tensor({batch, text_tokens, channels}, c.one_in(12) ? float_dtype(c) : dtype, Role::kInput);
        const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
        const tk_tensor* text_lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, text_tokens));
        const tk_tensor* relevance = call.tensor({batch, tokens}, TK_DTYPE_F32, Role::kOutput);
        call.run("tk_query_relevance", {visual, text, lengths, text_lengths, relevance}, [&] {
            return tk_query_relevance(params, visual, text, lengths, text_lengths, relevance, nullptr);
        });
        return;
    }
    tk_dpp_params p{};
    p.k = around(c, 0, tokens);
    p.weighting = around(c, TK_DPP_WEIGHT_RELEVANCE, TK_DPP_WEIGHT_EXP);
    p.theta = some_float(c, -0.5f, 1.5f);
    const tk_dpp_params* params = c.one_in(50) ? nullptr : &p;
    const int64_t k = std::max<int32_t>(p.k, 0);
    const tk_tensor* x = call.tensor({batch, tokens, channels}, float_dtype(c), Role::kInput);
    const tk_tensor* relevance = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kInput);
    const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
    const tk_tensor* item_k = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, k));
    const tk_tensor* order = call.tensor({batch, k}, TK_DTYPE_I32, Role::kOutput);
    const tk_tensor* sorted = call.maybe({batch, k}, TK_DTYPE_I32, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried =
        call.run("tk_conditional_dpp_workspace_size", {x}, [&] { return tk_conditional_dpp_workspace_size(params, x, bytes); });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_conditional_dpp_select", {x, relevance, lengths, item_k, order, sorted}, [&] {
        return tk_conditional_dpp_select(params, x, relevance, lengths, item_k, order, sorted, w.data, w.bytes, nullptr);
    });
}

void fuzz_kmeans(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 3), tokens = c.range(0, 30), channels = c.range(0, 12);
    tk_kmeans_params p{};
    p.seed = static_cast<uint64_t>(c.any_int32());
    p.tolerance = c.one_in(8) ? -1.0 : static_cast<double>(some_float(c, 0.0f, 1e-2f));
    p.clusters = around(c, 0, tokens);
    // Small caps (and now and then an invalid one): an item that never settles (NaN tokens) runs them all.
    p.max_iterations = c.one_in(12) ? static_cast<int32_t>(c.range(-2, 0)) : static_cast<int32_t>(c.range(1, 8));
    p.init = around(c, TK_KMEANS_INIT_PLUS_PLUS, TK_KMEANS_INIT_GIVEN);
    const tk_kmeans_params* params = c.one_in(50) ? nullptr : &p;
    const int64_t k = std::max<int32_t>(p.clusters, 0);
    const tk_tensor* x = call.tensor({batch, tokens, channels}, float_dtype(c), Role::kInput);
    const tk_tensor* lengths = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, tokens));
    const tk_tensor* item_clusters = call.maybe({batch}, TK_DTYPE_I32, Role::kInput, indices(0, k));
    // The initial centres go with TK_KMEANS_INIT_GIVEN, and now and then with the other policy.
    const tk_tensor* initial = (p.init == TK_KMEANS_INIT_GIVEN) != c.one_in(12)
                                   ? call.tensor({batch, k, channels}, TK_DTYPE_F32, Role::kInput)
                                   : nullptr;
    const tk_tensor* centres = call.tensor({batch, k, channels}, TK_DTYPE_F32, Role::kOutput);
    const tk_tensor* assignment = call.tensor({batch, tokens}, TK_DTYPE_I32, Role::kOutput);
    const tk_tensor* sizes = call.maybe({batch, k}, TK_DTYPE_F32, Role::kOutput);
    const tk_tensor* iterations = call.maybe({batch}, TK_DTYPE_I32, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    const tk_status queried = call.run("tk_kmeans_workspace_size", {x}, [&] { return tk_kmeans_workspace_size(params, x, bytes); });
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    call.run("tk_kmeans", {x, lengths, item_clusters, initial, centres, assignment, sizes, iterations}, [&] {
        return tk_kmeans(params, x, lengths, item_clusters, initial, centres, assignment, sizes, iterations, w.data, w.bytes, nullptr);
    });
}

void fuzz_temporal(Choices& c, Call& call) {
    const int64_t batch = c.range(0, 2), frames = c.range(0, 6), height = c.range(0, 4), width = c.range(0, 4);
    const int64_t positions = height * width, channels = c.range(0, 20);
    const tk_tensor* x = call.tensor({batch, frames, positions, channels}, float_dtype(c), Role::kInput);
    if (c.one_in(4)) {
        tk_framefusion_params p{some_float(c, -1.0f, 1.0f), c.one_in(3) ? -1 : around(c, 0, frames * positions)};
        const tk_framefusion_params* params = c.one_in(50) ? nullptr : &p;
        const int64_t tokens = frames * positions;
        const tk_tensor* out = call.tensor({batch, tokens, channels}, x != nullptr ? x->dtype : TK_DTYPE_F32, Role::kOutput);
        const tk_tensor* out_size = call.maybe({batch, tokens}, TK_DTYPE_F32, Role::kOutput);
        const tk_tensor* source_map = call.maybe({batch, tokens}, TK_DTYPE_I32, Role::kOutput);
        const tk_tensor* merge_count = call.tensor({batch}, TK_DTYPE_I32, Role::kOutput);
        uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
        const tk_status queried = call.run("tk_framefusion_workspace_size", {x}, [&] { return tk_framefusion_workspace_size(params, x, bytes); });
        const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
        call.run("tk_framefusion_merge", {x, out, out_size, source_map, merge_count}, [&] {
            return tk_framefusion_merge(params, x, out, out_size, source_map, merge_count, w.data, w.bytes, nullptr);
        });
        return;
    }
    if (c.one_in(6)) {
        // PruneVid's segment similarity on the first item: lengths of 1 or 2 frames (sometimes 0) sum
        // to T now and then.
        const int64_t segments = c.range(0, 6);
        const tk_tensor* frames_x = call.tensor({frames, positions, channels}, float_dtype(c), Role::kInput);
        const tk_tensor* lengths = call.tensor({segments}, TK_DTYPE_I32, Role::kInput, indices(c.one_in(4) ? 0 : 1, 2));
        const tk_tensor* out = call.tensor({segments, positions}, TK_DTYPE_F32, Role::kOutput);
        call.run("tk_segment_similarity", {frames_x, lengths, out}, [&] { return tk_segment_similarity(frames_x, lengths, out, nullptr); });
        return;
    }
    if (c.one_in(3)) {
        const tk_tensor* reference = call.maybe({frames}, TK_DTYPE_I32, Role::kInput, indices(-1, std::max<int64_t>(frames - 1, 0)));
        const tk_tensor* out = call.tensor({batch, frames, positions}, TK_DTYPE_F32, Role::kOutput);
        call.run("tk_temporal_similarity", {x, reference, out}, [&] { return tk_temporal_similarity(x, reference, out, nullptr); });
        return;
    }
    // EVS, DyCoke or VidCom2: the same arguments but the rate (EVS's q, DyCoke's merging_ratio,
    // VidCom2's retention_ratio) and VidCom2's channel ratio and temperature.
    const int method = static_cast<int>(c.range(0, 2));
    const double rate = c.one_in(12) ? c.pick({-0.25, 1.0, 1.5, std::nan(""), HUGE_VAL}) : static_cast<double>(c.range(0, 1000)) / 1000.0;
    const double channel_ratio =
        c.one_in(12) ? c.pick({0.0, -0.5, 1.01, std::nan(""), HUGE_VAL}) : static_cast<double>(c.range(1, 1000)) / 1000.0;
    const double temperature =
        c.one_in(8) ? c.pick({0.0, -1.0, 1e39, std::nan(""), HUGE_VAL, 1e-30, 1e30}) : static_cast<double>(c.range(1, 1000)) / 100.0;
    const int32_t grid_height = around(c, 1, height), grid_width = around(c, 1, width);
    const tk_evs_params evs{rate, grid_height, grid_width};
    const tk_dycoke_params dycoke_params{rate, grid_height, grid_width};
    const tk_vidcom2_params vidcom2_params{rate, channel_ratio, temperature, grid_height, grid_width};
    const bool null_params = c.one_in(50);
    const tk_evs_params* evs_ptr = null_params ? nullptr : &evs;
    const tk_dycoke_params* dycoke_ptr = null_params ? nullptr : &dycoke_params;
    const tk_vidcom2_params* vidcom2_ptr = null_params ? nullptr : &vidcom2_params;
    int64_t* retained = call.scalar<int64_t>(1, Role::kOutput);
    const int64_t asked = c.one_in(16) ? c.pick({int64_t{0}, int64_t{-1}, int64_t{1} << 40}) : frames;
    tk_status counted = TK_STATUS_OK;
    switch (method) {
        case 0: counted = call.run("tk_evs_retained_tokens", {}, [&] { return tk_evs_retained_tokens(evs_ptr, asked, retained); }); break;
        case 1:
            counted = call.run("tk_dycoke_retained_tokens", {}, [&] { return tk_dycoke_retained_tokens(dycoke_ptr, asked, retained); });
            break;
        default:
            counted = call.run("tk_vidcom2_retained_tokens", {}, [&] { return tk_vidcom2_retained_tokens(vidcom2_ptr, asked, retained); });
            break;
    }
    const int64_t k = counted == TK_STATUS_OK && !c.one_in(16) ? *retained : c.range(0, 12);
    const tk_tensor* out = call.maybe({batch, k, channels}, x != nullptr ? x->dtype : TK_DTYPE_F32, Role::kOutput);
    const tk_tensor* kept = call.maybe({batch, k}, TK_DTYPE_I32, Role::kOutput);
    const tk_tensor* grid = call.maybe({batch, k, 3}, TK_DTYPE_I32, Role::kOutput);
    const tk_tensor* mask = call.maybe({batch, frames * positions}, TK_DTYPE_I32, Role::kOutput);
    uint64_t* bytes = call.scalar<uint64_t>(1, Role::kOutput);
    tk_status queried = TK_STATUS_OK;
    switch (method) {
        case 0: queried = call.run("tk_evs_workspace_size", {x}, [&] { return tk_evs_workspace_size(evs_ptr, x, bytes); }); break;
        case 1:
            queried = call.run("tk_dycoke_workspace_size", {x}, [&] { return tk_dycoke_workspace_size(dycoke_ptr, x, bytes); });
            break;
        default:
            queried = call.run("tk_vidcom2_workspace_size", {x}, [&] { return tk_vidcom2_workspace_size(vidcom2_ptr, x, bytes); });
            break;
    }
    const Call::Workspace w = call.workspace(queried == TK_STATUS_OK ? bytes : nullptr);
    switch (method) {
        case 0:
            call.run("tk_evs", {x, out, kept, grid, mask},
                     [&] { return tk_evs(evs_ptr, x, out, kept, grid, mask, w.data, w.bytes, nullptr); });
            break;
        case 1:
            call.run("tk_dycoke_ttm", {x, out, kept, grid, mask},
                     [&] { return tk_dycoke_ttm(dycoke_ptr, x, out, kept, grid, mask, w.data, w.bytes, nullptr); });
            break;
        default:
            call.run("tk_vidcom2", {x, out, kept, grid, mask},
                     [&] { return tk_vidcom2(vidcom2_ptr, x, out, kept, grid, mask, w.data, w.bytes, nullptr); });
            break;
    }
}

// ---- DLPack ------------------------------------------------------------------------------------------

// The five DLDataTypes the library takes and their tk_dtypes (SPEC "DLPack").
struct DlpackType {
    tk_dtype dtype;
    tk_dlpack_dtype dl;
};
const DlpackType kDlpackTypes[] = {{TK_DTYPE_F32, {TK_DLPACK_FLOAT, 32, 1}},
                                   {TK_DTYPE_F16, {TK_DLPACK_FLOAT, 16, 1}},
                                   {TK_DTYPE_BF16, {TK_DLPACK_BFLOAT, 16, 1}},
                                   {TK_DTYPE_I32, {TK_DLPACK_INT, 32, 1}},
                                   {TK_DTYPE_I64, {TK_DLPACK_INT, 64, 1}}};

// Why no call takes t by the checks of every tk_tensor that need no device (SPEC "Tensors",
// "Alignment", "Overflow"), or "" when it passes them. A CUDA tensor passes them with any ordinal.
std::string layout_problem(const tk_tensor& t) {
    const int64_t element = tk_dtype_size(t.dtype);
    if (element == 0) return "an unknown dtype";
    if (t.device_kind != TK_DEVICE_CPU && t.device_kind != TK_DEVICE_CUDA) return "an unknown device kind";
    if (t.device_kind == TK_DEVICE_CPU && t.device_ordinal != 0) return "a CPU ordinal other than 0";
    if (t.rank < 1 || t.rank > TK_MAX_RANK) return "a rank outside [1, 8]";
    for (int32_t d = 0; d < t.rank; ++d)
        if (t.shape[d] < 0) return "a negative size";
    const int64_t numel = saturating_numel(t);
    if (numel == INT64_MAX) return "an element count beyond int64";
    if (numel == 0) return "";
    if (t.data == nullptr) return "NULL data";
    if (reinterpret_cast<uintptr_t>(t.data) % static_cast<uintptr_t>(element) != 0) return "misaligned data";
    // Element offsets of the lowest and highest element; each term is below 2^126 and the sum stops
    // growing once past PTRDIFF_MAX, so neither overflows.
    __int128 lowest = 0, highest = 0;
    for (int32_t d = 0; d < t.rank; ++d) {
        if (t.shape[d] > 1) ((t.strides[d] < 0) ? lowest : highest) += static_cast<__int128>(t.shape[d] - 1) * t.strides[d];
        if (highest - lowest + 1 > PTRDIFF_MAX / element) return "an extent beyond the address space";
    }
    const auto address = static_cast<__int128>(reinterpret_cast<uintptr_t>(t.data));
    if (address + lowest * element < 0 || address + (highest + 1) * element > static_cast<__int128>(UINTPTR_MAX))
        return "an extent that wraps around the address space";
    return "";
}

// The view tk_tensor_from_dlpack* takes of dl (SPEC "DLPack", "Into a tk_tensor"), or why the SPEC
// refuses dl. Reads dl.shape and dl.strides only for an ndim in [1, 8].
struct ExpectedView {
    std::string refused;
    tk_tensor view{};
};

ExpectedView refusal(const char* why) {
    ExpectedView e;
    e.refused = why;
    return e;
}

ExpectedView expected_view(const tk_dlpack_tensor& dl) {
    ExpectedView e;
    tk_tensor& v = e.view;
    if (dl.ndim < 1 || dl.ndim > TK_MAX_RANK) return refusal("an ndim outside [1, 8]");
    if (dl.dtype.lanes != 1) return refusal("a lane count other than 1");
    v.dtype = -1;
    for (const DlpackType& type : kDlpackTypes)
        if (type.dl.code == dl.dtype.code && type.dl.bits == dl.dtype.bits) v.dtype = type.dtype;
    if (v.dtype < 0) return refusal("a type code and width without a tk_dtype");
    switch (dl.device.device_type) {
        case TK_DLPACK_CPU:
        case TK_DLPACK_CUDA_HOST:
            v.device_kind = TK_DEVICE_CPU;
            v.device_ordinal = 0;
            break;
        case TK_DLPACK_CUDA:
        case TK_DLPACK_CUDA_MANAGED:
            if (dl.device.device_id < 0) return refusal("a negative CUDA device_id");
            v.device_kind = TK_DEVICE_CUDA;
            v.device_ordinal = dl.device.device_id;
            break;
        default:
            return refusal("a device type the library does not take");
    }
    if (dl.shape == nullptr) return refusal("NULL shape");
    const auto address = reinterpret_cast<uintptr_t>(dl.data);
    if (dl.data == nullptr && dl.byte_offset != 0) return refusal("a byte_offset with NULL data");
    if (dl.byte_offset > UINTPTR_MAX - address) return refusal("a byte_offset that carries data past the address space");
    v.data = reinterpret_cast<void*>(address + static_cast<uintptr_t>(dl.byte_offset));
    v.rank = dl.ndim;
    bool empty = false;
    for (int32_t d = 0; d < v.rank; ++d) {
        v.shape[d] = dl.shape[d];
        empty = empty || v.shape[d] == 0;
    }
    // A stride that addresses nothing (NULL strides, a dimension of size 1, a tensor without
    // elements) is the compact row-major one: the product of the later sizes, those below 1 counted as
    // 1. The product saturates at INT64_MAX, as it can only overflow for a tensor without elements or
    // one whose element count is refused.
    int64_t compact = 1;
    for (int32_t d = v.rank - 1; d >= 0; --d) {
        v.strides[d] = dl.strides == nullptr || empty || v.shape[d] == 1 ? compact : dl.strides[d];
        const int64_t size = std::max<int64_t>(v.shape[d], 1);
        compact = compact > INT64_MAX / size ? INT64_MAX : compact * size;
    }
    if (!empty)
        for (int32_t d = 0; d < v.rank; ++d)
            if (v.shape[d] > 1 && v.strides[d] < 1) return refusal("a stride of 0 or less on a dimension of size above 1");
    e.refused = layout_problem(v);
    return e;
}

bool same_view(const tk_tensor& a, const tk_tensor& b) {
    if (a.data != b.data || a.dtype != b.dtype || a.device_kind != b.device_kind || a.device_ordinal != b.device_ordinal || a.rank != b.rank)
        return false;
    for (int32_t d = 0; d < std::clamp(a.rank, 0, TK_MAX_RANK); ++d)
        if (a.shape[d] != b.shape[d] || a.strides[d] != b.strides[d]) return false;
    return true;
}

std::string describe(const tk_dlpack_tensor& dl) {
    const auto list = [&](const int64_t* values) {
        if (values == nullptr) return std::string("NULL");
        std::string s = "[";
        for (int32_t d = 0; d < std::clamp(dl.ndim, 0, TK_MAX_RANK); ++d) s += (d ? ", " : "") + std::to_string(values[d]);
        return s + "]";
    };
    char pointer[32];
    std::snprintf(pointer, sizeof pointer, "%p", dl.data);
    return "DLTensor code " + std::to_string(dl.dtype.code) + " bits " + std::to_string(dl.dtype.bits) + " lanes " +
           std::to_string(dl.dtype.lanes) + " device " + std::to_string(dl.device.device_type) + ":" + std::to_string(dl.device.device_id) +
           " ndim " + std::to_string(dl.ndim) + " shape " + list(dl.shape) + " strides " + list(dl.strides) + " byte_offset " +
           std::to_string(dl.byte_offset) + " data " + pointer;
}

// Fails when an entry point's acceptance of `what` disagrees with the SPEC (`refused` empty: it takes it).
void check_acceptance(const char* entry, tk_status status, const std::string& refused, const std::string& what) {
    if (status == TK_STATUS_OK && !refused.empty())
        finding(std::string(entry) + " accepted " + what + ", which the SPEC refuses: " + refused);
    if (status != TK_STATUS_OK && refused.empty())
        finding(std::string(entry) + " refused " + what + ", which the SPEC takes: " + tk_last_error());
}

// The deleters of the fuzzer's DLPack tensors: the library never calls one it was given.
void producer_deleter(tk_dlpack_managed_tensor*) { finding("the library called the deleter of a DLManagedTensor it was given"); }
void producer_versioned_deleter(tk_dlpack_managed_tensor_versioned*) {
    finding("the library called the deleter of a DLManagedTensorVersioned it was given");
}

// Fills dl (in the arena) from the input: one of the five types or another code, width or lane
// count; every device type, known to dlpack.h or not, and ids negative or not; any ndim; sizes
// small, zero, negative or huge; strides NULL, compact, padded, permuted, zero, negative or
// overflowing, and leftovers where they address nothing; data and byte_offset placing the first
// element in the arena, misaligned, at NULL, near the top of the address space or past it. Its shape
// and strides arrays (as many entries as ndim, up to 16) are arena bytes the call may read; its
// elements arena bytes it must not touch.
void dlpack_tensor(Choices& c, Call& call, tk_dlpack_tensor& dl) {
    dl.dtype = c.pick(kDlpackTypes).dl;
    if (c.one_in(12)) {  // unsigned, opaque, complex, bool, float8 and codes past them; other widths
        static const uint8_t kCodes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 255};
        static const uint8_t kBits[] = {0, 1, 4, 8, 16, 32, 64, 128, 255};
        dl.dtype.code = c.pick(kCodes);
        dl.dtype.bits = c.pick(kBits);
    }
    if (c.one_in(24)) {
        static const uint16_t kLanes[] = {0, 2, 4, 16, 65535};
        dl.dtype.lanes = c.pick(kLanes);
    }
    switch (c.range(0, 7)) {
        case 4: dl.device.device_type = TK_DLPACK_CUDA; break;
        case 5: dl.device.device_type = TK_DLPACK_CUDA_HOST; break;
        case 6: dl.device.device_type = TK_DLPACK_CUDA_MANAGED; break;
        case 7:  // every other DLDeviceType, known to dlpack.h or not
            dl.device.device_type = c.one_in(8) ? c.any_int32() : static_cast<int32_t>(c.range(-1, 18));
            break;
        default: dl.device.device_type = TK_DLPACK_CPU;
    }
    static const int32_t kIds[] = {0, 1, 3, -1, INT32_MIN, INT32_MAX};
    dl.device.device_id = c.one_in(4) ? c.pick(kIds) : 0;
    if (c.one_in(16))
        dl.ndim = c.one_in(3) ? c.any_int32() : static_cast<int32_t>(c.range(-1, TK_MAX_RANK + 2));
    else
        dl.ndim = static_cast<int32_t>(c.one_in(4) ? c.range(5, TK_MAX_RANK) : c.range(1, 4));

    const auto entries = static_cast<size_t>(std::clamp(dl.ndim, 0, 16));
    std::vector<int64_t> sizes(entries), steps(entries);
    static const int64_t kOddSizes[] = {0, -1, INT64_MIN, int64_t{1} << 31, int64_t{1} << 32, int64_t{1} << 62, INT64_MAX};
    for (int64_t& size : sizes) size = c.one_in(20) ? c.pick(kOddSizes) : c.range(0, 5);
    tk_tensor layout{};  // the first 8 sizes as a tk_tensor, for set_strides
    layout.rank = static_cast<int32_t>(std::min<size_t>(entries, TK_MAX_RANK));
    std::copy(sizes.begin(), sizes.begin() + layout.rank, layout.shape);
    set_strides(layout, c);
    for (size_t i = 0; i < entries; ++i) steps[i] = i < TK_MAX_RANK ? layout.strides[i] : c.range(-3, 9);
    // What producers leave in strides that address nothing (PyTorch: the stride a size-1 slice came
    // from, 0 after expand, a negative one after a flip).
    if (c.one_in(3)) {
        static const int64_t kLeftovers[] = {0, -1, -7, 3, 12345, int64_t{1} << 62, INT64_MIN, INT64_MAX};
        const bool empty = std::find(sizes.begin(), sizes.end(), 0) != sizes.end();
        for (size_t i = 0; i < entries; ++i)
            if (empty || sizes[i] == 1) steps[i] = c.pick(kLeftovers);
    }
    int64_t* shape = call.scalar<int64_t>(entries, Role::kInput);
    int64_t* strides = c.one_in(3) ? nullptr : call.scalar<int64_t>(entries, Role::kInput);
    if (shape != nullptr) std::copy(sizes.begin(), sizes.end(), shape);
    if (strides != nullptr) std::copy(steps.begin(), steps.end(), strides);
    dl.shape = shape;
    dl.strides = strides;

    // Room for the elements of a valid descriptor of modest span (its strides are positive: the first
    // element is the lowest), and 64 bytes below the first to misalign data or not; else 64 bytes
    // (no elements, or elements past the end of the arena: no call reads them).
    tk_dlpack_tensor probe = dl;
    probe.data = reinterpret_cast<void*>(uintptr_t{4096});
    probe.byte_offset = 0;
    const ExpectedView e = expected_view(probe);
    const int64_t numel = e.refused.empty() ? saturating_numel(e.view) : 0;
    __int128 span = 64;
    if (numel > 0 && numel <= (int64_t{1} << 16)) {
        __int128 highest = 0;
        for (int32_t d = 0; d < e.view.rank; ++d)
            if (e.view.shape[d] > 1) highest += static_cast<__int128>(e.view.shape[d] - 1) * e.view.strides[d];
        span = (highest + 1) * tk_dtype_size(e.view.dtype);
    }
    uint8_t* block = span <= static_cast<__int128>(kArenaBytes / 4) ? call.untouchable(static_cast<size_t>(span) + 64, 64) : nullptr;
    if (block == nullptr) block = call.untouchable(128, 64);
    uint8_t* first = block != nullptr ? block + 64 : nullptr;  // the first element, 64-byte aligned
    const auto at = reinterpret_cast<uintptr_t>(first);
    const auto below_top = [&] { return static_cast<uintptr_t>(8 * c.range(1, 4)); };  // 8 to 32 bytes
    dl.data = first;
    dl.byte_offset = 0;
    switch (c.range(0, 15)) {
        case 0:  // NULL data: valid for a tensor without elements
            dl.data = nullptr;
            break;
        case 1: {  // NULL data with an offset
            static const uint64_t kOffsets[] = {1, 4, 64, uint64_t{1} << 40, UINT64_MAX};
            dl.data = nullptr;
            dl.byte_offset = c.pick(kOffsets);
            break;
        }
        case 2:  // an offset that misaligns the first element
            dl.byte_offset = static_cast<uint64_t>(c.range(1, 7));
            break;
        case 3:
        case 4: {  // data below the first element, at any alignment, and the offset that reaches it
            const int64_t below = c.range(1, 64);
            if (first != nullptr) dl.data = first - below;
            dl.byte_offset = static_cast<uint64_t>(below);
            break;
        }
        case 5:  // data 8 to 32 bytes below the top of the address space, with an offset or not
            dl.data = reinterpret_cast<void*>(uintptr_t{0} - below_top());
            dl.byte_offset = c.one_in(2) ? 0 : static_cast<uint64_t>(c.range(1, 40));
            break;
        case 6:  // an offset that carries data to 8 to 32 bytes below the top
            dl.byte_offset = static_cast<uint64_t>(uintptr_t{0} - at - below_top());
            break;
        case 7:  // an offset that carries data just past the top: data + byte_offset wraps around
            dl.byte_offset = static_cast<uint64_t>(uintptr_t{0} - at + static_cast<uintptr_t>(c.range(0, 64)));
            break;
        case 8: {
            static const uint64_t kHuge[] = {uint64_t{1} << 47, uint64_t{1} << 63, UINT64_MAX - 7, UINT64_MAX};
            dl.byte_offset = c.pick(kHuge);
            break;
        }
        default:
            break;
    }
}

// A manager_ctx as producers leave it: NULL, the address of bytes no call may touch, or a non-pointer.
void* manager_context(Choices& c, Call& call) {
    switch (c.range(0, 2)) {
        case 0: return nullptr;
        case 1: return call.untouchable(16, 8);
        default: return reinterpret_cast<void*>(uintptr_t{1});
    }
}

// Checks that the accepted export dl describes t exactly (SPEC "Out of a tk_tensor").
void check_exported(const char* entry, const tk_tensor& t, const tk_dlpack_tensor& dl) {
    const auto wrong = [&](const char* what) {
        finding(std::string(entry) + " exported " + describe(t) + " as " + describe(dl) + ": wrong " + what);
    };
    tk_dlpack_dtype dtype{};
    for (const DlpackType& type : kDlpackTypes)
        if (type.dtype == t.dtype) dtype = type.dl;
    const bool cuda = t.device_kind == TK_DEVICE_CUDA;
    if (dl.data != t.data || dl.byte_offset != 0) wrong("data or byte_offset");
    if (dl.device.device_type != (cuda ? TK_DLPACK_CUDA : TK_DLPACK_CPU) || dl.device.device_id != (cuda ? t.device_ordinal : 0))
        wrong("device");
    if (dl.dtype.code != dtype.code || dl.dtype.bits != dtype.bits || dl.dtype.lanes != 1) wrong("dtype");
    if (dl.ndim != t.rank) wrong("ndim");
    if (dl.shape == nullptr || dl.strides == nullptr) wrong("shape or strides (NULL)");
    for (int32_t d = 0; d < t.rank; ++d)
        if (dl.shape[d] != t.shape[d] || dl.strides[d] != t.strides[d]) wrong("shape or strides");
}

// Exports t (NULL, or in the arena) through tk_tensor_to_dlpack or tk_tensor_to_dlpack_versioned as
// the input chooses and checks the refusal or the DLPack tensor against t; takes the export back in
// and checks that against the SPEC's view of it, which for a view taken through DLPack (`round_trip`)
// is t itself; then calls the export's deleter, which frees its own block and nothing else
// (AddressSanitizer and LeakSanitizer watch) and touches no arena byte, the data included.
void export_and_back(Choices& c, Call& call, const tk_tensor* t, bool round_trip) {
    const bool versioned = c.one_in(2);
    const int32_t read_only = versioned ? around(c, 0, 1) : 0;
    tk_dlpack_managed_tensor** managed = versioned ? nullptr : call.scalar<tk_dlpack_managed_tensor*>(1, Role::kOutput);
    tk_dlpack_managed_tensor_versioned** managed_versioned =
        versioned ? call.scalar<tk_dlpack_managed_tensor_versioned*>(1, Role::kOutput) : nullptr;
    std::string refused = t == nullptr ? "NULL tensor" : layout_problem(*t);
    if (refused.empty() && t->device_kind == TK_DEVICE_CUDA && t->device_ordinal < 0) refused = "a negative CUDA ordinal";
    if (versioned && read_only != 0 && read_only != 1) refused = "read_only other than 0 and 1";
    if (versioned ? managed_versioned == nullptr : managed == nullptr) refused = "NULL managed";
    const char* entry = versioned ? "tk_tensor_to_dlpack_versioned" : "tk_tensor_to_dlpack";
    const tk_status exported = versioned ? call.run(entry, {}, [&] { return tk_tensor_to_dlpack_versioned(t, read_only, managed_versioned); })
                                         : call.run(entry, {}, [&] { return tk_tensor_to_dlpack(t, managed); });
    check_acceptance(entry, exported, refused, t != nullptr ? describe(*t) : "NULL");
    if (exported != TK_STATUS_OK) return;
    ++counts.dlpack_exports;

    tk_dlpack_managed_tensor* legacy = versioned ? nullptr : *managed;
    tk_dlpack_managed_tensor_versioned* current = versioned ? *managed_versioned : nullptr;
    const tk_dlpack_tensor& dl = versioned ? current->dl_tensor : legacy->dl_tensor;
    check_exported(entry, *t, dl);
    if (versioned ? current->manager_ctx != nullptr || current->deleter == nullptr : legacy->manager_ctx != nullptr || legacy->deleter == nullptr)
        finding(std::string(entry) + " gave a manager_ctx other than NULL or no deleter");
    if (versioned && (current->version.major != TK_DLPACK_VERSION_MAJOR || current->version.minor != TK_DLPACK_VERSION_MINOR ||
                      current->flags != static_cast<uint64_t>(read_only)))
        finding(std::string(entry) + " gave version " + std::to_string(current->version.major) + "." +
                std::to_string(current->version.minor) + " and flags " + std::to_string(current->flags) + " for read_only " +
                std::to_string(read_only));

    // Back in: its view is the SPEC's; an export of a DLPack view is a valid DLPack tensor whose view
    // is the one it came from.
    ExpectedView expected = expected_view(dl);
    if (round_trip && (!expected.refused.empty() || !same_view(expected.view, *t)))
        finding(std::string(entry) + " exported the DLPack view " + describe(*t) + " as " + describe(dl) + ", whose view is " +
                (expected.refused.empty() ? describe(expected.view) : "refused: " + expected.refused));
    tk_tensor* back = call.scalar<tk_tensor>(1, Role::kOutput);
    const int32_t writable = versioned ? around(c, 0, 1) : 0;
    if (versioned && writable != 0 && writable != 1) expected.refused = "writable other than 0 and 1";
    if (versioned && writable == 1 && read_only == 1) expected.refused = "a read-only tensor with writable 1";
    if (back == nullptr) expected.refused = "NULL tensor";
    const char* import = versioned ? "tk_tensor_from_dlpack_versioned" : "tk_tensor_from_dlpack_managed";
    const tk_status imported = versioned ? call.run(import, {}, [&] { return tk_tensor_from_dlpack_versioned(current, writable, back); })
                                         : call.run(import, {}, [&] { return tk_tensor_from_dlpack_managed(legacy, back); });
    check_acceptance(import, imported, expected.refused, "the library's own export " + describe(dl));
    if (imported == TK_STATUS_OK) {
        if (!same_view(*back, expected.view))
            finding(std::string(import) + " took the library's own export " + describe(dl) + " as " + describe(*back) +
                    ", the SPEC's view is " + describe(expected.view));
        if (round_trip) ++counts.dlpack_round_trips;
    }
    check_exported(import, *t, dl);  // taking it in changed nothing

    if (versioned)
        call.run_outside_arena("the deleter of a tk_tensor_to_dlpack_versioned tensor", [&] { current->deleter(current); });
    else
        call.run_outside_arena("the deleter of a tk_tensor_to_dlpack tensor", [&] { legacy->deleter(legacy); });
}

// A DLPack tensor taken in as a DLTensor, a DLManagedTensor (with the producer's deleter or none) or a
// DLManagedTensorVersioned (any version and flags, writable or not), checked against the SPEC's view
// of it; an accepted view is exported and taken back in (export_and_back). Or a tk_tensor of the
// generator's exported and taken back in.
void fuzz_dlpack(Choices& c, Call& call) {
    const int kind = static_cast<int>(c.range(0, 3));
    if (kind == 3) {
        static const tk_dtype kAny[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16, TK_DTYPE_I32, TK_DTYPE_I64};
        std::vector<int64_t> shape(static_cast<size_t>(c.range(1, 4)));
        for (int64_t& size : shape) size = c.range(0, 5);
        const tk_tensor* t = call.tensor(shape, c.pick(kAny), Role::kInput);
        // Now and then on a CUDA device with any ordinal: exported without a CUDA call, a negative one refused.
        tk_tensor on_cuda;
        if (t != nullptr && c.one_in(6)) {
            static const int32_t kOrdinals[] = {0, 1, 7, -1, INT32_MIN, INT32_MAX};
            on_cuda = *t;
            on_cuda.device_kind = TK_DEVICE_CUDA;
            on_cuda.device_ordinal = c.pick(kOrdinals);
            t = &on_cuda;
        }
        export_and_back(c, call, t, false);
        return;
    }
    tk_tensor* view = call.scalar<tk_tensor>(1, Role::kOutput);
    ExpectedView expected;
    std::string what;
    const char* entry;
    tk_status imported;
    if (kind == 0) {
        entry = "tk_tensor_from_dlpack";
        tk_dlpack_tensor* dl = call.scalar<tk_dlpack_tensor>(1, Role::kInput);
        if (dl != nullptr) dlpack_tensor(c, call, *dl);
        expected = dl != nullptr ? expected_view(*dl) : refusal("NULL dl_tensor");
        what = dl != nullptr ? describe(*dl) : "NULL";
        if (view == nullptr) expected.refused = "NULL tensor";
        imported = call.run(entry, {}, [&] { return tk_tensor_from_dlpack(dl, view); });
    } else if (kind == 1) {
        entry = "tk_tensor_from_dlpack_managed";
        tk_dlpack_managed_tensor* managed = call.scalar<tk_dlpack_managed_tensor>(1, Role::kInput);
        if (managed != nullptr) {
            dlpack_tensor(c, call, managed->dl_tensor);
            managed->manager_ctx = manager_context(c, call);
            managed->deleter = c.one_in(2) ? nullptr : producer_deleter;
        }
        expected = managed != nullptr ? expected_view(managed->dl_tensor) : refusal("NULL managed");
        what = managed != nullptr ? describe(managed->dl_tensor) : "NULL";
        if (view == nullptr) expected.refused = "NULL tensor";
        imported = call.run(entry, {}, [&] { return tk_tensor_from_dlpack_managed(managed, view); });
    } else {
        entry = "tk_tensor_from_dlpack_versioned";
        tk_dlpack_managed_tensor_versioned* managed = call.scalar<tk_dlpack_managed_tensor_versioned>(1, Role::kInput);
        const int32_t writable = around(c, 0, 1);
        if (managed != nullptr) {
            dlpack_tensor(c, call, managed->dl_tensor);
            static const uint32_t kMajors[] = {0, 2, 3, UINT32_MAX};
            static const uint32_t kMinors[] = {0, 1, 3, UINT32_MAX};
            static const uint64_t kFlags[] = {0, TK_DLPACK_FLAG_READ_ONLY, 2, 3, 4, uint64_t{1} << 63, UINT64_MAX};
            managed->version = {c.one_in(12) ? c.pick(kMajors) : TK_DLPACK_VERSION_MAJOR, c.pick(kMinors)};
            managed->manager_ctx = manager_context(c, call);
            managed->deleter = c.one_in(2) ? nullptr : producer_versioned_deleter;
            managed->flags = c.one_in(2) ? 0 : c.pick(kFlags);
        }
        expected = managed != nullptr ? expected_view(managed->dl_tensor) : refusal("NULL managed");
        what = managed != nullptr ? "version " + std::to_string(managed->version.major) + "." + std::to_string(managed->version.minor) +
                                        " flags " + std::to_string(managed->flags) + " writable " + std::to_string(writable) + " " +
                                        describe(managed->dl_tensor)
                                  : "NULL";
        if (managed != nullptr && managed->version.major != TK_DLPACK_VERSION_MAJOR) expected.refused = "another major version";
        if (managed != nullptr && writable == 1 && (managed->flags & TK_DLPACK_FLAG_READ_ONLY) != 0)
            expected.refused = "a read-only tensor with writable 1";
        if (writable != 0 && writable != 1) expected.refused = "writable other than 0 and 1";
        if (view == nullptr) expected.refused = "NULL tensor";
        imported = call.run(entry, {}, [&] { return tk_tensor_from_dlpack_versioned(managed, writable, view); });
    }
    check_acceptance(entry, imported, expected.refused, what);
    if (imported != TK_STATUS_OK) return;
    ++counts.dlpack_views;
    if (!same_view(*view, expected.view))
        finding(std::string(entry) + " took " + what + " as " + describe(*view) + ", the SPEC's view is " + describe(expected.view));
    // The view as an input of the export (the import's output stays writable for the rest of the call).
    tk_tensor* source = call.scalar<tk_tensor>(1, Role::kInput);
    if (source != nullptr) *source = *view;
    export_and_back(c, call, source, true);
}

Arena* arena = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    arena = new Arena();
    std::atexit(print_counts);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    ++counts.inputs;
    Choices choices(data, size);
    for (int i = 0; i < 8 && choices.more(); ++i) {
        arena->reset();
        Call call(choices, *arena);
        switch (choices.range(0, 12)) {
            case 0: fuzz_library_info(choices, call); break;
            case 1: fuzz_pool(choices, call); break;
            case 2: fuzz_merge(choices, call); break;
            case 3: fuzz_importance(choices, call); break;
            case 4:
            case 5: fuzz_topk_gather(choices, call); break;
            case 6: fuzz_contextual(choices, call); break;
            case 7: fuzz_temporal(choices, call); break;
            case 8: fuzz_diversity(choices, call); break;
            case 9: fuzz_relevance(choices, call); break;
            case 10: fuzz_cluster(choices, call); break;
            case 11: fuzz_kmeans(choices, call); break;
            default: fuzz_dlpack(choices, call); break;
        }
    }
    return 0;
}
