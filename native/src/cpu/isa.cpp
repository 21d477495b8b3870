#include "cpu/isa.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace tk::cpu {

namespace {

CpuIsa detected_isa() {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return CpuIsa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::kAvx2;
#endif
    return CpuIsa::kPortable;
}

std::string environment_value(const char* name) {
#if defined(_MSC_VER)
    char* value = nullptr;
    size_t length = 0;
    if (_dupenv_s(&value, &length, name) != 0 || value == nullptr) return {};
    std::string result(value);
    std::free(value);
    return result;
#else
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
#endif
}

CpuIsa isa_cap() {
    const std::string cap = environment_value("TK_CPU_ISA");
    if (cap == "portable") return CpuIsa::kPortable;
    if (cap == "avx2") return CpuIsa::kAvx2;
    return CpuIsa::kAvx512;
}

}  // namespace

CpuIsa cpu_isa() {
    static const CpuIsa isa = std::min(detected_isa(), isa_cap());
    return isa;
}

}  // namespace tk::cpu
