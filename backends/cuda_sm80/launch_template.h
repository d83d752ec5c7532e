/*
 * launch_template.h — what every generated instance file of the sm80 backend includes
 * (generated/fa_sm80_<direction>_hdim<d>_<dtype>[_causal].cu). Each such file holds one
 * FA_SM80_INSTANTIATE_<DIRECTION>(dtype, headdim_qk, headdim_v, causal) line, which
 * explicitly instantiates one launcher of sm80_launch.cuh for that key; one instance per
 * translation unit keeps nvcc compiles parallel. src/api.cu reaches the instances through
 * generated/instances.g.inc.
 */
#ifndef FA_SM80_LAUNCH_TEMPLATE_H
#define FA_SM80_LAUNCH_TEMPLATE_H

#include "sm80_launch.cuh"
#include "flash_fwd_launch.cuh"

// The backward lives in include/flash_bwd_launch.cuh (run_bwd's definition); until that file
// exists, BWD instances compile to nothing and fa_supports refuses fa_backward.
// FA_SM80_SKIP_BWD builds a forward-only library (the backward instances compile to nothing).
#if defined(__has_include) && !defined(FA_SM80_SKIP_BWD)
#if __has_include("flash_bwd_launch.cuh")
#include "flash_bwd_launch.cuh"
#define FA_SM80_HAS_BWD 1
#endif
#endif
#ifndef FA_SM80_HAS_BWD
#define FA_SM80_HAS_BWD 0
#endif

/* fa_dtype constant → element type. */
#define FA_SM80_ELEMENT_FA_DTYPE_F16 __half
#define FA_SM80_ELEMENT_FA_DTYPE_BF16 __nv_bfloat16
#define FA_SM80_ELEMENT(dtype) FA_SM80_ELEMENT_##dtype

#define FA_SM80_INSTANTIATE_FWD(dtype, headdim_qk, headdim_v, causal)                                         \
    template fa_status fa_sm80::run_fwd<FA_SM80_ELEMENT(dtype), headdim_qk, headdim_v, causal>(const fa_params&, \
                                                                                             const fa_sm80::LaunchContext&);

#define FA_SM80_INSTANTIATE_FWD_SPLIT(dtype, headdim_qk, headdim_v, causal)                 \
    template fa_status fa_sm80::run_fwd_split<FA_SM80_ELEMENT(dtype), headdim_qk, headdim_v, causal>( \
        const fa_params&, const fa_sm80::LaunchContext&);

#if FA_SM80_HAS_BWD
#define FA_SM80_INSTANTIATE_BWD(dtype, headdim_qk, headdim_v, causal)                                         \
    template fa_status fa_sm80::run_bwd<FA_SM80_ELEMENT(dtype), headdim_qk, headdim_v, causal>(const fa_params&, \
                                                                                             const fa_sm80::LaunchContext&);
#else
#define FA_SM80_INSTANTIATE_BWD(dtype, headdim_qk, headdim_v, causal)
#endif

#endif  // FA_SM80_LAUNCH_TEMPLATE_H
