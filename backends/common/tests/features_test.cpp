// fa_used_features and fa_check_capabilities: the FA_ERR_UNSUPPORTED reason names every
// missing feature.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "fa_common.h"
#include "test_support.h"

namespace {

using fa_test::fake_pointer;
using fa_test::valid_params;

// Everything on, every dtype, head dims up to 256: a library that can run anything valid.
fa_capabilities full_capabilities() {
    fa_capabilities caps{};
    caps.struct_size = sizeof caps;
    caps.dtypes = (1u << FA_DTYPE_F16) | (1u << FA_DTYPE_BF16) | (1u << FA_DTYPE_F32) | (1u << FA_DTYPE_F8_E4M3);
    for (auto& features : caps.features) features = ~uint64_t{0};
    caps.max_headdim = 256;
    caps.headdim_align = 8;
    caps.page_size_align = 1;
    caps.max_splits = 256;
    std::strcpy(caps.archs, "sm_80");
    return caps;
}

bool contains(const char* text, const char* part) { return std::strstr(text, part) != nullptr; }

TEST(UsedFeatures, BaselineUsesOnlyGqa) {
    const fa_params p = valid_params(FA_OP_FORWARD);
    EXPECT_EQ(fa_used_features(&p, FA_OP_FORWARD), static_cast<uint64_t>(FA_FEATURE_GQA));
}

TEST(UsedFeatures, CausalIsNotAWindowButALeftWindowIs) {
    fa_params p = valid_params(FA_OP_FORWARD);
    p.is_causal = 1;
    p.window_right = 0;
    EXPECT_EQ(fa_used_features(&p, FA_OP_FORWARD) & (FA_FEATURE_CAUSAL | FA_FEATURE_WINDOW), static_cast<uint64_t>(FA_FEATURE_CAUSAL));
    p.window_left = 128;
    EXPECT_NE(fa_used_features(&p, FA_OP_FORWARD) & FA_FEATURE_WINDOW, 0u);
}

TEST(UsedFeatures, EachFieldMapsToItsBit) {
    fa_params p = valid_params(FA_OP_FORWARD_KVCACHE);
    p.softcap = 50.0f;
    p.block_table = static_cast<const int32_t*>(fake_pointer(1));
    p.rotary_dim = 64;
    p.num_splits = 4;
    p.softmax_lse = static_cast<float*>(fake_pointer(2));
    p.headdim_v = 64;
    const uint64_t used = fa_used_features(&p, FA_OP_FORWARD_KVCACHE);
    for (uint64_t bit : {FA_FEATURE_SOFTCAP, FA_FEATURE_PAGED_KV, FA_FEATURE_ROTARY, FA_FEATURE_SPLIT_KV, FA_FEATURE_LSE,
                         FA_FEATURE_HEADDIM_V, FA_FEATURE_KV_APPEND, FA_FEATURE_GQA}) {
        EXPECT_NE(used & bit, 0u) << fa_feature_name(bit);
    }
    EXPECT_EQ(used & FA_FEATURE_DROPOUT, 0u);

    fa_params bwd = valid_params(FA_OP_BACKWARD);
    bwd.deterministic = 1;
    EXPECT_NE(fa_used_features(&bwd, FA_OP_BACKWARD) & FA_FEATURE_DETERMINISTIC, 0u);
    EXPECT_EQ(fa_used_features(&bwd, FA_OP_BACKWARD) & FA_FEATURE_LSE, 0u);  // an input there, not a feature
}

TEST(DescribeFeatures, ListsNamesAndUnknownBits) {
    char text[128];
    fa_describe_features(FA_FEATURE_SOFTCAP | FA_FEATURE_PAGED_KV, text, sizeof text);
    EXPECT_STREQ(text, "softcap, paged KV (block_table)");
    fa_describe_features(uint64_t{1} << 40, text, sizeof text);
    EXPECT_STREQ(text, "unknown features 0x10000000000");
    char small[8];
    const std::size_t needed = fa_describe_features(FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI, small, sizeof small);
    EXPECT_EQ(needed, std::strlen("softcap, ALiBi"));
    EXPECT_STREQ(small, "softcap");
}

TEST(CheckCapabilities, FullCapabilitiesAccept) {
    fa_params p = valid_params(FA_OP_FORWARD);
    p.softcap = 30.0f;
    const fa_capabilities caps = full_capabilities();
    EXPECT_EQ(fa_check_capabilities(&p, FA_OP_FORWARD, &caps, "cuda_sm80"), FA_OK) << fa_get_last_error();
    EXPECT_STREQ(fa_get_last_error(), "");
}

TEST(CheckCapabilities, ReasonNamesEveryMissingFeature) {
    fa_params p = valid_params(FA_OP_BACKWARD);
    p.softcap = 30.0f;
    p.alibi_slopes = static_cast<const float*>(fake_pointer(3));
    fa_capabilities caps = full_capabilities();
    caps.features[FA_OP_BACKWARD] &= ~uint64_t{FA_FEATURE_SOFTCAP | FA_FEATURE_ALIBI};
    EXPECT_EQ(fa_check_capabilities(&p, FA_OP_BACKWARD, &caps, "cuda_sm80"), FA_ERR_UNSUPPORTED);
    EXPECT_STREQ(fa_get_last_error(), "cuda_sm80 cannot run fa_backward: it does not support softcap, ALiBi");

    // The same problem forward is fine: features are per entry point.
    fa_params fwd = valid_params(FA_OP_FORWARD);
    fwd.softcap = 30.0f;
    EXPECT_EQ(fa_check_capabilities(&fwd, FA_OP_FORWARD, &caps, "cuda_sm80"), FA_OK);
}

TEST(CheckCapabilities, ReasonsCoverDtypeHeaddimPageSizeAndSplits) {
    fa_params p = valid_params(FA_OP_FORWARD);
    p.headdim_qk = 256;
    p.headdim_v = 256;
    p.block_table = static_cast<const int32_t*>(fake_pointer(4));
    p.page_size = 100;
    p.max_pages_per_seq = 8;
    p.num_splits = 64;
    fa_capabilities caps = full_capabilities();
    caps.dtypes = 1u << FA_DTYPE_F16;
    caps.max_headdim = 128;
    caps.page_size_align = 256;
    caps.max_splits = 32;
    EXPECT_EQ(fa_check_capabilities(&p, FA_OP_FORWARD, &caps, "rocm_ck"), FA_ERR_UNSUPPORTED);
    const char* message = fa_get_last_error();
    EXPECT_TRUE(contains(message, "rocm_ck cannot run fa_forward")) << message;
    EXPECT_TRUE(contains(message, "dtype bf16")) << message;
    EXPECT_TRUE(contains(message, "head dims up to 128; got 256")) << message;
    EXPECT_TRUE(contains(message, "page_size to be a multiple of 256; got 100")) << message;
    EXPECT_TRUE(contains(message, "at most 32 ways; got num_splits 64")) << message;
}

TEST(CheckCapabilities, MisalignedHeaddimIsAReason) {
    fa_params p = valid_params(FA_OP_FORWARD);
    p.headdim_qk = 100;
    p.headdim_v = 100;
    const fa_capabilities caps = full_capabilities();
    EXPECT_EQ(fa_check_capabilities(&p, FA_OP_FORWARD, &caps, nullptr), FA_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(fa_get_last_error(), "multiples of 8")) << fa_get_last_error();
    EXPECT_TRUE(contains(fa_get_last_error(), "this backend cannot run")) << fa_get_last_error();
}

}  // namespace
