using FlashAttention.Codegen.Bindings;
using FlashAttention.Codegen.Kernels;
using FlashAttention.Codegen.Matrix;
using FlashAttention.Codegen.Output;
using FlashAttention.Codegen.Rendering;

namespace FlashAttention.Codegen;

/// <summary>codegen's entry point, callable in-process (the tests do) with its own output writers.</summary>
internal static class CodegenApp
{
    public const int ExitOk = 0;
    public const int ExitStale = 1;
    public const int ExitError = 2;

    /// <summary>Files whose changes are listed one by one; beyond this a run prints counts only.</summary>
    private const int ListedChangesLimit = 25;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            return RunOrThrow(CodegenOptions.Parse(args), stdout, stderr);
        }
        catch (CodegenException e)
        {
            stderr.WriteLine($"codegen: error: {e.Message}");
            return ExitError;
        }
    }

    private static int RunOrThrow(CodegenOptions options, TextWriter stdout, TextWriter stderr)
    {
        if (options.Help)
        {
            stdout.WriteLine(CodegenOptions.Usage);
            return ExitOk;
        }

        var layout = new RepositoryLayout(FindRoot(options));
        var matrix = KernelMatrixLoader.Load(layout.MatrixPath);
        var all = MatrixExpander.Expand(matrix);
        options.Filter.Validate(matrix, all);
        var selected = all.Where(options.Filter.Includes).ToList();

        if (options.List)
        {
            foreach (var instance in selected)
                stdout.WriteLine(instance.Key);
            return ExitOk;
        }
        if (!options.Filter.IsEmpty && options.Out is null)
        {
            throw new CodegenException(
                "--backend/--hdim/--dtype select a subset of the matrix, but the committed tree always holds the full matrix. " +
                "Add --out DIR to write the subset as a build tree (then configure CMake with -DFA_GENERATED_DIR=DIR), or use --list to see the keys.");
        }

        var renderer = new TemplateRenderer(layout.TemplatesPath, RepositoryLayout.TemplatesFolder + "/");
        var (tree, outputRoot) = options.Out is { } outDirectory
            ? (BuildTreeFor(matrix, selected, options.Filter, renderer), Path.GetFullPath(outDirectory))
            : (RepositoryTree(layout, matrix, all, renderer), layout.Root);

        return options.Check
            ? ReportCheck(OutputWriter.Check(outputRoot, tree), stdout, stderr)
            : ReportWrite(OutputWriter.Write(outputRoot, tree), selected, outputRoot, stdout);
    }

    private static string FindRoot(CodegenOptions options)
    {
        if (options.Root is { } root)
        {
            return Directory.Exists(root)
                ? Path.GetFullPath(root)
                : throw new CodegenException($"--root {root}: no such directory.");
        }
        return RepositoryLayout.FindRoot(Directory.GetCurrentDirectory())
            ?? RepositoryLayout.FindRoot(AppContext.BaseDirectory)
            ?? throw new CodegenException($"No {RepositoryLayout.SolutionFile} above {Directory.GetCurrentDirectory()}; run inside the repository or pass --root DIR.");
    }

    /// <summary>The full committed output: every backend's generated folder, the C# catalogue and the bindings.</summary>
    private static GeneratedTree RepositoryTree(RepositoryLayout layout, KernelMatrix matrix, IReadOnlyList<KernelInstanceSpec> all, TemplateRenderer renderer)
    {
        var tree = new GeneratedTree();
        foreach (var folder in layout.ExistingGeneratedFolders())
            tree.Own(new OwnedFolder(folder));

        foreach (var backend in matrix.Backends)
            KernelSourcesGenerator.Generate(tree, backend, all.Where(i => i.Backend == backend).ToList(), renderer, RepositoryLayout.GeneratedFolder(backend.Name));

        tree.Own(new OwnedFolder(RepositoryLayout.CatalogueFolder, "*.g.cs"));
        tree.Add(CatalogueGenerator.Generate(matrix, all, renderer, RepositoryLayout.CatalogueFolder));

        foreach (var job in BindingJob.Load(layout.BindingsPath))
        {
            var api = ClangHeaderReader.Read(job, layout.Root);
            foreach (var file in BindingGenerator.Generate(job, api, renderer))
            {
                var folder = Path.GetDirectoryName(file.RelativePath)!.Replace('\\', '/');
                var suffix = file.RelativePath.EndsWith(".g.cs", StringComparison.Ordinal) ? "*.g.cs" : "*.g" + Path.GetExtension(file.RelativePath);
                tree.Own(new OwnedFolder(folder, suffix));
                tree.Add(file);
            }
        }
        return tree;
    }

    /// <summary>A build tree for a subset: DIR/&lt;backend&gt;/ with the instances, sources.cmake and instances.g.inc.</summary>
    private static GeneratedTree BuildTreeFor(KernelMatrix matrix, IReadOnlyList<KernelInstanceSpec> selected, InstanceFilter filter, TemplateRenderer renderer)
    {
        var tree = new GeneratedTree();
        foreach (var backend in matrix.Backends.Where(filter.Includes))
        {
            var instances = selected.Where(i => i.Backend == backend).ToList();
            if (instances.Count > 0)
                KernelSourcesGenerator.Generate(tree, backend, instances, renderer, backend.Name);
        }
        return tree;
    }

    private static int ReportCheck(CheckReport report, TextWriter stdout, TextWriter stderr)
    {
        if (report.IsUpToDate)
        {
            stdout.WriteLine($"codegen --check: OK ({report.UpToDate} generated files up to date).");
            return ExitOk;
        }
        stderr.WriteLine("codegen --check: generated files are out of date:");
        foreach (var path in report.Stale)
            stderr.WriteLine($"  stale:   {path}");
        foreach (var path in report.Missing)
            stderr.WriteLine($"  missing: {path}");
        foreach (var path in report.Extra)
            stderr.WriteLine($"  extra:   {path}");
        stderr.WriteLine($"Run `{GeneratedNotice.RegenerateCommand}` and commit the result.");
        return ExitStale;
    }

    private static int ReportWrite(WriteReport report, IReadOnlyList<KernelInstanceSpec> instances, string outputRoot, TextWriter stdout)
    {
        var perBackend = string.Join(", ", instances.GroupBy(i => i.Backend.Name).Select(g => $"{g.Key} {g.Count()}"));
        stdout.WriteLine($"codegen: {instances.Count} instances ({perBackend}) into {outputRoot}");
        var changes = report.Created.Select(p => $"  created: {p}")
            .Concat(report.Updated.Select(p => $"  updated: {p}"))
            .Concat(report.Deleted.Select(p => $"  deleted: {p}"))
            .ToList();
        foreach (var line in changes.Take(ListedChangesLimit))
            stdout.WriteLine(line);
        if (changes.Count > ListedChangesLimit)
            stdout.WriteLine($"  … and {changes.Count - ListedChangesLimit} more");
        stdout.WriteLine($"codegen: {report.Created.Count} created, {report.Updated.Count} updated, {report.Deleted.Count} deleted, {report.Unchanged} unchanged.");
        return ExitOk;
    }
}
