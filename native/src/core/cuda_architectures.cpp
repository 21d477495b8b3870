#include "core/cuda_architectures.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace tk {
namespace {

// One entry of the list: capability X.Y as 10 * X + Y, its variant and which code it holds.
struct CudaCode {
    int capability;
    char variant;  // '\0', 'a' (arch-specific) or 'f' (family-specific)
    bool machine_code;
    bool ptx;
};

std::string trimmed(const std::string& s) {
    size_t begin = 0;
    size_t end = s.size();
    while (begin < end && std::isspace(static_cast<unsigned char>(s[begin]))) ++begin;
    while (end > begin && std::isspace(static_cast<unsigned char>(s[end - 1]))) --end;
    return s.substr(begin, end - begin);
}

// "90", "80-real", "90a-virtual", ...; nullopt for anything else ("all", "native").
std::optional<CudaCode> parse_entry(const std::string& entry) {
    size_t digits = 0;
    while (digits < entry.size() && std::isdigit(static_cast<unsigned char>(entry[digits]))) ++digits;
    if (digits == 0 || digits > 4) return std::nullopt;
    CudaCode code{std::stoi(entry.substr(0, digits)), '\0', true, true};
    std::string rest = entry.substr(digits);
    if (!rest.empty() && (rest[0] == 'a' || rest[0] == 'f')) {
        code.variant = rest[0];
        rest = rest.substr(1);
    }
    if (rest == "-real") {
        code.ptx = false;
    } else if (rest == "-virtual") {
        code.machine_code = false;
    } else if (!rest.empty()) {
        return std::nullopt;
    }
    return code;
}

// Every entry, or nullopt when one of them cannot be read.
std::optional<std::vector<CudaCode>> parse_list(const std::string& architectures) {
    std::vector<CudaCode> codes;
    std::stringstream stream(architectures);
    std::string entry;
    while (std::getline(stream, entry, ';')) {
        entry = trimmed(entry);
        if (entry.empty()) continue;
        const std::optional<CudaCode> code = parse_entry(entry);
        if (!code) return std::nullopt;
        codes.push_back(*code);
    }
    return codes;
}

bool runs_on(const CudaCode& code, int capability) {
    const bool same_major = capability / 10 == code.capability / 10;
    if (code.variant == 'a') return capability == code.capability;
    if (code.machine_code && same_major && capability >= code.capability) return true;
    if (code.ptx) return code.variant == 'f' ? same_major && capability >= code.capability : capability >= code.capability;
    return false;
}

}  // namespace

const char* cuda_architectures() {
#if defined(TK_CUDA_ARCHITECTURES)
    // CMake passes the list with ',' for ';' (a ';' would split the definition).
    static const std::string list = [] {
        std::string s = TK_CUDA_ARCHITECTURES;
        std::replace(s.begin(), s.end(), ',', ';');
        return s;
    }();
    return list.c_str();
#else
    return "";
#endif
}

CapabilitySupport cuda_capability_support(int major, int minor) {
    static const std::optional<std::vector<CudaCode>> codes = parse_list(cuda_architectures());
    if (!codes) return CapabilitySupport::kUnknown;
    const int capability = 10 * major + minor;
    for (const CudaCode& code : *codes)
        if (runs_on(code, capability)) return CapabilitySupport::kYes;
    return CapabilitySupport::kNo;
}

}  // namespace tk
