// The thread-local last error behind fa_last_error(). A fixed buffer per thread: setting an
// error never allocates, so it cannot fail while reporting another failure.
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "fa_common.h"

namespace {

thread_local char t_last_error[FA_LAST_ERROR_CAPACITY] = "";

}  // namespace

fa_status fa_set_last_error(fa_status status, const char* format, ...) noexcept {
    va_list args;
    va_start(args, format);
    std::vsnprintf(t_last_error, sizeof t_last_error, format, args);
    va_end(args);
    return status;
}

void fa_clear_last_error() noexcept { t_last_error[0] = '\0'; }

const char* fa_get_last_error() noexcept { return t_last_error; }

void fa_copy_last_error(char* reason, std::size_t reason_size) noexcept {
    if (reason == nullptr || reason_size == 0) return;
    std::snprintf(reason, reason_size, "%s", t_last_error);
}

const char* fa_status_name(fa_status status) noexcept {
    switch (status) {
        case FA_OK: return "FA_OK";
        case FA_ERR_INVALID_ARGUMENT: return "FA_ERR_INVALID_ARGUMENT";
        case FA_ERR_UNSUPPORTED: return "FA_ERR_UNSUPPORTED";
        case FA_ERR_DEVICE: return "FA_ERR_DEVICE";
        case FA_ERR_OUT_OF_MEMORY: return "FA_ERR_OUT_OF_MEMORY";
        case FA_ERR_ABI_MISMATCH: return "FA_ERR_ABI_MISMATCH";
        case FA_ERR_INTERNAL: return "FA_ERR_INTERNAL";
    }
    return "unknown status";
}

const char* fa_dtype_name(int dtype) noexcept {
    switch (dtype) {
        case FA_DTYPE_F16: return "fp16";
        case FA_DTYPE_BF16: return "bf16";
        case FA_DTYPE_F32: return "fp32";
        case FA_DTYPE_F8_E4M3: return "e4m3";
        case FA_DTYPE_I32: return "i32";
        case FA_DTYPE_U8: return "u8";
        default: return "unknown";
    }
}

const char* fa_op_name(int op) noexcept {
    switch (op) {
        case FA_OP_FORWARD: return "fa_forward";
        case FA_OP_BACKWARD: return "fa_backward";
        case FA_OP_FORWARD_KVCACHE: return "fa_forward_kvcache";
        default: return "unknown op";
    }
}
