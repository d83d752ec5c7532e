/*
 * launch_template.h — what every generated instance file of the hopper_sm90 backend includes
 * (generated/fa_sm90_fwd_hdim<d>_<dtype>[_softcap].cu). Each such file holds one
 * FA_SM90_INSTANTIATE_FWD(dtype, headdim_qk, headdim_v, softcap) line, which explicitly
 * instantiates fa_sm90::run_fwd (include/flash_fwd_launch.cuh) for that key; one instance per
 * translation unit keeps nvcc compiles parallel. src/api.cu reaches the instances through
 * generated/instances.g.inc.
 */
#ifndef FA_SM90_LAUNCH_TEMPLATE_H
#define FA_SM90_LAUNCH_TEMPLATE_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "flash_fwd_launch.cuh"

/* FA_SM90_ELEMENT(dtype): sm90_launch.cuh. */
#define FA_SM90_INSTANTIATE_FWD(dtype, headdim_qk, headdim_v, softcap)                                   \
    template fa_status fa_sm90::run_fwd<FA_SM90_ELEMENT(dtype), headdim_qk, headdim_v, softcap>(const fa_params&, \
                                                                                              const fa_sm90::LaunchContext&);

#endif  // FA_SM90_LAUNCH_TEMPLATE_H
