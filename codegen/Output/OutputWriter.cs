using System.Text;

namespace FlashAttention.Codegen.Output;

/// <summary>What a write changed. Files whose bytes already match are not touched (their mtime stays).</summary>
internal sealed record WriteReport(IReadOnlyList<string> Created, IReadOnlyList<string> Updated, IReadOnlyList<string> Deleted, int Unchanged);

/// <summary>How the files on disk differ from what the generator produces; empty lists mean up to date.</summary>
internal sealed record CheckReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Stale, IReadOnlyList<string> Extra, int UpToDate)
{
    public bool IsUpToDate => Missing.Count == 0 && Stale.Count == 0 && Extra.Count == 0;
}

/// <summary>
/// Applies a <see cref="GeneratedTree"/> to a root folder: write-if-changed plus deletion of
/// stale files, or (check) the same comparison without writing. Text is UTF-8 without BOM with
/// "\n" line endings, so the bytes do not depend on the host.
/// </summary>
internal static class OutputWriter
{
    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    public static byte[] Encode(string content) => Utf8NoBom.GetBytes(content.ReplaceLineEndings("\n"));

    public static WriteReport Write(string root, GeneratedTree tree)
    {
        List<string> created = [], updated = [], deleted = [];
        var unchanged = 0;
        foreach (var file in tree.Files.OrderBy(f => f.RelativePath, StringComparer.Ordinal))
        {
            var path = FullPath(root, file.RelativePath);
            var bytes = Encode(file.Content);
            if (File.Exists(path))
            {
                if (File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
                {
                    unchanged++;
                    continue;
                }
                updated.Add(file.RelativePath);
            }
            else
            {
                created.Add(file.RelativePath);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }

        foreach (var extra in ExtraFiles(root, tree))
        {
            File.Delete(FullPath(root, extra));
            deleted.Add(extra);
        }
        return new WriteReport(created, updated, deleted, unchanged);
    }

    public static CheckReport Check(string root, GeneratedTree tree)
    {
        List<string> missing = [], stale = [];
        var upToDate = 0;
        foreach (var file in tree.Files.OrderBy(f => f.RelativePath, StringComparer.Ordinal))
        {
            var path = FullPath(root, file.RelativePath);
            if (!File.Exists(path))
                missing.Add(file.RelativePath);
            else if (!File.ReadAllBytes(path).AsSpan().SequenceEqual(Encode(file.Content)))
                stale.Add(file.RelativePath);
            else
                upToDate++;
        }
        return new CheckReport(missing, stale, ExtraFiles(root, tree), upToDate);
    }

    /// <summary>Files in owned folders that the generator no longer produces.</summary>
    private static List<string> ExtraFiles(string root, GeneratedTree tree)
    {
        var produced = tree.Files.Select(f => f.RelativePath).ToHashSet(StringComparer.Ordinal);
        var extra = new List<string>();
        foreach (var folder in tree.Folders)
        {
            var directory = FullPath(root, folder.RelativePath);
            if (!Directory.Exists(directory))
                continue;
            extra.AddRange(Directory.EnumerateFiles(directory, folder.Pattern, SearchOption.TopDirectoryOnly)
                .Select(p => $"{folder.RelativePath}/{Path.GetFileName(p)}")
                .Where(p => GeneratedTree.IsIn(p, folder) && !produced.Contains(p)));
        }
        return extra.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    private static string FullPath(string root, string relativePath) =>
        Path.Combine(root, relativePath.Replace('/', Path.DirectorySeparatorChar));
}
