// fwd_tune.h — alternatives of the FA3 forward's tile traits, timed side by side by
// fa_sm90_fwd_tune (fwd_tune.cu). Each fwd_tune_d<N>.cu lists the variants of one head dim.
#pragma once
#include <vector>

#include "fa_cuda_host.h"
#include "flash_attn_abi.h"

struct TuneVariant {
    const char* name;
    int headdim;
    fa_status (*run)(const fa_params&, const fa_cuda::LaunchContext&);
    const char* persistent;  /* FA_SM90_PERSISTENT for the call: "1", "0", or nullptr = the launcher's choice */
    const char* block_major; /* FA_SM90_BLOCK_MAJOR likewise */
};

void tune_variants_d64(std::vector<TuneVariant>& out);
void tune_variants_d128(std::vector<TuneVariant>& out);
void tune_variants_d256(std::vector<TuneVariant>& out);

#ifdef FA_TUNE_DEFINE_VARIANTS
#include <cuda_bf16.h>

#include "flash_fwd_launch.cuh"

/* A tile traits variant with the launcher's grid, or forced grids. */
#define FA_TUNE_TRAITS(name, ...)                                                                              \
    out.push_back({name, fa_sm90::FwdTraits<__VA_ARGS__>::kHeadDim,                                          \
                   &fa_sm90::run_fwd_with<fa_sm90::FwdTraits<__VA_ARGS__>, __nv_bfloat16, false>, nullptr, nullptr})
#endif
