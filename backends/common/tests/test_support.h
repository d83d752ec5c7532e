// Shared by the fa_common tests and the backends' API tests: a valid fa_params per entry point. Pointers point at a static
// buffer and are never dereferenced (the checks only look at NULL / non-NULL).
#ifndef FA_COMMON_TEST_SUPPORT_H
#define FA_COMMON_TEST_SUPPORT_H

#include "fa_common.h"

namespace fa_test {

// Distinct, 256-byte-aligned addresses: backends refuse misaligned tensors (cuda_sm80 wants 16 bytes).
inline void* fake_pointer(int index) {
    alignas(256) static char storage[64 * 256];
    return &storage[index * 256];
}

inline fa_tensor dense_tensor(int index, int nheads, int headdim, int seqlen) {
    fa_tensor t{};
    t.data = fake_pointer(index);
    t.head_stride = headdim;
    t.row_stride = static_cast<int64_t>(nheads) * headdim;
    t.batch_stride = t.row_stride * seqlen;
    return t;
}

// batch 2, seqlen 128 x 256, 12 query heads over 4 KV heads (GQA), head dim 128, bf16.
inline fa_params valid_params(fa_op op) {
    fa_params p{};
    p.struct_size = sizeof(fa_params);
    p.abi_version = FA_ABI_VERSION;
    p.dtype = FA_DTYPE_BF16;
    p.out_dtype = FA_DTYPE_BF16;
    p.batch = 2;
    p.seqlen_q = 128;
    p.seqlen_k = 256;
    p.nheads_q = 12;
    p.nheads_kv = 4;
    p.headdim_qk = 128;
    p.headdim_v = 128;
    p.total_q = p.batch * p.seqlen_q;
    p.total_k = p.batch * p.seqlen_k;
    p.kv_batch = p.batch;
    p.q = dense_tensor(0, p.nheads_q, p.headdim_qk, p.seqlen_q);
    p.k = dense_tensor(1, p.nheads_kv, p.headdim_qk, p.seqlen_k);
    p.v = dense_tensor(2, p.nheads_kv, p.headdim_v, p.seqlen_k);
    p.out = dense_tensor(3, p.nheads_q, p.headdim_v, p.seqlen_q);
    p.softmax_scale = 0.08838835f;  // 1/sqrt(128)
    p.window_left = -1;
    p.window_right = -1;
    p.num_splits = 1;
    if (op == FA_OP_BACKWARD) {
        p.dout = dense_tensor(4, p.nheads_q, p.headdim_v, p.seqlen_q);
        p.dq = dense_tensor(5, p.nheads_q, p.headdim_qk, p.seqlen_q);
        p.dk = dense_tensor(6, p.nheads_kv, p.headdim_qk, p.seqlen_k);
        p.dv = dense_tensor(7, p.nheads_kv, p.headdim_v, p.seqlen_k);
        p.softmax_lse = static_cast<float*>(fake_pointer(8));
        p.lse_head_stride = p.seqlen_q;
        p.lse_batch_stride = static_cast<int64_t>(p.nheads_q) * p.seqlen_q;
    }
    if (op == FA_OP_FORWARD_KVCACHE) {
        p.seqlen_q = 1;
        p.total_q = p.batch;
        p.cache_seqlens = static_cast<const int32_t*>(fake_pointer(9));
        p.seqlen_new = 1;
        p.k_new = dense_tensor(10, p.nheads_kv, p.headdim_qk, 1);
        p.v_new = dense_tensor(11, p.nheads_kv, p.headdim_v, 1);
    }
    return p;
}

}  // namespace fa_test

#endif  // FA_COMMON_TEST_SUPPORT_H
