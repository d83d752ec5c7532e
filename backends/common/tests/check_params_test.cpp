// fa_check_params: valid problems pass; each invalid mutation of a valid problem fails with the
// right status and a message that names the field.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fa_common.h"
#include "test_support.h"

namespace {

using fa_test::fake_pointer;
using fa_test::valid_params;

// ---- valid problems --------------------------------------------------------------------

TEST(CheckParams, ValidForwardPasses) {
    const fa_params p = valid_params(FA_OP_FORWARD);
    EXPECT_EQ(fa_check_params(&p, FA_OP_FORWARD), FA_OK) << fa_get_last_error();
}

TEST(CheckParams, ValidBackwardPasses) {
    const fa_params p = valid_params(FA_OP_BACKWARD);
    EXPECT_EQ(fa_check_params(&p, FA_OP_BACKWARD), FA_OK) << fa_get_last_error();
}

TEST(CheckParams, ValidKvcachePasses) {
    const fa_params p = valid_params(FA_OP_FORWARD_KVCACHE);
    EXPECT_EQ(fa_check_params(&p, FA_OP_FORWARD_KVCACHE), FA_OK) << fa_get_last_error();
}

TEST(CheckParams, ValidFeatureRichProblemsPass) {
    fa_params fp8 = valid_params(FA_OP_FORWARD);
    fp8.dtype = FA_DTYPE_F8_E4M3;
    fp8.out_dtype = FA_DTYPE_BF16;
    fp8.q_descale = fp8.k_descale = fp8.v_descale = static_cast<const float*>(fake_pointer(20));
    EXPECT_EQ(fa_check_params(&fp8, FA_OP_FORWARD), FA_OK) << fa_get_last_error();

    fa_params decode = valid_params(FA_OP_FORWARD_KVCACHE);
    decode.rotary_dim = 64;
    decode.rotary_cos = fake_pointer(21);
    decode.rotary_sin = fake_pointer(22);
    decode.seqlen_rotary = 4096;
    decode.rotary_interleaved = 1;
    decode.block_table = static_cast<const int32_t*>(fake_pointer(23));
    decode.page_size = 1;  // any page size >= 1
    decode.max_pages_per_seq = 256;
    decode.num_splits = 0;
    EXPECT_EQ(fa_check_params(&decode, FA_OP_FORWARD_KVCACHE), FA_OK) << fa_get_last_error();

    fa_params varlen = valid_params(FA_OP_FORWARD);
    varlen.cu_seqlens_q = static_cast<const int32_t*>(fake_pointer(24));
    varlen.cu_seqlens_k = static_cast<const int32_t*>(fake_pointer(25));
    varlen.is_causal = 1;
    varlen.window_left = 256;
    varlen.window_right = 0;
    varlen.softcap = 30.0f;
    varlen.headdim_qk = 192;  // MLA-style 192/128
    EXPECT_EQ(fa_check_params(&varlen, FA_OP_FORWARD), FA_OK) << fa_get_last_error();
}

TEST(CheckParams, TensorsWithoutRowsMayBeNull) {
    // An empty allocation has no address: no keys (seqlen_k 0) leaves k, v (and dk, dv) NULL.
    for (const fa_op op : {FA_OP_FORWARD, FA_OP_BACKWARD}) {
        fa_params p = valid_params(op);
        p.seqlen_k = 0;
        p.total_k = 0;
        p.k.data = p.v.data = p.dk.data = p.dv.data = nullptr;
        EXPECT_EQ(fa_check_params(&p, op), FA_OK) << fa_op_name(op) << ": " << fa_get_last_error();
        p.total_k = 1;
        EXPECT_EQ(fa_check_params(&p, op), FA_ERR_INVALID_ARGUMENT) << fa_op_name(op) << ": a NULL k with rows";
    }
}

TEST(CheckParams, LongerStructFromANewerCallerPassesWhenItsTailIsZero) {
    struct Newer {
        fa_params params;
        uint64_t unknown_field;
    } newer{};
    newer.params = valid_params(FA_OP_FORWARD);
    newer.params.struct_size = sizeof(Newer);
    EXPECT_EQ(fa_check_params(&newer.params, FA_OP_FORWARD), FA_OK) << fa_get_last_error();

    newer.unknown_field = 1;
    EXPECT_EQ(fa_check_params(&newer.params, FA_OP_FORWARD), FA_ERR_ABI_MISMATCH);
    EXPECT_NE(std::string(fa_get_last_error()).find("struct_size"), std::string::npos) << fa_get_last_error();
}

TEST(CheckParams, SuccessClearsTheLastError) {
    fa_set_last_error(FA_ERR_DEVICE, "earlier failure");
    const fa_params p = valid_params(FA_OP_FORWARD);
    ASSERT_EQ(fa_check_params(&p, FA_OP_FORWARD), FA_OK);
    EXPECT_STREQ(fa_get_last_error(), "");
}

TEST(CheckParams, NullParamsIsInvalid) {
    EXPECT_EQ(fa_check_params(nullptr, FA_OP_FORWARD), FA_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(fa_get_last_error(), "fa_params must not be NULL");
}

TEST(CheckParams, UnknownOpIsInvalid) {
    const fa_params p = valid_params(FA_OP_FORWARD);
    EXPECT_EQ(fa_check_params(&p, static_cast<fa_op>(7)), FA_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(fa_get_last_error()).find("got 7"), std::string::npos) << fa_get_last_error();
}

TEST(CheckParams, MessageNamesFieldExpectationAndValue) {
    fa_params p = valid_params(FA_OP_FORWARD);
    p.nheads_kv = 5;
    EXPECT_EQ(fa_check_params(&p, FA_OP_FORWARD), FA_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(fa_get_last_error(), "fa_params.nheads_kv must divide nheads_q (12); got 5");
}

// ---- invalid mutations -------------------------------------------------------------------

struct Mutation {
    const char* name;
    fa_op op;
    void (*mutate)(fa_params&);
    fa_status expected;
    const char* message_part;  // must appear in the last error, naming the field
};

void PrintTo(const Mutation& m, std::ostream* os) { *os << m.name; }

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

const Mutation kMutations[] = {
    {"AbiVersion", FA_OP_FORWARD, [](fa_params& p) { p.abi_version = FA_ABI_VERSION + 1; }, FA_ERR_ABI_MISMATCH, "fa_params.abi_version must be"},
    {"StructSizeTooSmall", FA_OP_FORWARD, [](fa_params& p) { p.struct_size = 64; }, FA_ERR_ABI_MISMATCH, "fa_params.struct_size must be at least"},
    {"StructSizeGarbage", FA_OP_FORWARD, [](fa_params& p) { p.struct_size = 0xFFFFFFFFu; }, FA_ERR_ABI_MISMATCH, "fa_params.struct_size"},
    {"ReservedPad", FA_OP_FORWARD, [](fa_params& p) { p.reserved_pad0 = 1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.reserved_pad0 must be 0"},
    {"Reserved", FA_OP_FORWARD, [](fa_params& p) { p.reserved[3] = 9; }, FA_ERR_INVALID_ARGUMENT, "fa_params.reserved[3] must be 0; got 9"},
    {"DtypeInt32", FA_OP_FORWARD, [](fa_params& p) { p.dtype = FA_DTYPE_I32; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dtype must be"},
    {"DtypeOutOfRange", FA_OP_FORWARD, [](fa_params& p) { p.dtype = static_cast<fa_dtype>(42); }, FA_ERR_INVALID_ARGUMENT, "got 42"},
    {"OutDtypeMismatch", FA_OP_FORWARD, [](fa_params& p) { p.out_dtype = FA_DTYPE_F16; }, FA_ERR_INVALID_ARGUMENT, "fa_params.out_dtype must be 2 (bf16) for dtype bf16; got 1"},
    {"Fp8OutDtype", FA_OP_FORWARD, [](fa_params& p) { p.dtype = FA_DTYPE_F8_E4M3; p.out_dtype = FA_DTYPE_F8_E4M3; }, FA_ERR_INVALID_ARGUMENT, "fa_params.out_dtype must be 2 (bf16) for dtype e4m3"},
    {"BatchZero", FA_OP_FORWARD, [](fa_params& p) { p.batch = 0; }, FA_ERR_INVALID_ARGUMENT, "fa_params.batch must be >= 1; got 0"},
    {"SeqlenQNegative", FA_OP_FORWARD, [](fa_params& p) { p.seqlen_q = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.seqlen_q must be >= 0; got -1"},
    {"SeqlenKNegative", FA_OP_FORWARD, [](fa_params& p) { p.seqlen_k = -3; }, FA_ERR_INVALID_ARGUMENT, "fa_params.seqlen_k must be >= 0; got -3"},
    {"NheadsQZero", FA_OP_FORWARD, [](fa_params& p) { p.nheads_q = 0; }, FA_ERR_INVALID_ARGUMENT, "fa_params.nheads_q must be >= 1"},
    {"NheadsKvZero", FA_OP_FORWARD, [](fa_params& p) { p.nheads_kv = 0; }, FA_ERR_INVALID_ARGUMENT, "fa_params.nheads_kv must be >= 1"},
    {"NheadsKvNotDivisor", FA_OP_FORWARD, [](fa_params& p) { p.nheads_kv = 5; }, FA_ERR_INVALID_ARGUMENT, "fa_params.nheads_kv must divide nheads_q (12); got 5"},
    {"HeaddimQkZero", FA_OP_FORWARD, [](fa_params& p) { p.headdim_qk = 0; }, FA_ERR_INVALID_ARGUMENT, "fa_params.headdim_qk must be in 1..256; got 0"},
    {"HeaddimQkTooLarge", FA_OP_FORWARD, [](fa_params& p) { p.headdim_qk = 257; }, FA_ERR_INVALID_ARGUMENT, "fa_params.headdim_qk must be in 1..256; got 257"},
    {"HeaddimVTooLarge", FA_OP_FORWARD, [](fa_params& p) { p.headdim_v = 512; }, FA_ERR_INVALID_ARGUMENT, "fa_params.headdim_v must be in 1..256; got 512"},
    {"TotalQNegative", FA_OP_FORWARD, [](fa_params& p) { p.total_q = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.total_q must be >= 0"},
    {"ForwardQNull", FA_OP_FORWARD, [](fa_params& p) { p.q.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.q.data must not be NULL for fa_forward"},
    {"ForwardKNull", FA_OP_FORWARD, [](fa_params& p) { p.k.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.k.data must not be NULL"},
    {"ForwardVNull", FA_OP_FORWARD, [](fa_params& p) { p.v.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.v.data must not be NULL"},
    {"ForwardOutNull", FA_OP_FORWARD, [](fa_params& p) { p.out.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.out.data must not be NULL"},
    {"BackwardDoutNull", FA_OP_BACKWARD, [](fa_params& p) { p.dout.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dout.data must not be NULL for fa_backward"},
    {"BackwardLseNull", FA_OP_BACKWARD, [](fa_params& p) { p.softmax_lse = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softmax_lse must not be NULL for fa_backward"},
    {"BackwardDqNull", FA_OP_BACKWARD, [](fa_params& p) { p.dq.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dq.data must not be NULL"},
    {"BackwardDkNull", FA_OP_BACKWARD, [](fa_params& p) { p.dk.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dk.data must not be NULL"},
    {"BackwardDvNull", FA_OP_BACKWARD, [](fa_params& p) { p.dv.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dv.data must not be NULL"},
    {"KvcacheCacheSeqlensNull", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.cache_seqlens = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.cache_seqlens must not be NULL"},
    {"NegativeRowStride", FA_OP_FORWARD, [](fa_params& p) { p.k.row_stride = -8; }, FA_ERR_INVALID_ARGUMENT, "fa_params.k.row_stride must be >= 0; got -8"},
    {"NegativeBatchStride", FA_OP_BACKWARD, [](fa_params& p) { p.dq.batch_stride = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dq.batch_stride must be >= 0"},
    {"NegativeHeadStride", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.v_new.head_stride = -2; }, FA_ERR_INVALID_ARGUMENT, "fa_params.v_new.head_stride must be >= 0"},
    {"NegativeLseStride", FA_OP_FORWARD, [](fa_params& p) { p.lse_head_stride = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.lse_head_stride must be >= 0"},
    {"SoftmaxScaleNaN", FA_OP_FORWARD, [](fa_params& p) { p.softmax_scale = kNaN; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softmax_scale must be finite"},
    {"SoftcapNegative", FA_OP_FORWARD, [](fa_params& p) { p.softcap = -1.0f; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softcap must be 0 (off) or a finite positive value; got -1"},
    {"SoftcapInfinite", FA_OP_FORWARD, [](fa_params& p) { p.softcap = kInf; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softcap must be"},
    {"SoftcapNaN", FA_OP_FORWARD, [](fa_params& p) { p.softcap = kNaN; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softcap must be"},
    {"CausalNotFlag", FA_OP_FORWARD, [](fa_params& p) { p.is_causal = 2; }, FA_ERR_INVALID_ARGUMENT, "fa_params.is_causal must be 0 or 1; got 2"},
    {"WindowLeft", FA_OP_FORWARD, [](fa_params& p) { p.window_left = -2; }, FA_ERR_INVALID_ARGUMENT, "fa_params.window_left must be -1 (unbounded) or >= 0; got -2"},
    {"WindowRight", FA_OP_FORWARD, [](fa_params& p) { p.window_right = -7; }, FA_ERR_INVALID_ARGUMENT, "fa_params.window_right must be -1 (unbounded) or >= 0; got -7"},
    {"DeterministicNotFlag", FA_OP_BACKWARD, [](fa_params& p) { p.deterministic = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.deterministic must be 0 or 1"},
    {"AlibiStride", FA_OP_FORWARD, [](fa_params& p) { p.alibi_batch_stride = -12; }, FA_ERR_INVALID_ARGUMENT, "fa_params.alibi_batch_stride must be >= 0"},
    {"DropoutOne", FA_OP_FORWARD, [](fa_params& p) { p.dropout_p = 1.0f; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dropout_p must be in [0, 1); got 1"},
    {"DropoutNegative", FA_OP_FORWARD, [](fa_params& p) { p.dropout_p = -0.1f; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dropout_p must be in [0, 1)"},
    {"DropoutNaN", FA_OP_BACKWARD, [](fa_params& p) { p.dropout_p = kNaN; }, FA_ERR_INVALID_ARGUMENT, "fa_params.dropout_p must be in [0, 1)"},
    {"SoftcapWithDropout", FA_OP_FORWARD, [](fa_params& p) { p.softcap = 30.0f; p.dropout_p = 0.1f; }, FA_ERR_INVALID_ARGUMENT, "fa_params.softcap (30) cannot be combined with dropout"},
    {"DsinkWithoutSinks", FA_OP_BACKWARD, [](fa_params& p) { p.dsink = static_cast<float*>(fake_pointer(30)); }, FA_ERR_INVALID_ARGUMENT, "fa_params.dsink requires sink_logits"},
    {"DescaleWithoutFp8", FA_OP_FORWARD, [](fa_params& p) { p.k_descale = static_cast<const float*>(fake_pointer(31)); }, FA_ERR_INVALID_ARGUMENT, "fa_params.k_descale applies to dtype e4m3"},
    {"CuSeqlensQOnly", FA_OP_FORWARD, [](fa_params& p) { p.cu_seqlens_q = static_cast<const int32_t*>(fake_pointer(32)); }, FA_ERR_INVALID_ARGUMENT, "fa_params.cu_seqlens_q and cu_seqlens_k must be given together; cu_seqlens_k is NULL"},
    {"CuSeqlensKOnly", FA_OP_BACKWARD, [](fa_params& p) { p.cu_seqlens_k = static_cast<const int32_t*>(fake_pointer(33)); }, FA_ERR_INVALID_ARGUMENT, "cu_seqlens_q is NULL"},
    {"PageSizeZero", FA_OP_FORWARD, [](fa_params& p) { p.block_table = static_cast<const int32_t*>(fake_pointer(34)); p.max_pages_per_seq = 4; }, FA_ERR_INVALID_ARGUMENT, "fa_params.page_size must be >= 1 with a block_table; got 0"},
    {"MaxPagesZero", FA_OP_FORWARD, [](fa_params& p) { p.block_table = static_cast<const int32_t*>(fake_pointer(35)); p.page_size = 16; }, FA_ERR_INVALID_ARGUMENT, "fa_params.max_pages_per_seq must be >= 1"},
    {"CacheBatchIdxWithBlockTable", FA_OP_FORWARD_KVCACHE, [](fa_params& p) {
         p.block_table = static_cast<const int32_t*>(fake_pointer(36));
         p.page_size = 16;
         p.max_pages_per_seq = 4;
         p.cache_batch_idx = static_cast<const int32_t*>(fake_pointer(37));
     }, FA_ERR_INVALID_ARGUMENT, "fa_params.cache_batch_idx cannot be combined with block_table"},
    {"CacheSeqlensOnForward", FA_OP_FORWARD, [](fa_params& p) { p.cache_seqlens = static_cast<const int32_t*>(fake_pointer(38)); }, FA_ERR_INVALID_ARGUMENT, "fa_params.cache_seqlens applies to fa_forward_kvcache only"},
    {"KNewOnForward", FA_OP_FORWARD, [](fa_params& p) { p.k_new.data = fake_pointer(39); p.v_new.data = fake_pointer(40); }, FA_ERR_INVALID_ARGUMENT, "fa_params.k_new/v_new apply to fa_forward_kvcache only"},
    {"RotaryOnBackward", FA_OP_BACKWARD, [](fa_params& p) { p.rotary_dim = 32; }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_dim applies to fa_forward_kvcache only; got 32 for fa_backward"},
    {"KNewWithoutVNew", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.v_new.data = nullptr; }, FA_ERR_INVALID_ARGUMENT, "fa_params.k_new and v_new must be given together; v_new.data is NULL"},
    {"SeqlenNewWithoutKNew", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.k_new.data = nullptr; p.v_new.data = nullptr; p.seqlen_new = 4; }, FA_ERR_INVALID_ARGUMENT, "fa_params.k_new.data must not be NULL when seqlen_new (4) > 0"},
    {"SeqlenNewNegative", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.seqlen_new = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.seqlen_new must be >= 0"},
    {"RotaryDimNotMultipleOf16", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_dim = 24; p.rotary_cos = fake_pointer(41); p.rotary_sin = fake_pointer(42); }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_dim must be 0 (off) or a positive multiple of 16; got 24"},
    {"RotaryDimAboveHeaddim", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_dim = 160; p.rotary_cos = fake_pointer(41); p.rotary_sin = fake_pointer(42); }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_dim must be <= headdim_qk (128); got 160"},
    {"RotaryCosWithoutSin", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_dim = 32; p.rotary_cos = fake_pointer(41); }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_cos and rotary_sin must be given together; rotary_sin is NULL"},
    {"RotaryWithoutTables", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_dim = 32; }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_cos/rotary_sin must not be NULL when rotary_dim (32) > 0"},
    {"RotaryTablesWithoutDim", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_cos = fake_pointer(41); p.rotary_sin = fake_pointer(42); }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_cos/rotary_sin are set but rotary_dim is 0"},
    {"RotaryInterleavedNotFlag", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.rotary_interleaved = 3; }, FA_ERR_INVALID_ARGUMENT, "fa_params.rotary_interleaved must be 0 or 1; got 3"},
    {"NumSplitsTooMany", FA_OP_FORWARD, [](fa_params& p) { p.num_splits = 257; }, FA_ERR_INVALID_ARGUMENT, "fa_params.num_splits must be in 0..256 (0 = heuristic); got 257"},
    {"NumSplitsNegative", FA_OP_FORWARD_KVCACHE, [](fa_params& p) { p.num_splits = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.num_splits must be in 0..256"},
    {"DeviceNegative", FA_OP_FORWARD, [](fa_params& p) { p.device = -1; }, FA_ERR_INVALID_ARGUMENT, "fa_params.device must be >= 0; got -1"},
    {"WorkspaceWithoutBytes", FA_OP_FORWARD, [](fa_params& p) { p.workspace = fake_pointer(43); }, FA_ERR_INVALID_ARGUMENT, "fa_params.workspace_bytes must be > 0 when workspace is set"},
};

class InvalidParams : public testing::TestWithParam<Mutation> {};

TEST_P(InvalidParams, FailsWithStatusAndMessageNamingTheField) {
    const Mutation& m = GetParam();
    fa_params p = valid_params(m.op);
    ASSERT_EQ(fa_check_params(&p, m.op), FA_OK) << "baseline: " << fa_get_last_error();
    m.mutate(p);
    const fa_status status = fa_check_params(&p, m.op);
    EXPECT_EQ(status, m.expected) << fa_status_name(status) << ": " << fa_get_last_error();
    EXPECT_NE(std::string(fa_get_last_error()).find(m.message_part), std::string::npos)
        << "message: " << fa_get_last_error() << "\nexpected to contain: " << m.message_part;
}

INSTANTIATE_TEST_SUITE_P(CheckParams, InvalidParams, testing::ValuesIn(kMutations),
                         [](const testing::TestParamInfo<Mutation>& info) { return std::string(info.param.name); });

}  // namespace
