namespace FlashAttention.Tests.Unit;

/// <summary>
/// The e4m3 forward through the public API without a GPU: the dispatcher's refusal (the CPU backend
/// refuses fp8; only hopper_sm90 runs it) and what a backend that accepts fp8 receives.
/// </summary>
public class Fp8ApiTests
{
    private const DType E4M3 = DType.Float8E4M3;

    private static (Tensor Q, Tensor K, Tensor V) Inputs() =>
        (Tensor.Zeros(E4M3, 2, 5, 4, 64), Tensor.Zeros(E4M3, 2, 7, 2, 64), Tensor.Zeros(E4M3, 2, 7, 2, 64));

    [Fact]
    public void Fp8_forward_on_the_host_raises_NoBackendException_that_says_why()
    {
        var (q, k, v) = Inputs();
        var e = Assert.Throws<NoBackendException>(() => FlashAttn.Forward(q, k, v, new AttentionOptions { Causal = true }));
        Assert.StartsWith("No backend can run forward e4m3->bf16 b=2 sq=5 sk=7 hq=4 hk=2 d=64 on cpu [causal, GQA/MQA, LSE, fp8]", e.Message, StringComparison.Ordinal);
        Assert.Contains("cpu: refused: cpu forward requires dtype fp16 or bf16 or fp32. Got e4m3 instead.", e.Message, StringComparison.Ordinal);
        Assert.Contains("cpu forward does not support fp8.", e.Message, StringComparison.Ordinal);
        // Every GPU backend has its own line: not available here, or refusing host tensors.
        foreach (string name in new[] { "hopper_sm90", "cuda_sm80", "rocm_ck" })
        {
            var verdict = e.Report.Verdicts.Single(x => x.Backend == name);
            Assert.True(verdict.Kind is BackendVerdictKind.Unavailable or BackendVerdictKind.Refused, $"{verdict}");
            Assert.Contains($"  {name}: ", e.Message, StringComparison.Ordinal);
        }
        Assert.Null(e.Report.Chosen);
    }

    [Fact]
    public void Explain_reports_the_fp8_feature_and_the_bf16_output()
    {
        var (q, k, v) = Inputs();
        var report = FlashAttn.Explain(q, k, v);
        Assert.True(report.Problem.Has(AttentionFeatures.Fp8));
        Assert.Equal(E4M3, report.Problem.DType);
        Assert.Equal(DType.BFloat16, report.Problem.OutDType);
        Assert.Contains("fp8", AttentionProblem.FeatureNames(report.Problem.Features), StringComparison.Ordinal);
        var bf16 = FlashAttn.Explain(Tensor.Zeros(DType.BFloat16, 2, 5, 4, 64), Tensor.Zeros(DType.BFloat16, 2, 7, 2, 64), Tensor.Zeros(DType.BFloat16, 2, 7, 2, 64));
        Assert.False(bf16.Problem.Has(AttentionFeatures.Fp8));
        Assert.Equal("cpu", bf16.Chosen);
    }

    /// <summary>A backend that runs the e4m3 forward: it records the arguments it is given.</summary>
    private sealed class Fp8Backend : AttentionBackend
    {
        public AttentionArgs? Received;

        public override string Name => "fp8_fake";

        public override BackendCapabilities Capabilities { get; } = new()
        {
            DeviceKind = DeviceKind.Cpu,
            DTypes = new Dictionary<AttentionOp, DType[]> { [AttentionOp.Forward] = [DType.BFloat16, E4M3] },
            Features = new Dictionary<AttentionOp, AttentionFeatures> { [AttentionOp.Forward] = AttentionFeatures.Gqa | AttentionFeatures.Lse | AttentionFeatures.Fp8 },
        };

        public override BackendAvailability Availability => BackendAvailability.Available("test double");

        public override void Run(AttentionArgs args) => Received = args;
    }

    [Fact]
    public void A_backend_that_accepts_fp8_gets_the_descales_a_bf16_output_and_an_fp32_lse()
    {
        var (q, k, v) = Inputs();
        var backend = new Fp8Backend();
        var descales = new[] { Tensor.FromArray(new float[] { 1, 2, 3, 4 }, 2, 2), Tensor.FromArray(new float[] { 5, 6, 7, 8 }, 2, 2) };
        var options = new AttentionOptions { QDescale = descales[0], VDescale = descales[1] };
        var result = new Dispatcher([backend, new Cpu.CpuBackend()]).Forward(q, k, v, options);
        Assert.Equal("fp8_fake", result.Backend);
        var args = backend.Received!;
        Assert.Same(descales[0], args.QDescale);
        Assert.Null(args.KDescale);
        Assert.Same(descales[1], args.VDescale);
        Assert.Equal(DType.BFloat16, args.Out!.DType);
        Assert.Equal([2L, 5, 4, 64], args.Out.Shape.ToArray());
        Assert.Same(args.Out, result.Out);
        Assert.Equal(DType.Float32, result.Lse!.DType);
        Assert.Contains(args.Tensors(), t => t.Role == "q_descale" && ReferenceEquals(t.Tensor, descales[0]));
    }
}
