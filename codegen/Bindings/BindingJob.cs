using Tomlyn.Model;

namespace FlashAttention.Codegen.Bindings;

/// <summary>One header to bind, as <c>codegen/bindings.toml</c> describes it (paths relative to the repository root).</summary>
internal sealed record BindingJob(
    string Header,
    IReadOnlyList<string> IncludeDirs,
    IReadOnlyList<string> ClangArgs,
    string Target,
    string Output,
    string? CLayoutOutput,
    string Namespace,
    string Name,
    IReadOnlyList<string> Libraries,
    IReadOnlyList<string> Functions,
    IReadOnlyList<string> Structs,
    IReadOnlyList<string> Enums,
    IReadOnlyList<string> OpaqueTypes,
    IReadOnlyList<string> Constants,
    IReadOnlyList<string> OpaqueStructs)
{
    public static IReadOnlyList<BindingJob> Load(string path)
    {
        var (toml, root) = TomlFields.Parse(path);
        toml.AllowOnly(root, "the document", "bindings");
        if (!root.TryGetValue("bindings", out var value) || value is not TomlTableArray jobs)
            throw toml.Error("bindings", "must be an array of tables ([[bindings]]).");

        var result = new List<BindingJob>();
        for (var i = 0; i < jobs.Count; i++)
        {
            var where = $"bindings[{i}]";
            var job = jobs[i];
            toml.AllowOnly(job, where, "header", "include_dirs", "clang_args", "target", "output", "c_layout_output",
                "namespace", "name", "libraries", "functions", "structs", "enums", "opaque_types", "constants", "opaque_structs");
            result.Add(new BindingJob(
                toml.String(job, "header", where),
                toml.Strings(job, "include_dirs", where, required: false),
                toml.Strings(job, "clang_args", where, required: false),
                toml.String(job, "target", where),
                toml.String(job, "output", where),
                toml.OptionalString(job, "c_layout_output", where),
                toml.String(job, "namespace", where),
                toml.String(job, "name", where),
                toml.Strings(job, "libraries", where, required: true),
                toml.Strings(job, "functions", where, required: false),
                toml.Strings(job, "structs", where, required: false),
                toml.Strings(job, "enums", where, required: false),
                toml.Strings(job, "opaque_types", where, required: false),
                toml.Strings(job, "constants", where, required: false),
                toml.Strings(job, "opaque_structs", where, required: false)));
        }
        return result;
    }
}
