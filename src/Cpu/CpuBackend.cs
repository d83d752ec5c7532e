using System.Runtime.Intrinsics;

namespace FlashAttention.Cpu;

/// <summary>
/// The managed CPU backend: tiled online-softmax attention (forward, backward, forward with
/// KV cache) on every core, with SIMD kernels for the widest vector width the machine
/// accelerates (AVX-512, AVX2, 128-bit, or scalar). Always available; the dispatcher's last resort.
/// </summary>
public sealed class CpuBackend : AttentionBackend
{
    private const AttentionFeatures AllFeatures =
        AttentionFeatures.Causal | AttentionFeatures.Window | AttentionFeatures.Softcap | AttentionFeatures.Alibi
        | AttentionFeatures.Dropout | AttentionFeatures.Gqa | AttentionFeatures.Varlen | AttentionFeatures.Seqused
        | AttentionFeatures.LeftpadK | AttentionFeatures.PagedKv | AttentionFeatures.KvAppend | AttentionFeatures.Rotary
        | AttentionFeatures.CacheBatchIdx | AttentionFeatures.SplitKv | AttentionFeatures.Lse | AttentionFeatures.Deterministic
        | AttentionFeatures.Sinks | AttentionFeatures.HeaddimV | AttentionFeatures.Fp8 | AttentionFeatures.DropoutMask;

    private static readonly DType[] s_dtypes = [DType.Float16, DType.BFloat16, DType.Float32];

    private static readonly BackendCapabilities s_capabilities = new()
    {
        DeviceKind = DeviceKind.Cpu,
        DTypes = new Dictionary<AttentionOp, DType[]>
        {
            [AttentionOp.Forward] = s_dtypes,
            [AttentionOp.Backward] = s_dtypes,
            [AttentionOp.ForwardKvCache] = s_dtypes,
        },
        Features = new Dictionary<AttentionOp, AttentionFeatures>
        {
            [AttentionOp.Forward] = AllFeatures & ~AttentionFeatures.Fp8,
            // The backward has no cache to update, no split and no LSE or mask output; dk/dv of
            // pages shared between sequences would need a cross-sequence reduction, so no paging.
            [AttentionOp.Backward] = AllFeatures & ~(AttentionFeatures.KvAppend | AttentionFeatures.Rotary
                | AttentionFeatures.CacheBatchIdx | AttentionFeatures.SplitKv | AttentionFeatures.Lse
                | AttentionFeatures.DropoutMask | AttentionFeatures.Fp8 | AttentionFeatures.PagedKv),
            [AttentionOp.ForwardKvCache] = AllFeatures & ~(AttentionFeatures.Varlen | AttentionFeatures.Dropout
                | AttentionFeatures.DropoutMask | AttentionFeatures.Fp8 | AttentionFeatures.Deterministic),
        },
        MaxHeaddim = AttentionValidator.MaxHeaddim,
        HeaddimAlign = 1,
        PageSizeAlign = 1,
    };

    private readonly int _maxDegreeOfParallelism;

    /// <summary>Uses every core.</summary>
    public CpuBackend()
        : this(Environment.ProcessorCount)
    {
    }

    /// <summary>Uses at most <paramref name="maxDegreeOfParallelism"/> threads per call.</summary>
    public CpuBackend(int maxDegreeOfParallelism)
        : this(maxDegreeOfParallelism, CpuKernelWidths.Best)
    {
    }

    /// <summary>Test hook: runs the kernels of <paramref name="width"/> (scalar or narrower than the best are allowed).</summary>
    internal CpuBackend(int maxDegreeOfParallelism, CpuKernelWidth width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDegreeOfParallelism, 1);
        if (!CpuKernelWidths.IsSupported(width))
            throw new PlatformNotSupportedException($"This machine does not accelerate {width} kernels; the widest it does is {CpuKernelWidths.Best}.");
        _maxDegreeOfParallelism = maxDegreeOfParallelism;
        Width = width;
    }

    public override string Name => "cpu";

    public override BackendCapabilities Capabilities => s_capabilities;

    public override BackendAvailability Availability =>
        BackendAvailability.Available($"managed, {_maxDegreeOfParallelism} threads, {Width}");

    /// <summary>The SIMD width the kernels run at.</summary>
    internal CpuKernelWidth Width { get; }

    public override void Run(AttentionArgs args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var reasons = NotSupportedReasons(args.Problem);
        if (reasons.Count > 0)
            throw new NotSupportedException(string.Join(" ", reasons));
        switch (Width)
        {
            case CpuKernelWidth.Vector512: CpuAttention<Vector512Ops, Vector512<float>>.Run(args, _maxDegreeOfParallelism); break;
            case CpuKernelWidth.Vector256: CpuAttention<Vector256Ops, Vector256<float>>.Run(args, _maxDegreeOfParallelism); break;
            case CpuKernelWidth.Vector128: CpuAttention<Vector128Ops, Vector128<float>>.Run(args, _maxDegreeOfParallelism); break;
            default: CpuAttention<ScalarOps, float>.Run(args, _maxDegreeOfParallelism); break;
        }
    }
}
