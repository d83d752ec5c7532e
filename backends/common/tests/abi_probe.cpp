// libfa_abi_probe.so: the native parameter checks, exported for the managed tests. They fill
// fa_params exactly as the dispatcher does for a native backend and assert that fa_common
// accepts them and derives the same feature bits, so the two sides of the ABI cannot drift.
#include "fa_common.h"

extern "C" {

FA_API fa_status fa_probe_check_params(const fa_params* params, fa_op op, char* reason, size_t reason_size) {
    fa_clear_last_error();
    const fa_status status = fa_check_params(params, op);
    fa_copy_last_error(reason, reason_size);
    return status;
}

FA_API uint64_t fa_probe_used_features(const fa_params* params, fa_op op) {
    return fa_used_features(params, op);
}

}  // extern "C"
