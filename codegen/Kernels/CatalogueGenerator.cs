using FlashAttention.Codegen.Matrix;
using FlashAttention.Codegen.Output;
using FlashAttention.Codegen.Rendering;

namespace FlashAttention.Codegen.Kernels;

/// <summary>The C# kernel catalogue: every instance of the matrix, for the dispatcher and Explain.</summary>
internal static class CatalogueGenerator
{
    public const string Template = "KernelCatalogue.g.cs.sbn";
    public const string FileName = "KernelCatalogue.g.cs";

    public static GeneratedFile Generate(KernelMatrix matrix, IReadOnlyList<KernelInstanceSpec> instances, TemplateRenderer renderer, string folder)
    {
        var path = $"{folder}/{FileName}";
        return new GeneratedFile(path, renderer.Render(Template, new Dictionary<string, object?>
        {
            ["notice"] = GeneratedNotice.For(renderer.DisplayName(Template), RepositoryLayout.MatrixFile),
            ["backends"] = matrix.Backends.Select(BackendView.From).ToList(),
            ["instances"] = instances.Select(InstanceView.From).ToList(),
        }, path));
    }
}
