namespace FlashAttention.Codegen.Tests;

/// <summary>
/// A throw-away copy of what codegen reads and writes (matrix, bindings config, templates, the ABI
/// header and every generated folder), so a test can break or regenerate it freely.
/// </summary>
internal sealed class TempRepository : IDisposable
{
    private static readonly string[] CopiedFiles =
    [
        RepositoryLayout.MatrixFile,
        RepositoryLayout.BindingsFile,
        "backends/common/include/flash_attn_abi.h",
    ];

    public TempRepository()
    {
        Root = Path.Combine(Path.GetTempPath(), "fa-codegen-" + Guid.NewGuid().ToString("N"));
        foreach (var file in CopiedFiles)
            CopyFile(file);
        CopyFolder(RepositoryLayout.TemplatesFolder);
        CopyFolder(RepositoryLayout.CatalogueFolder, "*.g.cs");
        foreach (var folder in new RepositoryLayout(RepoPaths.Root).ExistingGeneratedFolders())
            CopyFolder(folder);
    }

    public string Root { get; }

    public string PathOf(string relativePath) => Path.Combine(Root, relativePath.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>Runs codegen in-process against this copy.</summary>
    public CodegenResult Run(params string[] args) => CodegenResult.Run([.. args, "--root", Root]);

    /// <summary>Every file under the copy's generated folders, relative path → bytes.</summary>
    public SortedDictionary<string, byte[]> GeneratedFiles()
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        var folders = new RepositoryLayout(Root).ExistingGeneratedFolders().Append(RepositoryLayout.CatalogueFolder);
        foreach (var folder in folders)
        {
            foreach (var path in Directory.EnumerateFiles(PathOf(folder)))
                files[$"{folder}/{Path.GetFileName(path)}"] = File.ReadAllBytes(path);
        }
        return files;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }

    private void CopyFile(string relativePath)
    {
        var target = PathOf(relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Copy(RepoPaths.PathOf(relativePath), target);
    }

    private void CopyFolder(string relativePath, string pattern = "*")
    {
        Directory.CreateDirectory(PathOf(relativePath));
        foreach (var path in Directory.EnumerateFiles(RepoPaths.PathOf(relativePath), pattern))
            File.Copy(path, Path.Combine(PathOf(relativePath), Path.GetFileName(path)));
    }
}

/// <summary>The repository the tests run in.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = RepositoryLayout.FindRoot(AppContext.BaseDirectory)
        ?? throw new InvalidOperationException($"No {RepositoryLayout.SolutionFile} above {AppContext.BaseDirectory}.");

    public static string PathOf(string relativePath) => Path.Combine(Root, relativePath.Replace('/', Path.DirectorySeparatorChar));
}

/// <summary>Exit code and output of one in-process codegen run.</summary>
internal sealed record CodegenResult(int ExitCode, string Stdout, string Stderr)
{
    public static CodegenResult Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exitCode = CodegenApp.Run(args, stdout, stderr);
        return new CodegenResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
