/*
 * flash_fwd_launch.cuh — host side of the sm80 forward: fa_params → FwdArgs, the choice
 * between the lean and the full kernel, and the launches of run_fwd / run_fwd_split
 * (declared in sm80_launch.cuh, instantiated per key by launch_template.h).
 */
#ifndef FA_SM80_FLASH_FWD_LAUNCH_CUH
#define FA_SM80_FLASH_FWD_LAUNCH_CUH

#include <cuda_runtime.h>

#include "flash_fwd_args.cuh"
#include "flash_fwd_kernel.cuh"
#include "flash_fwd_kvcache.cuh"
#include "flash_fwd_plan.cuh"
#include "sm80_launch.cuh"

namespace fa_sm80 {


/* The full kernel handles what changes scores beyond scale and mask. */
inline bool needs_full_kernel(const fa_params& p) {
    return p.softcap > 0.0f || p.alibi_slopes != nullptr || p.dropout_p > 0.0f || !(p.softmax_scale > 0.0f);
}

inline FwdArgs make_fwd_args(const fa_params& p) {
    FwdArgs a{};
    a.q = p.q.data;
    a.k = p.k.data;
    a.v = p.v.data;
    a.out = p.out.data;
    a.q_batch_stride = p.q.batch_stride;
    a.q_row_stride = p.q.row_stride;
    a.q_head_stride = p.q.head_stride;
    a.k_batch_stride = p.k.batch_stride;
    a.k_row_stride = p.k.row_stride;
    a.k_head_stride = p.k.head_stride;
    a.v_batch_stride = p.v.batch_stride;
    a.v_row_stride = p.v.row_stride;
    a.v_head_stride = p.v.head_stride;
    a.o_batch_stride = p.out.batch_stride;
    a.o_row_stride = p.out.row_stride;
    a.o_head_stride = p.out.head_stride;
    a.lse = p.softmax_lse;
    a.lse_batch_stride = p.lse_batch_stride;
    a.lse_head_stride = p.lse_head_stride;
    a.batch = p.batch;
    a.nheads_q = p.nheads_q;
    a.nheads_kv = p.nheads_kv;
    a.group = p.nheads_q / p.nheads_kv;
    a.seqlen_q = p.seqlen_q;
    a.seqlen_k = p.seqlen_k;
    a.headdim_qk = p.headdim_qk;
    a.headdim_v = p.headdim_v;
    a.cu_seqlens_q = p.cu_seqlens_q;
    a.cu_seqlens_k = p.cu_seqlens_k;
    a.seqused_k = p.seqused_k;
    a.leftpad_k = p.leftpad_k;
    /* Only fa_forward_kvcache has them (fa_check_params refuses them elsewhere). */
    a.cache_seqlens = p.cache_seqlens;
    a.seqlen_new = p.k_new.data != nullptr ? p.seqlen_new : 0;
    a.cache_batch_idx = p.cache_batch_idx;
    a.block_table = p.block_table;
    a.block_table_batch_stride = p.block_table_batch_stride;
    a.page_size = p.page_size;
    a.scale_log2 = p.softmax_scale * kLog2e;
    a.softcap = p.softcap;
    a.score_scale = p.softcap > 0.0f ? p.softmax_scale / p.softcap : p.softmax_scale;
    fa_entry::normalise_window(p, a.window_left, a.window_right);
    a.alibi_slopes = p.alibi_slopes;
    a.alibi_batch_stride = p.alibi_batch_stride;
    a.has_dropout = p.dropout_p > 0.0f;
    a.dropout.seed = p.dropout_seed;
    a.dropout.offset = p.dropout_offset;
    a.dropout.threshold = dropout_threshold(p.dropout_p);
    a.dropout.keep_scale = 1.0f / (1.0f - p.dropout_p);
    a.sink_logits = p.sink_logits;
    a.num_splits = 1;
    a.pack = 1;
    return a;
}

inline fa_status launch_status(const char* what) { return fa_cuda::launch_status("cuda_sm80", what); }

template <typename Kernel>
fa_status launch_attention(Kernel kernel, dim3 grid, int threads, int smem_bytes, const FwdArgs& args,
                           const LaunchContext& ctx, const char* what) {
    if (smem_bytes > 48 * 1024) {
        const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
        if (err != cudaSuccess)
            return fa_set_last_error(FA_ERR_DEVICE, "cuda_sm80: cannot give %s %d bytes of shared memory: %s", what, smem_bytes,
                                     cudaGetErrorString(err));
    }
    kernel<<<grid, threads, smem_bytes, ctx.stream>>>(args);
    return launch_status(what);
}

template <typename Traits, bool IsCausal>
fa_status run_fwd_with(const fa_params& p, const LaunchContext& ctx) {
    if (p.seqlen_q == 0 || p.total_q == 0) return FA_OK;
    const FwdArgs args = make_fwd_args(p);
    const dim3 grid((p.seqlen_q + Traits::kBlockM - 1) / Traits::kBlockM, p.nheads_q, p.batch);
    if (needs_full_kernel(p))
        return launch_attention(flash_fwd_kernel<Traits, IsCausal, true, false>, grid, Traits::kNThreads, Traits::kSmemBytes, args,
                                ctx, "the forward kernel");
    return launch_attention(flash_fwd_kernel<Traits, IsCausal, false, false>, grid, Traits::kNThreads, Traits::kSmemBytes, args,
                            ctx, "the forward kernel");
}

template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_fwd(const fa_params& p, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "run_fwd: headdim_v != headdim_qk is not compiled in this backend");
    using Long = FwdLongConfig<Element, HeadDimQK>;
    if constexpr (Long::kHas) {
        if (p.seqlen_k >= Long::kMinKeys) return run_fwd_with<typename Long::Traits, IsCausal>(p, ctx);
    }
    return run_fwd_with<typename FwdConfig<Element, HeadDimQK>::Traits, IsCausal>(p, ctx);
}

/*
 * The kv-cache / paged / split-KV forward: append k_new/v_new (rotated), rotate q into the
 * workspace, attend with the split kernel, combine the splits.
 */
template <typename Element, int HeadDimQK, int HeadDimV, bool IsCausal>
fa_status run_fwd_split(const fa_params& p, const LaunchContext& ctx) {
    static_assert(HeadDimQK == HeadDimV, "run_fwd_split: headdim_v != headdim_qk is not compiled in this backend");
    using Traits = typename FwdSplitConfig<Element, HeadDimQK>::Traits;
    const bool kvcache = p.cache_seqlens != nullptr;
    const FwdPlan plan = plan_forward(p, kvcache ? FA_OP_FORWARD_KVCACHE : FA_OP_FORWARD, ctx.num_sms);
    if (plan.workspace_bytes > 0 && (ctx.workspace == nullptr || ctx.workspace_bytes < plan.workspace_bytes))
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_params.workspace_bytes must be at least %llu for this call; got %llu",
                                 static_cast<unsigned long long>(plan.workspace_bytes),
                                 static_cast<unsigned long long>(ctx.workspace_bytes));
    unsigned char* workspace = static_cast<unsigned char*>(ctx.workspace);

    FwdArgs args = make_fwd_args(p);
    RotaryArgs rot{p.rotary_cos, p.rotary_sin, p.rotary_dim, p.rotary_interleaved};

    if (kvcache && args.seqlen_new > 0) {
        AppendArgs n{p.k_new.data,         p.v_new.data,        p.k_new.batch_stride, p.k_new.row_stride,
                     p.k_new.head_stride,  p.v_new.batch_stride, p.v_new.row_stride,  p.v_new.head_stride,
                     args.seqlen_new};
        kvcache_append_kernel<Element><<<dim3(args.seqlen_new, p.batch), 128, 0, ctx.stream>>>(args, n, rot);
        FA_TRY(launch_status("the kv-cache append kernel"));
    }
    if (kvcache && p.rotary_dim > 0 && p.seqlen_q > 0) {
        Element* q_rot = reinterpret_cast<Element*>(workspace + plan.q_rotated_offset);
        const int local = (args.window_left >= 0 || args.window_right >= 0) ? 1 : 0;
        rotate_q_kernel<Element><<<dim3(p.seqlen_q, p.batch), 128, 0, ctx.stream>>>(args, q_rot, rot, local);
        FA_TRY(launch_status("the q rotation kernel"));
        args.q = q_rot;
        args.q_head_stride = p.headdim_qk;
        args.q_row_stride = static_cast<int64_t>(p.nheads_q) * p.headdim_qk;
        args.q_batch_stride = static_cast<int64_t>(p.seqlen_q) * args.q_row_stride;
    }
    if (p.seqlen_q == 0 || p.total_q == 0) return FA_OK;

    args.num_splits = plan.num_splits;
    if (plan.num_splits > 1) {
        args.o_partial = reinterpret_cast<float*>(workspace + plan.partial_o_offset);
        args.lse_partial = reinterpret_cast<float*>(workspace + plan.partial_lse_offset);
    }
    args.pack = plan.pack;
    const int64_t tile_rows = static_cast<int64_t>(p.seqlen_q) * plan.pack;
    const dim3 grid(static_cast<unsigned>((tile_rows + Traits::kBlockM - 1) / Traits::kBlockM), p.nheads_q / plan.pack,
                    p.batch * plan.num_splits);
    FA_TRY(launch_attention(flash_fwd_kernel<Traits, IsCausal, true, true>, grid, Traits::kNThreads, Traits::kSmemBytes,
                                   args, ctx, "the split-KV forward kernel"));
    if (plan.num_splits > 1) {
        split_combine_kernel<Element><<<dim3((p.seqlen_q + 3) / 4, p.nheads_q, p.batch), 128, 0, ctx.stream>>>(args);
        FA_TRY(launch_status("the split-KV combine kernel"));
    }
    return FA_OK;
}

}  // namespace fa_sm80

#endif  // FA_SM80_FLASH_FWD_LAUNCH_CUH
