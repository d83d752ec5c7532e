/*
 * launch_template.h — what every generated instance file of the rocm_ck backend includes
 * (generated/fa_ck_<direction>_hdim<d>_<dtype>[_dropout].hip). Each holds one
 * FA_CK_INSTANTIATE_<DIRECTION>(dtype, headdim_qk, headdim_v[, dropout]) line, which explicitly
 * instantiates one launcher of fmha_launch_api.h for that key; one instance per translation
 * unit keeps HIP compiles parallel. src/api.cpp reaches the instances through
 * generated/instances.g.inc.
 *
 * FA_CK_HAS_BWD = 0 builds a forward-only library: backward instances compile to nothing and
 * fa_supports refuses fa_backward.
 */
#ifndef FA_CK_LAUNCH_TEMPLATE_H
#define FA_CK_LAUNCH_TEMPLATE_H

#include "fmha_fwd_launch.h"

#ifndef FA_CK_HAS_BWD
#define FA_CK_HAS_BWD 1
#endif
#if FA_CK_HAS_BWD
#include "fmha_bwd_launch.h"
#endif

#define FA_CK_INSTANTIATE_FWD(dtype, headdim_qk, headdim_v, dropout) \
    template fa_status fa_ck::run_fwd<dtype, headdim_qk, headdim_v, dropout>(const fa_params&, const fa_ck::LaunchContext&);

#define FA_CK_INSTANTIATE_FWD_SPLITKV(dtype, headdim_qk, headdim_v) \
    template fa_status fa_ck::run_fwd_splitkv<dtype, headdim_qk, headdim_v>(const fa_params&, const fa_ck::LaunchContext&);

#if FA_CK_HAS_BWD
#define FA_CK_INSTANTIATE_BWD(dtype, headdim_qk, headdim_v, dropout) \
    template fa_status fa_ck::run_bwd<dtype, headdim_qk, headdim_v, dropout>(const fa_params&, const fa_ck::LaunchContext&);
#else
#define FA_CK_INSTANTIATE_BWD(dtype, headdim_qk, headdim_v, dropout)
#endif

#endif  // FA_CK_LAUNCH_TEMPLATE_H
