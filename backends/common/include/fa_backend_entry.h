/*
 * fa_backend_entry.h — pieces of a native library's C entry points that depend on no GPU
 * runtime, so that a CUDA, a HIP and any later backend write them once:
 *
 *   fa_entry::get_capabilities   the body of fa_get_capabilities (pointer and struct_size checks)
 *   fa_entry::supports           the body of fa_supports (guarded, reason copied or cleared)
 *   fa_entry::check_layout_16b   the rule of kernels that move rows in 16-byte pieces
 *   fa_entry::caller_workspace   whether the caller's workspace serves a call
 *   fa_entry::normalise_window   docs/semantics.md "Normalisation" of the window
 *   fa_entry::packed_gqa_group   when a kv-cache kernel packs a GQA group into one tile
 *
 * Header-only and noexcept like fa_common.h; usable from host code built by any compiler
 * (g++, nvcc, hip-clang).
 */
#ifndef FA_BACKEND_ENTRY_H
#define FA_BACKEND_ENTRY_H

#include <cinttypes>
#include <cstdint>
#include <cstring>

#include "fa_common.h"
#include "flash_attn_abi.h"

namespace fa_entry {

/* fa_get_capabilities: `fill(caps)` writes the library's capabilities once the pointer and the
   caller's struct_size are checked. */
template <typename Fill>
fa_status get_capabilities(fa_capabilities* caps, Fill&& fill) noexcept {
    return fa_guarded([&]() -> fa_status {
        fa_clear_last_error();
        if (caps == nullptr) return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "fa_get_capabilities: caps must not be NULL");
        if (caps->struct_size != 0 && caps->struct_size < sizeof(fa_capabilities))
            return fa_set_last_error(FA_ERR_ABI_MISMATCH, "fa_capabilities.struct_size must be 0 or at least %zu; got %" PRIu32,
                                     sizeof(fa_capabilities), caps->struct_size);
        fill(caps);
        return FA_OK;
    });
}

/* fa_supports: runs `check()` (returning fa_status) guarded, and leaves "" or the reason in
   the caller's buffer. */
template <typename Check>
fa_status supports(char* reason, std::size_t reason_size, Check&& check) noexcept {
    const fa_status status = fa_guarded([&]() -> fa_status {
        fa_clear_last_error();
        return check();
    });
    if (reason != nullptr && reason_size > 0) {
        if (status == FA_OK)
            reason[0] = '\0';
        else
            fa_copy_last_error(reason, reason_size);
    }
    return status;
}

/* Kernels that read and write rows in 16-byte pieces need the base 16-byte aligned and every
   stride a multiple of 16 bytes (8 elements of 2 bytes, 16 of 1); FA_ERR_UNSUPPORTED naming the field otherwise. */
inline fa_status check_layout_16b(const char* backend, const char* name, const fa_tensor& t, fa_op op, int elem_bytes = 2) noexcept {
    if (t.data == nullptr) return FA_OK;
    if ((reinterpret_cast<std::uintptr_t>(t.data) & 15u) != 0)
        return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: fa_params.%s.data must be 16-byte aligned; got %p", backend,
                                 fa_op_name(op), name, t.data);
    const struct {
        const char* field;
        int64_t value;
    } strides[] = {{"batch_stride", t.batch_stride}, {"row_stride", t.row_stride}, {"head_stride", t.head_stride}};
    const int per_16b = 16 / elem_bytes;
    for (const auto& s : strides) {
        if (s.value % per_16b != 0)
            return fa_set_last_error(FA_ERR_UNSUPPORTED,
                                     "%s cannot run %s: fa_params.%s.%s must be a multiple of %d elements (16-byte rows); got %" PRId64,
                                     backend, fa_op_name(op), name, s.field, per_16b, s.value);
    }
    return FA_OK;
}

/* Whether the caller's workspace serves a call needing `needed` bytes: FA_OK with *use = true when
   p.workspace holds them, FA_OK with *use = false when the caller gave none (the library then
   allocates), FA_ERR_INVALID_ARGUMENT when it is too small. */
inline fa_status caller_workspace(const fa_params& p, uint64_t needed, bool* use) noexcept {
    *use = false;
    if (needed == 0 || p.workspace == nullptr) return FA_OK;
    if (p.workspace_bytes < needed)
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT,
                                 "fa_params.workspace_bytes must be at least %" PRIu64 " (fa_workspace_size); got %" PRIu64, needed,
                                 p.workspace_bytes);
    *use = true;
    return FA_OK;
}

/* The window as kernels use it: causal is right = 0, and a side >= seqlen_k (dense sk, varlen
   maximum, kv-cache capacity) is unbounded (-1). The managed API normally did this already;
   doing it again is harmless. */
inline void normalise_window(const fa_params& p, int& left, int& right) noexcept {
    left = p.window_left;
    right = p.is_causal ? 0 : p.window_right;
    if (left >= p.seqlen_k) left = -1;
    if (right >= p.seqlen_k) right = -1;
}

/* Packed GQA, the rule of every GPU backend's kv-cache forward: a tile (block) holds the query heads of one kv
   head (tile row m = query row m / group of head hk·group + m % group), so the group streams K/V once instead of
   once per query head (on an H100 the unpacked kernels reached 14–25 % of the copy bandwidth at a group of 8).
   Not with ALiBi, whose slope the kernels take per tile. Returns the group, or 1 for no packing. */
inline int packed_gqa_group(const fa_params& p, fa_op op) noexcept {
    const int group = p.nheads_q / p.nheads_kv;
    return op == FA_OP_FORWARD_KVCACHE && group > 1 && p.alibi_slopes == nullptr ? group : 1;
}

}  // namespace fa_entry

#endif /* FA_BACKEND_ENTRY_H */
