// Host-only tests of libfa_hopper_sm90's C entry points: what fa_get_capabilities claims and how
// fa_supports refuses what the FA3 forward does not implement (so that the dispatcher takes it to
// cuda_sm80), each with a reason naming the cause. None needs a GPU: without one (or on a GPU
// other than sm_90) a valid problem is refused with a reason naming the device, never a crash.
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

// Refused only for want of a device, of compute capability 9.0, or of the instance (FA_HDIMS /
// FA_DTYPES builds).
bool refused_only_for_environment(const Answer& a) {
    return a.status == FA_OK || (a.status == FA_ERR_UNSUPPORTED &&
                                 (contains(a.reason, "CUDA device") || contains(a.reason, "compute capability 9.0") ||
                                  contains(a.reason, "instance")));
}

void expect_refused(const fa_params& p, fa_op op, const char* part) {
    const Answer a = ask(p, op);
    EXPECT_EQ(a.status, FA_ERR_UNSUPPORTED) << a.reason;
    EXPECT_TRUE(contains(a.reason, part)) << "expected \"" << part << "\" in: " << a.reason;
    EXPECT_TRUE(contains(a.reason, "hopper_sm90")) << a.reason;
}

TEST(Sm90Api, NameAndAbiVersion) {
    EXPECT_EQ(fa_abi_version(), static_cast<uint32_t>(FA_ABI_VERSION));
    EXPECT_STREQ(fa_backend_name(), "hopper_sm90");
}

TEST(Sm90Api, CapabilitiesAreTruthful) {
    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    ASSERT_EQ(fa_get_capabilities(&caps), FA_OK) << fa_last_error();
    const uint32_t allowed = (1u << FA_DTYPE_F16) | (1u << FA_DTYPE_BF16) | (1u << FA_DTYPE_F8_E4M3);
    EXPECT_NE(caps.dtypes, 0u);
    EXPECT_EQ(caps.dtypes & ~allowed, 0u) << "only fp16/bf16/e4m3 kernels exist";
    EXPECT_EQ(caps.max_headdim, 256);
    EXPECT_EQ(caps.headdim_align, 8);
    EXPECT_STREQ(caps.archs, "sm_90a");
    const uint64_t fwd = caps.features[FA_OP_FORWARD];
    for (uint64_t bit : {FA_FEATURE_CAUSAL, FA_FEATURE_WINDOW, FA_FEATURE_SOFTCAP, FA_FEATURE_GQA, FA_FEATURE_VARLEN,
                         FA_FEATURE_SEQUSED, FA_FEATURE_PAGED_KV, FA_FEATURE_SPLIT_KV, FA_FEATURE_LSE}) {
        EXPECT_NE(fwd & bit, 0u) << "forward should claim feature bit " << bit;
    }
    for (uint64_t bit : {FA_FEATURE_ALIBI, FA_FEATURE_DROPOUT, FA_FEATURE_LEFTPAD_K, FA_FEATURE_SINKS, FA_FEATURE_HEADDIM_V,
                         FA_FEATURE_DROPOUT_MASK}) {
        EXPECT_EQ(fwd & bit, 0u) << "forward must not claim feature bit " << bit;
    }
    EXPECT_EQ((fwd & FA_FEATURE_FP8) != 0, (caps.dtypes & (1u << FA_DTYPE_F8_E4M3)) != 0)
        << "the forward claims fp8 exactly when e4m3 instances were built";
    const uint64_t cache = caps.features[FA_OP_FORWARD_KVCACHE];
    for (uint64_t bit : {FA_FEATURE_CAUSAL, FA_FEATURE_WINDOW, FA_FEATURE_SOFTCAP, FA_FEATURE_GQA, FA_FEATURE_PAGED_KV,
                         FA_FEATURE_KV_APPEND, FA_FEATURE_ROTARY, FA_FEATURE_CACHE_BATCH_IDX, FA_FEATURE_SPLIT_KV, FA_FEATURE_LSE}) {
        EXPECT_NE(cache & bit, 0u) << "kv cache should claim feature bit " << bit;
    }
    for (uint64_t bit : {FA_FEATURE_ALIBI, FA_FEATURE_LEFTPAD_K, FA_FEATURE_SINKS, FA_FEATURE_FP8, FA_FEATURE_HEADDIM_V}) {
        EXPECT_EQ(cache & bit, 0u) << "kv cache must not claim feature bit " << bit;
    }
    EXPECT_EQ(caps.page_size_align, 8);
    EXPECT_GE(caps.max_splits, 64);
    EXPECT_EQ(caps.features[FA_OP_BACKWARD], 0u);
}

TEST(Sm90Api, ValidForwardIsRefusedOnlyForTheEnvironment) {
    const Answer a = ask(valid_forward(), FA_OP_FORWARD);
    EXPECT_TRUE(refused_only_for_environment(a)) << a.status << ": " << a.reason;
    if (a.status == FA_OK) {
        EXPECT_EQ(a.reason, "");
    }
}

TEST(Sm90Api, NullParamsAreInvalid) {
    char reason[256];
    EXPECT_EQ(fa_supports(nullptr, FA_OP_FORWARD, reason, sizeof reason), FA_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(reason, "fa_params")) << reason;
    EXPECT_EQ(fa_forward(nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(Sm90Api, RefusesWhatTheFa3ForwardDoesNotImplement) {
    fa_params p = valid_forward();
    p.alibi_slopes = static_cast<const float*>(fake_pointer(11));
    expect_refused(p, FA_OP_FORWARD, "ALiBi");

    p = valid_forward();
    p.dropout_p = 0.1f;
    expect_refused(p, FA_OP_FORWARD, "dropout");

    p = valid_forward();
    p.sink_logits = static_cast<const float*>(fake_pointer(12));
    expect_refused(p, FA_OP_FORWARD, "sinks");

    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    ASSERT_EQ(fa_get_capabilities(&caps), FA_OK) << fa_last_error();
    p = valid_forward();
    p.num_splits = caps.max_splits + 1;
    expect_refused(p, FA_OP_FORWARD, "num_splits");

    p = valid_forward();
    p.seqused_q = static_cast<const int32_t*>(fake_pointer(13));
    expect_refused(p, FA_OP_FORWARD, "seqused_q");

    p = valid_forward();
    p.softmax_scale = -0.1f;
    expect_refused(p, FA_OP_FORWARD, "softmax_scale");
}

TEST(Sm90Api, RefusesFp32AndAsymmetricHeadDims) {
    fa_params p = valid_forward();
    p.dtype = p.out_dtype = FA_DTYPE_F32;
    expect_refused(p, FA_OP_FORWARD, "dtype");

    p = valid_forward();
    p.headdim_qk = 192;
    p.q = dense_tensor(0, p.nheads_q, 192, p.seqlen_q);
    p.k = dense_tensor(1, p.nheads_kv, 192, p.seqlen_k);
    expect_refused(p, FA_OP_FORWARD, "headdim_v");
}

fa_params e4m3(fa_params p) {
    p.dtype = FA_DTYPE_F8_E4M3;
    p.out_dtype = FA_DTYPE_BF16;
    return p;
}

TEST(Sm90Api, Fp8ForwardIsAcceptedUpToTheEnvironment) {
    fa_params p = e4m3(valid_forward());
    const Answer a = ask(p, FA_OP_FORWARD);
    EXPECT_TRUE(refused_only_for_environment(a)) << a.status << ": " << a.reason;
    if (a.status != FA_OK && contains(a.reason, "instance")) return; /* a build without e4m3: no workspace to ask */
    /* the transposed V: at least nheads_kv x headdim_v x (batch x seqlen_k) bytes */
    uint64_t bytes = 0;
    ASSERT_EQ(fa_workspace_size(&p, FA_OP_FORWARD, &bytes), FA_OK) << fa_last_error();
    EXPECT_GE(bytes, static_cast<uint64_t>(p.nheads_kv) * p.headdim_v * p.batch * p.seqlen_k);
}

TEST(Sm90Api, Fp8RefusesWhatItsForwardDoesNotImplement) {
    fa_params p = e4m3(fa_test::valid_params(FA_OP_FORWARD_KVCACHE));
    expect_refused(p, FA_OP_FORWARD_KVCACHE, "fp8");

    p = e4m3(valid_forward());
    p.num_splits = 2;
    expect_refused(p, FA_OP_FORWARD, "num_splits");

    p = e4m3(valid_forward());
    p.headdim_qk = p.headdim_v = 120;
    p.q = dense_tensor(0, p.nheads_q, 120, p.seqlen_q);
    p.k = dense_tensor(1, p.nheads_kv, 120, p.seqlen_k);
    p.v = dense_tensor(2, p.nheads_kv, 120, p.seqlen_k);
    p.out = dense_tensor(3, p.nheads_q, 120, p.seqlen_q);
    expect_refused(p, FA_OP_FORWARD, "multiples of 16");

    p = e4m3(valid_forward());
    p.v.row_stride += 8; /* 16 bytes of a 16-bit type, 8 of e4m3 */
    expect_refused(p, FA_OP_FORWARD, "multiple of 16 elements");
}

TEST(Sm90Api, RefusesLayoutsTmaCannotDescribe) {
    fa_params p = valid_forward();
    p.k.row_stride += 4;
    expect_refused(p, FA_OP_FORWARD, "k.row_stride");

    p = valid_forward();
    p.out.data = static_cast<char*>(p.out.data) + 2;
    expect_refused(p, FA_OP_FORWARD, "16-byte aligned");
}

TEST(Sm90Api, KvCacheIsAcceptedUpToTheEnvironment) {
    const Answer a = ask(fa_test::valid_params(FA_OP_FORWARD_KVCACHE), FA_OP_FORWARD_KVCACHE);
    EXPECT_TRUE(refused_only_for_environment(a)) << a.status << ": " << a.reason;
}

TEST(Sm90Api, KvCacheRefusesWhatItDoesNotImplement) {
    fa_params p = fa_test::valid_params(FA_OP_FORWARD_KVCACHE);
    p.block_table = static_cast<const int32_t*>(fake_pointer(14));
    p.page_size = 12;
    p.max_pages_per_seq = (p.seqlen_k + p.page_size - 1) / p.page_size;
    p.block_table_batch_stride = p.max_pages_per_seq;
    p.kv_batch = p.batch * p.max_pages_per_seq;
    p.k = dense_tensor(1, p.nheads_kv, p.headdim_qk, p.page_size);
    p.v = dense_tensor(2, p.nheads_kv, p.headdim_v, p.page_size);
    expect_refused(p, FA_OP_FORWARD_KVCACHE, "page_size");

    p = fa_test::valid_params(FA_OP_FORWARD_KVCACHE);
    p.alibi_slopes = static_cast<const float*>(fake_pointer(11));
    expect_refused(p, FA_OP_FORWARD_KVCACHE, "ALiBi");

    p = fa_test::valid_params(FA_OP_FORWARD_KVCACHE);
    p.leftpad_k = static_cast<const int32_t*>(fake_pointer(15));
    expect_refused(p, FA_OP_FORWARD_KVCACHE, "leftpad");
}

TEST(Sm90Api, BackwardGoesElsewhere) {
    expect_refused(fa_test::valid_params(FA_OP_BACKWARD), FA_OP_BACKWARD, "fa_backward");
    EXPECT_NE(fa_backward(nullptr), FA_OK);
}

TEST(Sm90Api, WorkspaceIsNoneUnlessSplit) {
    uint64_t bytes = 1;
    fa_params p = valid_forward();
    const fa_status status = fa_workspace_size(&p, FA_OP_FORWARD, &bytes);
    /* The split plan needs the instance's tile (a FA_HDIMS / FA_DTYPES build may leave out d128 bf16). */
    if (status == FA_ERR_UNSUPPORTED && contains(fa_last_error(), "instance")) GTEST_SKIP() << fa_last_error();
    ASSERT_EQ(status, FA_OK) << fa_last_error();
    EXPECT_EQ(bytes, 0u);
    /* fp32 partials, O (rows x splits x dv) and LSE (rows x splits), of min(3, key blocks) = 2 splits: 256 keys are
       two 128-key blocks at d128, and a split gets at least one */
    p.num_splits = 3;
    ASSERT_EQ(fa_workspace_size(&p, FA_OP_FORWARD, &bytes), FA_OK) << fa_last_error();
    const uint64_t rows = static_cast<uint64_t>(p.batch) * p.nheads_q * p.seqlen_q;
    EXPECT_GE(bytes, rows * 2 * (p.headdim_v + 1) * sizeof(float));
    EXPECT_LT(bytes, rows * 3 * (p.headdim_v + 1) * sizeof(float));
    EXPECT_EQ(fa_workspace_size(&p, FA_OP_FORWARD, nullptr), FA_ERR_INVALID_ARGUMENT);
}

TEST(Sm90Api, ForwardWithoutASuitableDeviceFailsCleanly) {
    const fa_params p = valid_forward();
    if (ask(p, FA_OP_FORWARD).status == FA_OK) GTEST_SKIP() << "an H100 is present; the fake pointers must not be launched on";
    EXPECT_NE(fa_forward(&p), FA_OK);
    EXPECT_STRNE(fa_last_error(), "");
}

}  // namespace
