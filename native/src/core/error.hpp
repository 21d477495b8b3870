// Errors inside the library are C++ exceptions carrying a tk_status; api_call() turns them into a
// status and the thread-local message at the ABI boundary, so no exception ever crosses it.
#pragma once

#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "tokenkernels/tokenkernels.h"

namespace tk {

class Error : public std::runtime_error {
public:
    Error(tk_status status, std::string message) : std::runtime_error(std::move(message)), status_(status) {}
    tk_status status() const noexcept { return status_; }

private:
    tk_status status_;
};

// An argument problem: `argument` is the C parameter name (or "x.shape[2]"), `expected` what was
// wanted, `got` what came. Reads as "x.shape[4]: expected 1152 (C of x), got 1024".
[[noreturn]] void invalid_argument(const std::string& argument, const std::string& expected, const std::string& got);

// Message parts are built only on failure: each may be a string or a callable returning one.
template <class Part>
std::string message_text(Part&& part) {
    if constexpr (std::is_invocable_v<Part>) {
        return std::string(part());
    } else {
        return std::string(part);
    }
}

// Requires `condition`, else invalid_argument(argument, expected, got).
template <class Argument, class Expected, class Got>
inline void require(bool condition, Argument&& argument, Expected&& expected, Got&& got) {
    if (!condition) invalid_argument(message_text(argument), message_text(expected), message_text(got));
}

void set_last_error(const std::string& message) noexcept;
const char* last_error() noexcept;

// Runs body (which returns nothing and throws tk::Error on failure) and converts the outcome.
template <class Body>
tk_status api_call(Body&& body) noexcept {
    try {
        set_last_error(std::string());
        body();
        return TK_STATUS_OK;
    } catch (const Error& e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc&) {
        set_last_error("out of host memory");
        return TK_STATUS_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_last_error(std::string("internal error: ") + e.what());
        return TK_STATUS_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return TK_STATUS_INTERNAL;
    }
}

}  // namespace tk
