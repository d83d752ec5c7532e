namespace FlashAttention.Codegen;

/// <summary>Where codegen reads its inputs and writes its outputs inside the repository.</summary>
internal sealed record RepositoryLayout(string Root)
{
    public const string SolutionFile = "MultiBackend.sln";
    public const string MatrixFile = "codegen/kernels.toml";
    public const string BindingsFile = "codegen/bindings.toml";
    public const string TemplatesFolder = "templates";
    public const string CatalogueFolder = "src/Dispatch/Generated";
    public const string BackendsFolder = "backends";

    public string MatrixPath => Path.Combine(Root, MatrixFile);

    public string BindingsPath => Path.Combine(Root, BindingsFile);

    public string TemplatesPath => Path.Combine(Root, TemplatesFolder);

    /// <summary>A backend's committed generated folder, relative to the root.</summary>
    public static string GeneratedFolder(string backend) => $"{BackendsFolder}/{backend}/generated";

    /// <summary>Every backends/*/generated folder that exists: the generator owns them all, so a
    /// backend removed from the matrix leaves files that --check reports.</summary>
    public IEnumerable<string> ExistingGeneratedFolders()
    {
        var backends = Path.Combine(Root, BackendsFolder);
        if (!Directory.Exists(backends))
            return [];
        return Directory.EnumerateDirectories(backends)
            .Where(d => Directory.Exists(Path.Combine(d, "generated")))
            .Select(d => GeneratedFolder(Path.GetFileName(d)))
            .Order(StringComparer.Ordinal);
    }

    /// <summary>The folder holding MultiBackend.sln at or above <paramref name="start"/>, or null.</summary>
    public static string? FindRoot(string start)
    {
        for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, SolutionFile)))
                return directory.FullName;
        }
        return null;
    }
}
