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

/* Each tile three ways: persistent with heads outer, persistent with query blocks outer, one CTA per tile. */
#define FA_TUNE_VARIANT(d, m, n, pp)                                                                                            \
    do {                                                                                                                        \
        auto run_ = &fa_sm90::run_fwd_with<fa_sm90::FwdTraits<d, m, n, pp>, __nv_bfloat16, false>;                            \
        out.push_back({"d" #d " " #m "x" #n " pp=" #pp " persistent heads-outer", d, run_, "1", "0"});                       \
        out.push_back({"d" #d " " #m "x" #n " pp=" #pp " persistent blocks-outer", d, run_, "1", "1"});                      \
        out.push_back({"d" #d " " #m "x" #n " pp=" #pp " cta-per-tile", d, run_, "0", "0"});                                 \
    } while (0)
#endif
