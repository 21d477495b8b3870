// DLPack in the C ABI (SPEC "DLPack"): the struct layouts, the mapping of dtypes, devices, byte_offset
// and strides into a tk_tensor, every refusal with its message and nothing written, the library's own
// DLManagedTensors and their deleters, and an op run on views taken through DLPack.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// The DLPack numbers written out here, from the DLPack specification, rather than taken from the
// header's constants: a wrong constant there must fail these tests.
constexpr int32_t kDLCPU = 1;
constexpr int32_t kDLCUDA = 2;
constexpr int32_t kDLCUDAHost = 3;
constexpr int32_t kDLOpenCL = 4;
constexpr int32_t kDLROCM = 10;
constexpr int32_t kDLCUDAManaged = 13;
constexpr uint8_t kDLInt = 0;
constexpr uint8_t kDLUInt = 1;
constexpr uint8_t kDLFloat = 2;
constexpr uint8_t kDLBfloat = 4;
constexpr uint8_t kDLComplex = 5;
constexpr uint8_t kDLBool = 6;
constexpr uint64_t kReadOnlyFlag = 1;

// A tk_tensor filled with a byte pattern, to show that a refused call left it alone.
tk_tensor poisoned_tensor() {
    tk_tensor t;
    std::memset(&t, 0xA5, sizeof t);
    return t;
}

bool same_bytes(const tk_tensor& a, const tk_tensor& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// A DLTensor over memory this object owns, [2, 3, 4] f32 compact on the CPU unless a test changes it.
struct DlTensor {
    std::vector<float> storage = std::vector<float>(64, 1.0f);
    std::vector<int64_t> shape = {2, 3, 4};
    std::vector<int64_t> strides = {12, 4, 1};
    tk_dlpack_tensor dl{};

    DlTensor() {
        dl.data = storage.data();
        dl.device = {kDLCPU, 0};
        dl.ndim = 3;
        dl.dtype = {kDLFloat, 32, 1};
        dl.shape = shape.data();
        dl.strides = strides.data();
        dl.byte_offset = 0;
    }
    DlTensor(const DlTensor&) = delete;
    DlTensor& operator=(const DlTensor&) = delete;

    // Shape and strides (empty: NULL strides) of rank shape.size().
    void set_layout(std::vector<int64_t> new_shape, std::vector<int64_t> new_strides) {
        shape = std::move(new_shape);
        strides = std::move(new_strides);
        dl.ndim = static_cast<int32_t>(shape.size());
        dl.shape = shape.data();
        dl.strides = strides.empty() ? nullptr : strides.data();
    }

    tk_status view(tk_tensor* out) const { return tk_tensor_from_dlpack(&dl, out); }
};

std::vector<int64_t> shape_of(const tk_tensor& t) { return {t.shape, t.shape + t.rank}; }
std::vector<int64_t> strides_of(const tk_tensor& t) { return {t.strides, t.strides + t.rank}; }

// ---- Layout ------------------------------------------------------------------------------------

TEST(Dlpack, StructLayoutIsDlpacksAndTheLibrarysOwn) {
    struct Entry {
        const char* struct_name;
        const char* field;
        uint64_t expected;
    };
    // dlpack.h's layout on every 64-bit platform: DLDevice 8 bytes, DLDataType 4, DLTensor 48,
    // DLManagedTensor 64, DLPackVersion 8, DLManagedTensorVersioned 80.
    const Entry entries[] = {
        {"tk_dlpack_device", nullptr, 8},
        {"tk_dlpack_device", "device_type", 0},
        {"tk_dlpack_device", "device_id", 4},
        {"tk_dlpack_dtype", nullptr, 4},
        {"tk_dlpack_dtype", "code", 0},
        {"tk_dlpack_dtype", "bits", 1},
        {"tk_dlpack_dtype", "lanes", 2},
        {"tk_dlpack_tensor", nullptr, 48},
        {"tk_dlpack_tensor", "data", 0},
        {"tk_dlpack_tensor", "device", 8},
        {"tk_dlpack_tensor", "ndim", 16},
        {"tk_dlpack_tensor", "dtype", 20},
        {"tk_dlpack_tensor", "shape", 24},
        {"tk_dlpack_tensor", "strides", 32},
        {"tk_dlpack_tensor", "byte_offset", 40},
        {"tk_dlpack_managed_tensor", nullptr, 64},
        {"tk_dlpack_managed_tensor", "dl_tensor", 0},
        {"tk_dlpack_managed_tensor", "manager_ctx", 48},
        {"tk_dlpack_managed_tensor", "deleter", 56},
        {"tk_dlpack_version", nullptr, 8},
        {"tk_dlpack_version", "major", 0},
        {"tk_dlpack_version", "minor", 4},
        {"tk_dlpack_managed_tensor_versioned", nullptr, 80},
        {"tk_dlpack_managed_tensor_versioned", "version", 0},
        {"tk_dlpack_managed_tensor_versioned", "manager_ctx", 8},
        {"tk_dlpack_managed_tensor_versioned", "deleter", 16},
        {"tk_dlpack_managed_tensor_versioned", "flags", 24},
        {"tk_dlpack_managed_tensor_versioned", "dl_tensor", 32},
    };
    for (const Entry& e : entries) {
        uint64_t value = ~uint64_t{0};
        EXPECT_EQ(tk_struct_layout(e.struct_name, e.field, &value), TK_STATUS_OK) << tk_last_error();
        EXPECT_EQ(value, e.expected) << e.struct_name << "." << (e.field ? e.field : "(sizeof)");
    }
    EXPECT_EQ(sizeof(tk_dlpack_tensor), 48u);
    EXPECT_EQ(offsetof(tk_dlpack_tensor, byte_offset), 40u);
    EXPECT_EQ(sizeof(tk_dlpack_managed_tensor), 64u);
    EXPECT_EQ(offsetof(tk_dlpack_managed_tensor, deleter), 56u);
    EXPECT_EQ(sizeof(tk_dlpack_managed_tensor_versioned), 80u);
    EXPECT_EQ(offsetof(tk_dlpack_managed_tensor_versioned, dl_tensor), 32u);
}

TEST(Dlpack, HeaderConstantsAreDlpacksNumbers) {
    EXPECT_EQ(TK_DLPACK_CPU, kDLCPU);
    EXPECT_EQ(TK_DLPACK_CUDA, kDLCUDA);
    EXPECT_EQ(TK_DLPACK_CUDA_HOST, kDLCUDAHost);
    EXPECT_EQ(TK_DLPACK_CUDA_MANAGED, kDLCUDAManaged);
    EXPECT_EQ(TK_DLPACK_INT, kDLInt);
    EXPECT_EQ(TK_DLPACK_FLOAT, kDLFloat);
    EXPECT_EQ(TK_DLPACK_BFLOAT, kDLBfloat);
    EXPECT_EQ(TK_DLPACK_FLAG_READ_ONLY, kReadOnlyFlag);
    EXPECT_EQ(TK_DLPACK_VERSION_MAJOR, 1);
}

// ---- Into a tk_tensor --------------------------------------------------------------------------

TEST(Dlpack, EveryDtypeMaps) {
    struct Mapping {
        uint8_t code;
        uint8_t bits;
        tk_dtype dtype;
    };
    for (const Mapping m : {Mapping{kDLFloat, 32, TK_DTYPE_F32}, Mapping{kDLFloat, 16, TK_DTYPE_F16},
                            Mapping{kDLBfloat, 16, TK_DTYPE_BF16}, Mapping{kDLInt, 32, TK_DTYPE_I32},
                            Mapping{kDLInt, 64, TK_DTYPE_I64}}) {
        DlTensor d;
        d.dl.dtype = {m.code, m.bits, 1};
        tk_tensor t = poisoned_tensor();
        ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
        EXPECT_EQ(t.dtype, m.dtype) << int(m.code) << "/" << int(m.bits);
        EXPECT_EQ(t.data, d.storage.data());
        EXPECT_EQ(t.rank, 3);
        EXPECT_EQ(shape_of(t), (std::vector<int64_t>{2, 3, 4}));
        EXPECT_EQ(strides_of(t), (std::vector<int64_t>{12, 4, 1}));
        EXPECT_STREQ(tk_last_error(), "");
    }
}

TEST(Dlpack, EveryDeviceMaps) {
    struct Mapping {
        int32_t type;
        int32_t id;
        tk_device_kind kind;
        int32_t ordinal;
    };
    // Host memory, pinned or not, is the CPU's whatever device_id says; CUDA and managed memory keep
    // the device index. No CUDA device is needed: the device is checked by the op a view is given to.
    for (const Mapping m : {Mapping{kDLCPU, 0, TK_DEVICE_CPU, 0}, Mapping{kDLCPU, 3, TK_DEVICE_CPU, 0},
                            Mapping{kDLCUDAHost, 0, TK_DEVICE_CPU, 0}, Mapping{kDLCUDAHost, 1, TK_DEVICE_CPU, 0},
                            Mapping{kDLCUDA, 0, TK_DEVICE_CUDA, 0}, Mapping{kDLCUDA, 3, TK_DEVICE_CUDA, 3},
                            Mapping{kDLCUDAManaged, 1, TK_DEVICE_CUDA, 1}}) {
        DlTensor d;
        d.dl.device = {m.type, m.id};
        tk_tensor t = poisoned_tensor();
        ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
        EXPECT_EQ(t.device_kind, m.kind) << m.type << ":" << m.id;
        EXPECT_EQ(t.device_ordinal, m.ordinal) << m.type << ":" << m.id;
    }
}

TEST(Dlpack, ByteOffsetMovesData) {
    DlTensor d;
    d.dl.byte_offset = 5 * sizeof(float);
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(t.data, d.storage.data() + 5);
}

TEST(Dlpack, NullStridesAreCompactRowMajor) {
    DlTensor d;
    d.set_layout({2, 3, 4, 5}, {});
    d.storage.assign(120, 0.0f);
    d.dl.data = d.storage.data();
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{60, 20, 5, 1}));
    EXPECT_EQ(shape_of(t), (std::vector<int64_t>{2, 3, 4, 5}));
}

TEST(Dlpack, StridedViewsKeepTheirStrides) {
    // A channel and token slice of [2, 5, 6] (strides 30, 6, 1), and a transposed [3, 2] index view.
    DlTensor d;
    d.set_layout({2, 3, 4}, {30, 6, 1});
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{30, 6, 1}));

    d.set_layout({3, 2}, {1, 3});
    d.dl.dtype = {kDLInt, 32, 1};
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{1, 3}));
}

TEST(Dlpack, StridesOfSizeOneDimensionsAreNormalised) {
    // PyTorch writes anything there (the stride of the dimension it was sliced from, 0 after expand).
    DlTensor d;
    d.set_layout({1, 4, 1, 3}, {999, 3, -7, 1});
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{12, 3, 3, 1}));

    d.set_layout({4, 1}, {1, 0});
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{1, 1}));

    // A transposed view keeps its real strides; only the size-1 one is replaced.
    d.set_layout({3, 1, 2}, {1, -4, 3});
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Dlpack, EmptyTensorsNeedNoDataAndGetCompactStrides) {
    DlTensor d;
    d.set_layout({2, 0, 3}, {-5, 0, 7});
    d.dl.data = nullptr;
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(t.data, nullptr);
    EXPECT_EQ(shape_of(t), (std::vector<int64_t>{2, 0, 3}));
    EXPECT_EQ(strides_of(t), (std::vector<int64_t>{3, 3, 1}));
}

// ---- Refusals ----------------------------------------------------------------------------------

struct ImportRefusal {
    std::string name;
    std::function<void(DlTensor&)> breaks;
    std::string names;  // the argument the message must name
    std::string got;    // and what it must say was given
};

void PrintTo(const ImportRefusal& c, std::ostream* os) { *os << c.name; }

std::vector<ImportRefusal> import_refusals() {
    return {
        {"NdimZero", [](DlTensor& d) { d.dl.ndim = 0; }, "dl_tensor.ndim", "got 0"},
        {"NdimNegative", [](DlTensor& d) { d.dl.ndim = -1; }, "dl_tensor.ndim", "got -1"},
        {"NdimPastMaxRank", [](DlTensor& d) { d.set_layout(std::vector<int64_t>(9, 1), {}); }, "dl_tensor.ndim", "got 9"},
        {"Lanes", [](DlTensor& d) { d.dl.dtype.lanes = 4; }, "dl_tensor.dtype.lanes", "got 4"},
        {"LanesZero", [](DlTensor& d) { d.dl.dtype.lanes = 0; }, "dl_tensor.dtype.lanes", "got 0"},
        {"Uint8", [](DlTensor& d) { d.dl.dtype = {kDLUInt, 8, 1}; }, "dl_tensor.dtype", "code 1 (kDLUInt), 8 bits"},
        {"Float64", [](DlTensor& d) { d.dl.dtype = {kDLFloat, 64, 1}; }, "dl_tensor.dtype", "code 2 (kDLFloat), 64 bits"},
        {"Int16", [](DlTensor& d) { d.dl.dtype = {kDLInt, 16, 1}; }, "dl_tensor.dtype", "code 0 (kDLInt), 16 bits"},
        {"Bfloat32", [](DlTensor& d) { d.dl.dtype = {kDLBfloat, 32, 1}; }, "dl_tensor.dtype", "code 4 (kDLBfloat), 32 bits"},
        {"Bool", [](DlTensor& d) { d.dl.dtype = {kDLBool, 8, 1}; }, "dl_tensor.dtype", "code 6 (kDLBool), 8 bits"},
        {"Complex64", [](DlTensor& d) { d.dl.dtype = {kDLComplex, 64, 1}; }, "dl_tensor.dtype", "code 5 (kDLComplex)"},
        {"Float8", [](DlTensor& d) { d.dl.dtype = {10, 8, 1}; }, "dl_tensor.dtype", "got code 10, 8 bits"},
        {"Rocm", [](DlTensor& d) { d.dl.device = {kDLROCM, 0}; }, "dl_tensor.device.device_type", "got 10 (kDLROCM)"},
        {"OpenCl", [](DlTensor& d) { d.dl.device = {kDLOpenCL, 0}; }, "dl_tensor.device.device_type", "got 4 (kDLOpenCL)"},
        {"UnknownDevice", [](DlTensor& d) { d.dl.device = {99, 0}; }, "dl_tensor.device.device_type", "got 99"},
        {"DeviceTypeZero", [](DlTensor& d) { d.dl.device = {0, 0}; }, "dl_tensor.device.device_type", "got 0"},
        {"CudaDeviceIdNegative", [](DlTensor& d) { d.dl.device = {kDLCUDA, -1}; }, "dl_tensor.device.device_id", "got -1"},
        {"ManagedDeviceIdNegative", [](DlTensor& d) { d.dl.device = {kDLCUDAManaged, -2}; }, "dl_tensor.device.device_id",
         "got -2"},
        {"NullShape", [](DlTensor& d) { d.dl.shape = nullptr; }, "dl_tensor.shape", "got NULL"},
        {"NegativeSize", [](DlTensor& d) { d.shape[1] = -3; }, "dl_tensor.shape[1]", "got -3"},
        {"ElementCountOverflows", [](DlTensor& d) { d.set_layout({int64_t{1} << 32, int64_t{1} << 32}, {}); },
         "dl_tensor.shape", "an element count that fits in int64"},
        {"NullData", [](DlTensor& d) { d.dl.data = nullptr; }, "dl_tensor.data", "got NULL"},
        {"MisalignedData", [](DlTensor& d) { d.dl.data = reinterpret_cast<char*>(d.storage.data()) + 2; }, "dl_tensor.data",
         "aligned to 4 bytes"},
        {"MisalignedByteOffset", [](DlTensor& d) { d.dl.byte_offset = 6; }, "dl_tensor.data", "aligned to 4 bytes"},
        {"ByteOffsetFromNullData", [](DlTensor& d) { d.dl.data = nullptr; d.dl.byte_offset = 64; }, "dl_tensor.byte_offset",
         "got 64"},
        {"ByteOffsetWraps", [](DlTensor& d) { d.dl.byte_offset = std::numeric_limits<uint64_t>::max() - 3; },
         "dl_tensor.byte_offset", "within the address space"},
        {"ZeroStride", [](DlTensor& d) { d.strides[1] = 0; }, "dl_tensor.strides[1]", "a positive stride, got 0"},
        {"NegativeStride", [](DlTensor& d) { d.strides[0] = -12; }, "dl_tensor.strides[0]", "got -12"},
        {"StridesPastTheAddressSpace", [](DlTensor& d) { d.strides[0] = int64_t{1} << 62; }, "dl_tensor.strides",
         "within one address space"},
    };
}

class DlpackInvalid : public ::testing::TestWithParam<ImportRefusal> {};

TEST_P(DlpackInvalid, IsRefusedWithoutWriting) {
    const ImportRefusal& c = GetParam();
    DlTensor d;
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(d.view(&t), TK_STATUS_OK) << "the unbroken tensor must be valid: " << tk_last_error();
    c.breaks(d);

    t = poisoned_tensor();
    EXPECT_EQ(tk_tensor_from_dlpack(&d.dl, &t), TK_STATUS_INVALID_ARGUMENT);
    std::string message = tk_last_error();
    EXPECT_NE(message.find(c.names + ": expected"), std::string::npos) << message;
    EXPECT_NE(message.find(c.got), std::string::npos) << message;
    EXPECT_TRUE(same_bytes(t, poisoned_tensor())) << "a refused call wrote to tensor";

    // The same DLTensor inside a DLManagedTensor and a DLManagedTensorVersioned: the same refusal, named
    // through managed.
    tk_dlpack_managed_tensor managed{d.dl, nullptr, nullptr};
    EXPECT_EQ(tk_tensor_from_dlpack_managed(&managed, &t), TK_STATUS_INVALID_ARGUMENT);
    message = tk_last_error();
    EXPECT_NE(message.find("managed->" + c.names + ": expected"), std::string::npos) << message;
    EXPECT_TRUE(same_bytes(t, poisoned_tensor())) << "a refused call wrote to tensor";

    tk_dlpack_managed_tensor_versioned versioned{{1, 0}, nullptr, nullptr, 0, d.dl};
    for (const int32_t writable : {0, 1}) {
        EXPECT_EQ(tk_tensor_from_dlpack_versioned(&versioned, writable, &t), TK_STATUS_INVALID_ARGUMENT);
        message = tk_last_error();
        EXPECT_NE(message.find("managed->" + c.names + ": expected"), std::string::npos) << message;
        EXPECT_TRUE(same_bytes(t, poisoned_tensor())) << "a refused call wrote to tensor";
    }
}

std::string refusal_name(const ::testing::TestParamInfo<ImportRefusal>& param) { return param.param.name; }

INSTANTIATE_TEST_SUITE_P(Dlpack, DlpackInvalid, ::testing::ValuesIn(import_refusals()), refusal_name);

// A refusal: the status, a message naming `names`, and `t` as it was before.
void expect_refused(tk_status status, const std::string& names, const tk_tensor& t) {
    EXPECT_EQ(status, TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find(names + ": expected"), std::string::npos) << tk_last_error();
    EXPECT_TRUE(same_bytes(t, poisoned_tensor())) << "a refused call wrote to tensor";
}

TEST(DlpackInvalidArguments, NullPointers) {
    DlTensor d;
    tk_tensor t = poisoned_tensor();
    expect_refused(tk_tensor_from_dlpack(nullptr, &t), "dl_tensor", t);
    EXPECT_EQ(tk_tensor_from_dlpack(&d.dl, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tensor: expected"), std::string::npos) << tk_last_error();

    expect_refused(tk_tensor_from_dlpack_managed(nullptr, &t), "managed", t);
    tk_dlpack_managed_tensor managed{d.dl, nullptr, nullptr};
    EXPECT_EQ(tk_tensor_from_dlpack_managed(&managed, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tensor: expected"), std::string::npos) << tk_last_error();

    expect_refused(tk_tensor_from_dlpack_versioned(nullptr, 0, &t), "managed", t);
    tk_dlpack_managed_tensor_versioned versioned{{1, 0}, nullptr, nullptr, 0, d.dl};
    EXPECT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 0, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tensor: expected"), std::string::npos) << tk_last_error();
}

TEST(DlpackInvalidArguments, VersionedMajorVersionMustBeOne) {
    DlTensor d;
    tk_tensor t = poisoned_tensor();
    tk_dlpack_managed_tensor_versioned versioned{{2, 0}, nullptr, nullptr, 0, d.dl};
    expect_refused(tk_tensor_from_dlpack_versioned(&versioned, 0, &t), "managed->version", t);
    EXPECT_NE(std::string(tk_last_error()).find("got 2.0"), std::string::npos) << tk_last_error();
    versioned.version = {0, 9};
    expect_refused(tk_tensor_from_dlpack_versioned(&versioned, 0, &t), "managed->version", t);
    EXPECT_NE(std::string(tk_last_error()).find("got 0.9"), std::string::npos) << tk_last_error();

    // Minor versions add to DLPack without changing these structs.
    versioned.version = {1, 3};
    ASSERT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 1, &t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(t.data, d.storage.data());
}

TEST(DlpackInvalidArguments, ReadOnlyIsRefusedOnlyWhereWritten) {
    DlTensor d;
    tk_tensor t = poisoned_tensor();
    tk_dlpack_managed_tensor_versioned versioned{{1, 0}, nullptr, nullptr, kReadOnlyFlag, d.dl};
    expect_refused(tk_tensor_from_dlpack_versioned(&versioned, 1, &t), "managed->flags", t);
    EXPECT_NE(std::string(tk_last_error()).find("read-only"), std::string::npos) << tk_last_error();

    ASSERT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 0, &t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(t.data, d.storage.data());

    // Other flags (DLPACK_FLAG_BITMASK_IS_COPIED) do not matter.
    versioned.flags = 2;
    ASSERT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 1, &t), TK_STATUS_OK) << tk_last_error();

    t = poisoned_tensor();
    for (const int32_t writable : {-1, 2}) {
        expect_refused(tk_tensor_from_dlpack_versioned(&versioned, writable, &t), "writable", t);
    }
}

// ---- The caller's DLManagedTensor stays the caller's --------------------------------------------

int g_deleter_calls = 0;
void counting_deleter(tk_dlpack_managed_tensor*) { ++g_deleter_calls; }
void counting_versioned_deleter(tk_dlpack_managed_tensor_versioned*) { ++g_deleter_calls; }

TEST(Dlpack, ViewsNeverCallTheProducersDeleter) {
    DlTensor d;
    g_deleter_calls = 0;
    tk_dlpack_managed_tensor managed{d.dl, &d, counting_deleter};
    tk_dlpack_managed_tensor_versioned versioned{{1, 0}, &d, counting_versioned_deleter, 0, d.dl};
    tk_tensor t = poisoned_tensor();
    ASSERT_EQ(tk_tensor_from_dlpack_managed(&managed, &t), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(t.data, d.storage.data());
    ASSERT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 1, &t), TK_STATUS_OK) << tk_last_error();
    managed.dl_tensor.dtype.lanes = 2;
    versioned.dl_tensor.dtype.lanes = 2;
    EXPECT_EQ(tk_tensor_from_dlpack_managed(&managed, &t), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(tk_tensor_from_dlpack_versioned(&versioned, 0, &t), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(g_deleter_calls, 0) << "the library called a deleter it does not own";
}

// ---- Out of a tk_tensor ------------------------------------------------------------------------

tk_tensor host_tensor(void* data, tk_dtype dtype, std::vector<int64_t> shape, std::vector<int64_t> strides) {
    tk_tensor t{};
    t.data = data;
    t.dtype = dtype;
    t.device_kind = TK_DEVICE_CPU;
    t.device_ordinal = 0;
    t.rank = static_cast<int32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
        t.shape[d] = shape[d];
        t.strides[d] = strides[d];
    }
    return t;
}

// The fields of an exported DLTensor against the tk_tensor it describes.
void expect_describes(const tk_dlpack_tensor& dl, const tk_tensor& t, uint8_t code, uint8_t bits) {
    EXPECT_EQ(dl.data, t.data);
    EXPECT_EQ(dl.byte_offset, 0u);
    EXPECT_EQ(dl.ndim, t.rank);
    EXPECT_EQ(dl.dtype.code, code);
    EXPECT_EQ(dl.dtype.bits, bits);
    EXPECT_EQ(dl.dtype.lanes, 1);
    EXPECT_EQ(dl.device.device_type, t.device_kind == TK_DEVICE_CUDA ? kDLCUDA : kDLCPU);
    EXPECT_EQ(dl.device.device_id, t.device_ordinal);
    ASSERT_NE(dl.shape, nullptr);
    ASSERT_NE(dl.strides, nullptr);
    EXPECT_EQ(std::vector<int64_t>(dl.shape, dl.shape + dl.ndim), shape_of(t));
    EXPECT_EQ(std::vector<int64_t>(dl.strides, dl.strides + dl.ndim), strides_of(t));
}

TEST(Dlpack, RoundTripThroughTheLibrarysManagedTensor) {
    struct Case {
        tk_dtype dtype;
        uint8_t code;
        uint8_t bits;
    };
    alignas(8) static uint8_t memory[4096];
    for (const Case c : {Case{TK_DTYPE_F32, kDLFloat, 32}, Case{TK_DTYPE_F16, kDLFloat, 16}, Case{TK_DTYPE_BF16, kDLBfloat, 16},
                         Case{TK_DTYPE_I32, kDLInt, 32}, Case{TK_DTYPE_I64, kDLInt, 64}}) {
        // A strided [2, 3, 4] slice 8 elements into a larger buffer.
        const tk_tensor t = host_tensor(memory + 8 * tk_dtype_size(c.dtype), c.dtype, {2, 3, 4}, {40, 8, 1});
        tk_dlpack_managed_tensor* managed = nullptr;
        ASSERT_EQ(tk_tensor_to_dlpack(&t, &managed), TK_STATUS_OK) << tk_last_error();
        ASSERT_NE(managed, nullptr);
        expect_describes(managed->dl_tensor, t, c.code, c.bits);
        EXPECT_EQ(managed->manager_ctx, nullptr);
        ASSERT_NE(managed->deleter, nullptr);

        tk_tensor back = poisoned_tensor();
        ASSERT_EQ(tk_tensor_from_dlpack_managed(managed, &back), TK_STATUS_OK) << tk_last_error();
        EXPECT_TRUE(same_bytes(back, t)) << "tk -> DLManagedTensor -> tk changed the descriptor";
        managed->deleter(managed);  // frees the struct and its arrays (ASan: no leak, no double free)

        tk_dlpack_managed_tensor_versioned* versioned = nullptr;
        ASSERT_EQ(tk_tensor_to_dlpack_versioned(&t, 0, &versioned), TK_STATUS_OK) << tk_last_error();
        ASSERT_NE(versioned, nullptr);
        expect_describes(versioned->dl_tensor, t, c.code, c.bits);
        EXPECT_EQ(versioned->version.major, 1u);
        EXPECT_EQ(versioned->version.minor, 0u);
        EXPECT_EQ(versioned->flags, 0u);
        back = poisoned_tensor();
        ASSERT_EQ(tk_tensor_from_dlpack_versioned(versioned, 1, &back), TK_STATUS_OK) << tk_last_error();
        EXPECT_TRUE(same_bytes(back, t)) << "tk -> DLManagedTensorVersioned -> tk changed the descriptor";
        ASSERT_NE(versioned->deleter, nullptr);
        versioned->deleter(versioned);
    }
}

TEST(Dlpack, ReadOnlyExportCarriesTheFlag) {
    float data[6] = {};
    const tk_tensor t = host_tensor(data, TK_DTYPE_F32, {2, 3}, {3, 1});
    tk_dlpack_managed_tensor_versioned* versioned = nullptr;
    ASSERT_EQ(tk_tensor_to_dlpack_versioned(&t, 1, &versioned), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(versioned->flags, kReadOnlyFlag);
    tk_tensor back = poisoned_tensor();
    EXPECT_EQ(tk_tensor_from_dlpack_versioned(versioned, 1, &back), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(tk_tensor_from_dlpack_versioned(versioned, 0, &back), TK_STATUS_OK) << tk_last_error();
    versioned->deleter(versioned);
}

TEST(Dlpack, CudaTensorsExportAsKDLCUDA) {
    // Descriptors only: nothing is dereferenced, so no device is needed.
    alignas(4) static float fake[16];
    tk_tensor t = host_tensor(fake, TK_DTYPE_F32, {4, 4}, {4, 1});
    t.device_kind = TK_DEVICE_CUDA;
    t.device_ordinal = 2;
    tk_dlpack_managed_tensor* managed = nullptr;
    ASSERT_EQ(tk_tensor_to_dlpack(&t, &managed), TK_STATUS_OK) << tk_last_error();
    expect_describes(managed->dl_tensor, t, kDLFloat, 32);
    tk_tensor back = poisoned_tensor();
    ASSERT_EQ(tk_tensor_from_dlpack_managed(managed, &back), TK_STATUS_OK) << tk_last_error();
    EXPECT_TRUE(same_bytes(back, t));
    managed->deleter(managed);
}

TEST(Dlpack, ExportKeepsStridesAsGiven) {
    // DLPack allows any strides; a tk_tensor may hold negative ones (ops refuse them). They go out as
    // they are, and a view of them is refused on the way back in, as any negative stride is.
    float data[12] = {};
    const tk_tensor t = host_tensor(data + 11, TK_DTYPE_F32, {3, 4}, {-4, -1});
    tk_dlpack_managed_tensor* managed = nullptr;
    ASSERT_EQ(tk_tensor_to_dlpack(&t, &managed), TK_STATUS_OK) << tk_last_error();
    expect_describes(managed->dl_tensor, t, kDLFloat, 32);
    tk_tensor back = poisoned_tensor();
    expect_refused(tk_tensor_from_dlpack_managed(managed, &back), "managed->dl_tensor.strides[0]", back);
    managed->deleter(managed);

    // An empty tensor without data.
    const tk_tensor empty = host_tensor(nullptr, TK_DTYPE_I64, {0, 5}, {5, 1});
    ASSERT_EQ(tk_tensor_to_dlpack(&empty, &managed), TK_STATUS_OK) << tk_last_error();
    expect_describes(managed->dl_tensor, empty, kDLInt, 64);
    managed->deleter(managed);
}

TEST(DlpackInvalidArguments, ExportRefusalsWriteNothing) {
    float data[6] = {};
    const tk_tensor valid = host_tensor(data, TK_DTYPE_F32, {2, 3}, {3, 1});
    tk_dlpack_managed_tensor* const sentinel = reinterpret_cast<tk_dlpack_managed_tensor*>(uintptr_t{0x1234});
    auto* const versioned_sentinel = reinterpret_cast<tk_dlpack_managed_tensor_versioned*>(uintptr_t{0x1234});

    struct Refusal {
        const char* name;
        std::function<void(tk_tensor&)> breaks;
        const char* names;
    };
    const Refusal refusals[] = {
        {"UnknownDtype", [](tk_tensor& t) { t.dtype = 7; }, "tensor.dtype"},
        {"UnknownDevice", [](tk_tensor& t) { t.device_kind = 5; }, "tensor.device_kind"},
        {"CpuOrdinal", [](tk_tensor& t) { t.device_ordinal = 1; }, "tensor.device_ordinal"},
        {"CudaOrdinalNegative",
         [](tk_tensor& t) {
             t.device_kind = TK_DEVICE_CUDA;
             t.device_ordinal = -1;
         },
         "tensor.device_ordinal"},
        {"RankZero", [](tk_tensor& t) { t.rank = 0; }, "tensor.rank"},
        {"RankNine", [](tk_tensor& t) { t.rank = 9; }, "tensor.rank"},
        {"NegativeSize", [](tk_tensor& t) { t.shape[0] = -1; }, "tensor.shape[0]"},
        {"NullData", [](tk_tensor& t) { t.data = nullptr; }, "tensor.data"},
        {"Misaligned", [](tk_tensor& t) { t.data = reinterpret_cast<char*>(t.data) + 1; }, "tensor.data"},
        {"StridesPastTheAddressSpace", [](tk_tensor& t) { t.strides[0] = int64_t{1} << 62; }, "tensor.strides"},
    };
    for (const Refusal& r : refusals) {
        tk_tensor t = valid;
        r.breaks(t);
        tk_dlpack_managed_tensor* managed = sentinel;
        EXPECT_EQ(tk_tensor_to_dlpack(&t, &managed), TK_STATUS_INVALID_ARGUMENT) << r.name;
        EXPECT_NE(std::string(tk_last_error()).find(std::string(r.names) + ": expected"), std::string::npos)
            << r.name << ": " << tk_last_error();
        EXPECT_EQ(managed, sentinel) << r.name << ": a refused call wrote to managed";
        tk_dlpack_managed_tensor_versioned* versioned = versioned_sentinel;
        EXPECT_EQ(tk_tensor_to_dlpack_versioned(&t, 0, &versioned), TK_STATUS_INVALID_ARGUMENT) << r.name;
        EXPECT_NE(std::string(tk_last_error()).find(std::string(r.names) + ": expected"), std::string::npos)
            << r.name << ": " << tk_last_error();
        EXPECT_EQ(versioned, versioned_sentinel) << r.name << ": a refused call wrote to managed";
    }

    tk_dlpack_managed_tensor* managed = sentinel;
    EXPECT_EQ(tk_tensor_to_dlpack(nullptr, &managed), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tensor: expected"), std::string::npos) << tk_last_error();
    EXPECT_EQ(managed, sentinel);
    EXPECT_EQ(tk_tensor_to_dlpack(&valid, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("managed: expected"), std::string::npos) << tk_last_error();

    tk_dlpack_managed_tensor_versioned* versioned = versioned_sentinel;
    for (const int32_t read_only : {-1, 2}) {
        EXPECT_EQ(tk_tensor_to_dlpack_versioned(&valid, read_only, &versioned), TK_STATUS_INVALID_ARGUMENT);
        EXPECT_NE(std::string(tk_last_error()).find("read_only: expected"), std::string::npos) << tk_last_error();
        EXPECT_EQ(versioned, versioned_sentinel);
    }
    EXPECT_EQ(tk_tensor_to_dlpack_versioned(nullptr, 0, &versioned), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(versioned, versioned_sentinel);
    EXPECT_EQ(tk_tensor_to_dlpack_versioned(&valid, 0, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("managed: expected"), std::string::npos) << tk_last_error();
}

// ---- An op on views taken through DLPack -------------------------------------------------------

TEST(Dlpack, GatherRunsOnViewsTakenThroughDlpack) {
    // x [2, 5, 3] bf16 as a token slice of [2, 7, 4] (strides 28, 4, 1) 1 element in; indices [2, 2]
    // i64 transposed (strides 1, 2); out [2, 2, 3] bf16 with a size-1-free compact layout, exported by
    // the library and viewed back, as a consumer would hand it on.
    std::vector<uint16_t> x_storage(2 * 7 * 4 + 1);
    for (size_t i = 0; i < x_storage.size(); ++i) x_storage[i] = static_cast<uint16_t>(0x3F80 + i);  // distinct bf16
    std::vector<int64_t> x_shape = {2, 5, 3};
    std::vector<int64_t> x_strides = {28, 4, 1};
    tk_dlpack_tensor x_dl{x_storage.data(), {kDLCPU, 0}, 3, {kDLBfloat, 16, 1}, x_shape.data(), x_strides.data(),
                          sizeof(uint16_t)};
    std::vector<int64_t> index_storage = {4, 1, 0, -1};  // column-major [2, 2]: item 0 takes 4, 0; item 1 takes 1, -1
    std::vector<int64_t> index_shape = {2, 2};
    std::vector<int64_t> index_strides = {1, 2};
    tk_dlpack_managed_tensor indices_dl{
        {index_storage.data(), {kDLCPU, 0}, 2, {kDLInt, 64, 1}, index_shape.data(), index_strides.data(), 0}, nullptr,
        nullptr};
    std::vector<uint16_t> out_storage(2 * 2 * 3, 0xFFFF);
    const tk_tensor out_tk = host_tensor(out_storage.data(), TK_DTYPE_BF16, {2, 2, 3}, {6, 3, 1});
    tk_dlpack_managed_tensor* out_dl = nullptr;
    ASSERT_EQ(tk_tensor_to_dlpack(&out_tk, &out_dl), TK_STATUS_OK) << tk_last_error();

    tk_tensor x{}, indices{}, out{};
    ASSERT_EQ(tk_tensor_from_dlpack(&x_dl, &x), TK_STATUS_OK) << tk_last_error();
    ASSERT_EQ(tk_tensor_from_dlpack_managed(&indices_dl, &indices), TK_STATUS_OK) << tk_last_error();
    ASSERT_EQ(tk_tensor_from_dlpack_managed(out_dl, &out), TK_STATUS_OK) << tk_last_error();
    ASSERT_EQ(tk_gather(&x, &indices, &out, nullptr), TK_STATUS_OK) << tk_last_error();
    out_dl->deleter(out_dl);

    const auto x_at = [&](int64_t b, int64_t n, int64_t c) { return x_storage[1 + b * 28 + n * 4 + c]; };
    const int64_t picks[2][2] = {{4, 0}, {1, -1}};
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t i = 0; i < 2; ++i)
            for (int64_t c = 0; c < 3; ++c) {
                const uint16_t expected = picks[b][i] < 0 ? uint16_t{0} : x_at(b, picks[b][i], c);
                EXPECT_EQ(out_storage[b * 6 + i * 3 + c], expected) << b << "," << i << "," << c;
            }
}

}  // namespace
}  // namespace tkt
