namespace FlashAttention.Codegen.Tests;

/// <summary>--check on the committed tree, and on copies that were changed behind codegen's back.</summary>
public sealed class CheckModeTests
{
    [Fact]
    public void CommittedTreeIsUpToDate()
    {
        var result = CodegenResult.Run("--check", "--root", RepoPaths.Root);

        Assert.True(result.ExitCode == CodegenApp.ExitOk, result.ToString());
        Assert.StartsWith("codegen --check: OK", result.Stdout);
    }

    [Fact]
    public void ModifiedDeletedAndExtraFilesAreEachNamed()
    {
        using var repo = new TempRepository();
        const string modified = "backends/cuda_sm80/generated/fa_sm80_fwd_hdim128_bf16_causal.cu";
        const string deleted = "backends/hopper_sm90/generated/sources.cmake";
        const string extra = "backends/rocm_ck/generated/fa_ck_fwd_hdim512_bf16.hip";
        const string bindings = "src/Dispatch/Generated/FlashAttnAbi.g.cs";
        File.AppendAllText(repo.PathOf(modified), "// hand edit\n");
        File.Delete(repo.PathOf(deleted));
        File.WriteAllText(repo.PathOf(extra), "// left over from an older matrix\n");
        File.WriteAllText(repo.PathOf(bindings), File.ReadAllText(repo.PathOf(bindings)).Replace("736", "744"));

        var result = repo.Run("--check");

        Assert.True(result.ExitCode == CodegenApp.ExitStale, result.ToString());
        Assert.Contains($"stale:   {modified}", result.Stderr);
        Assert.Contains($"missing: {deleted}", result.Stderr);
        Assert.Contains($"extra:   {extra}", result.Stderr);
        Assert.Contains($"stale:   {bindings}", result.Stderr);
        Assert.Contains("dotnet run --project codegen", result.Stderr);
        Assert.True(File.Exists(repo.PathOf(extra)), "--check must not delete anything");
        Assert.False(File.Exists(repo.PathOf(deleted)), "--check must not write anything");
    }

    [Fact]
    public void FilesOfABackendDroppedFromTheMatrixAreExtra()
    {
        using var repo = new TempRepository();
        Directory.CreateDirectory(repo.PathOf("backends/old_backend/generated"));
        File.WriteAllText(repo.PathOf("backends/old_backend/generated/fa_old_fwd_hdim64_fp16.cu"), "");

        var result = repo.Run("--check");

        Assert.Equal(CodegenApp.ExitStale, result.ExitCode);
        Assert.Contains("extra:   backends/old_backend/generated/fa_old_fwd_hdim64_fp16.cu", result.Stderr);
    }
}
