using FlashAttention.Cpu;

namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The matrix can fail: the CPU backend wrapped with one deliberate mistake at a time must be caught by
/// the same runner and rule that pass the real backend.
/// </summary>
public class MutationTests
{
    /// <summary>The CPU backend with a mutation of the call before it runs and/or of its outputs after.</summary>
    private sealed class Mutant(Func<AttentionArgs, AttentionArgs>? before = null, Action<AttentionArgs>? after = null) : IAttentionBackend
    {
        private readonly CpuBackend _cpu = new();

        public string Name => "mutant";

        public BackendCapabilities Capabilities => _cpu.Capabilities;

        public BackendAvailability Availability => BackendAvailability.Available("test mutant of cpu");

        public IReadOnlyList<string> NotSupportedReasons(AttentionProblem problem) => _cpu.NotSupportedReasons(problem);

        public void Run(AttentionArgs args)
        {
            var mutated = before?.Invoke(args) ?? args;
            _cpu.Run(mutated);
            after?.Invoke(args);
        }
    }

    private static void Scale(Tensor? t, double factor, int index = -1)
    {
        if (t is null) return;
        var x = t.ToDoubleArray();
        if (index < 0) for (int i = 0; i < x.Length; i++) x[i] *= factor;
        else x[Math.Min(index, x.Length - 1)] *= factor;
        t.CopyFrom(x);
    }

    private static MatrixCase Case(string feature, Func<MatrixCase, MatrixCase>? configure = null)
    {
        // fp16: under the rule a bf16 case tolerates ~2·err(bf16 baseline) ≈ 1–2 % of the output scale.
        var c = new MatrixCase { Feature = feature, DType = DType.Float16, D = 64, Sq = 47, Sk = 61, Causal = true, Seed = 4242 };
        return configure is null ? c : configure(c);
    }

    public static TheoryData<string> Mutations => new(
    [
        "out off by 1%", "one out element off by 3%", "lse off by 1e-3", "scale 1% too large", "top-left causal", "softcap ignored",
        "alibi ignored", "sink ignored", "dropout seed off by one", "mask bit flipped", "dq off by 2%", "dk of one row off", "dv halved",
        "dsink sign", "v cache append skipped", "rotary ignored", "leftpad ignored", "seqused ignored", "window off by one",
    ]);

    [Theory]
    [MemberData(nameof(Mutations))]
    public void A_mutated_backend_fails_the_matrix(string mutation)
    {
        Mutant m;
        MatrixCase c;
        switch (mutation)
        {
            case "out off by 1%": m = new(after: a => { if (a.Problem.Op == AttentionOp.Forward) Scale(a.Out, 1.01); }); c = Case("m"); break;
            case "one out element off by 3%": m = new(after: a => { if (a.Problem.Op == AttentionOp.Forward) Scale(a.Out, 1.03, 1000); }); c = Case("m", x => x with { DType = DType.Float32 }); break;
            case "lse off by 1e-3": m = new(after: a => { if (a.Problem.Op == AttentionOp.Forward) Scale(a.Lse, 1.001); }); c = Case("m"); break;
            case "scale 1% too large": m = new(before: a => a with { Problem = a.Problem with { SoftmaxScale = a.Problem.SoftmaxScale * 1.01f } }); c = Case("m"); break;
            case "top-left causal":
                // Causal aligned to the top-left corner is window (−1, sk − sq) in bottom-right terms.
                m = new(before: a => a with { Problem = a.Problem with { WindowRight = a.Problem.SeqlenK - a.Problem.SeqlenQ, Features = (a.Problem.Features & ~AttentionFeatures.Causal) | AttentionFeatures.Window } });
                c = Case("m", x => x with { Sq = 31, Sk = 61 });
                break;
            case "softcap ignored": m = new(before: a => a with { Problem = a.Problem with { Softcap = 0, Features = a.Problem.Features & ~AttentionFeatures.Softcap } }); c = Case("m", x => x with { Softcap = 15 }); break;
            case "alibi ignored": m = new(before: a => a with { AlibiSlopes = null, Problem = a.Problem with { Features = a.Problem.Features & ~AttentionFeatures.Alibi } }); c = Case("m", x => x with { Alibi = AlibiMode.PerHead }); break;
            case "sink ignored": m = new(before: a => a with { SinkLogits = null, DSink = null, Problem = a.Problem with { Features = a.Problem.Features & ~AttentionFeatures.Sinks } }); c = Case("m", x => x with { Sinks = true, Backward = false }); break;
            case "dropout seed off by one": m = new(before: a => a with { Problem = a.Problem with { DropoutSeed = a.Problem.DropoutSeed + 1 } }); c = Case("m", x => x with { Dropout = 0.17f }); break;
            case "mask bit flipped": m = new(after: a => { if (a.DropoutMask is { } mk) mk.HostArray<byte>()[5] ^= 1; }); c = Case("m", x => x with { Dropout = 0.17f, Causal = false }); break;
            case "dq off by 2%": m = new(after: a => { if (a.Problem.Op == AttentionOp.Backward) Scale(a.DQ, 1.02); }); c = Case("m"); break;
            case "dk of one row off": m = new(after: a => { if (a.Problem.Op == AttentionOp.Backward) Scale(a.DK, 1.1, 64 * 2 * 7 + 3); }); c = Case("m", x => x with { DType = DType.Float32 }); break;
            case "dv halved": m = new(after: a => { if (a.Problem.Op == AttentionOp.Backward) Scale(a.DV, 0.5); }); c = Case("m"); break;
            case "dsink sign": m = new(after: a => { if (a.Problem.Op == AttentionOp.Backward) Scale(a.DSink, -1); }); c = Case("m", x => x with { Sinks = true }); break;
            case "v cache append skipped": m = new(before: a => a with { VNew = a.VNew is null ? null : Tensor.Zeros(a.VNew.DType, a.VNew.Shape.ToArray()) });
                c = Case("m", x => x with { Api = MatrixApi.KvCache, Append = true, Sq = 3, Sk = 40, Backward = false }); break;
            case "rotary ignored": m = new(before: a => a with { RotaryCos = null, RotarySin = null, Problem = a.Problem with { RotaryDim = 0, Features = a.Problem.Features & ~AttentionFeatures.Rotary } });
                c = Case("m", x => x with { Api = MatrixApi.KvCache, Append = true, Rotary = RotaryMode.Half, Sq = 3, Sk = 40, Backward = false }); break;
            case "leftpad ignored": m = new(before: a => a with { LeftpadK = null, Problem = a.Problem with { Features = a.Problem.Features & ~AttentionFeatures.LeftpadK } });
                c = Case("m", x => x with { Api = MatrixApi.Varlen, Batch = 3, Leftpad = true }); break;
            case "seqused ignored": m = new(before: a => a with { SequsedK = null, Problem = a.Problem with { Features = a.Problem.Features & ~AttentionFeatures.Seqused } });
                c = Case("m", x => x with { Api = MatrixApi.Varlen, Batch = 3, Seqused = true }); break;
            case "window off by one": m = new(before: a => a with { Problem = a.Problem with { WindowLeft = a.Problem.WindowLeft + 1 } }); c = Case("m", x => x with { Causal = false, WindowLeft = 5, WindowRight = 3 }); break;
            default: throw new ArgumentOutOfRangeException(nameof(mutation));
        }
        var dispatcher = new Dispatcher([m]);
        var e = Assert.ThrowsAny<Exception>(() => MatrixRunner.Run("mutant", c, dispatcher));
        Assert.False(e is Xunit.Sdk.SkipException, "the mutant was skipped");
        Assert.Contains("FAIL", e.Message, StringComparison.Ordinal);

        // The unmutated CPU backend passes the same case.
        MatrixRunner.Run("cpu", c);
    }
}
