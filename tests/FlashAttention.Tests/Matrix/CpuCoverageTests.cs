namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The CPU backend is documented (README) as the complete feature set, forward and backward, and is the
/// dispatcher's last resort. A refusal is legal behaviour in the matrix, so these tests pin the claim
/// separately: every forward and KV-cache problem of the matrix is accepted, and any backward refusal
/// names the feature it refuses.
/// </summary>
public class CpuCoverageTests
{
    private static IAttentionBackend Cpu => Dispatcher.Default.Backends.Single(b => b.Name == "cpu");

    [Fact]
    public void Cpu_accepts_every_forward_and_kv_cache_problem_of_the_matrix()
    {
        var refused = new List<string>();
        foreach (var (id, c) in MatrixCases.All)
        {
            var reasons = Cpu.NotSupportedReasons(MatrixRunner.ForwardProblem(CaseInputs.Build(c)));
            if (reasons.Count > 0) refused.Add($"{id}: {string.Join(" ", reasons)}");
        }
        Assert.True(refused.Count == 0, $"cpu refuses {refused.Count} forward problems:\n{string.Join("\n", refused)}");
    }

    [Fact]
    public void Cpu_backward_refusals_name_a_feature()
    {
        int accepted = 0;
        foreach (var (id, c) in MatrixCases.All)
        {
            if (!c.Backward || c.Api == MatrixApi.KvCache) continue;
            var inputs = CaseInputs.Build(c);
            var fwd = MatrixRunner.ForwardProblem(inputs);
            var shape = AttentionValidator.OutputShapes.Out(fwd);
            var problem = AttentionValidator.Backward(Tensor.Zeros(c.DType, shape), inputs.Q, inputs.K, inputs.V, Tensor.Zeros(c.DType, shape),
                Tensor.Zeros(DType.Float32, AttentionValidator.OutputShapes.Lse(fwd)), inputs.Options, varlen: inputs.Varlen).Problem;
            var reasons = Cpu.NotSupportedReasons(problem);
            if (reasons.Count == 0) accepted++;
            else Assert.All(reasons, r => Assert.Matches("^cpu (backward )?(does not support|requires) ", r));
        }
        Assert.True(accepted > 100, $"cpu accepts only {accepted} backward problems of the matrix");
    }

    [Fact]
    public void Matrix_covers_every_feature_dtype_and_head_dim()
    {
        var cases = MatrixCases.All.Values.ToArray();
        foreach (var dt in MatrixCases.DTypes)
        {
            var ofType = cases.Where(c => c.DType == dt).ToArray();
            foreach (int d in MatrixCases.HeadDims)
                Assert.True(ofType.Any(c => c.D == d), $"{dt.ShortName()} never meets head dim {d}");
            foreach (string f in cases.Select(c => c.Feature).Distinct().Where(f => !f.StartsWith("long", StringComparison.Ordinal) && f is not ("single" or "tall-causal" or "tiny-headdim")))
                Assert.True(ofType.Any(c => c.Feature == f), $"{dt.ShortName()} never meets feature {f}");
        }
        foreach (int ps in MatrixCases.PageSizes)
        {
            Assert.True(cases.Any(c => c.PageSize == ps && c.Api == MatrixApi.Varlen), $"varlen never uses page size {ps}");
            Assert.True(cases.Any(c => c.PageSize == ps && c.Api == MatrixApi.KvCache), $"kv cache never uses page size {ps}");
        }
        foreach (int ns in new[] { 0, 1, 3 })
            Assert.True(cases.Any(c => c.Api == MatrixApi.KvCache && c.NumSplits == ns), $"kv cache never uses num_splits {ns}");
        foreach (var pair in new[] { (1, 239), (3, 799), (113, 203), (128, 217), (512, 256), (1023, 1024), (239, 1), (1, 1) })
            Assert.True(cases.Any(c => (c.Sq, c.Sk) == pair), $"seqlen pair {pair} is missing");
        foreach (var api in Enum.GetValues<MatrixApi>())
            Assert.True(cases.Any(c => c.Api == api), $"API {api} is missing");
        Assert.Contains(cases, c => c.HeaddimV != c.D);
        Assert.Contains(cases, c => c.Hk == 1 && c.Hq > 1);
        Assert.Contains(cases, c => c.Deterministic);
        Assert.Contains(cases, c => c.ZeroLengths);
        double cost = cases.Sum(c => c.Cost * (c.Backward ? 4 : 1));
        Assert.True(cost < 8e9, $"the matrix grew to {cost:G3} multiply-adds per backend; keep the suite fast");
    }
}
