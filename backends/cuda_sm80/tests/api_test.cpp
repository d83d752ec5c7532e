// Host-only tests of libfa_cuda_sm80's C entry points: what fa_get_capabilities claims and
// how fa_supports refuses problems it cannot run, each with a reason naming the cause. None of
// them needs a GPU; on a machine without one, a valid problem is refused ("needs a CUDA device")
// rather than crashing, and fa_forward returns an error the same way.
#include <cstdint>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "flash_attn_abi.h"
#include "test_support.h"

namespace {

using fa_test::dense_tensor;
using fa_test::fake_pointer;

// batch 2, 128 x 256, 12 query heads over 4 kv heads, head dim 128, bf16 (the default dev build).
fa_params valid_forward() { return fa_test::valid_params(FA_OP_FORWARD); }

// One query row per sequence, appending one key (test_support's kv-cache problem).
fa_params valid_kvcache() { return fa_test::valid_params(FA_OP_FORWARD_KVCACHE); }

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

// A problem this build can run, refused only for want of a device (or of the instance, when
// the library was built with other FA_HDIMS / FA_DTYPES filters).
bool refused_only_for_environment(const Answer& a) {
    return a.status == FA_OK ||
           (a.status == FA_ERR_UNSUPPORTED && (contains(a.reason, "CUDA device") || contains(a.reason, "instance")));
}

TEST(Sm80Api, NameAndAbiVersion) {
    EXPECT_EQ(fa_abi_version(), static_cast<uint32_t>(FA_ABI_VERSION));
    EXPECT_STREQ(fa_backend_name(), "cuda_sm80");
}

TEST(Sm80Api, CapabilitiesAreTruthful) {
    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    ASSERT_EQ(fa_get_capabilities(&caps), FA_OK) << fa_last_error();
    const uint32_t allowed = (1u << FA_DTYPE_F16) | (1u << FA_DTYPE_BF16);
    EXPECT_NE(caps.dtypes, 0u);
    EXPECT_EQ(caps.dtypes & ~allowed, 0u) << "only fp16/bf16 kernels exist";
    EXPECT_EQ(caps.max_headdim, 256);
    EXPECT_EQ(caps.headdim_align, 8);
    EXPECT_EQ(caps.page_size_align, 1);
    EXPECT_GE(caps.max_splits, 1);
    // The targets this build compiled (all of sm_80 … sm_90, or those FA_CUDA_ARCHITECTURES kept).
    EXPECT_STREQ(caps.archs, FA_SM80_EXPECTED_ARCHS);

    const uint64_t fwd = caps.features[FA_OP_FORWARD];
    for (uint64_t bit : {FA_FEATURE_CAUSAL, FA_FEATURE_WINDOW, FA_FEATURE_SOFTCAP, FA_FEATURE_ALIBI, FA_FEATURE_DROPOUT,
                         FA_FEATURE_GQA, FA_FEATURE_VARLEN, FA_FEATURE_SEQUSED, FA_FEATURE_LEFTPAD_K, FA_FEATURE_LSE}) {
        EXPECT_NE(fwd & bit, 0u) << "forward should claim feature bit " << bit;
    }
    for (uint64_t bit : {FA_FEATURE_FP8, FA_FEATURE_HEADDIM_V, FA_FEATURE_DROPOUT_MASK, FA_FEATURE_DETERMINISTIC,
                         FA_FEATURE_KV_APPEND, FA_FEATURE_ROTARY}) {
        EXPECT_EQ(fwd & bit, 0u) << "forward must not claim feature bit " << bit;
    }
    const uint64_t kv = caps.features[FA_OP_FORWARD_KVCACHE];
    EXPECT_EQ(kv & FA_FEATURE_DROPOUT, 0u);
    EXPECT_EQ(kv & FA_FEATURE_VARLEN, 0u);
}

TEST(Sm80Api, CapabilitiesNeedAPointer) {
    EXPECT_EQ(fa_get_capabilities(nullptr), FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(fa_last_error(), "caps"));
}

TEST(Sm80Api, ValidProblemIsRefusedOnlyForTheEnvironment) {
    const Answer fwd = ask(valid_forward(), FA_OP_FORWARD);
    EXPECT_TRUE(refused_only_for_environment(fwd)) << fwd.status << ": " << fwd.reason;
    if (fwd.status == FA_OK) {
        EXPECT_EQ(fwd.reason, "");
    }
    const Answer kv = ask(valid_kvcache(), FA_OP_FORWARD_KVCACHE);
    EXPECT_TRUE(refused_only_for_environment(kv)) << kv.status << ": " << kv.reason;
}

TEST(Sm80Api, NullParamsAreInvalid) {
    char reason[256];
    EXPECT_EQ(fa_supports(nullptr, FA_OP_FORWARD, reason, sizeof reason), FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(reason, "fa_params")) << reason;
    EXPECT_EQ(fa_forward(nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(Sm80Api, AbiMismatchIsNamed) {
    fa_params p = valid_forward();
    p.abi_version = FA_ABI_VERSION + 1;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_ABI_MISMATCH);
    EXPECT_TRUE(contains(a.reason, "abi_version")) << a.reason;
}

TEST(Sm80Api, RefusesFp32AndFp8) {
    fa_params p = valid_forward();
    p.dtype = p.out_dtype = FA_DTYPE_F32;
    Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dtype")) << a.reason;

    p = valid_forward();
    p.dtype = FA_DTYPE_F8_E4M3;
    p.out_dtype = FA_DTYPE_BF16;
    a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "cuda_sm80")) << a.reason;
}

TEST(Sm80Api, RefusesAsymmetricHeadDims) {
    fa_params p = valid_forward();
    p.headdim_qk = 192;
    p.q = dense_tensor(0, p.nheads_q, 192, p.seqlen_q);
    p.k = dense_tensor(1, p.nheads_kv, 192, p.seqlen_k);
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "headdim_v")) << a.reason;
}

TEST(Sm80Api, RefusesHeadDimsNotMultipleOf8) {
    fa_params p = valid_forward();
    p.headdim_qk = p.headdim_v = 100;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "multiples of 8")) << a.reason;
}

TEST(Sm80Api, RefusesSequsedQ) {
    fa_params p = valid_forward();
    p.seqused_q = static_cast<const int32_t*>(fake_pointer(11));
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "seqused_q")) << a.reason;
}

TEST(Sm80Api, RefusesDropoutMaskOutput) {
    fa_params p = valid_forward();
    p.dropout_p = 0.1f;
    p.dropout_mask = static_cast<uint8_t*>(fake_pointer(12));
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dropout mask")) << a.reason;
}

TEST(Sm80Api, RefusesDropoutInTheKvCache) {
    fa_params p = valid_kvcache();
    p.dropout_p = 0.1f;
    const Answer a = ask(p, FA_OP_FORWARD_KVCACHE);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "dropout")) << a.reason;
}

TEST(Sm80Api, RefusesStridesThatBreak16ByteRows) {
    fa_params p = valid_forward();
    p.k.row_stride += 4;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "k.row_stride")) << a.reason;
    EXPECT_TRUE(contains(a.reason, "multiple of 8")) << a.reason;
}

TEST(Sm80Api, RefusesMisalignedPointers) {
    fa_params p = valid_forward();
    p.out.data = static_cast<char*>(p.out.data) + 2;
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(a.reason, "16-byte aligned")) << a.reason;
}

TEST(Sm80Api, WorkspaceSizes) {
    uint64_t bytes = 1;
    fa_params p = valid_forward();
    const fa_status dense = fa_workspace_size(&p, FA_OP_FORWARD, &bytes);
    if (dense == FA_OK) {
        EXPECT_EQ(bytes, 0u) << "the dense forward needs no scratch";
    } else {
        EXPECT_TRUE(contains(fa_last_error(), "instance")) << fa_last_error();
    }

    fa_params kv = valid_kvcache();
    kv.num_splits = 4; /* explicit: no device query needed */
    const fa_status split = fa_workspace_size(&kv, FA_OP_FORWARD_KVCACHE, &bytes);
    // 24 rows (2 × 12 heads × 1) × 4 splits: partial O 24·4·128 floats (49152 B), then LSE 24·4 floats.
    if (split == FA_OK) {
        EXPECT_EQ(bytes, 49152u + 384u);
    }
    EXPECT_EQ(fa_workspace_size(&kv, FA_OP_FORWARD_KVCACHE, nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(Sm80Api, ForwardWithoutADeviceFailsCleanly) {
    const fa_params p = valid_forward();
    if (ask(p, FA_OP_FORWARD).status == FA_OK) GTEST_SKIP() << "a GPU is present; the fake pointers must not be launched on";
    EXPECT_NE(fa_forward(&p), FA_OK);
    EXPECT_STRNE(fa_last_error(), "");
}

TEST(Sm80Api, BackwardIsRefusedOrClaimed) {
    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    ASSERT_EQ(fa_get_capabilities(&caps), FA_OK);
    const fa_params p = fa_test::valid_params(FA_OP_BACKWARD);
    const Answer a = ask(p, FA_OP_BACKWARD);
    if (caps.features[FA_OP_BACKWARD] & FA_FEATURE_GQA) {
        EXPECT_TRUE(refused_only_for_environment(a) || a.status == FA_ERR_UNSUPPORTED) << a.reason;
    } else {
        EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED) << a.reason;
    }
    if (a.status != FA_OK) {
        EXPECT_FALSE(a.reason.empty());
    }
}

}  // namespace
