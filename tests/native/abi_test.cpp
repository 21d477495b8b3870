// The generic C ABI: version, status names and errors, dtype sizes, struct layout, CPU threads,
// and the CUDA helpers on a machine with or without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

TEST(Abi, VersionAgreesWithHeader) {
    EXPECT_EQ(tk_version(), TK_VERSION);
    const std::string expected = std::to_string(TK_VERSION_MAJOR) + "." + std::to_string(TK_VERSION_MINOR) + "." +
                                 std::to_string(TK_VERSION_PATCH);
    ASSERT_NE(tk_version_string(), nullptr);
    EXPECT_EQ(std::string(tk_version_string()), expected);
}

TEST(Abi, StatusNames) {
    EXPECT_STREQ(tk_status_name(TK_STATUS_OK), "TK_STATUS_OK");
    EXPECT_STREQ(tk_status_name(TK_STATUS_INVALID_ARGUMENT), "TK_STATUS_INVALID_ARGUMENT");
    EXPECT_STREQ(tk_status_name(TK_STATUS_BACKEND_UNAVAILABLE), "TK_STATUS_BACKEND_UNAVAILABLE");
    EXPECT_STREQ(tk_status_name(TK_STATUS_CUDA_ERROR), "TK_STATUS_CUDA_ERROR");
    EXPECT_STREQ(tk_status_name(TK_STATUS_OUT_OF_MEMORY), "TK_STATUS_OUT_OF_MEMORY");
    EXPECT_STREQ(tk_status_name(TK_STATUS_INTERNAL), "TK_STATUS_INTERNAL");
    // An unknown code still gets a string, never NULL.
    ASSERT_NE(tk_status_name(42), nullptr);
    EXPECT_STRNE(tk_status_name(42), "TK_STATUS_OK");
}

TEST(Abi, DtypeSizes) {
    EXPECT_EQ(tk_dtype_size(TK_DTYPE_F32), 4);
    EXPECT_EQ(tk_dtype_size(TK_DTYPE_F16), 2);
    EXPECT_EQ(tk_dtype_size(TK_DTYPE_BF16), 2);
    EXPECT_EQ(tk_dtype_size(TK_DTYPE_I32), 4);
    EXPECT_EQ(tk_dtype_size(TK_DTYPE_I64), 8);
    EXPECT_EQ(tk_dtype_size(5), 0);
    EXPECT_EQ(tk_dtype_size(-1), 0);
}

TEST(Abi, LastErrorIsEmptyAfterSuccess) {
    uint64_t value = 0;
    ASSERT_EQ(tk_struct_layout("no_such_struct", nullptr, &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_STRNE(tk_last_error(), "");
    ASSERT_EQ(tk_struct_layout("tk_tensor", nullptr, &value), TK_STATUS_OK);
    EXPECT_STREQ(tk_last_error(), "");
}

// The layout a binding (C#) would check: sizes and offsets as compiled here.
struct LayoutEntry {
    const char* struct_name;
    const char* field;
    uint64_t expected;
};

TEST(Abi, StructLayoutMatchesThisCompiler) {
    const LayoutEntry entries[] = {
        {"tk_tensor", nullptr, sizeof(tk_tensor)},
        {"tk_tensor", "data", offsetof(tk_tensor, data)},
        {"tk_tensor", "dtype", offsetof(tk_tensor, dtype)},
        {"tk_tensor", "device_kind", offsetof(tk_tensor, device_kind)},
        {"tk_tensor", "device_ordinal", offsetof(tk_tensor, device_ordinal)},
        {"tk_tensor", "rank", offsetof(tk_tensor, rank)},
        {"tk_tensor", "shape", offsetof(tk_tensor, shape)},
        {"tk_tensor", "strides", offsetof(tk_tensor, strides)},
        {"tk_pool_params", nullptr, sizeof(tk_pool_params)},
        {"tk_pool_params", "mode", offsetof(tk_pool_params, mode)},
        {"tk_pool_params", "kernel", offsetof(tk_pool_params, kernel)},
        {"tk_pool_params", "stride", offsetof(tk_pool_params, stride)},
        {"tk_pool_params", "output_size", offsetof(tk_pool_params, output_size)},
        {"tk_merge_params", nullptr, sizeof(tk_merge_params)},
        {"tk_merge_params", "r", offsetof(tk_merge_params, r)},
        {"tk_merge_params", "use_threshold", offsetof(tk_merge_params, use_threshold)},
        {"tk_merge_params", "threshold", offsetof(tk_merge_params, threshold)},
        {"tk_merge_params", "protect_first", offsetof(tk_merge_params, protect_first)},
        {"tk_merge_params", "protect_second", offsetof(tk_merge_params, protect_second)},
        {"tk_merge_params", "mode", offsetof(tk_merge_params, mode)},
        {"tk_merge_params", "order", offsetof(tk_merge_params, order)},
        {"tk_vidcom2_params", nullptr, sizeof(tk_vidcom2_params)},
        {"tk_vidcom2_params", "retention_ratio", offsetof(tk_vidcom2_params, retention_ratio)},
        {"tk_vidcom2_params", "channel_ratio", offsetof(tk_vidcom2_params, channel_ratio)},
        {"tk_vidcom2_params", "temperature", offsetof(tk_vidcom2_params, temperature)},
        {"tk_vidcom2_params", "height", offsetof(tk_vidcom2_params, height)},
        {"tk_vidcom2_params", "width", offsetof(tk_vidcom2_params, width)},
    };
    for (const LayoutEntry& e : entries) {
        uint64_t value = ~uint64_t{0};
        EXPECT_EQ(tk_struct_layout(e.struct_name, e.field, &value), TK_STATUS_OK) << tk_last_error();
        EXPECT_EQ(value, e.expected) << e.struct_name << "." << (e.field ? e.field : "(sizeof)");
    }
    // A fixed-layout ABI: these hold on every platform TokenKernels supports (8-byte pointers).
    EXPECT_EQ(sizeof(tk_tensor), 8u + 4 * 4 + 2 * 8 * TK_MAX_RANK);
    EXPECT_EQ(sizeof(tk_pool_params), 40u);
    EXPECT_EQ(sizeof(tk_merge_params), 28u);  // seven 4-byte fields, no padding
    EXPECT_EQ(sizeof(tk_vidcom2_params), 32u);  // three doubles, two int32, no padding
}

TEST(Abi, StructLayoutRejectsUnknownNames) {
    uint64_t value = 7;
    EXPECT_EQ(tk_struct_layout("tk_nope", nullptr, &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tk_nope"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_struct_layout("tk_tensor", "nope", &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("field"), std::string::npos) << tk_last_error();
    // A field of another struct is not a field of this one.
    EXPECT_EQ(tk_struct_layout("tk_tensor", "mode", &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(tk_struct_layout("tk_merge_params", "kernel", &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(tk_struct_layout(nullptr, nullptr, &value), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("struct_name"), std::string::npos) << tk_last_error();
    EXPECT_EQ(value, 7u) << "a rejected query wrote its result";
    EXPECT_EQ(tk_struct_layout("tk_tensor", nullptr, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("value"), std::string::npos) << tk_last_error();
}

TEST(Abi, NumThreads) {
    const int32_t default_threads = tk_get_num_threads();
    EXPECT_GE(default_threads, 1);
    {
        const ScopedNumThreads one(1);
        EXPECT_EQ(tk_get_num_threads(), 1);
    }
    {
        const ScopedNumThreads three(3);
        EXPECT_EQ(tk_get_num_threads(), 3);
        EXPECT_EQ(tk_set_num_threads(0), TK_STATUS_OK);
        EXPECT_EQ(tk_get_num_threads(), default_threads) << "0 restores the default";
    }
    // Counts past the pool's limit are refused by name (once, 100000 threads killed the next op).
    for (const int32_t count : {-1, 1025, 50000, 100000, INT32_MAX, INT32_MIN}) {
        EXPECT_EQ(tk_set_num_threads(count), TK_STATUS_INVALID_ARGUMENT) << count;
        EXPECT_NE(std::string(tk_last_error()).find("num_threads"), std::string::npos) << tk_last_error();
        EXPECT_EQ(tk_get_num_threads(), default_threads) << "a rejected count changed the setting";
    }
}

// The widest variant this CPU has, capped by TK_CPU_ISA (read the same way the test process sees it).
TEST(Abi, CpuIsaIsTheWidestTheCpuAndTheEnvironmentAllow) {
    std::string expected = "portable";
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        expected = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        expected = "avx2";
    }
#endif
    const char* cap = std::getenv("TK_CPU_ISA");
    if (cap != nullptr && std::string(cap) == "portable") expected = "portable";
    if (cap != nullptr && std::string(cap) == "avx2" && expected == "avx512") expected = "avx2";
    EXPECT_EQ(std::string(tk_cpu_isa()), expected);
    EXPECT_EQ(tk_cpu_isa(), tk_cpu_isa()) << "static storage, the same text every call";
}

// The largest count accepted, on the call that once overflowed a thread's stack: DivPrune's selection
// on [1, 576, 1024] with k = 56. Its teams are capped by the work, and it selects what one thread does.
TEST(Abi, ThreadCountAtTheLimitSelectsWhatOneThreadDoes) {
    HostArray x(TK_DTYPE_F32, {1, 576, 1024});
    fill_values(x);
    const tk_diversity_params params{56, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN};
    const tk_tensor x_desc = x.desc();
    const auto select = [&](int32_t threads) {
        const ScopedNumThreads scoped(threads);
        EXPECT_EQ(tk_get_num_threads(), threads);
        HostArray order(TK_DTYPE_I32, {1, 56});
        const tk_tensor order_desc = order.desc();
        EXPECT_EQ(tk_diversity_select(&params, &x_desc, nullptr, nullptr, nullptr, nullptr, &order_desc, nullptr, nullptr, 0,
                                      nullptr),
                  TK_STATUS_OK)
            << tk_last_error();
        return order.values();
    };
    EXPECT_EQ(select(1024), select(1));
}

// ---- CUDA helpers -------------------------------------------------------------------------------

TEST(AbiCuda, DeviceCountIsConsistentWithBuild) {
    const int32_t built = tk_cuda_is_built();
    EXPECT_TRUE(built == 0 || built == 1);
    int32_t count = -1;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK) << tk_last_error();
    EXPECT_GE(count, 0);
    if (!built) {
        EXPECT_EQ(count, 0);
    }
    EXPECT_EQ(tk_cuda_device_count(nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("count"), std::string::npos) << tk_last_error();
}

// Whether code built for CMake's CUDA_ARCHITECTURES list runs on compute capability major.minor, by
// the rules of NVIDIA's CUDA compatibility guide, written out independently of the library: sm_XY
// machine code on X.Y and later minors of X (sm_XYa on X.Y alone), compute_XY PTX on every
// capability from X.Y (compute_XYa on X.Y alone); "XYf" (family) on later minors of X only.
bool reference_runs(const std::string& architectures, int major, int minor) {
    const int capability = 10 * major + minor;
    size_t begin = 0;
    while (begin <= architectures.size()) {
        const size_t end = std::min(architectures.find(';', begin), architectures.size());
        std::string entry = architectures.substr(begin, end - begin);
        begin = end + 1;
        if (entry.empty()) continue;
        if (entry == "all" || entry == "all-major" || entry == "native") return true;
        const bool real_only = entry.size() > 5 && entry.substr(entry.size() - 5) == "-real";
        const bool virtual_only = entry.size() > 8 && entry.substr(entry.size() - 8) == "-virtual";
        if (real_only) entry.resize(entry.size() - 5);
        if (virtual_only) entry.resize(entry.size() - 8);
        const char suffix = std::isalpha(static_cast<unsigned char>(entry.back())) ? entry.back() : '\0';
        if (suffix != '\0') entry.pop_back();
        const int code = std::stoi(entry);
        const bool same_major = capability / 10 == code / 10;
        const bool machine_code_runs = suffix == 'a' ? capability == code : same_major && capability >= code;
        const bool ptx_runs = suffix == 'a' ? capability == code : suffix == 'f' ? same_major && capability >= code
                                                                                  : capability >= code;
        if ((!virtual_only && machine_code_runs) || (!real_only && ptx_runs)) return true;
    }
    return false;
}

TEST(AbiCuda, ArchitecturesAreTheBuildsAndDecideWhichDevicesRun) {
    std::string expected = TK_EXPECTED_CUDA_ARCHITECTURES;
    std::replace(expected.begin(), expected.end(), ',', ';');
    ASSERT_NE(tk_cuda_architectures(), nullptr);
    EXPECT_EQ(std::string(tk_cuda_architectures()), expected);
    EXPECT_EQ(expected.empty(), tk_cuda_is_built() == 0);
    for (int32_t major = 1; major <= 13; ++major)
        for (int32_t minor = 0; minor <= 9; ++minor) {
            int32_t supported = -1;
            ASSERT_EQ(tk_cuda_capability_supported(major, minor, &supported), TK_STATUS_OK) << tk_last_error();
            EXPECT_EQ(supported, reference_runs(expected, major, minor) ? 1 : 0)
                << "compute capability " << major << "." << minor << " with " << expected;
        }
    int32_t untouched = 7;
    EXPECT_EQ(tk_cuda_capability_supported(8, 10, &untouched), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("minor"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_cuda_capability_supported(0, 0, &untouched), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("major"), std::string::npos) << tk_last_error();
    // Found by the fuzzer: 10 * major + minor overflowed int.
    EXPECT_EQ(tk_cuda_capability_supported(INT32_MAX, 0, &untouched), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("major"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_cuda_capability_supported(100, 0, &untouched), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(untouched, 7);
    EXPECT_EQ(tk_cuda_capability_supported(9, 0, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("supported"), std::string::npos) << tk_last_error();
}

// The reference's rules on lists other than this build's, so that each rule is exercised whatever the
// build: the checks above compare the library with it.
TEST(AbiCuda, ReferenceCompatibilityRules) {
    EXPECT_TRUE(reference_runs("80-real;90", 8, 0));
    EXPECT_TRUE(reference_runs("80-real;90", 8, 9));
    EXPECT_FALSE(reference_runs("80-real;90", 7, 5));
    EXPECT_TRUE(reference_runs("80-real;90", 12, 0));  // compute_90 PTX, compiled by the driver
    EXPECT_FALSE(reference_runs("80-real;90-real", 12, 0));
    EXPECT_TRUE(reference_runs("80-virtual", 9, 0));
    EXPECT_FALSE(reference_runs("90a", 10, 0));
    EXPECT_FALSE(reference_runs("90a-real", 9, 1));
    EXPECT_TRUE(reference_runs("100f", 10, 3));
    EXPECT_FALSE(reference_runs("100f", 12, 0));
    EXPECT_FALSE(reference_runs("", 9, 0));
}

// A device this build holds no code for is refused by every op before anything is written, naming the
// device, its capability and the build's architectures (without the check every launch would fail
// with "no kernel image"). Runs where device 0 is such a device.
TEST(AbiCuda, DeviceThatCannotRunTheCodeIsRefusedByOps) {
    int32_t count = 0;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK) << tk_last_error();
    if (count == 0) GTEST_SKIP() << "no CUDA device";
    int32_t major = 0;
    int32_t minor = 0;
    ASSERT_EQ(tk_cuda_device_capability(0, &major, &minor), TK_STATUS_OK) << tk_last_error();
    int32_t supported = 0;
    ASSERT_EQ(tk_cuda_capability_supported(major, minor, &supported), TK_STATUS_OK) << tk_last_error();
    if (supported) GTEST_SKIP() << "device 0 (compute capability " << major << "." << minor << ") runs " << tk_cuda_architectures();
    const std::vector<float> zeros(24, 0.0f);
    const DeviceBuffer x(zeros.size() * sizeof(float));
    const DeviceBuffer out(zeros.size() * sizeof(float));
    ASSERT_EQ(tk_cuda_memcpy_async(out.get(), zeros.data(), zeros.size() * sizeof(float), nullptr), TK_STATUS_OK);
    const int64_t shape[5] = {1, 1, 2, 2, 6};
    const int64_t strides[5] = {24, 24, 12, 6, 1};
    tk_tensor xd{x.get(), TK_DTYPE_F32, TK_DEVICE_CUDA, 0, 5, {}, {}};
    tk_tensor od = xd;
    od.data = out.get();
    for (int d = 0; d < 5; ++d) {
        xd.shape[d] = od.shape[d] = shape[d];
        xd.strides[d] = od.strides[d] = strides[d];
    }
    const tk_pool_params copy{TK_POOL_WINDOW_MAX, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    EXPECT_EQ(tk_pool(&copy, &xd, &od, nullptr, 0, nullptr), TK_STATUS_BACKEND_UNAVAILABLE) << tk_last_error();
    const std::string message = tk_last_error();
    EXPECT_NE(message.find("x.device_ordinal"), std::string::npos) << message;
    EXPECT_NE(message.find("compute capability " + std::to_string(major) + "." + std::to_string(minor)), std::string::npos)
        << message;
    EXPECT_NE(message.find(tk_cuda_architectures()), std::string::npos) << message;
    std::vector<float> back(zeros.size(), 1.0f);
    ASSERT_EQ(tk_cuda_memcpy_async(back.data(), out.get(), back.size() * sizeof(float), nullptr), TK_STATUS_OK);
    ASSERT_EQ(tk_cuda_stream_synchronize(nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(back, zeros) << "a refused call wrote to out";
}

TEST(AbiCuda, WithoutDeviceEverythingIsUnavailable) {
    int32_t count = 0;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK) << tk_last_error();
    if (count > 0) GTEST_SKIP() << "a CUDA device is present";
    char name[16] = "untouched";
    EXPECT_EQ(tk_cuda_device_name(0, name, sizeof name), TK_STATUS_BACKEND_UNAVAILABLE) << tk_last_error();
    EXPECT_STREQ(name, "untouched");
    int32_t major = -1;
    int32_t minor = -1;
    EXPECT_EQ(tk_cuda_device_capability(0, &major, &minor), TK_STATUS_BACKEND_UNAVAILABLE) << tk_last_error();
    EXPECT_EQ(major, -1);
    tk_stream stream = nullptr;
    EXPECT_EQ(tk_cuda_stream_create(0, &stream), TK_STATUS_BACKEND_UNAVAILABLE) << tk_last_error();
    EXPECT_EQ(stream, nullptr);
    void* ptr = &major;
    EXPECT_EQ(tk_cuda_malloc(0, 256, &ptr), TK_STATUS_BACKEND_UNAVAILABLE) << tk_last_error();
    EXPECT_EQ(ptr, &major) << "a rejected allocation wrote its result";
    EXPECT_NE(std::string(tk_last_error()).find("CUDA"), std::string::npos) << tk_last_error();
    // Work on streams or memory cannot happen either, except the documented no-ops.
    std::vector<uint8_t> a(16, 1);
    std::vector<uint8_t> b(16, 2);
    EXPECT_EQ(tk_cuda_memcpy_async(a.data(), b.data(), a.size(), nullptr), TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_EQ(tk_cuda_memset_async(a.data(), 0, a.size(), nullptr), TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_EQ(tk_cuda_stream_synchronize(nullptr), TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_EQ(a, std::vector<uint8_t>(16, 1));
    EXPECT_EQ(tk_cuda_free(0, nullptr), TK_STATUS_OK) << "freeing NULL is a no-op";
    EXPECT_EQ(tk_cuda_memcpy_async(a.data(), b.data(), 0, nullptr), TK_STATUS_OK) << "copying 0 bytes is a no-op";
}

// Device queries and memory need no kernel: they work on any device, one this build has no code for too.
TEST(AbiCuda, DeviceQueriesAndMemoryRoundTrip) {
    int32_t count = 0;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK);
    if (count == 0) GTEST_SKIP() << (tk_cuda_is_built() ? "no CUDA device" : "CUDA backend not built");

    char name[256] = {};
    ASSERT_EQ(tk_cuda_device_name(0, name, sizeof name), TK_STATUS_OK) << tk_last_error();
    EXPECT_GT(std::strlen(name), 0u);
    char short_name[4] = "xyz";
    ASSERT_EQ(tk_cuda_device_name(0, short_name, sizeof short_name), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(std::string(short_name), std::string(name).substr(0, 3)) << "truncated and NUL-terminated";
    int32_t major = 0;
    int32_t minor = -1;
    ASSERT_EQ(tk_cuda_device_capability(0, &major, &minor), TK_STATUS_OK) << tk_last_error();
    EXPECT_GE(major, 3);
    EXPECT_GE(minor, 0);
    EXPECT_EQ(tk_cuda_device_capability(count, &major, &minor), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("ordinal"), std::string::npos) << tk_last_error();

    void* empty = &major;
    EXPECT_EQ(tk_cuda_malloc(0, 0, &empty), TK_STATUS_OK);
    EXPECT_EQ(empty, nullptr) << "0 bytes gives NULL";

    tk_stream stream = nullptr;
    ASSERT_EQ(tk_cuda_stream_create(0, &stream), TK_STATUS_OK) << tk_last_error();
    std::vector<uint8_t> host(1000);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<uint8_t>(i * 7);
    std::vector<uint8_t> back(host.size(), 0);
    {
        const DeviceBuffer device(host.size());
        EXPECT_EQ(tk_cuda_memcpy_async(device.get(), host.data(), host.size(), stream), TK_STATUS_OK);
        EXPECT_EQ(tk_cuda_memset_async(static_cast<uint8_t*>(device.get()) + 10, 0x5A, 20, stream), TK_STATUS_OK);
        EXPECT_EQ(tk_cuda_memcpy_async(back.data(), device.get(), back.size(), stream), TK_STATUS_OK);
        EXPECT_EQ(tk_cuda_stream_synchronize(stream), TK_STATUS_OK) << tk_last_error();
    }
    for (size_t i = 10; i < 30; ++i) host[i] = 0x5A;
    EXPECT_TRUE(back == host);
    EXPECT_EQ(tk_cuda_stream_destroy(stream), TK_STATUS_OK) << tk_last_error();
}

}  // namespace
}  // namespace tkt
