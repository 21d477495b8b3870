#include "core/error.hpp"

namespace tk {

namespace {
thread_local std::string last_error_message;
}

void set_last_error(const std::string& message) noexcept {
    try {
        last_error_message = message;
    } catch (...) {
        last_error_message.clear();
    }
}

const char* last_error() noexcept { return last_error_message.c_str(); }

void invalid_argument(const std::string& argument, const std::string& expected, const std::string& got) {
    throw Error(TK_STATUS_INVALID_ARGUMENT, argument + ": expected " + expected + ", got " + got);
}

}  // namespace tk
