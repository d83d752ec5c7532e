using FlashAttention.Layers;
using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.BadInput;

/// <summary>
/// Bad input is refused with the specific exception type, a ParamName naming the offending
/// parameter, and a message that states the expected value — never a crash or wrong numbers.
/// Each case is one named row; the tensors are tiny.
/// </summary>
public class BadInputTests
{
    private sealed record Case(Action Call, Type Exception, string Param, params string[] MessageParts);

    // Good defaults: q (2, 8, 4, 32) fp16, k/v (2, 16, 2, 32).
    private const int B = 2, Sq = 8, Sk = 16, Hq = 4, Hk = 2, D = 32;

    private static Tensor T(DType dt, params long[] shape) => Tensor.Zeros(dt, shape);

    private static Tensor Q(DType dt = DType.Float16) => T(dt, B, Sq, Hq, D);
    private static Tensor K(DType dt = DType.Float16) => T(dt, B, Sk, Hk, D);
    private static Tensor V(DType dt = DType.Float16) => T(dt, B, Sk, Hk, D);

    private static Tensor Ints(params int[] v) => TestData.Ints(v);

    /// <summary>A (rows, cols) view whose last stride is 2.</summary>
    private static Tensor Strided(DType dt, params long[] shape)
    {
        long n = 2;
        foreach (long s in shape) n *= s;
        var baseT = T(dt, n);
        var strides = Tensor.ContiguousStrides(shape).Select(s => s * 2).ToArray();
        return Tensor.Create(baseT.Storage, dt, 0, shape, strides);
    }

    private static Dispatcher Disp => Dispatcher.Default;

    private static AttentionResult Fwd(AttentionOptions o) => Disp.Forward(Q(), K(), V(), o);

    private static AttentionGradients Bwd(Tensor? dout = null, Tensor? output = null, Tensor? lse = null, Tensor? dq = null) =>
        Disp.Backward(dout!, Q(), K(), V(), output ?? T(DType.Float16, B, Sq, Hq, D), lse ?? T(DType.Float32, B, Hq, Sq), null, dq);

    // Varlen: 2 sequences, q (10, 4, 32), k/v (20, 2, 32).
    private static AttentionResult Varlen(VarlenInputs vl, Tensor? k = null, Tensor? v = null) =>
        Disp.ForwardVarlen(T(DType.Float16, 10, Hq, D), k ?? T(DType.Float16, 20, Hk, D), v ?? T(DType.Float16, 20, Hk, D), vl);

    private static VarlenInputs Vl(int[]? cuQ = null, int[]? cuK = null) =>
        new() { CuSeqlensQ = Ints(cuQ ?? [0, 4, 10]), CuSeqlensK = Ints(cuK ?? [0, 12, 20]) };

    // Paged varlen: pages of 4 rows, 8 pages; block table (2, 3).
    private static AttentionResult Paged(Tensor table, int[]? cuK = null) =>
        Disp.ForwardVarlen(T(DType.Float16, 10, Hq, D), T(DType.Float16, 8, 4, Hk, D), T(DType.Float16, 8, 4, Hk, D),
            new VarlenInputs { CuSeqlensQ = Ints(0, 4, 10), CuSeqlensK = Ints(cuK ?? [0, 12, 20]), BlockTable = table });

    // KV cache: q (2, 1, 4, 32), cache (2, 16, 2, 32).
    private static AttentionResult Kv(KvCacheInputs cache, AttentionOptions? o = null, Tensor? kCache = null, Tensor? vCache = null, int d = D) =>
        Disp.ForwardWithKvCache(T(DType.Float16, B, 1, Hq, d), kCache ?? T(DType.Float16, B, Sk, Hk, d), vCache ?? T(DType.Float16, B, Sk, Hk, d), cache, o);

    private static Tensor NewKv(int seqlenNew = 2, int d = D) => T(DType.Float16, B, seqlenNew, Hk, d);

    // fp8: e4m3 q/k/v of the good shapes; descales are fp32 (B, Hk).
    private const DType E4M3 = DType.Float8E4M3;

    private static AttentionResult Fwd8(AttentionOptions o, Tensor? output = null) => Disp.Forward(Q(E4M3), K(E4M3), V(E4M3), o, output);

    /// <summary>An fp32 (2, 2) tensor that claims to live on cuda:0 (never dereferenced: the validator only reads its device).</summary>
    private static Tensor OnCuda() => Tensor.Create(new NativeStorage(0x1000, 16, Device.Cuda(0)), DType.Float32, 0, [B, Hk]);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // ---------------------------------------------------------------- ranks and shapes
        ["q rank 3 without varlen"] = new(() => Disp.Forward(T(DType.Float16, Sq, Hq, D), K(), V()), typeof(ArgumentException), "q", "rank 4", "got rank 3"),
        ["k rank 5"] = new(() => Disp.Forward(Q(), T(DType.Float16, B, Sk, Hk, D, 1), V()), typeof(ArgumentException), "k", "rank 4"),
        ["v rank 2"] = new(() => Disp.Forward(Q(), K(), T(DType.Float16, Sk, D)), typeof(ArgumentException), "v", "rank 4"),
        ["k batch differs from q"] = new(() => Disp.Forward(Q(), T(DType.Float16, 3, Sk, Hk, D), V()), typeof(ArgumentException), "k", "[2, 16, 2, 32]"),
        ["v seqlen differs from k"] = new(() => Disp.Forward(Q(), K(), T(DType.Float16, B, Sk - 1, Hk, D)), typeof(ArgumentException), "v", "[2, 16, 2, 32]"),
        ["v heads differ from k"] = new(() => Disp.Forward(Q(), K(), T(DType.Float16, B, Sk, 1, D)), typeof(ArgumentException), "v", "[2, 16, 2, 32]"),
        ["k headdim differs from q"] = new(() => Disp.Forward(Q(), T(DType.Float16, B, Sk, Hk, 16), T(DType.Float16, B, Sk, Hk, 16)), typeof(ArgumentException), "k", "[2, 16, 2, 32]"),
        ["nheads_q not a multiple of nheads_kv"] = new(() => Disp.Forward(Q(), T(DType.Float16, B, Sk, 3, D), T(DType.Float16, B, Sk, 3, D)), typeof(ArgumentException), "k", "(4)", "(3)", "multiple"),
        ["head dim 0"] = new(() => Disp.Forward(T(DType.Float16, B, Sq, Hq, 0), T(DType.Float16, B, Sk, Hk, 0), T(DType.Float16, B, Sk, Hk, 0)), typeof(ArgumentException), "q", "[1, 256]", "got 0"),
        ["head dim 257"] = new(() => Disp.Forward(T(DType.Float16, 1, 1, 1, 257), T(DType.Float16, 1, 1, 1, 257), T(DType.Float16, 1, 1, 1, 257)), typeof(ArgumentException), "q", "[1, 256]", "got 257"),
        ["headdim_v 300"] = new(() => Disp.Forward(T(DType.Float16, 1, 1, 1, 8), T(DType.Float16, 1, 1, 1, 8), T(DType.Float16, 1, 1, 1, 300)), typeof(ArgumentException), "v", "[1, 256]", "got 300"),
        ["batch 0"] = new(() => Disp.Forward(T(DType.Float16, 0, Sq, Hq, D), T(DType.Float16, 0, Sk, Hk, D), T(DType.Float16, 0, Sk, Hk, D)), typeof(ArgumentException), "q", ">= 1", "got 0"),
        ["q last stride not 1"] = new(() => Disp.Forward(Strided(DType.Float16, B, Sq, Hq, D), K(), V()), typeof(ArgumentException), "q", "stride 1"),
        ["k last stride not 1"] = new(() => Disp.Forward(Q(), Strided(DType.Float16, B, Sk, Hk, D), V()), typeof(ArgumentException), "k", "stride 1"),
        ["null q"] = new(() => Disp.Forward(null!, K(), V()), typeof(ArgumentNullException), "q", "null"),
        ["lse destination of wrong shape"] = new(() => Disp.Forward(Q(), K(), V(), null, null, T(DType.Float32, B, Sq, Hq)), typeof(ArgumentException), "lse", "[2, 4, 8]"),
        ["lse destination not fp32"] = new(() => Disp.Forward(Q(), K(), V(), null, null, T(DType.Float16, B, Hq, Sq)), typeof(ArgumentException), "lse", "fp32"),
        ["lse destination with ReturnLse off"] = new(() => Disp.Forward(Q(), K(), V(), new AttentionOptions { ReturnLse = false }, null, T(DType.Float32, B, Hq, Sq)), typeof(ArgumentException), "lse", "ReturnLse"),

        // ---------------------------------------------------------------- options
        ["window left -2"] = new(() => Fwd(new AttentionOptions { WindowLeft = -2 }), typeof(ArgumentOutOfRangeException), "options.WindowLeft", ">= -1", "-2"),
        ["window right -5"] = new(() => Fwd(new AttentionOptions { WindowRight = -5 }), typeof(ArgumentOutOfRangeException), "options.WindowRight", ">= -1", "-5"),
        ["softcap negative"] = new(() => Fwd(new AttentionOptions { Softcap = -1 }), typeof(ArgumentOutOfRangeException), "options.Softcap", ">= 0"),
        ["softcap NaN"] = new(() => Fwd(new AttentionOptions { Softcap = float.NaN }), typeof(ArgumentOutOfRangeException), "options.Softcap", ">= 0"),
        ["softcap infinite"] = new(() => Fwd(new AttentionOptions { Softcap = float.PositiveInfinity }), typeof(ArgumentOutOfRangeException), "options.Softcap", "finite"),
        ["dropout 1"] = new(() => Fwd(new AttentionOptions { DropoutP = 1f }), typeof(ArgumentOutOfRangeException), "options.DropoutP", "[0, 1)"),
        ["dropout negative"] = new(() => Fwd(new AttentionOptions { DropoutP = -0.1f }), typeof(ArgumentOutOfRangeException), "options.DropoutP", "[0, 1)"),
        ["dropout NaN"] = new(() => Fwd(new AttentionOptions { DropoutP = float.NaN }), typeof(ArgumentOutOfRangeException), "options.DropoutP", "[0, 1)"),
        ["softcap with dropout"] = new(() => Fwd(new AttentionOptions { Softcap = 10, DropoutP = 0.1f }), typeof(ArgumentException), "options.Softcap", "dropout"),
        ["scale infinite"] = new(() => Fwd(new AttentionOptions { SoftmaxScale = float.PositiveInfinity }), typeof(ArgumentOutOfRangeException), "options.SoftmaxScale", "finite"),
        ["scale NaN"] = new(() => Fwd(new AttentionOptions { SoftmaxScale = float.NaN }), typeof(ArgumentOutOfRangeException), "options.SoftmaxScale", "finite"),
        ["num_splits -1"] = new(() => Fwd(new AttentionOptions { NumSplits = -1 }), typeof(ArgumentOutOfRangeException), "options.NumSplits", "[0, 128]"),
        ["num_splits 129"] = new(() => Fwd(new AttentionOptions { NumSplits = 129 }), typeof(ArgumentOutOfRangeException), "options.NumSplits", "[0, 128]"),
        ["ReturnDropoutMask without dropout"] = new(() => Fwd(new AttentionOptions { ReturnDropoutMask = true }), typeof(ArgumentException), "options.ReturnDropoutMask", "DropoutP > 0"),
        ["alibi wrong shape"] = new(() => Fwd(new AttentionOptions { AlibiSlopes = T(DType.Float32, 3) }), typeof(ArgumentException), "options.AlibiSlopes", "(4) or (2, 4)"),
        ["alibi (b, h) with wrong batch"] = new(() => Fwd(new AttentionOptions { AlibiSlopes = T(DType.Float32, 3, 4) }), typeof(ArgumentException), "options.AlibiSlopes", "(4) or (2, 4)"),
        ["alibi fp16"] = new(() => Fwd(new AttentionOptions { AlibiSlopes = T(DType.Float16, 4) }), typeof(ArgumentException), "options.AlibiSlopes", "fp32"),
        ["sinks wrong shape"] = new(() => Fwd(new AttentionOptions { SinkLogits = T(DType.Float32, 2) }), typeof(ArgumentException), "options.SinkLogits", "(4)"),
        ["sinks bf16"] = new(() => Fwd(new AttentionOptions { SinkLogits = T(DType.BFloat16, 4) }), typeof(ArgumentException), "options.SinkLogits", "fp32"),

        // ---------------------------------------------------------------- dtypes and outputs
        ["k fp16 with q bf16"] = new(() => Disp.Forward(Q(DType.BFloat16), K(DType.Float16), V(DType.BFloat16)), typeof(ArgumentException), "k", "bf16", "got fp16"),
        ["v fp32 with q fp16"] = new(() => Disp.Forward(Q(), K(), V(DType.Float32)), typeof(ArgumentException), "v", "fp16", "got fp32"),
        ["q int32"] = new(() => Disp.Forward(Q(DType.Int32), K(DType.Int32), V(DType.Int32)), typeof(ArgumentException), "q", "fp16, bf16, fp32", "got i32"),
        ["output wrong shape"] = new(() => Disp.Forward(Q(), K(), V(), null, T(DType.Float16, B, Sq, Hq, D + 1)), typeof(ArgumentException), "output", "[2, 8, 4, 32]"),
        ["output wrong dtype"] = new(() => Disp.Forward(Q(), K(), V(), null, T(DType.Float32, B, Sq, Hq, D)), typeof(ArgumentException), "output", "fp16", "got fp32"),

        // ---------------------------------------------------------------- fp8
        ["descale with fp16 inputs"] = new(() => Fwd(new AttentionOptions { QDescale = T(DType.Float32, B, Hk) }), typeof(ArgumentException), "options.QDescale", "e4m3 inputs only", "q is fp16"),
        ["descale fp16"] = new(() => Fwd8(new AttentionOptions { KDescale = T(DType.Float16, B, Hk) }), typeof(ArgumentException), "options.KDescale", "fp32", "got fp16"),
        ["descale per query head"] = new(() => Fwd8(new AttentionOptions { VDescale = T(DType.Float32, B, Hq) }), typeof(ArgumentException), "options.VDescale", "[2, 2]", "nheads_kv"),
        ["descale rank 1"] = new(() => Fwd8(new AttentionOptions { QDescale = T(DType.Float32, B) }), typeof(ArgumentException), "options.QDescale", "[2, 2]"),
        ["varlen descale with a row per token"] = new(() => Disp.ForwardVarlen(T(E4M3, 10, Hq, D), T(E4M3, 20, Hk, D), T(E4M3, 20, Hk, D), Vl(),
            new AttentionOptions { KDescale = T(DType.Float32, 10, Hk) }), typeof(ArgumentException), "options.KDescale", "[2, 2]", "sequences in cu_seqlens"),
        ["descale on another device than q"] = new(() => Fwd8(new AttentionOptions { VDescale = OnCuda() }), typeof(ArgumentException), "options.VDescale", "cpu", "cuda:0"),
        ["fp8 output destination"] = new(() => Fwd8(new AttentionOptions(), T(E4M3, B, Sq, Hq, D)), typeof(ArgumentException), "output", "bf16", "got e4m3"),
        ["fp8 backward"] = new(() => Disp.Backward(T(DType.BFloat16, B, Sq, Hq, D), Q(E4M3), K(E4M3), V(E4M3), T(DType.BFloat16, B, Sq, Hq, D), T(DType.Float32, B, Hq, Sq)),
            typeof(ArgumentException), "q", "backward", "fp8"),
        ["fp8 kv cache"] = new(() => Disp.ForwardWithKvCache(T(E4M3, B, 1, Hq, D), K(E4M3), V(E4M3), new KvCacheInputs { CacheSeqlens = Ints(1, 1) }),
            typeof(ArgumentException), "q", "ForwardWithKvCache", "fp8"),

        // ---------------------------------------------------------------- backward
        ["backward lse wrong shape"] = new(() => Bwd(Q(), lse: T(DType.Float32, B, Sq, Hq)), typeof(ArgumentException), "lse", "[2, 4, 8]"),
        ["backward lse fp16"] = new(() => Bwd(Q(), lse: T(DType.Float16, B, Hq, Sq)), typeof(ArgumentException), "lse", "fp32"),
        ["backward missing dout"] = new(() => Bwd(null), typeof(ArgumentNullException), "dout", "null"),
        ["backward out wrong shape"] = new(() => Bwd(Q(), output: T(DType.Float16, B, Sq, Hq, 16)), typeof(ArgumentException), "output", "[2, 8, 4, 32]"),
        ["backward dout wrong dtype"] = new(() => Bwd(Q(DType.BFloat16)), typeof(ArgumentException), "dout", "fp16", "got bf16"),
        ["backward dq wrong shape"] = new(() => Bwd(Q(), dq: T(DType.Float16, B, Sq, Hq, 16)), typeof(ArgumentException), "dq", "[2, 8, 4, 32]"),

        // ---------------------------------------------------------------- varlen
        ["cu_seqlens_q not starting at 0"] = new(() => Varlen(Vl(cuQ: [1, 4, 10])), typeof(ArgumentException), "varlen.CuSeqlensQ", "start at 0", "got 1"),
        ["cu_seqlens_k not monotone"] = new(() => Varlen(Vl(cuK: [0, 12, 8])), typeof(ArgumentException), "varlen.CuSeqlensK", "non-decreasing"),
        ["cu_seqlens_q beyond total_q"] = new(() => Varlen(Vl(cuQ: [0, 4, 11])), typeof(ArgumentException), "varlen.CuSeqlensQ", "11", "total_q = 10"),
        ["cu_seqlens_k beyond total_k"] = new(() => Varlen(Vl(cuK: [0, 12, 21])), typeof(ArgumentException), "varlen.CuSeqlensK", "21", "total_k = 20"),
        ["cu_seqlens fp32"] = new(() => Varlen(new VarlenInputs { CuSeqlensQ = Tensor.FromDoubles(DType.Float32, [0, 4, 10], 3), CuSeqlensK = Ints(0, 12, 20) }), typeof(ArgumentException), "varlen.CuSeqlensQ", "int32"),
        ["cu_seqlens_k wrong length"] = new(() => Varlen(Vl(cuK: [0, 12])), typeof(ArgumentException), "varlen.CuSeqlensK", "(3)"),
        ["cu_seqlens_q rank 2"] = new(() => Varlen(new VarlenInputs { CuSeqlensQ = TestData.Ints2D(new[,] { { 0, 4, 10 } }), CuSeqlensK = Ints(0, 12, 20) }), typeof(ArgumentException), "varlen.CuSeqlensQ", "rank 1"),
        ["MaxSeqlenQ smaller than actual"] = new(() => Varlen(Vl() with { MaxSeqlenQ = 5 }), typeof(ArgumentException), "varlen.MaxSeqlenQ", "5", "(6)"),
        ["MaxSeqlenK smaller than actual"] = new(() => Varlen(Vl() with { MaxSeqlenK = 11 }), typeof(ArgumentException), "varlen.MaxSeqlenK", "11", "(12)"),
        ["seqused_k beyond the sequence"] = new(() => Varlen(Vl() with { SequsedK = Ints(13, 8) }), typeof(ArgumentException), "varlen.SequsedK", "13", "[0, 12]"),
        ["seqused_k negative"] = new(() => Varlen(Vl() with { SequsedK = Ints(3, -1) }), typeof(ArgumentException), "varlen.SequsedK", "-1", "[0, 8]"),
        ["seqused_k wrong length"] = new(() => Varlen(Vl() with { SequsedK = Ints(3, 4, 5) }), typeof(ArgumentException), "varlen.SequsedK", "(2)"),
        ["leftpad_k beyond the keys"] = new(() => Varlen(Vl() with { LeftpadK = Ints(0, 9) }), typeof(ArgumentException), "varlen.LeftpadK", "9", "[0, 8]"),
        ["leftpad_k beyond seqused_k"] = new(() => Varlen(Vl() with { SequsedK = Ints(5, 8), LeftpadK = Ints(6, 0) }), typeof(ArgumentException), "varlen.LeftpadK", "6", "[0, 5]"),
        ["varlen k headdim differs"] = new(() => Varlen(Vl(), T(DType.Float16, 20, Hk, 16), T(DType.Float16, 20, Hk, 16)), typeof(ArgumentException), "k", "headdim 32"),
        ["varlen v rows differ from k"] = new(() => Varlen(Vl(), null, T(DType.Float16, 19, Hk, D)), typeof(ArgumentException), "v", "[20, 2]"),
        ["block_table page out of range"] = new(() => Paged(TestData.Ints2D(new[,] { { 0, 1, 2 }, { 3, 8, 5 } })), typeof(ArgumentException), "varlen.BlockTable", "8", "[0, 8)"),
        ["block_table negative page"] = new(() => Paged(TestData.Ints2D(new[,] { { 0, -1, 2 }, { 3, 4, 5 } })), typeof(ArgumentException), "varlen.BlockTable", "-1", "[0, 8)"),
        ["block_table wrong batch"] = new(() => Paged(TestData.Ints2D(new[,] { { 0, 1, 2 } })), typeof(ArgumentException), "varlen.BlockTable", "2 rows"),
        ["block_table capacity exceeded"] = new(() => Paged(TestData.Ints2D(new[,] { { 0, 1, 2 }, { 3, 4, 5 } }), [0, 13, 20]), typeof(ArgumentException), "varlen.BlockTable", "13", "3 pages × 4"),
        ["block_table fp32"] = new(() => Paged(Tensor.FromDoubles(DType.Float32, [0, 1, 2, 3, 4, 5], 2, 3)), typeof(ArgumentException), "varlen.BlockTable", "int32"),

        // ---------------------------------------------------------------- kv cache
        ["cache_seqlens + seqlen_new beyond capacity"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(15, 3), KNew = NewKv(), VNew = NewKv() }), typeof(ArgumentException), "cache.CacheSeqlens", "15", "[0, 16]"),
        ["cache_seqlens negative"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(-1, 3) }), typeof(ArgumentException), "cache.CacheSeqlens", "-1", "[0, 16]"),
        ["cache_seqlens missing"] = new(() => Kv(new KvCacheInputs()), typeof(ArgumentNullException), "cache.CacheSeqlens", "int32"),
        ["cache_seqlens wrong length"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 2, 3) }), typeof(ArgumentException), "cache.CacheSeqlens", "(2)"),
        ["paged cache capacity exceeded"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(7, 3), KNew = NewKv(), VNew = NewKv(), BlockTable = TestData.Ints2D(new[,] { { 0, 1 }, { 2, 3 } }) },
            kCache: T(DType.Float16, 6, 4, Hk, D), vCache: T(DType.Float16, 6, 4, Hk, D)), typeof(ArgumentException), "cache.BlockTable", "2 pages × 4"),
        ["paged cache page out of range"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(5, 3), BlockTable = TestData.Ints2D(new[,] { { 0, 6 }, { 2, 3 } }) },
            kCache: T(DType.Float16, 6, 4, Hk, D), vCache: T(DType.Float16, 6, 4, Hk, D)), typeof(ArgumentException), "cache.BlockTable", "6", "[0, 6)"),
        ["k_new without v_new"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv() }), typeof(ArgumentException), "cache.VNew", "together"),
        ["k_new wrong heads"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = T(DType.Float16, B, 2, 1, D), VNew = T(DType.Float16, B, 2, 1, D) }), typeof(ArgumentException), "cache.KNew", "[2, 2, 2, 32]"),
        ["rotary without k_new"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), RotaryCos = T(DType.Float16, Sk, 8), RotarySin = T(DType.Float16, Sk, 8) }), typeof(ArgumentException), "cache.RotaryCos", "KNew"),
        ["rotary dim not a multiple of 16"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float16, Sk, 12), RotarySin = T(DType.Float16, Sk, 12) }), typeof(ArgumentException), "cache.RotaryCos", "multiple of 16", "got 24"),
        ["rotary dim beyond head dim"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float16, Sk, 24), RotarySin = T(DType.Float16, Sk, 24) }), typeof(ArgumentException), "cache.RotaryCos", "<= headdim 32", "got 48"),
        ["rotary cos/sin shapes differ"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float16, Sk, 8), RotarySin = T(DType.Float16, Sk + 1, 8) }), typeof(ArgumentException), "cache.RotarySin", "[16, 8]"),
        ["rotary cos shorter than the cache"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float16, Sk - 1, 8), RotarySin = T(DType.Float16, Sk - 1, 8) }), typeof(ArgumentException), "cache.RotaryCos", "at least 16"),
        ["rotary cos fp32 with fp16 q"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float32, Sk, 8), RotarySin = T(DType.Float32, Sk, 8) }), typeof(ArgumentException), "cache.RotaryCos", "fp16"),
        ["rotary sin missing"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), KNew = NewKv(), VNew = NewKv(), RotaryCos = T(DType.Float16, Sk, 8) }), typeof(ArgumentException), "cache.RotarySin", "together"),
        ["cache_batch_idx out of range"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), CacheBatchIdx = Ints(0, 2) }), typeof(ArgumentException), "cache.CacheBatchIdx", "2", "[0, 2)"),
        ["cache_batch_idx with paged cache"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1), CacheBatchIdx = Ints(0, 1), BlockTable = TestData.Ints2D(new[,] { { 0, 1 }, { 2, 3 } }) },
            kCache: T(DType.Float16, 6, 4, Hk, D), vCache: T(DType.Float16, 6, 4, Hk, D)), typeof(ArgumentException), "cache.CacheBatchIdx", "paged"),
        ["dropout with kv cache"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1) }, new AttentionOptions { DropoutP = 0.1f }), typeof(ArgumentException), "options.DropoutP", "dropout"),
        ["kv cache leftpad beyond cache_seqlens"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(4, 1), LeftpadK = Ints(5, 0) }), typeof(ArgumentException), "cache.LeftpadK", "5", "[0, cache_seqlens[0] = 4]"),
        ["kv cache smaller batch without cache_batch_idx"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1) }, kCache: T(DType.Float16, 1, Sk, Hk, D), vCache: T(DType.Float16, 1, Sk, Hk, D)), typeof(ArgumentException), "kCache", "at least batch = 2"),
        ["kv cache v differs from k"] = new(() => Kv(new KvCacheInputs { CacheSeqlens = Ints(1, 1) }, vCache: T(DType.Float16, B, Sk - 1, Hk, D)), typeof(ArgumentException), "vCache", "[2, 16, 2]"),

        // ---------------------------------------------------------------- packed
        ["packed qkv with 2 in the stack axis"] = new(() => Disp.ForwardQkvPacked(T(DType.Float16, B, Sq, 2, Hq, D)), typeof(ArgumentException), "qkv", "(batch, seqlen, 3, nheads, headdim)"),
        ["packed kv with 3 in the stack axis"] = new(() => Disp.ForwardKvPacked(Q(), T(DType.Float16, B, Sk, 3, Hk, D)), typeof(ArgumentException), "kv", "(batch, seqlen_k, 2, nheads_kv, headdim)"),
        ["varlen packed qkv rank 5"] = new(() => Disp.ForwardVarlenQkvPacked(T(DType.Float16, 1, 10, 3, Hq, D), Ints(0, 4, 10)), typeof(ArgumentException), "qkv", "(total, 3, nheads, headdim)"),
        ["packed qkv backward wrong shape"] = new(() => Disp.BackwardQkvPacked(Q(), T(DType.Float16, B, Sq, 4, Hq, D), Q(), T(DType.Float32, B, Hq, Sq)), typeof(ArgumentException), "qkv", "(batch, seqlen, 3, nheads, headdim)"),

        // ---------------------------------------------------------------- dispatcher
        ["unknown FLASHATTN_BACKEND name"] = new(() => _ = new Dispatcher(BackendRegistry.CreateDefault(), "cudnn"), typeof(ArgumentException), "forcedBackend", "cudnn", "Known backends: ", "cpu"),
        ["WithBackend of an unknown name"] = new(() => Dispatcher.Default.WithBackend("triton"), typeof(ArgumentException), "forcedBackend", "triton", "Known backends"),
        ["unknown FLASHATTN_DISABLE name"] = new(() => _ = new Dispatcher(BackendRegistry.CreateDefault(), null, ["cpu", "xformers"]), typeof(ArgumentException), "disabled", "xformers", "Known backends"),

        // ---------------------------------------------------------------- tensors
        ["Tensor.Create storage too small for the view"] = new(() => Tensor.Create(new ManagedStorage<float>(new float[10]), DType.Float32, 2, [3, 3]), typeof(ArgumentException), "storage", "needs 11 elements", "holds 10"),
        ["Tensor.Create negative stride"] = new(() => Tensor.Create(new ManagedStorage<float>(new float[10]), DType.Float32, 0, [2, 2], [-2, 1]), typeof(ArgumentOutOfRangeException), "strides", ">= 0"),
        ["Tensor.Create stride count"] = new(() => Tensor.Create(new ManagedStorage<float>(new float[10]), DType.Float32, 0, [2, 2], [1]), typeof(ArgumentException), "strides", "Expected 2 strides"),
        ["Tensor.Zeros negative size"] = new(() => Tensor.Zeros(DType.Float32, 2, -1), typeof(ArgumentOutOfRangeException), "shape", ">= 0"),
        ["Tensor.FromDoubles wrong count"] = new(() => Tensor.FromDoubles(DType.Float32, [1, 2, 3], 2, 2), typeof(ArgumentException), "values", "4 elements", "got 3"),
        ["Tensor.Select out of range"] = new(() => T(DType.Float32, 2, 3).Select(1, 3), typeof(ArgumentOutOfRangeException), "index", "size 3"),
        ["Tensor.Narrow out of range"] = new(() => T(DType.Float32, 2, 3).Narrow(1, 2, 2), typeof(ArgumentOutOfRangeException), "start", "size 3"),
        ["Tensor.Reshape wrong count"] = new(() => T(DType.Float32, 2, 3).Reshape(4, 2), typeof(ArgumentException), "shape", "6 elements"),
        ["DTypes.Parse unknown name"] = new(() => DTypes.Parse("fp64"), typeof(ArgumentException), "name", "fp64", "fp16, bf16, fp32"),

        // ---------------------------------------------------------------- layers
        ["layer dropout 1"] = new(() => _ = new FlashSelfAttention(1.0f), typeof(ArgumentOutOfRangeException), "attentionDropoutProb", "[0, 1)"),
        ["FlashSelfAttention with fewer k heads"] = new(() => new FlashSelfAttention().Forward(T(DType.Float16, 1, 4, 8, 32), T(DType.Float16, 1, 2, 8, 32), T(DType.Float16, 1, 2, 8, 32)), typeof(ArgumentException), "k", "FlashGroupedQueryAttention"),
        ["layer packed qkv wrong shape"] = new(() => new FlashSelfAttention().Forward(T(DType.Float16, 1, 8, 2, 4, 32)), typeof(ArgumentException), "qkv", "(batch, seqlen, 3, nheads, headdim)"),
        ["layer rank 3 input"] = new(() => new FlashGroupedQueryAttention().Forward(T(DType.Float16, 8, 4, 32), (K(), V())), typeof(ArgumentException), "q", "rank 4"),
        ["layout name"] = new(() => AttentionLayouts.Parse("s b h d"), typeof(ArgumentException), "layout", "\"b s h d\" or \"b h s d\""),
    };

    public static TheoryData<string> Names => new(Cases.Keys);

    [Fact]
    public void There_are_at_least_fifty_distinct_cases() => Assert.True(Cases.Count >= 50, $"{Cases.Count} cases");

    [Theory]
    [MemberData(nameof(Names))]
    public void Rejects(string name)
    {
        var c = Cases[name];
        Exception? caught = null;
        try
        {
            c.Call();
        }
        catch (Exception e)
        {
            caught = e;
        }
        Assert.True(caught is not null, $"{name}: no exception; expected {c.Exception.Name} for parameter '{c.Param}'.");
        Assert.True(caught.GetType() == c.Exception,
            $"{name}: threw {caught.GetType().Name} ({caught.Message}); expected {c.Exception.Name}.");
        var ae = (ArgumentException)caught;
        Assert.True(ae.ParamName == c.Param, $"{name}: ParamName '{ae.ParamName}', expected '{c.Param}'. Message: {ae.Message}");
        foreach (string part in c.MessageParts)
            Assert.True(ae.Message.Contains(part, StringComparison.Ordinal), $"{name}: message does not mention \"{part}\": {ae.Message}");
    }
}
