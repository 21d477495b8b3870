// Built only with TOKENKERNELS_STATIC_CXX_RUNTIME (the NuGet runtime packages), where libstdc++ is
// linked into the library. GCC 12's libstdc++ refers to glibc 2.36's arc4random from
// std::random_device, which the library never uses; that one reference would stop the library from
// loading on glibc 2.34 and 2.35 (Ubuntu 22.04, JetPack 6). This hidden definition satisfies it at
// link time, so the library needs glibc 2.34 at most.
#include <cerrno>
#include <cstdint>

#include <sys/random.h>

extern "C" __attribute__((visibility("hidden"))) uint32_t arc4random(void) {
    uint32_t value = 0;
    while (getrandom(&value, sizeof value, 0) < 0 && errno == EINTR) {
    }
    return value;
}
