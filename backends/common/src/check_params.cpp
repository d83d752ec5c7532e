// fa_check_params: the host-side validation every native library runs on an fa_params before
// it touches the device. Each check names the field, what it must be and what it was, so the
// managed side can show the message as is. Checks run in the order of the struct, one failure
// reported per call.
#include <cinttypes>
#include <cmath>
#include <cstring>

#include "fa_common.h"
// static_asserts that the compiler lays fa_params out as libclang did for the C# bindings.
#include "flash_attn_abi_layout.g.h"

namespace {

constexpr int kMaxHeaddim = 256;
constexpr int kMaxSplits = 256;
constexpr int kRotaryDimMultiple = 16;
// A longer struct than this library's is scanned for non-zero unknown fields; a struct_size
// beyond this margin is not a newer layout but garbage, and is refused without reading it.
constexpr std::size_t kMaxStructGrowth = 4096;

#define FA_INVALID(...) fa_set_last_error(FA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

bool is_flag(int32_t value) { return value == 0 || value == 1; }

fa_status check_flag(const char* field, int32_t value) {
    if (!is_flag(value)) return FA_INVALID("fa_params.%s must be 0 or 1; got %d", field, value);
    return FA_OK;
}

fa_status check_non_negative(const char* field, int64_t value) {
    if (value < 0) return FA_INVALID("fa_params.%s must be >= 0; got %" PRId64, field, value);
    return FA_OK;
}

fa_status check_strides(const char* tensor, const fa_tensor& t) {
    const struct {
        const char* name;
        int64_t value;
    } strides[] = {{"batch_stride", t.batch_stride}, {"row_stride", t.row_stride}, {"head_stride", t.head_stride}};
    for (const auto& stride : strides) {
        if (stride.value < 0)
            return FA_INVALID("fa_params.%s.%s must be >= 0; got %" PRId64, tensor, stride.name, stride.value);
    }
    return FA_OK;
}

/* `rows`: how many rows the tensor has; a tensor with none (an empty allocation) may be NULL. */
fa_status require_tensor(const char* tensor, const fa_tensor& t, fa_op op, int64_t rows) {
    if (t.data == nullptr && rows > 0)
        return FA_INVALID("fa_params.%s.data must not be NULL for %s (it has %" PRId64 " rows)", tensor, fa_op_name(op), rows);
    return FA_OK;
}

bool is_attention_dtype(int dtype) {
    return dtype == FA_DTYPE_F16 || dtype == FA_DTYPE_BF16 || dtype == FA_DTYPE_F32 || dtype == FA_DTYPE_F8_E4M3;
}

fa_status check_header(const fa_params& p) {
    if (p.abi_version != FA_ABI_VERSION)
        return fa_set_last_error(FA_ERR_ABI_MISMATCH,
                                 "fa_params.abi_version must be %d (this library's FA_ABI_VERSION); got %" PRIu32,
                                 FA_ABI_VERSION, p.abi_version);
    if (p.struct_size < sizeof(fa_params))
        return fa_set_last_error(FA_ERR_ABI_MISMATCH,
                                 "fa_params.struct_size must be at least %zu (sizeof(fa_params) in ABI version %d); got %" PRIu32,
                                 sizeof(fa_params), FA_ABI_VERSION, p.struct_size);
    if (p.struct_size > sizeof(fa_params) + kMaxStructGrowth)
        return fa_set_last_error(FA_ERR_ABI_MISMATCH,
                                 "fa_params.struct_size must be about sizeof(fa_params) (%zu in ABI version %d); got %" PRIu32,
                                 sizeof(fa_params), FA_ABI_VERSION, p.struct_size);
    // A newer caller may pass a longer struct; that is fine only while the fields this library
    // does not know are all zero (the ABI rule: a field not understood must be zero).
    const auto* bytes = reinterpret_cast<const unsigned char*>(&p);
    for (std::size_t i = sizeof(fa_params); i < p.struct_size; ++i) {
        if (bytes[i] != 0)
            return fa_set_last_error(FA_ERR_ABI_MISMATCH,
                                     "fa_params.struct_size is %" PRIu32 ", longer than this library's %zu, and byte %zu past the end is not 0: "
                                     "the caller uses a field this library does not know",
                                     p.struct_size, sizeof(fa_params), i);
    }
    if (p.reserved_pad0 != 0) return FA_INVALID("fa_params.reserved_pad0 must be 0; got %" PRIu32, p.reserved_pad0);
    for (std::size_t i = 0; i < sizeof p.reserved / sizeof p.reserved[0]; ++i) {
        if (p.reserved[i] != 0) return FA_INVALID("fa_params.reserved[%zu] must be 0; got %" PRIu64, i, p.reserved[i]);
    }
    return FA_OK;
}

fa_status check_sizes(const fa_params& p) {
    if (!is_attention_dtype(p.dtype))
        return FA_INVALID("fa_params.dtype must be FA_DTYPE_F16 (1), FA_DTYPE_BF16 (2), FA_DTYPE_F32 (3) or FA_DTYPE_F8_E4M3 (4); got %d",
                          static_cast<int>(p.dtype));
    const fa_dtype expected_out = p.dtype == FA_DTYPE_F8_E4M3 ? FA_DTYPE_BF16 : p.dtype;
    if (p.out_dtype != expected_out)
        return FA_INVALID("fa_params.out_dtype must be %d (%s) for dtype %s; got %d", static_cast<int>(expected_out),
                          fa_dtype_name(expected_out), fa_dtype_name(p.dtype), static_cast<int>(p.out_dtype));
    if (p.batch < 1) return FA_INVALID("fa_params.batch must be >= 1; got %d", p.batch);
    FA_TRY(check_non_negative("seqlen_q", p.seqlen_q));
    FA_TRY(check_non_negative("seqlen_k", p.seqlen_k));
    if (p.nheads_q < 1) return FA_INVALID("fa_params.nheads_q must be >= 1; got %d", p.nheads_q);
    if (p.nheads_kv < 1) return FA_INVALID("fa_params.nheads_kv must be >= 1; got %d", p.nheads_kv);
    if (p.nheads_q % p.nheads_kv != 0)
        return FA_INVALID("fa_params.nheads_kv must divide nheads_q (%d); got %d", p.nheads_q, p.nheads_kv);
    if (p.headdim_qk < 1 || p.headdim_qk > kMaxHeaddim)
        return FA_INVALID("fa_params.headdim_qk must be in 1..%d; got %d", kMaxHeaddim, p.headdim_qk);
    if (p.headdim_v < 1 || p.headdim_v > kMaxHeaddim)
        return FA_INVALID("fa_params.headdim_v must be in 1..%d; got %d", kMaxHeaddim, p.headdim_v);
    FA_TRY(check_non_negative("total_q", p.total_q));
    FA_TRY(check_non_negative("total_k", p.total_k));
    FA_TRY(check_non_negative("kv_batch", p.kv_batch));
    return FA_OK;
}

fa_status check_tensors(const fa_params& p, fa_op op) {
    // q-side rows: total_q; k-side rows: total_k, except that a KV cache always has its capacity.
    const int64_t q_rows = p.total_q;
    const int64_t k_rows = op == FA_OP_FORWARD_KVCACHE ? static_cast<int64_t>(p.kv_batch) * (p.block_table ? p.page_size : p.seqlen_k)
                                                       : p.total_k;
    FA_TRY(require_tensor("q", p.q, op, q_rows));
    FA_TRY(require_tensor("k", p.k, op, k_rows));
    FA_TRY(require_tensor("v", p.v, op, k_rows));
    FA_TRY(require_tensor("out", p.out, op, q_rows));
    if (op == FA_OP_BACKWARD) {
        FA_TRY(require_tensor("dout", p.dout, op, q_rows));
        if (p.softmax_lse == nullptr && q_rows > 0)
            return FA_INVALID("fa_params.softmax_lse must not be NULL for fa_backward (the forward's LSE is an input)");
        FA_TRY(require_tensor("dq", p.dq, op, q_rows));
        FA_TRY(require_tensor("dk", p.dk, op, k_rows));
        FA_TRY(require_tensor("dv", p.dv, op, k_rows));
    }

    const struct {
        const char* name;
        const fa_tensor& tensor;
    } tensors[] = {{"q", p.q},   {"k", p.k},   {"v", p.v},   {"out", p.out},     {"dout", p.dout},
                   {"dq", p.dq}, {"dk", p.dk}, {"dv", p.dv}, {"k_new", p.k_new}, {"v_new", p.v_new}};
    for (const auto& t : tensors) FA_TRY(check_strides(t.name, t.tensor));
    FA_TRY(check_non_negative("lse_batch_stride", p.lse_batch_stride));
    FA_TRY(check_non_negative("lse_head_stride", p.lse_head_stride));
    return FA_OK;
}

fa_status check_scores(const fa_params& p) {
    if (!std::isfinite(p.softmax_scale))
        return FA_INVALID("fa_params.softmax_scale must be finite; got %g", static_cast<double>(p.softmax_scale));
    if (!(p.softcap >= 0.0f) || !std::isfinite(p.softcap))
        return FA_INVALID("fa_params.softcap must be 0 (off) or a finite positive value; got %g", static_cast<double>(p.softcap));
    FA_TRY(check_flag("is_causal", p.is_causal));
    if (p.window_left < -1)
        return FA_INVALID("fa_params.window_left must be -1 (unbounded) or >= 0; got %d", p.window_left);
    if (p.window_right < -1)
        return FA_INVALID("fa_params.window_right must be -1 (unbounded) or >= 0; got %d", p.window_right);
    FA_TRY(check_flag("deterministic", p.deterministic));
    FA_TRY(check_non_negative("alibi_batch_stride", p.alibi_batch_stride));

    if (!(p.dropout_p >= 0.0f && p.dropout_p < 1.0f))
        return FA_INVALID("fa_params.dropout_p must be in [0, 1); got %g", static_cast<double>(p.dropout_p));
    if (p.softcap > 0.0f && p.dropout_p > 0.0f)
        return FA_INVALID("fa_params.softcap (%g) cannot be combined with dropout (dropout_p = %g); set one of them to 0",
                          static_cast<double>(p.softcap), static_cast<double>(p.dropout_p));

    if (p.dsink != nullptr && p.sink_logits == nullptr)
        return FA_INVALID("fa_params.dsink requires sink_logits (the gradient is of those logits)");

    const struct {
        const char* name;
        const float* pointer;
    } descales[] = {{"q_descale", p.q_descale}, {"k_descale", p.k_descale}, {"v_descale", p.v_descale}};
    for (const auto& d : descales) {
        if (d.pointer != nullptr && p.dtype != FA_DTYPE_F8_E4M3)
            return FA_INVALID("fa_params.%s applies to dtype e4m3 (FA_DTYPE_F8_E4M3) only; dtype is %s", d.name, fa_dtype_name(p.dtype));
    }
    FA_TRY(check_non_negative("descale_batch_stride", p.descale_batch_stride));
    FA_TRY(check_non_negative("descale_head_stride", p.descale_head_stride));
    return FA_OK;
}

fa_status check_varlen_and_paging(const fa_params& p) {
    if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr))
        return FA_INVALID("fa_params.cu_seqlens_q and cu_seqlens_k must be given together; %s is NULL",
                          p.cu_seqlens_q == nullptr ? "cu_seqlens_q" : "cu_seqlens_k");
    if (p.block_table != nullptr) {
        if (p.page_size < 1) return FA_INVALID("fa_params.page_size must be >= 1 with a block_table; got %d", p.page_size);
        if (p.max_pages_per_seq < 1)
            return FA_INVALID("fa_params.max_pages_per_seq must be >= 1 with a block_table; got %d", p.max_pages_per_seq);
        FA_TRY(check_non_negative("block_table_batch_stride", p.block_table_batch_stride));
        if (p.cache_batch_idx != nullptr)
            return FA_INVALID("fa_params.cache_batch_idx cannot be combined with block_table (a paged cache is addressed through the block table)");
    }
    return FA_OK;
}

fa_status check_kvcache(const fa_params& p, fa_op op) {
    const bool kvcache = op == FA_OP_FORWARD_KVCACHE;
    if (kvcache && p.cache_seqlens == nullptr)
        return FA_INVALID("fa_params.cache_seqlens must not be NULL for fa_forward_kvcache");

    // Fields only fa_forward_kvcache reads: another entry point would silently ignore them.
    if (!kvcache) {
        if (p.cache_seqlens != nullptr) return FA_INVALID("fa_params.cache_seqlens applies to fa_forward_kvcache only; got it for %s", fa_op_name(op));
        if (p.cache_batch_idx != nullptr) return FA_INVALID("fa_params.cache_batch_idx applies to fa_forward_kvcache only; got it for %s", fa_op_name(op));
        if (p.k_new.data != nullptr || p.v_new.data != nullptr)
            return FA_INVALID("fa_params.k_new/v_new apply to fa_forward_kvcache only; got them for %s", fa_op_name(op));
        if (p.rotary_dim != 0) return FA_INVALID("fa_params.rotary_dim applies to fa_forward_kvcache only; got %d for %s", p.rotary_dim, fa_op_name(op));
    }

    if ((p.k_new.data == nullptr) != (p.v_new.data == nullptr))
        return FA_INVALID("fa_params.k_new and v_new must be given together; %s.data is NULL", p.k_new.data == nullptr ? "k_new" : "v_new");
    FA_TRY(check_non_negative("seqlen_new", p.seqlen_new));
    if (p.seqlen_new > 0 && p.k_new.data == nullptr)
        return FA_INVALID("fa_params.k_new.data must not be NULL when seqlen_new (%d) > 0", p.seqlen_new);

    if (p.rotary_dim < 0 || p.rotary_dim % kRotaryDimMultiple != 0)
        return FA_INVALID("fa_params.rotary_dim must be 0 (off) or a positive multiple of %d; got %d", kRotaryDimMultiple, p.rotary_dim);
    if (p.rotary_dim > p.headdim_qk)
        return FA_INVALID("fa_params.rotary_dim must be <= headdim_qk (%d); got %d", p.headdim_qk, p.rotary_dim);
    if ((p.rotary_cos == nullptr) != (p.rotary_sin == nullptr))
        return FA_INVALID("fa_params.rotary_cos and rotary_sin must be given together; %s is NULL",
                          p.rotary_cos == nullptr ? "rotary_cos" : "rotary_sin");
    if (p.rotary_dim > 0 && p.rotary_cos == nullptr)
        return FA_INVALID("fa_params.rotary_cos/rotary_sin must not be NULL when rotary_dim (%d) > 0", p.rotary_dim);
    if (p.rotary_dim == 0 && p.rotary_cos != nullptr)
        return FA_INVALID("fa_params.rotary_cos/rotary_sin are set but rotary_dim is 0; set rotary_dim to the rotated width");
    FA_TRY(check_non_negative("seqlen_rotary", p.seqlen_rotary));
    FA_TRY(check_flag("rotary_interleaved", p.rotary_interleaved));
    return FA_OK;
}

fa_status check_execution(const fa_params& p) {
    if (p.num_splits < 0 || p.num_splits > kMaxSplits)
        return FA_INVALID("fa_params.num_splits must be in 0..%d (0 = heuristic); got %d", kMaxSplits, p.num_splits);
    FA_TRY(check_non_negative("device", p.device));
    if (p.workspace != nullptr && p.workspace_bytes == 0)
        return FA_INVALID("fa_params.workspace_bytes must be > 0 when workspace is set; got 0");
    return FA_OK;
}

}  // namespace

fa_status fa_check_params(const fa_params* params, fa_op op) noexcept {
    if (params == nullptr) return FA_INVALID("fa_params must not be NULL");
    if (op != FA_OP_FORWARD && op != FA_OP_BACKWARD && op != FA_OP_FORWARD_KVCACHE)
        return FA_INVALID("op must be FA_OP_FORWARD (0), FA_OP_BACKWARD (1) or FA_OP_FORWARD_KVCACHE (2); got %d", static_cast<int>(op));
    const fa_params& p = *params;
    FA_TRY(check_header(p));
    FA_TRY(check_sizes(p));
    FA_TRY(check_tensors(p, op));
    FA_TRY(check_scores(p));
    FA_TRY(check_varlen_and_paging(p));
    FA_TRY(check_kvcache(p, op));
    FA_TRY(check_execution(p));
    fa_clear_last_error();
    return FA_OK;
}
