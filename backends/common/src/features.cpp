// Features a problem uses versus features a library has: the reason supports() gives when a
// valid problem needs something the backend does not implement.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "fa_common.h"

namespace {

struct FeatureName {
    std::uint64_t bit;
    const char* name;
};

// In the order of fa_feature; the names read well in "does not support <a>, <b>".
constexpr FeatureName kFeatureNames[] = {
    {FA_FEATURE_CAUSAL, "causal"},
    {FA_FEATURE_WINDOW, "sliding window"},
    {FA_FEATURE_SOFTCAP, "softcap"},
    {FA_FEATURE_ALIBI, "ALiBi"},
    {FA_FEATURE_DROPOUT, "dropout"},
    {FA_FEATURE_GQA, "GQA/MQA (nheads_kv < nheads_q)"},
    {FA_FEATURE_VARLEN, "variable length (cu_seqlens)"},
    {FA_FEATURE_SEQUSED, "seqused_q/seqused_k"},
    {FA_FEATURE_LEFTPAD_K, "leftpad_k"},
    {FA_FEATURE_PAGED_KV, "paged KV (block_table)"},
    {FA_FEATURE_KV_APPEND, "KV append (k_new/v_new)"},
    {FA_FEATURE_ROTARY, "rotary embedding"},
    {FA_FEATURE_CACHE_BATCH_IDX, "cache_batch_idx"},
    {FA_FEATURE_SPLIT_KV, "split-KV (num_splits > 1)"},
    {FA_FEATURE_LSE, "LSE output"},
    {FA_FEATURE_DETERMINISTIC, "deterministic backward"},
    {FA_FEATURE_SINKS, "attention sinks"},
    {FA_FEATURE_HEADDIM_V, "headdim_v != headdim_qk"},
    {FA_FEATURE_FP8, "fp8 e4m3"},
    {FA_FEATURE_DROPOUT_MASK, "dropout mask output"},
};

// Appends to a fixed buffer, cutting at its end; `length` keeps counting what was needed.
struct Writer {
    char* buffer;
    std::size_t size;
    std::size_t length = 0;

    void append(const char* text) {
        const std::size_t n = std::strlen(text);
        if (length + 1 < size) {
            const std::size_t room = size - 1 - length;
            std::memcpy(buffer + length, text, n < room ? n : room);
        }
        length += n;
        if (size > 0) buffer[length < size ? length : size - 1] = '\0';
    }
};

}  // namespace

const char* fa_feature_name(std::uint64_t feature) noexcept {
    for (const auto& f : kFeatureNames) {
        if (f.bit == feature) return f.name;
    }
    return "unknown feature";
}

std::size_t fa_describe_features(std::uint64_t features, char* buffer, std::size_t size) noexcept {
    Writer out{buffer, size};
    if (size > 0) buffer[0] = '\0';
    for (const auto& f : kFeatureNames) {
        if ((features & f.bit) == 0) continue;
        if (out.length > 0) out.append(", ");
        out.append(f.name);
        features &= ~f.bit;
    }
    if (features != 0) {
        char unknown[48];
        std::snprintf(unknown, sizeof unknown, "unknown features 0x%" PRIx64, features);
        if (out.length > 0) out.append(", ");
        out.append(unknown);
    }
    return out.length;
}

std::uint64_t fa_used_features(const fa_params* params, fa_op op) noexcept {
    if (params == nullptr) return 0;
    const fa_params& p = *params;
    std::uint64_t used = 0;
    const auto use = [&used](bool condition, std::uint64_t bit) {
        if (condition) used |= bit;
    };
    use(p.is_causal != 0, FA_FEATURE_CAUSAL);
    // Causal is window (-1, 0): a window is only "used" beyond what causal already means.
    use(p.window_left >= 0 || (p.window_right >= 0 && !(p.is_causal != 0 && p.window_right == 0)), FA_FEATURE_WINDOW);
    use(p.softcap > 0.0f, FA_FEATURE_SOFTCAP);
    use(p.alibi_slopes != nullptr, FA_FEATURE_ALIBI);
    use(p.dropout_p > 0.0f, FA_FEATURE_DROPOUT);
    use(p.nheads_kv != p.nheads_q, FA_FEATURE_GQA);
    use(p.cu_seqlens_q != nullptr, FA_FEATURE_VARLEN);
    use(p.seqused_q != nullptr || p.seqused_k != nullptr, FA_FEATURE_SEQUSED);
    use(p.leftpad_k != nullptr, FA_FEATURE_LEFTPAD_K);
    use(p.block_table != nullptr, FA_FEATURE_PAGED_KV);
    use(p.k_new.data != nullptr, FA_FEATURE_KV_APPEND);
    use(p.rotary_dim > 0, FA_FEATURE_ROTARY);
    use(p.cache_batch_idx != nullptr, FA_FEATURE_CACHE_BATCH_IDX);
    use(p.num_splits > 1, FA_FEATURE_SPLIT_KV);
    use(op != FA_OP_BACKWARD && p.softmax_lse != nullptr, FA_FEATURE_LSE);
    use(op == FA_OP_BACKWARD && p.deterministic != 0, FA_FEATURE_DETERMINISTIC);
    use(p.sink_logits != nullptr, FA_FEATURE_SINKS);
    use(p.headdim_v != p.headdim_qk, FA_FEATURE_HEADDIM_V);
    use(p.dtype == FA_DTYPE_F8_E4M3, FA_FEATURE_FP8);
    use(p.dropout_mask != nullptr, FA_FEATURE_DROPOUT_MASK);
    return used;
}

fa_status fa_check_capabilities(const fa_params* params, fa_op op, const fa_capabilities* caps,
                                const char* backend_name) noexcept {
    if (params == nullptr || caps == nullptr)
        return fa_set_last_error(FA_ERR_INTERNAL, "fa_check_capabilities needs params and capabilities");
    if (op != FA_OP_FORWARD && op != FA_OP_BACKWARD && op != FA_OP_FORWARD_KVCACHE)
        return fa_set_last_error(FA_ERR_INVALID_ARGUMENT, "op must be FA_OP_FORWARD (0), FA_OP_BACKWARD (1) or FA_OP_FORWARD_KVCACHE (2); got %d",
                                 static_cast<int>(op));
    const fa_params& p = *params;
    const char* backend = backend_name != nullptr ? backend_name : "this backend";

    // Every reason is collected, so one message lists all that is missing.
    char message[FA_LAST_ERROR_CAPACITY];
    Writer out{message, sizeof message};
    char part[640];
    const auto reason = [&](const char* text) {
        out.append(out.length == 0 ? "" : "; ");
        out.append(text);
    };

    const unsigned dtype = static_cast<unsigned>(p.dtype);
    if (dtype >= 32 || (caps->dtypes & (1u << dtype)) == 0) {
        std::snprintf(part, sizeof part, "it does not support dtype %s", fa_dtype_name(p.dtype));
        reason(part);
    }
    const int headdim = p.headdim_qk > p.headdim_v ? p.headdim_qk : p.headdim_v;
    if (headdim > caps->max_headdim) {
        std::snprintf(part, sizeof part, "it supports head dims up to %d; got %d", caps->max_headdim, headdim);
        reason(part);
    }
    if (caps->headdim_align > 1 && (p.headdim_qk % caps->headdim_align != 0 || p.headdim_v % caps->headdim_align != 0)) {
        std::snprintf(part, sizeof part, "it needs head dims that are multiples of %d (the managed API pads); got %d/%d",
                      caps->headdim_align, p.headdim_qk, p.headdim_v);
        reason(part);
    }
    if (p.block_table != nullptr && caps->page_size_align > 1 && p.page_size % caps->page_size_align != 0) {
        std::snprintf(part, sizeof part, "it needs page_size to be a multiple of %d; got %d", caps->page_size_align, p.page_size);
        reason(part);
    }
    if (p.num_splits > caps->max_splits) {
        std::snprintf(part, sizeof part, "it splits KV at most %d ways; got num_splits %d", caps->max_splits, p.num_splits);
        reason(part);
    }
    const std::uint64_t missing = fa_used_features(params, op) & ~caps->features[op];
    if (missing != 0) {
        char names[512];
        fa_describe_features(missing, names, sizeof names);
        std::snprintf(part, sizeof part, "it does not support %s", names);
        reason(part);
    }

    if (out.length == 0) {
        fa_clear_last_error();
        return FA_OK;
    }
    return fa_set_last_error(FA_ERR_UNSUPPORTED, "%s cannot run %s: %s", backend, fa_op_name(op), message);
}
