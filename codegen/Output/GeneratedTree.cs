namespace FlashAttention.Codegen.Output;

/// <summary>A generated file: its path relative to the output root ('/' separators) and its text.</summary>
internal sealed record GeneratedFile(string RelativePath, string Content);

/// <summary>
/// A folder the generator owns: every file in it (top level) that matches <see cref="Pattern"/>
/// and is not generated any more is stale, and is deleted on write.
/// </summary>
internal sealed record OwnedFolder(string RelativePath, string Pattern = "*");

/// <summary>Everything one codegen run produces, with the folders it owns.</summary>
internal sealed class GeneratedTree
{
    private readonly List<GeneratedFile> _files = [];
    private readonly List<OwnedFolder> _folders = [];

    public IReadOnlyList<GeneratedFile> Files => _files;

    public IReadOnlyList<OwnedFolder> Folders => _folders;

    public void Own(OwnedFolder folder)
    {
        if (!_folders.Contains(folder))
            _folders.Add(folder);
    }

    public void Add(GeneratedFile file)
    {
        if (!_folders.Any(f => IsIn(file.RelativePath, f)))
            throw new InvalidOperationException($"{file.RelativePath} is outside every folder the generator owns.");
        if (_files.Any(f => f.RelativePath == file.RelativePath))
            throw new InvalidOperationException($"{file.RelativePath} is generated twice.");
        _files.Add(file);
    }

    public static bool IsIn(string relativePath, OwnedFolder folder) =>
        Path.GetDirectoryName(relativePath)?.Replace('\\', '/') == folder.RelativePath
        && System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(folder.Pattern, Path.GetFileName(relativePath));
}
