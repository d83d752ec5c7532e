using FlashAttention.Codegen.Matrix;
using FlashAttention.Codegen.Output;
using FlashAttention.Codegen.Rendering;

namespace FlashAttention.Codegen.Kernels;

/// <summary>
/// Per backend: one source file per instance, the CMake source list (sources.cmake) and the
/// native instance table (instances.g.inc), all in one folder the generator owns.
/// </summary>
internal static class KernelSourcesGenerator
{
    public const string SourcesTemplate = "sources.cmake.sbn";
    public const string InstanceTableTemplate = "instances.g.inc.sbn";
    public const string SourcesFile = "sources.cmake";
    public const string InstanceTableFile = "instances.g.inc";

    /// <param name="folder">Where the backend's files go, relative to the output root.</param>
    public static void Generate(
        GeneratedTree tree,
        BackendSpec backend,
        IReadOnlyList<KernelInstanceSpec> instances,
        TemplateRenderer renderer,
        string folder)
    {
        tree.Own(new OwnedFolder(folder));
        var backendView = BackendView.From(backend);
        var views = instances.Select(InstanceView.From).ToList();
        const string matrixSource = RepositoryLayout.MatrixFile;

        foreach (var view in views)
        {
            var path = $"{folder}/{view.File}";
            tree.Add(new GeneratedFile(path, renderer.Render(backend.Template, new Dictionary<string, object?>
            {
                ["notice"] = GeneratedNotice.For(renderer.DisplayName(backend.Template), matrixSource),
                ["backend"] = backendView,
                ["instance"] = view,
            }, path)));
        }

        var listGlobals = new Dictionary<string, object?>
        {
            ["backend"] = backendView,
            ["instances"] = views,
            ["groups"] = GroupByGuard(instances),
        };

        listGlobals["notice"] = GeneratedNotice.For(renderer.DisplayName(SourcesTemplate), matrixSource);
        var sourcesPath = $"{folder}/{SourcesFile}";
        tree.Add(new GeneratedFile(sourcesPath, renderer.Render(SourcesTemplate, listGlobals, sourcesPath)));

        listGlobals["notice"] = GeneratedNotice.For(renderer.DisplayName(InstanceTableTemplate), matrixSource);
        var tablePath = $"{folder}/{InstanceTableFile}";
        tree.Add(new GeneratedFile(tablePath, renderer.Render(InstanceTableTemplate, listGlobals, tablePath)));
    }

    /// <summary>The preprocessor symbols CMake defines for a head dim or dtype its filters leave out.</summary>
    public static string DisableHeaddimMacro(int headdim) => $"FA_DISABLE_HDIM_{headdim}";

    public static string DisableDtypeMacro(string dtype) => $"FA_DISABLE_DTYPE_{dtype.ToUpperInvariant()}";

    /// <summary>Runs of consecutive instances that share a guard (same QK head dim and dtype).</summary>
    private static List<InstanceGroupView> GroupByGuard(IReadOnlyList<KernelInstanceSpec> instances)
    {
        var groups = new List<InstanceGroupView>();
        var run = new List<InstanceView>();
        string? runGuard = null;
        foreach (var instance in instances)
        {
            var guard = $"!defined({DisableHeaddimMacro(instance.HeadDims.Qk)}) && !defined({DisableDtypeMacro(instance.Dtype.Name)})";
            if (guard != runGuard && run.Count > 0)
            {
                groups.Add(new InstanceGroupView(runGuard!, run));
                run = [];
            }
            runGuard = guard;
            run.Add(InstanceView.From(instance));
        }
        if (run.Count > 0)
            groups.Add(new InstanceGroupView(runGuard!, run));
        return groups;
    }
}
