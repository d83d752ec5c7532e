// bwd_host.cu — host side of the sm80 backward shared by every instance: the workspace size
// and layout, the resolution of fa_params into the kernels' BwdParams, and the workspace
// owner used when the caller passes none.
//
// Workspace layout (each part 256-byte aligned), T = total query rows (dense batch*seqlen_q,
// varlen cu_seqlens_q[batch]), H = nheads_q, Dp = the instance head dim (32..256):
//   dq_accum  G x 16 x H x Dp fp32  dQ / scale, accumulated by the main kernel with atomics in
//                                 MMA-fragment order (flash_bwd_kernel.cuh, dq_fragment); rows in
//                                 G = T/16 + batch + 1 groups of 16, each sequence from a new group
//   dsum      H x T fp32          D = rowsum(dO * O)
//   sem       H x S int32         deterministic mode only: S = (T + batch*BQ)/BQ + 1 counters
//                                 per head, one per query block (BQ = query block, 64), that
//                                 order the dQ additions by key block
// so about 4*T*H*(Dp + 1) bytes (+ 64*(batch + 1)*H*Dp for the row groups), plus about 4*T*H/64 in deterministic mode (1.6 % of dq_accum at
// d = 64; the deterministic mode costs no other memory: dK/dV never use atomics).
#include <cinttypes>
#include <cmath>
#include <cstdint>

#include "flash_bwd_launch.cuh"

namespace fa_sm80 {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

struct BwdLayout {
    int64_t total_q = 0;
    int dq_dim = 0;
    int sem_per_head = 0;
    int64_t dq_groups = 0;
    uint64_t dq_accum_offset = 0, dsum_offset = 0, sem_offset = 0, bytes = 0;
};

BwdLayout bwd_layout(const fa_params& params) {
    BwdLayout l;
    const bool varlen = params.cu_seqlens_q != nullptr;
    l.total_q = varlen ? params.total_q : static_cast<int64_t>(params.batch) * params.seqlen_q;
    if (l.total_q < 0) l.total_q = 0;
    const int head_dim = params.headdim_qk > params.headdim_v ? params.headdim_qk : params.headdim_v;
    l.dq_dim = bwd::bwd_instance_head_dim(head_dim);
    const int block_q = bwd::bwd_block_q(head_dim);
    const uint64_t h = params.nheads_q > 0 ? static_cast<uint64_t>(params.nheads_q) : 0;
    l.dq_accum_offset = 0;
    l.dq_groups = l.total_q > 0 ? l.total_q / 16 + params.batch + 1 : 0;
    l.dsum_offset = align_up(static_cast<uint64_t>(l.dq_groups) * 16 * h * l.dq_dim * sizeof(float));
    l.sem_offset = align_up(l.dsum_offset + static_cast<uint64_t>(l.total_q) * h * sizeof(float));
    l.bytes = l.sem_offset;
    if (params.deterministic) {
        l.sem_per_head = static_cast<int>((l.total_q + static_cast<int64_t>(params.batch) * block_q) / block_q + 1);
        l.bytes = align_up(l.sem_offset + static_cast<uint64_t>(l.sem_per_head) * h * sizeof(int));
    }
    return l;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

fa_status check_tensor(const char* name, const fa_tensor& t, bool ignore_batch_stride) {
    if (!aligned16(t.data))
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: %s.data must be 16-byte aligned", name);
    if (t.row_stride % 8 != 0 || t.head_stride % 8 != 0 || (!ignore_batch_stride && t.batch_stride % 8 != 0))
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "cuda_sm80 fa_backward: the strides of %s must be multiples of 8 elements (16 bytes); got "
                                 "batch %" PRId64 ", row %" PRId64 ", head %" PRId64,
                                 name, t.batch_stride, t.row_stride, t.head_stride);
    return FA_OK;
}

}  // namespace

uint64_t bwd_workspace_bytes(const fa_params& params) { return bwd_layout(params).bytes; }

/* What fa_backward implements. Not: paged KV, seqused_q, KV append / rotary / cache_batch_idx
   (kv-cache only), split-KV, headdim_v != headdim_qk, fp8, the dropout-mask output. */
uint64_t bwd_features() {
    return FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW | FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI | FA_FEATURE_DROPOUT | FA_FEATURE_GQA |
           FA_FEATURE_VARLEN | FA_FEATURE_SEQUSED | FA_FEATURE_LEFTPAD_K | FA_FEATURE_DETERMINISTIC | FA_FEATURE_SINKS;
}

namespace {

int bwd_min_smem(int instance_head_dim) {
    switch (instance_head_dim) {
        case 32: return bwd_min_smem_bytes<32>();
        case 64: return bwd_min_smem_bytes<64>();
        case 96: return bwd_min_smem_bytes<96>();
        case 128: return bwd_min_smem_bytes<128>();
        case 192: return bwd_min_smem_bytes<192>();
        default: return bwd_min_smem_bytes<256>();
    }
}

fa_status check_layouts(const fa_params& params) {
    // The batch stride is not used for varlen, nor with one sequence.
    const bool ignore_batch_stride = params.cu_seqlens_q != nullptr || params.batch == 1;
    const struct {
        const char* name;
        const fa_tensor& t;
    } tensors[] = {{"q", params.q},       {"k", params.k},   {"v", params.v},   {"out", params.out},
                   {"dout", params.dout}, {"dq", params.dq}, {"dk", params.dk}, {"dv", params.dv}};
    for (const auto& t : tensors) {
        const fa_status s = check_tensor(t.name, t.t, ignore_batch_stride);
        if (s != FA_OK) return s;
    }
    return FA_OK;
}

}  // namespace

/* fa_supports' device-dependent refusals for fa_backward (params already passed
   fa_check_params and the capability check). */
fa_status bwd_check(const fa_params& params, const LaunchContext& ctx) {
    if (params.headdim_qk != params.headdim_v)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 cannot run fa_backward: headdim_v (%d) must equal headdim_qk (%d)",
                                 params.headdim_v, params.headdim_qk);
    if (params.headdim_qk % 8 != 0)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 cannot run fa_backward: head dim must be a multiple of 8; got %d",
                                 params.headdim_qk);
    if (params.block_table != nullptr || params.seqused_q != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 cannot run fa_backward: it does not support paged KV or seqused_q");
    if (params.batch > 65535)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 cannot run fa_backward: batch must be <= 65535 (grid z); got %d",
                                 params.batch);
    const fa_status layout = check_layouts(params);
    if (layout != FA_OK) return layout;
    const int instance = bwd::bwd_instance_head_dim(params.headdim_qk);
    const int smem = bwd_min_smem(instance);
    if (smem > ctx.max_smem_optin)
        return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                 "cuda_sm80 cannot run fa_backward: head dim %d (instance %d) needs %d bytes of shared memory per "
                                 "block; device %d allows %d",
                                 params.headdim_qk, instance, smem, ctx.device, ctx.max_smem_optin);
    return FA_OK;
}

namespace bwd {

fa_status make_bwd_params(const fa_params& params, int instance_head_dim, int block_q, void* workspace,
                          uint64_t workspace_bytes, BwdParams* out) {
    const BwdLayout l = bwd_layout(params);
    if (l.dq_dim != instance_head_dim || bwd_block_q(instance_head_dim) != block_q)
        return fa_set_last_error(FA_ERR_INTERNAL, "cuda_sm80 fa_backward: instance head dim %d does not match the problem (%d)",
                                 instance_head_dim, l.dq_dim);
    if (params.headdim_qk % 8 != 0 || params.headdim_v % 8 != 0)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: head dims must be multiples of 8; got %d / %d",
                                 params.headdim_qk, params.headdim_v);
    if (params.headdim_qk != params.headdim_v)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: headdim_v (%d) must equal headdim_qk (%d)",
                                 params.headdim_v, params.headdim_qk);
    if (workspace_bytes < l.bytes || (l.bytes > 0 && workspace == nullptr))
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "cuda_sm80 fa_backward: workspace of %" PRIu64 " bytes; needs %" PRIu64,
                                 workspace_bytes, l.bytes);
    if (params.batch > 65535 || params.nheads_kv > 65535)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: batch (%d) and nheads_kv (%d) must be <= 65535",
                                 params.batch, params.nheads_kv);
    if (params.block_table != nullptr || params.seqused_q != nullptr)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: paged KV and seqused_q are not supported");

    const fa_status layout = check_layouts(params);
    if (layout != FA_OK) return layout;

    BwdParams p{};
    p.q = params.q.data;
    p.k = params.k.data;
    p.v = params.v.data;
    p.o = params.out.data;
    p.dout = params.dout.data;
    p.dq = params.dq.data;
    p.dk = params.dk.data;
    p.dv = params.dv.data;
#define FA_BWD_STRIDES(dst, src)                     \
    p.dst##_batch_stride = params.src.batch_stride; \
    p.dst##_row_stride = params.src.row_stride;     \
    p.dst##_head_stride = params.src.head_stride;
    FA_BWD_STRIDES(q, q)
    FA_BWD_STRIDES(k, k)
    FA_BWD_STRIDES(v, v)
    FA_BWD_STRIDES(o, out)
    FA_BWD_STRIDES(do, dout)
    FA_BWD_STRIDES(dq, dq)
    FA_BWD_STRIDES(dk, dk)
    FA_BWD_STRIDES(dv, dv)
#undef FA_BWD_STRIDES
    p.lse = params.softmax_lse;
    p.lse_batch_stride = params.lse_batch_stride;
    p.lse_head_stride = params.lse_head_stride;

    auto* base = static_cast<unsigned char*>(workspace);
    p.dq_accum = reinterpret_cast<float*>(base + l.dq_accum_offset);
    p.dsum = reinterpret_cast<float*>(base + l.dsum_offset);
    p.sem = params.deterministic ? reinterpret_cast<int*>(base + l.sem_offset) : nullptr;
    p.dq_accum_dim = l.dq_dim;
    p.dq_accum_groups = l.dq_groups;
    p.sem_per_head = l.sem_per_head;

    p.batch = params.batch;
    p.seqlen_q = params.seqlen_q;
    p.seqlen_k = params.seqlen_k;
    p.nheads_q = params.nheads_q;
    p.nheads_kv = params.nheads_kv;
    p.group = params.nheads_q / params.nheads_kv;
    p.headdim = params.headdim_qk;
    p.headdim_v = params.headdim_v;
    if (l.total_q > 0x7fffffff)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "cuda_sm80 fa_backward: more than 2^31 query rows");
    p.total_q = static_cast<int>(l.total_q);

    p.scale = params.softmax_scale;
    p.scale_log2 = params.softmax_scale * 1.4426950408889634f;
    p.softcap = params.softcap;
    p.inv_softcap = params.softcap > 0.0f ? 1.0f / params.softcap : 0.0f;
    // The API's normalisation (docs/semantics.md): a side >= seqlen_k is unbounded; causal = (left, 0).
    int left = params.window_left, right = params.window_right;
    if (left >= params.seqlen_k) left = -1;
    if (right >= params.seqlen_k) right = -1;
    if (params.is_causal) right = 0;
    p.window_left = left < 0 ? -1 : left;
    p.window_right = right < 0 ? -1 : right;

    p.alibi = params.alibi_slopes;
    p.alibi_batch_stride = params.alibi_batch_stride;

    p.has_dropout = params.dropout_p > 0.0f ? 1 : 0;
    if (p.has_dropout) {
        const double t = std::floor(static_cast<double>(params.dropout_p) * 4294967296.0);
        p.drop_threshold = t >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(t);
        p.keep_scale = 1.0f / (1.0f - params.dropout_p);
    }
    p.seed = params.dropout_seed;
    p.offset = params.dropout_offset;

    p.cu_q = params.cu_seqlens_q;
    p.cu_k = params.cu_seqlens_k;
    p.seqused_k = params.seqused_k;
    p.leftpad_k = params.leftpad_k;
    p.sink = params.sink_logits;
    p.dsink = params.dsink;
    p.deterministic = params.deterministic ? 1 : 0;
    *out = p;
    return FA_OK;
}

}  // namespace bwd
}  // namespace fa_sm80
