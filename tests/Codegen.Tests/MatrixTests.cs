using FlashAttention.Codegen.Matrix;
using FlashAttention.Kernels;
using SwitchValue = FlashAttention.Kernels.SwitchValue;

namespace FlashAttention.Codegen.Tests;

/// <summary>The matrix expands as specified, and the generated C# catalogue holds exactly that expansion.</summary>
public sealed class MatrixTests
{
    private static readonly KernelMatrix Matrix = KernelMatrixLoader.Load(RepoPaths.PathOf(RepositoryLayout.MatrixFile));
    private static readonly IReadOnlyList<KernelInstanceSpec> Expanded = MatrixExpander.Expand(Matrix);

    [Fact]
    public void CatalogueHoldsTheMatrixExpansion()
    {
        foreach (var backend in Matrix.Backends)
        {
            var expected = Expanded.Where(i => i.Backend == backend).ToList();
            var catalogued = KernelCatalogue.For(backend.Name).Instances;
            Assert.Equal(expected.Count, catalogued.Count);
            Assert.Equal(expected.Select(i => i.Key), catalogued.Select(i => i.Key));
            Assert.Equal(expected.Select(i => (i.Direction, i.Dtype.CSharpMember, i.HeadDims.Qk, i.HeadDims.V)),
                catalogued.Select(i => (i.Direction, i.DType.ToString(), i.Headdim, i.HeaddimV)));
            Assert.Equal(backend.Targets, KernelCatalogue.For(backend.Name).Targets.Targets);
            Assert.Equal(backend.Library, KernelCatalogue.For(backend.Name).Targets.Library);
        }
        Assert.Equal(Expanded.Count, KernelCatalogue.All.Count);
    }

    [Fact]
    public void ExpansionCountsFollowTheAxes()
    {
        int Count(string backend, string direction) => Expanded.Count(i => i.Backend.Name == backend && i.Direction == direction);

        // cuda_sm80: 6 head dims × 2 dtypes × causal {0,1} per direction.
        Assert.Equal(24, Count("cuda_sm80", "fwd"));
        Assert.Equal(24, Count("cuda_sm80", "fwd_split"));
        Assert.Equal(24, Count("cuda_sm80", "bwd"));
        // hopper_sm90 fwd: 5 head dims × {fp16, bf16, e4m3} × softcap (no backward instances yet).
        Assert.Equal(5 * 3 * 2, Count("hopper_sm90", "fwd"));
        Assert.Equal(0, Count("hopper_sm90", "bwd"));
        // rocm_ck: 6 head dims × 2 dtypes × dropout {0,1} (fwd, bwd); split-KV has no switch.
        Assert.Equal(6 * 2 * 2, Count("rocm_ck", "fwd"));
        Assert.Equal(6 * 2, Count("rocm_ck", "fwd_splitkv"));
        Assert.Equal(6 * 2 * 2, Count("rocm_ck", "bwd"));
        Assert.Equal(72 + 30 + 60, Expanded.Count);
    }

    [Fact]
    public void KeysCarryEveryAxis()
    {
        var keys = Expanded.Select(i => i.Key).ToHashSet();
        Assert.Contains("fa_sm80_fwd_hdim128_bf16_causal", keys);
        Assert.Contains("fa_sm80_fwd_split_hdim64_fp16", keys);
        Assert.Contains("fa_sm90_fwd_hdim192_fp16_softcap", keys);
        Assert.Contains("fa_sm90_fwd_hdim64_bf16", keys);
        Assert.Contains("fa_ck_fwd_splitkv_hdim32_bf16", keys);
        Assert.Contains("fa_ck_bwd_hdim96_fp16_dropout", keys);
        Assert.DoesNotContain(keys, k => k.Contains("e4m3", StringComparison.Ordinal) && k.Contains("_bwd_", StringComparison.Ordinal));
        Assert.Equal(Expanded.Count, keys.Count);
    }

    [Fact]
    public void CatalogueAnswersDispatchQueries()
    {
        var hopper = KernelCatalogue.For("hopper_sm90");
        Assert.Equal([64, 96, 128, 192, 256], hopper.HeaddimBuckets("fwd"));
        Assert.Equal(64, hopper.BucketFor("fwd", 40));
        Assert.Null(hopper.BucketFor("fwd", 300));
        Assert.Equal([DType.Float16, DType.BFloat16, DType.Float8E4M3], hopper.Dtypes("fwd"));

        var capped = hopper.Find("fwd", DType.BFloat16, 192, 192, new Dictionary<string, SwitchValue> { ["softcap"] = true });
        Assert.NotNull(capped);
        Assert.Equal("fa_sm90_fwd_hdim192_bf16_softcap", capped.Key);
        Assert.True(capped.Has("softcap"));

        var ck = KernelCatalogue.For("rocm_ck").Find("fwd", DType.Float16, 128, 128, new Dictionary<string, SwitchValue> { ["dropout"] = true });
        Assert.Equal("fa_ck_fwd_hdim128_fp16_dropout", ck?.Key);
        Assert.True(ck?.Has("dropout"));

        Assert.Null(KernelCatalogue.TryFor("cpu"));
        Assert.Contains("cuda_sm80", Assert.Throws<ArgumentException>(() => KernelCatalogue.For("cpu")).Message);
        Assert.True(KernelCatalogue.For("cuda_sm80").Targets.Covers("sm_86"));
    }
}
