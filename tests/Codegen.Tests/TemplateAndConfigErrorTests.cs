namespace FlashAttention.Codegen.Tests;

/// <summary>Mistakes in templates, the matrix and the bindings config give messages that say where.</summary>
public sealed class TemplateAndConfigErrorTests
{
    [Fact]
    public void TemplateSyntaxErrorNamesTheTemplateLineAndColumn()
    {
        using var repo = new TempRepository();
        var template = repo.PathOf("templates/cuda_sm80_instance.cu.sbn");
        File.AppendAllText(template, "{{ for x in }}\n");
        var lines = File.ReadAllLines(template).Length;

        var result = repo.Run("--check");

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains("Template templates/cuda_sm80_instance.cu.sbn does not parse", result.Stderr);
        Assert.Contains($"templates/cuda_sm80_instance.cu.sbn({lines},", result.Stderr);
        Assert.Contains("for <variable> in <expression>", result.Stderr);
    }

    [Fact]
    public void UnknownTemplateMemberNamesTemplateAndOutputFile()
    {
        using var repo = new TempRepository();
        File.WriteAllText(repo.PathOf("templates/sources.cmake.sbn"), "# {{ notice }}\n{{ backend.compile_flags }}\n");

        var result = repo.Run("--check");

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains("templates/sources.cmake.sbn(2,", result.Stderr);
        Assert.Contains("compile_flags", result.Stderr);
        Assert.Contains("while rendering backends/", result.Stderr);
    }

    [Fact]
    public void MissingTemplateIsNamed()
    {
        using var repo = new TempRepository();
        File.Delete(repo.PathOf("templates/rocm_ck_instance.hip.sbn"));

        var result = repo.Run("--check");

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains("templates/rocm_ck_instance.hip.sbn: template not found", result.Stderr);
    }

    [Theory]
    [InlineData("key_prefix = \"fa_sm80\"", "key_prefix = \"fa_sm80\"\ncompiler = \"nvcc\"", "backends.cuda_sm80 has unknown key(s) compiler")]
    [InlineData("dtypes = [\"fp16\", \"bf16\", \"e4m3\"]\n\n# What the FA3", "dtypes = [\"fp16\", \"bf16\", \"fp8\"]\n\n# What the FA3", "names unknown dtype \"fp8\"")]
    [InlineData("hdims = [32, 64, 96, 128, 192, 256]", "hdims = [32, 64, 96, 128, 192, 512]", "head dims must be in 1..256; got 512")]
    [InlineData("switches = { softcap = [false, true] }", "switches = { softcap = [false, \"on\"] }", "mixes booleans and strings")]
    [InlineData("[backends.rocm_ck.directions.bwd]", "[backends.rocm_ck.directions.bwd", "kernels.toml(")]
    public void MatrixMistakesAreExplained(string original, string replacement, string message)
    {
        using var repo = new TempRepository();
        var matrix = repo.PathOf(RepositoryLayout.MatrixFile);
        var text = File.ReadAllText(matrix);
        Assert.Contains(original, text);
        File.WriteAllText(matrix, ReplaceFirst(text, original, replacement));

        var result = repo.Run("--list");

        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains(message, result.Stderr);
    }

    [Fact]
    public void UnknownArgumentIsAnError()
    {
        var result = CodegenResult.Run("--chek");
        Assert.Equal(CodegenApp.ExitError, result.ExitCode);
        Assert.Contains("Unknown argument '--chek'", result.Stderr);
    }

    private static string ReplaceFirst(string text, string original, string replacement)
    {
        var index = text.IndexOf(original, StringComparison.Ordinal);
        return text[..index] + replacement + text[(index + original.Length)..];
    }
}
