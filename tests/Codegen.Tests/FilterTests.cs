using FlashAttention.Codegen.Matrix;

namespace FlashAttention.Codegen.Tests;

/// <summary>--backend/--hdim/--dtype select a subset that goes to --out, never into the committed tree.</summary>
public sealed class FilterTests
{
    private static readonly IReadOnlyList<KernelInstanceSpec> AllInstances =
        MatrixExpander.Expand(KernelMatrixLoader.Load(RepoPaths.PathOf(RepositoryLayout.MatrixFile)));

    [Fact]
    public void FiltersWriteExactlyTheMatchingSubsetToOut()
    {
        using var repo = new TempRepository();
        var output = repo.PathOf("build/gen");

        var result = repo.Run("--hdim", "128", "--dtype", "bf16", "--out", output);

        Assert.True(result.ExitCode == 0, result.ToString());
        var expected = AllInstances.Where(i => i.HeadDims.Qk == 128 && i.Dtype.Name == "bf16").ToList();
        foreach (var backend in expected.GroupBy(i => i.Backend.Name))
        {
            var folder = Path.Combine(output, backend.Key);
            var written = Directory.EnumerateFiles(folder).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList();
            var wanted = backend.Select(i => i.FileName).Append("sources.cmake").Append("instances.g.inc").Order(StringComparer.Ordinal).ToList();
            Assert.Equal(wanted, written);

            var sources = File.ReadAllLines(Path.Combine(folder, "sources.cmake")).Where(l => l.StartsWith("fa_instance(", StringComparison.Ordinal)).ToList();
            Assert.Equal(backend.Count(), sources.Count);
            Assert.All(sources, line => Assert.Contains(" HDIM 128 ", line));
            Assert.All(sources, line => Assert.Contains(" DTYPE bf16 ", line));

            var tableEntries = File.ReadAllLines(Path.Combine(folder, "instances.g.inc")).Count(l => l.StartsWith("FA_INSTANCE_", StringComparison.Ordinal) && l.Contains("(\"", StringComparison.Ordinal));
            Assert.Equal(backend.Count(), tableEntries);
        }
        Assert.Equal(expected.Count, Directory.EnumerateFiles(output, "fa_*", SearchOption.AllDirectories).Count());

        // The repository copy itself is untouched, and the subset checks clean against --out.
        Assert.Equal(0, repo.Run("--check").ExitCode);
        Assert.Equal(0, repo.Run("--check", "--hdim", "128", "--dtype", "bf16", "--out", output).ExitCode);
    }

    [Fact]
    public void BackendFilterWritesOnlyThatBackend()
    {
        using var repo = new TempRepository();
        var output = repo.PathOf("build/one");

        var result = repo.Run("--backend", "cuda_sm80", "--hdim", "64,96", "--out", output);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(["cuda_sm80"], Directory.EnumerateDirectories(output).Select(Path.GetFileName));
        var expected = AllInstances.Count(i => i.Backend.Name == "cuda_sm80" && i.HeadDims.Qk is 64 or 96);
        Assert.Equal(expected, Directory.EnumerateFiles(Path.Combine(output, "cuda_sm80"), "*.cu").Count());
    }

    [Fact]
    public void FiltersWithoutOutAreRefused()
    {
        using var repo = new TempRepository();
        var before = repo.GeneratedFiles();
        var instance = repo.PathOf("backends/cuda_sm80/generated/fa_sm80_fwd_hdim64_fp16.cu");
        File.Delete(instance);

        var result = repo.Run("--hdim", "128");

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains("--out DIR", result.Stderr);
        Assert.Contains("committed tree always holds the full matrix", result.Stderr);
        Assert.False(File.Exists(instance), "a refused run must not write");
        Assert.Equal(before.Count - 1, repo.GeneratedFiles().Count);
    }

    [Theory]
    [InlineData("--backend", "cuda_sm70", "no such backend")]
    [InlineData("--dtype", "fp64", "no such dtype")]
    [InlineData("--hdim", "100", "no instance has this head dim")]
    [InlineData("--hdim", "abc", "--hdim expects head dims")]
    public void UnknownFilterValuesAreErrors(string option, string value, string message)
    {
        var result = CodegenResult.Run("--list", option, value, "--root", RepoPaths.Root);

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains(message, result.Stderr);
    }

    [Fact]
    public void ListPrintsTheSelectedKeys()
    {
        var all = CodegenResult.Run("--list", "--root", RepoPaths.Root);
        var some = CodegenResult.Run("--list", "--backend", "hopper_sm90", "--dtype", "fp16", "--root", RepoPaths.Root);

        Assert.Equal(AllInstances.Select(i => i.Key), all.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var keys = some.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(keys);
        Assert.All(keys, k => Assert.Matches("^fa_sm90_fwd_hdim[0-9_]+_fp16", k));
    }
}
