using Tomlyn;
using Tomlyn.Model;

namespace FlashAttention.Codegen;

/// <summary>
/// Typed reads from a parsed TOML table that fail with the file and the dotted path of the
/// offending entry ("kernels.toml: backends.cuda_sm80.targets must be an array of strings").
/// </summary>
internal sealed class TomlFields
{
    private readonly string _file;

    private TomlFields(string file) => _file = file;

    public static (TomlFields Fields, TomlTable Root) Parse(string path)
    {
        if (!File.Exists(path))
            throw new CodegenException($"{path}: file not found.");
        var text = File.ReadAllText(path);
        try
        {
            var root = TomlSerializer.Deserialize<TomlTable>(text)
                ?? throw new CodegenException($"{path}: empty document.");
            return (new TomlFields(Path.GetFileName(path)), root);
        }
        catch (TomlException e)
        {
            throw new CodegenException($"{path}{e.Message}", e);
        }
    }

    public CodegenException Error(string where, string problem) => new($"{_file}: {where} {problem}");

    /// <summary>Rejects keys the reader does not know, so a typo is an error and not a silent default.</summary>
    public void AllowOnly(TomlTable table, string where, params string[] known)
    {
        var unknown = table.Keys.Where(k => !known.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw Error(where, $"has unknown key(s) {string.Join(", ", unknown)}; expected {string.Join(", ", known)}.");
    }

    public TomlTable Table(TomlTable table, string key, string where) =>
        table.TryGetValue(key, out var value)
            ? value as TomlTable ?? throw Error(Join(where, key), "must be a table.")
            : throw Error(Join(where, key), "is missing.");

    public TomlTable? OptionalTable(TomlTable table, string key, string where) =>
        table.TryGetValue(key, out var value)
            ? value as TomlTable ?? throw Error(Join(where, key), "must be a table.")
            : null;

    public string String(TomlTable table, string key, string where) =>
        OptionalString(table, key, where) ?? throw Error(Join(where, key), "is missing.");

    public string? OptionalString(TomlTable table, string key, string where) =>
        table.TryGetValue(key, out var value)
            ? value as string ?? throw Error(Join(where, key), $"must be a string; got {Describe(value)}.")
            : null;

    public TomlArray? OptionalArray(TomlTable table, string key, string where) =>
        table.TryGetValue(key, out var value)
            ? value as TomlArray ?? throw Error(Join(where, key), $"must be an array; got {Describe(value)}.")
            : null;

    public IReadOnlyList<string> Strings(TomlTable table, string key, string where, bool required)
    {
        var array = OptionalArray(table, key, where);
        if (array is null)
            return required ? throw Error(Join(where, key), "is missing.") : [];
        return array.Select(v => v as string ?? throw Error(Join(where, key), $"must hold strings only; got {Describe(v)}.")).ToList();
    }

    public static string Join(string where, string key) => where.Length == 0 ? key : $"{where}.{key}";

    public static string Describe(object? value) => value switch
    {
        null => "nothing",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
        TomlArray => "an array",
        TomlTable => "a table",
        _ => value.GetType().Name,
    };
}
