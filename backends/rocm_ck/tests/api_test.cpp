// Host-only tests of libfa_rocm_ck's C entry points: what fa_get_capabilities claims and how
// fa_supports refuses what it cannot run, each with a reason naming the cause. None needs an
// AMD GPU: fa_supports checks the problem and the build before it asks the HIP runtime for a
// device, so on a machine without one a valid problem is refused only for the device ("needs a
// ROCm (HIP) device"), and fa_forward fails the same way instead of crashing.
#include <cstdint>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "flash_attn_abi.h"
#include "test_support.h"

namespace {

using fa_test::dense_tensor;
using fa_test::fake_pointer;

// batch 2, 128 x 256, 12 query heads over 4 kv heads, head dim 128, bf16.
fa_params valid_forward() { return fa_test::valid_params(FA_OP_FORWARD); }
fa_params valid_kvcache() { return fa_test::valid_params(FA_OP_FORWARD_KVCACHE); }
fa_params valid_backward() { return fa_test::valid_params(FA_OP_BACKWARD); }

struct Answer {
    fa_status status;
    std::string reason;
};

Answer ask(const fa_params& p, fa_op op) {
    char reason[1024];
    std::memset(reason, 'x', sizeof reason);
    const fa_status status = fa_supports(&p, op, reason, sizeof reason);
    return {status, std::string(reason)};
}

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// Refused only for want of a device, or of an instance the FA_HDIMS / FA_DTYPES filters left out.
bool refused_only_for_environment(const Answer& a) {
    return a.status == FA_OK ||
           (a.status == FA_ERR_UNSUPPORTED && (contains(a.reason, "device") || contains(a.reason, "instance")));
}

fa_capabilities capabilities() {
    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    EXPECT_EQ(fa_get_capabilities(&caps), FA_OK) << fa_last_error();
    return caps;
}

TEST(RocmCkApi, NameAndAbiVersion) {
    EXPECT_EQ(fa_abi_version(), static_cast<uint32_t>(FA_ABI_VERSION));
    EXPECT_STREQ(fa_backend_name(), "rocm_ck");
}

TEST(RocmCkApi, CapabilitiesAreTruthful) {
    const fa_capabilities caps = capabilities();
    const uint32_t allowed = (1u << FA_DTYPE_F16) | (1u << FA_DTYPE_BF16);
    EXPECT_NE(caps.dtypes, 0u);
    EXPECT_EQ(caps.dtypes & ~allowed, 0u) << "only fp16/bf16 kernels exist";
    EXPECT_EQ(caps.max_headdim, 256);
    EXPECT_EQ(caps.headdim_align, 8);
    EXPECT_EQ(caps.page_size_align, 1);
    EXPECT_GE(caps.max_splits, 2);
    EXPECT_STREQ(caps.archs, FA_CK_EXPECTED_ARCHS) << "the gfx targets this build compiled";

    const uint64_t fwd = caps.features[FA_OP_FORWARD];
    for (uint64_t bit : {FA_FEATURE_CAUSAL, FA_FEATURE_WINDOW, FA_FEATURE_SOFTCAP, FA_FEATURE_ALIBI, FA_FEATURE_DROPOUT,
                         FA_FEATURE_GQA, FA_FEATURE_VARLEN, FA_FEATURE_SEQUSED, FA_FEATURE_LEFTPAD_K, FA_FEATURE_PAGED_KV,
                         FA_FEATURE_SPLIT_KV, FA_FEATURE_LSE, FA_FEATURE_SINKS}) {
        EXPECT_NE(fwd & bit, 0u) << "forward should claim feature bit " << bit;
    }
    for (uint64_t bit : {FA_FEATURE_FP8, FA_FEATURE_HEADDIM_V, FA_FEATURE_DROPOUT_MASK, FA_FEATURE_KV_APPEND, FA_FEATURE_ROTARY}) {
        EXPECT_EQ(fwd & bit, 0u) << "forward must not claim feature bit " << bit;
    }
    const uint64_t kv = caps.features[FA_OP_FORWARD_KVCACHE];
    for (uint64_t bit : {FA_FEATURE_KV_APPEND, FA_FEATURE_ROTARY, FA_FEATURE_PAGED_KV, FA_FEATURE_CACHE_BATCH_IDX, FA_FEATURE_SPLIT_KV})
        EXPECT_NE(kv & bit, 0u) << "kv cache should claim feature bit " << bit;
    EXPECT_EQ(kv & (FA_FEATURE_DROPOUT | FA_FEATURE_VARLEN), 0u);
    const uint64_t bwd = caps.features[FA_OP_BACKWARD];
    if (bwd != 0) {
        EXPECT_NE(bwd & FA_FEATURE_DETERMINISTIC, 0u) << "the backward has no atomics";
        EXPECT_EQ(bwd & FA_FEATURE_PAGED_KV, 0u);
    }
}

TEST(RocmCkApi, CapabilitiesNeedAPointer) {
    EXPECT_EQ(fa_get_capabilities(nullptr), FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(fa_last_error(), "caps"));
}

TEST(RocmCkApi, ValidProblemsAreRefusedOnlyForTheEnvironment) {
    for (fa_op op : {FA_OP_FORWARD, FA_OP_FORWARD_KVCACHE, FA_OP_BACKWARD}) {
        const Answer a = ask(fa_test::valid_params(op), op);
        EXPECT_TRUE(refused_only_for_environment(a)) << "op " << static_cast<int>(op) << ": " << a.status << ": " << a.reason;
        if (a.status == FA_OK) {
            EXPECT_EQ(a.reason, "");
        }
    }
}

TEST(RocmCkApi, NullParamsAreInvalid) {
    char reason[256];
    EXPECT_EQ(fa_supports(nullptr, FA_OP_FORWARD, reason, sizeof reason), FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(reason, "fa_params")) << reason;
    EXPECT_EQ(fa_forward(nullptr), FA_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(fa_backward(nullptr), FA_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(fa_forward_kvcache(nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(RocmCkApi, AbiMismatchIsNamed) {
    fa_params p = valid_forward();
    p.abi_version = FA_ABI_VERSION + 1;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_ABI_MISMATCH);
    EXPECT_TRUE(contains(a.reason, "abi_version")) << a.reason;
}

TEST(RocmCkApi, InvalidParamsAreNamedBeforeAnyDeviceQuery) {
    fa_params p = valid_forward();
    p.nheads_kv = 5;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(a.reason, "nheads_kv")) << a.reason;
}

TEST(RocmCkApi, RefusesFp32AndFp8) {
    fa_params p = valid_forward();
    p.dtype = p.out_dtype = FA_DTYPE_F32;
    Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dtype fp32")) << a.reason;

    p = valid_forward();
    p.dtype = FA_DTYPE_F8_E4M3;
    p.out_dtype = FA_DTYPE_BF16;
    a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "rocm_ck")) << a.reason;
}

TEST(RocmCkApi, RefusesAsymmetricHeadDims) {
    fa_params p = valid_forward();
    p.headdim_qk = 192;
    p.q = dense_tensor(0, p.nheads_q, 192, p.seqlen_q);
    p.k = dense_tensor(1, p.nheads_kv, 192, p.seqlen_k);
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "headdim_v")) << a.reason;
}

TEST(RocmCkApi, RefusesHeadDimsNotMultipleOf8) {
    fa_params p = valid_forward();
    p.headdim_qk = p.headdim_v = 100;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "multiples of 8")) << a.reason;
}

TEST(RocmCkApi, RefusesSequsedQ) {
    fa_params p = valid_forward();
    p.seqused_q = static_cast<const int32_t*>(fake_pointer(11));
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "seqused_q")) << a.reason;
}

TEST(RocmCkApi, RefusesDropoutMaskOutput) {
    fa_params p = valid_forward();
    p.dropout_p = 0.1f;
    p.dropout_mask = static_cast<uint8_t*>(fake_pointer(12));
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dropout mask")) << a.reason;
}

TEST(RocmCkApi, RefusesDropoutInTheKvCacheAndTheSplitKernel) {
    fa_params p = valid_kvcache();
    p.dropout_p = 0.1f;
    Answer a = ask(p, FA_OP_FORWARD_KVCACHE);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dropout")) << a.reason;

    p = valid_forward();
    p.dropout_p = 0.1f;
    p.num_splits = 2;
    a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "split-KV")) << a.reason;
}

TEST(RocmCkApi, RefusesVarlenInTheKvCache) {
    fa_params p = valid_kvcache();
    p.cu_seqlens_q = static_cast<const int32_t*>(fake_pointer(13));
    p.cu_seqlens_k = static_cast<const int32_t*>(fake_pointer(14));
    const Answer a = ask(p, FA_OP_FORWARD_KVCACHE);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "variable length")) << a.reason;
}

TEST(RocmCkApi, RefusesPagedKvInTheBackward) {
    fa_params p = valid_backward();
    p.block_table = static_cast<const int32_t*>(fake_pointer(15));
    p.page_size = 16;
    p.max_pages_per_seq = 16;
    const Answer a = ask(p, FA_OP_BACKWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "paged KV")) << a.reason;
}

TEST(RocmCkApi, RefusesStridesThatBreak16ByteRows) {
    fa_params p = valid_forward();
    p.k.row_stride += 4;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "k.row_stride")) << a.reason;
    EXPECT_TRUE(contains(a.reason, "multiple of 8")) << a.reason;
}

TEST(RocmCkApi, RefusesMisalignedPointers) {
    fa_params p = valid_backward();
    p.dq.data = static_cast<char*>(p.dq.data) + 2;
    const Answer a = ask(p, FA_OP_BACKWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dq.data must be 16-byte aligned")) << a.reason;
}

TEST(RocmCkApi, WorkspaceSizesFollowThePlan) {
    uint64_t bytes = 1;
    fa_params p = valid_forward();
    if (fa_workspace_size(&p, FA_OP_FORWARD, &bytes) == FA_OK) {
        EXPECT_EQ(bytes, 0u) << "the dense forward needs no scratch";
    }

    fa_params kv = valid_kvcache();
    kv.num_splits = 4; /* explicit: no device query needed */
    if (fa_workspace_size(&kv, FA_OP_FORWARD_KVCACHE, &bytes) == FA_OK) {
        // 24 rows (12 heads x 2 queries) x 4 splits: partial O 24*4*128 floats (49152 B), LSE 24*4 floats.
        EXPECT_EQ(bytes, 49152u + 384u);
    }
    fa_params bwd = valid_backward();
    if (fa_workspace_size(&bwd, FA_OP_BACKWARD, &bytes) == FA_OK) {
        EXPECT_EQ(bytes, 12u * 256u * 4u) << "D: one float per (query head, row)";
    }
    EXPECT_EQ(fa_workspace_size(&kv, FA_OP_FORWARD_KVCACHE, nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(RocmCkApi, RunningWithoutADeviceFailsCleanly) {
    for (fa_op op : {FA_OP_FORWARD, FA_OP_FORWARD_KVCACHE, FA_OP_BACKWARD}) {
        const fa_params p = fa_test::valid_params(op);
        if (ask(p, op).status == FA_OK) GTEST_SKIP() << "an AMD GPU is present; the fake pointers must not be launched on";
        const fa_status status = op == FA_OP_FORWARD ? fa_forward(&p) : op == FA_OP_BACKWARD ? fa_backward(&p) : fa_forward_kvcache(&p);
        EXPECT_NE(status, FA_OK);
        EXPECT_STRNE(fa_last_error(), "");
    }
}

}  // namespace
