using System.Globalization;
using FlashAttention.Codegen.Output;
using FlashAttention.Codegen.Rendering;

namespace FlashAttention.Codegen.Bindings;

/// <summary>
/// Turns a parsed header (<see cref="NativeApi"/>) into the C# binding file of a job, and
/// optionally a C header of static_asserts that pins the same layout for the C/C++ compiler.
/// </summary>
internal static class BindingGenerator
{
    public const string CSharpTemplate = "csharp_bindings.g.cs.sbn";
    public const string CLayoutTemplate = "c_layout.g.h.sbn";

    public static IEnumerable<GeneratedFile> Generate(BindingJob job, NativeApi api, TemplateRenderer renderer)
    {
        var globals = new Dictionary<string, object?>
        {
            ["notice"] = GeneratedNotice.For(renderer.DisplayName(CSharpTemplate), $"{job.Header} (parsed with libclang for {job.Target}) and {RepositoryLayout.BindingsFile}"),
            ["header"] = job.Header,
            ["header_file"] = Path.GetFileName(job.Header),
            ["namespace"] = job.Namespace,
            ["name"] = job.Name,
            ["constants"] = api.Constants.Select(c => new ConstantView(
                c.Name, c.Value is >= int.MinValue and <= int.MaxValue ? "int" : "long", c.Value.ToString(CultureInfo.InvariantCulture))).ToList(),
            ["enums"] = api.Enums.Select(e => new EnumView(e.Name, e.UnderlyingType, XmlDoc(e.Comment),
                e.Members.Select(m => new EnumMemberView(m.Name, m.Value.ToString(CultureInfo.InvariantCulture), XmlDoc(m.Comment))).ToList())).ToList(),
            ["structs"] = api.Structs.Select(StructView.From).ToList(),
            ["functions"] = api.Functions.Select(FunctionView.From).ToList(),
            ["libraries"] = job.Libraries.Select(l => new LibraryView(l, PascalCase(l) + "Native", PascalCase(l) + "Library")).ToList(),
        };
        yield return new GeneratedFile(job.Output, renderer.Render(CSharpTemplate, globals, job.Output));

        if (job.CLayoutOutput is { } layoutOutput)
        {
            globals["notice"] = GeneratedNotice.For(renderer.DisplayName(CLayoutTemplate), $"{job.Header} (parsed with libclang for {job.Target}) and {RepositoryLayout.BindingsFile}");
            globals["guard"] = Path.GetFileName(layoutOutput).ToUpperInvariant().Replace('.', '_').Replace('-', '_');
            yield return new GeneratedFile(layoutOutput, renderer.Render(CLayoutTemplate, globals, layoutOutput));
        }
    }

    /// <summary>fa_cuda_sm80 → FaCudaSm80.</summary>
    public static string PascalCase(string name) =>
        string.Concat(name.Split('_', '-', '.').Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    /// <summary>A C comment as XML doc text (only &amp;, &lt; and &gt; need escaping there).</summary>
    private static string? XmlDoc(string? comment) =>
        comment?.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);

    internal sealed record ConstantView(string Name, string Type, string Value);

    internal sealed record EnumView(string Name, string Underlying, string? Doc, IReadOnlyList<EnumMemberView> Members);

    internal sealed record EnumMemberView(string Name, string Value, string? Doc);

    internal sealed record LibraryView(string Name, string NativeClass, string LibraryClass);

    /// <summary>A struct for the templates: C# field declarations, and the C layout for the checks.</summary>
    internal sealed record StructView(string Name, long Size, long Alignment, string? Doc, IReadOnlyList<FieldView> Fields)
    {
        public static StructView From(NativeStruct s) => new(s.Name, s.Size, s.Alignment, BindingGenerator.XmlDoc(s.Comment), s.Fields.Select(FieldView.From).ToList());
    }

    /// <param name="Name">The C name (Marshal.OffsetOf and the C header use it).</param>
    /// <param name="Identifier">The C# identifier: the C name, escaped with @ when it is a C# keyword.</param>
    /// <param name="Declaration">The C# member declaration, e.g. <c>public fixed byte archs[64];</c>.</param>
    internal sealed record FieldView(string Name, string Identifier, string Declaration, long Offset, string? Doc)
    {
        public static FieldView From(NativeField f)
        {
            var identifier = CSharpIdentifier.Escape(f.Name);
            var declaration = f.Type is FixedArrayType array
                ? $"public fixed {array.Element.CSharp} {identifier}[{array.Length.ToString(CultureInfo.InvariantCulture)}];"
                : $"public {f.Type.CSharp} {identifier};";
            return new FieldView(f.Name, identifier, declaration, f.Offset, BindingGenerator.XmlDoc(f.Comment));
        }
    }

    /// <param name="Parameters">The C# parameter list: <c>fa_params* @params, fa_op op</c>.</param>
    /// <param name="Arguments">The same names as a call's argument list: <c>@params, op</c>.</param>
    internal sealed record FunctionView(string Name, string ReturnType, string Parameters, string Arguments, string? Doc)
    {
        public static FunctionView From(NativeFunction f) => new(
            f.Name,
            f.ReturnType.CSharp,
            string.Join(", ", f.Parameters.Select(p => $"{p.Type.CSharp} {CSharpIdentifier.Escape(p.Name)}")),
            string.Join(", ", f.Parameters.Select(p => CSharpIdentifier.Escape(p.Name))),
            BindingGenerator.XmlDoc(f.Comment));
    }
}

/// <summary>C# keywords that a C name may collide with (out, params, ref …); such names get an @ prefix.</summary>
internal static class CSharpIdentifier
{
    private static readonly HashSet<string> Keywords =
    [
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const",
        "continue", "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern",
        "false", "finally", "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface",
        "internal", "is", "lock", "long", "namespace", "new", "null", "object", "operator", "out", "override",
        "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof",
        "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
    ];

    public static string Escape(string name) => Keywords.Contains(name) ? "@" + name : name;
}
