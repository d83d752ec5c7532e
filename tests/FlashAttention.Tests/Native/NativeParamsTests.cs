using System.Buffers;
using System.Runtime.InteropServices;
using FlashAttention.Native;
using FlashAttention.Tests.Infrastructure;

namespace FlashAttention.Tests.Native;

/// <summary>
/// The managed and native halves of the ABI must agree: for problems using every feature, the
/// fa_params the dispatcher builds (NativeParams) must pass the native checks every backend runs
/// (fa_check_params) and give the same feature bits (fa_used_features). The native side comes
/// from libfa_abi_probe.so, built by `cmake -S backends -B build/native -DFA_BUILD_TESTS=ON`
/// (.ci/run does it); FLASHATTN_ABI_PROBE may point at it elsewhere.
/// </summary>
public sealed unsafe class NativeParamsTests
{
    private static readonly Lazy<(nint Check, nint Features, string? Missing)> Probe = new(LoadProbe);

    private static readonly TestData Data = new(7);

    public static TheoryData<string> Cases() => new(ProblemCases.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Described_problem_passes_the_native_checks_with_the_same_features(string name)
    {
        var args = ProblemCases[name]();
        var p = NativeParams.Describe(args.Problem);
        AssertNativeAccepts(ref p, args.Problem, name);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Described_problem_has_aligned_placeholder_addresses(string name)
    {
        // GPU backends refuse tensors that are not 16-byte aligned; a placeholder must not look like one.
        var p = NativeParams.Describe(ProblemCases[name]().Problem);
        foreach (var t in new[] { p.q, p.k, p.v, p.@out, p.dout, p.dq, p.dk, p.dv, p.k_new, p.v_new })
            Assert.True((nint)t.data % 16 == 0, $"{name}: placeholder address {(nint)t.data} is not 16-byte aligned");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Built_params_pass_the_native_checks_with_the_same_features(string name)
    {
        // Host addresses stand in for device ones: the checks never dereference them.
        var args = AttentionValidator.AllocateOutputs(ProblemCases[name](), (dtype, shape) => Tensor.Zeros(dtype, shape));
        var pins = new List<MemoryHandle>();
        try
        {
            var p = NativeParams.Build(args, t =>
            {
                nint address = t.Pin(out var pin);
                pins.Add(pin);
                return address == 0 ? 64 : address; // a zero-element view still needs a non-null address
            });
            Assert.Equal(args.Q.Stride(-3), p.q.row_stride);
            AssertNativeAccepts(ref p, args.Problem, name);
        }
        finally
        {
            foreach (var pin in pins) pin.Dispose();
        }
    }

    private static void AssertNativeAccepts(ref fa_params p, AttentionProblem problem, string name)
    {
        var (check, features, missing) = Probe.Value;
        if (missing is not null) Assert.Skip(missing);
        byte* reason = stackalloc byte[1024];
        fixed (fa_params* pp = &p)
        {
            var status = ((delegate* unmanaged<fa_params*, fa_op, byte*, nuint, fa_status>)check)(pp, (fa_op)problem.Op, reason, 1024);
            Assert.True(status == fa_status.FA_OK, $"{name}: fa_check_params returned {status}: {Marshal.PtrToStringUTF8((nint)reason)}");
            ulong used = ((delegate* unmanaged<fa_params*, fa_op, ulong>)features)(pp, (fa_op)problem.Op);
            Assert.Equal(AttentionProblem.FeatureNames(problem.Features), AttentionProblem.FeatureNames((AttentionFeatures)(long)used));
        }
    }

    private static (nint, nint, string?) LoadProbe()
    {
        string? path = Environment.GetEnvironmentVariable("FLASHATTN_ABI_PROBE");
        if (string.IsNullOrEmpty(path))
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "build", "native", "common", "tests", "libfa_abi_probe.so");
                if (File.Exists(candidate))
                {
                    path = candidate;
                    break;
                }
            }
        }
        if (path is null || !File.Exists(path))
            return (0, 0, "libfa_abi_probe.so is not built (cmake -S backends -B build/native -DFA_BUILD_TESTS=ON && cmake --build build/native, or set FLASHATTN_ABI_PROBE)");
        nint lib = NativeLibrary.Load(path);
        return (NativeLibrary.GetExport(lib, "fa_probe_check_params"), NativeLibrary.GetExport(lib, "fa_probe_used_features"), null);
    }

    /// <summary>Validated calls covering every feature the ABI carries.</summary>
    private static readonly Dictionary<string, Func<AttentionArgs>> ProblemCases = new()
    {
        ["dense"] = () => Dense(new AttentionOptions()),
        ["causal"] = () => Dense(new AttentionOptions { Causal = true }),
        ["window"] = () => Dense(new AttentionOptions { WindowLeft = 3, WindowRight = 2 }),
        ["causal-window"] = () => Dense(new AttentionOptions { Causal = true, WindowLeft = 5 }),
        ["softcap-alibi-sinks"] = () => Dense(new AttentionOptions
        {
            Softcap = 30, AlibiSlopes = Tensor.FromArray(new float[4], 4), SinkLogits = Tensor.FromArray(new float[4], 4),
        }),
        ["alibi-per-batch"] = () => Dense(new AttentionOptions { AlibiSlopes = Tensor.FromArray(new float[8], 2, 4) }),
        ["dropout-mask"] = () => Dense(new AttentionOptions { DropoutP = 0.1f, ReturnDropoutMask = true }),
        ["no-lse-split"] = () => Dense(new AttentionOptions { ReturnLse = false, NumSplits = 3 }),
        ["headdim-v"] = () => AttentionValidator.Forward(Data.Randn(DType.BFloat16, 2, 5, 4, 64), Data.Randn(DType.BFloat16, 2, 7, 2, 64),
            Data.Randn(DType.BFloat16, 2, 7, 2, 32), null),
        ["varlen-seqused-leftpad"] = () => AttentionValidator.Forward(Data.Randn(DType.Float16, 9, 4, 64), Data.Randn(DType.Float16, 12, 2, 64),
            Data.Randn(DType.Float16, 12, 2, 64), new AttentionOptions { Causal = true }, null, new VarlenInputs
            {
                CuSeqlensQ = TestData.Ints(0, 4, 9), CuSeqlensK = TestData.Ints(0, 5, 12),
                SequsedK = TestData.Ints(4, 7), LeftpadK = TestData.Ints(1, 0),
            }),
        ["varlen-paged"] = () => AttentionValidator.Forward(Data.Randn(DType.BFloat16, 9, 4, 64), Data.Randn(DType.BFloat16, 6, 3, 2, 64),
            Data.Randn(DType.BFloat16, 6, 3, 2, 64), null, null, new VarlenInputs
            {
                CuSeqlensQ = TestData.Ints(0, 4, 9), CuSeqlensK = TestData.Ints(0, 5, 11),
                BlockTable = TestData.Ints2D(new[,] { { 0, 1 }, { 2, 3 } }),
            }),
        ["fp8-descales"] = () => Fp8(new AttentionOptions
        {
            Causal = true, QDescale = Tensor.FromArray(new float[4], 2, 2), KDescale = Tensor.FromArray(new float[4], 2, 2), VDescale = Tensor.FromArray(new float[4], 2, 2),
        }),
        ["fp8-varlen-seqused"] = () => AttentionValidator.Forward(Data.Randn(DType.Float8E4M3, 9, 4, 64), Data.Randn(DType.Float8E4M3, 12, 2, 64),
            Data.Randn(DType.Float8E4M3, 12, 2, 64), new AttentionOptions { KDescale = Tensor.FromArray(new float[4], 2, 2) }, null, new VarlenInputs
            {
                CuSeqlensQ = TestData.Ints(0, 4, 9), CuSeqlensK = TestData.Ints(0, 5, 12), SequsedK = TestData.Ints(4, 7),
            }),
        ["backward"] = () => Backward(new AttentionOptions { Causal = true, Deterministic = true }),
        ["backward-sinks-dropout"] = () => Backward(new AttentionOptions { DropoutP = 0.2f, SinkLogits = Tensor.FromArray(new float[4], 4) }),
        ["kvcache-append-rotary"] = () => KvCache(paged: false, new KvCacheInputs { RotaryInterleaved = false }, withNew: true, rotary: true),
        ["kvcache-paged-append"] = () => KvCache(paged: true, new KvCacheInputs(), withNew: true, rotary: false),
        ["kvcache-batch-idx-leftpad"] = () => KvCache(paged: false, new KvCacheInputs
        {
            CacheBatchIdx = TestData.Ints(2, 0), LeftpadK = TestData.Ints(1, 0),
        }, withNew: false, rotary: false),
    };

    private static AttentionArgs Dense(AttentionOptions options) =>
        AttentionValidator.Forward(Data.Randn(DType.BFloat16, 2, 5, 4, 64), Data.Randn(DType.BFloat16, 2, 7, 2, 64),
            Data.Randn(DType.BFloat16, 2, 7, 2, 64), options);

    private static AttentionArgs Fp8(AttentionOptions options) =>
        AttentionValidator.Forward(Data.Randn(DType.Float8E4M3, 2, 5, 4, 64), Data.Randn(DType.Float8E4M3, 2, 7, 2, 64),
            Data.Randn(DType.Float8E4M3, 2, 7, 2, 64), options);

    [Fact]
    public void Built_params_carry_the_descales_and_their_shared_strides()
    {
        // Only k's and v's given; (2, 2) views with a batch stride of 3 into one storage (the ABI's strides are shared).
        var storage = new ManagedStorage<float>(new float[8]);
        var kDescale = Tensor.Create(storage, DType.Float32, 0, [2, 2], [3, 1]);
        var vDescale = Tensor.Create(storage, DType.Float32, 2, [2, 2], [3, 1]);
        var args = AttentionValidator.AllocateOutputs(Fp8(new AttentionOptions { KDescale = kDescale, VDescale = vDescale }), (dtype, shape) => Tensor.Zeros(dtype, shape));
        var addresses = new Dictionary<Tensor, nint>(ReferenceEqualityComparer.Instance);
        var pins = new List<MemoryHandle>();
        try
        {
            var p = NativeParams.Build(args, t =>
            {
                nint address = t.Pin(out var pin);
                pins.Add(pin);
                addresses[t] = address;
                return address;
            });
            Assert.Equal(fa_dtype.FA_DTYPE_F8_E4M3, p.dtype);
            Assert.Equal(fa_dtype.FA_DTYPE_BF16, p.out_dtype);
            Assert.True(p.q_descale == null);
            Assert.Equal(addresses[kDescale], (nint)p.k_descale);
            Assert.Equal(addresses[vDescale], (nint)p.v_descale);
            Assert.Equal(addresses[kDescale] + 2 * sizeof(float), (nint)p.v_descale);
            Assert.Equal(3, p.descale_batch_stride);
            Assert.Equal(1, p.descale_head_stride);
        }
        finally
        {
            foreach (var pin in pins) pin.Dispose();
        }
    }

    private static AttentionArgs Backward(AttentionOptions options)
    {
        var q = Data.Randn(DType.Float16, 2, 5, 4, 64);
        var k = Data.Randn(DType.Float16, 2, 7, 2, 64);
        var v = Data.Randn(DType.Float16, 2, 7, 2, 64);
        return AttentionValidator.Backward(Data.Randn(DType.Float16, 2, 5, 4, 64), q, k, v,
            Data.Randn(DType.Float16, 2, 5, 4, 64), Tensor.Zeros(DType.Float32, 2, 4, 5), options);
    }

    private static AttentionArgs KvCache(bool paged, KvCacheInputs inputs, bool withNew, bool rotary)
    {
        var q = Data.Randn(DType.BFloat16, 2, 3, 4, 64);
        var cacheShape = paged ? new long[] { 8, 4, 2, 64 } : [3, 16, 2, 64];
        var cache = inputs with
        {
            CacheSeqlens = TestData.Ints(5, 9),
            BlockTable = paged ? TestData.Ints2D(new[,] { { 0, 1, 2, 3 }, { 4, 5, 6, 7 } }) : null,
            KNew = withNew ? Data.Randn(DType.BFloat16, 2, 3, 2, 64) : null,
            VNew = withNew ? Data.Randn(DType.BFloat16, 2, 3, 2, 64) : null,
            RotaryCos = rotary ? Data.Randn(DType.BFloat16, 32, 16) : null,
            RotarySin = rotary ? Data.Randn(DType.BFloat16, 32, 16) : null,
        };
        return AttentionValidator.KvCache(q, Data.Randn(DType.BFloat16, cacheShape), Data.Randn(DType.BFloat16, cacheShape), cache,
            new AttentionOptions { Causal = true, NumSplits = 2 });
    }
}
