/*
 * fmha_aux.h — launchers of the kernels in fmha_aux_kernels.h, compiled once per dtype in
 * src/fmha_aux.hip and called by the per-instance launchers (fmha_fwd_launch.h,
 * fmha_bwd_launch.h). Each enqueues on ctx.stream and returns FA_OK or FA_ERR_DEVICE.
 */
#ifndef FA_CK_FMHA_AUX_H
#define FA_CK_FMHA_AUX_H

#include "fa_common.h"
#include "fmha_args.h"
#include "fmha_launch_api.h"

namespace fa_ck {

/* k_new/v_new (k rotated) into the cache: a.seqlen_new rows of each of a.batch sequences. */
template <int DType>
fa_status launch_appendkv(const FmhaArgs& a, const LaunchContext& ctx);

/* q rotated into `rotated` (contiguous (batch, seqlen_q, hq, d)). */
template <int DType>
fa_status launch_rotate_q(const FmhaArgs& a, void* rotated, const LaunchContext& ctx);

/* out and LSE from a.o_partial / a.lse_partial (a.num_splits splits). */
template <int DType>
fa_status launch_splitkv_combine(const FmhaArgs& a, const LaunchContext& ctx);

/* a.d_rows = rowsum(dO ∘ O); then a.dsink when a.dsink is set. */
template <int DType>
fa_status launch_bwd_preprocess(const FmhaArgs& a, const LaunchContext& ctx);

/* FA_OK, or FA_ERR_DEVICE naming `what` when the last launch failed. */
fa_status launch_status(const char* what);

}  // namespace fa_ck

#endif  // FA_CK_FMHA_AUX_H
