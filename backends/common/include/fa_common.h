/*
 * fa_common.h — host-side helpers every native backend links (static library fa_common):
 * the thread-local last error behind fa_last_error(), the parameter checks a library runs
 * before touching the device, and the capability check that turns "features this problem
 * uses" minus "features this library has" into an FA_ERR_UNSUPPORTED reason.
 *
 * Nothing here aborts or lets an exception out: every function is noexcept and reports
 * through an fa_status plus the thread's last error. Wrap an entry point's body in
 * fa_guarded() so that nothing the backend throws crosses the C boundary either.
 */
#ifndef FA_COMMON_H
#define FA_COMMON_H

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>

#include "flash_attn_abi.h"

#if defined(__GNUC__) || defined(__clang__)
#define FA_PRINTF_FORMAT(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define FA_PRINTF_FORMAT(format_index, first_arg)
#endif

/* ---- last error (one per thread) ------------------------------------------------------ */

/* Longest message kept, including the terminating NUL; longer ones are cut. */
constexpr std::size_t FA_LAST_ERROR_CAPACITY = 1024;

/* Records a printf-style message as this thread's last error and returns `status`, so that
   `return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "...", ...);` reads as one step. */
fa_status fa_set_last_error(fa_status status, const char* format, ...) noexcept FA_PRINTF_FORMAT(2, 3);

/* Clears this thread's last error (an entry point does this when it starts). */
void fa_clear_last_error() noexcept;

/* This thread's last error, "" when none; valid until the thread's next set/clear. This is
   what a library's fa_last_error() returns. */
const char* fa_get_last_error() noexcept;

/* Copies the last error into a caller's buffer (fa_supports' `reason`), cut to fit and
   NUL-terminated; does nothing when `reason` is NULL or `reason_size` is 0. */
void fa_copy_last_error(char* reason, std::size_t reason_size) noexcept;

/* ---- names used in messages ----------------------------------------------------------- */

const char* fa_status_name(fa_status status) noexcept; /* "FA_ERR_UNSUPPORTED" */
const char* fa_dtype_name(int dtype) noexcept;         /* "bf16"; "unknown" otherwise */
const char* fa_op_name(int op) noexcept;               /* "fa_forward", "fa_backward", "fa_forward_kvcache" */
const char* fa_feature_name(std::uint64_t feature) noexcept; /* one FA_FEATURE_* bit: "paged KV" */

/* Writes the names of the set feature bits, comma-separated ("softcap, paged KV"), into
   `buffer` (cut to fit, NUL-terminated). Returns the length it needed without the NUL. */
std::size_t fa_describe_features(std::uint64_t features, char* buffer, std::size_t size) noexcept;

/* ---- checks ----------------------------------------------------------------------------- */

/* Validates `params` for entry point `op` on the host, without dereferencing any device
   pointer: FA_OK, or FA_ERR_ABI_MISMATCH (struct_size / abi_version) or
   FA_ERR_INVALID_ARGUMENT with a last error naming the field, the expected value and the
   value found, e.g. "fa_params.nheads_kv must divide nheads_q (12); got 5". */
fa_status fa_check_params(const fa_params* params, fa_op op) noexcept;

/* The FA_FEATURE_* bits that running `op` on `params` requires of a library. */
std::uint64_t fa_used_features(const fa_params* params, fa_op op) noexcept;

/* FA_OK when a library with capabilities `caps` can run `op` on (already checked) `params`;
   otherwise FA_ERR_UNSUPPORTED with a last error naming everything missing, e.g.
   "cuda_sm80 cannot run fa_backward: it does not support softcap, paged KV". */
fa_status fa_check_capabilities(const fa_params* params, fa_op op, const fa_capabilities* caps,
                                const char* backend_name) noexcept;

/* Returns the status of `expr` from the enclosing function unless it is FA_OK (checks in order,
   first failure wins). */
#define FA_TRY(expr)                                     \
    do {                                                 \
        const fa_status fa_try_status_ = (expr);         \
        if (fa_try_status_ != FA_OK) return fa_try_status_; \
    } while (0)

/* ---- the C boundary ------------------------------------------------------------------- */

/* Runs `body` (returning fa_status) and turns anything it throws into a status and last
   error: std::bad_alloc → FA_ERR_OUT_OF_MEMORY, any other exception → FA_ERR_INTERNAL. */
template <typename Body>
fa_status fa_guarded(Body&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return fa_set_last_error(FA_ERR_OUT_OF_MEMORY, "out of host memory");
    } catch (const std::exception& e) {
        return fa_set_last_error(FA_ERR_INTERNAL, "internal error: %s", e.what());
    } catch (...) {
        return fa_set_last_error(FA_ERR_INTERNAL, "internal error: unknown exception");
    }
}

#endif /* FA_COMMON_H */
