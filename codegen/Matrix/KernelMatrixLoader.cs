using System.Text.RegularExpressions;
using Tomlyn.Model;

namespace FlashAttention.Codegen.Matrix;

/// <summary>Reads <c>kernels.toml</c> into a <see cref="KernelMatrix"/>, checking every entry.</summary>
internal static partial class KernelMatrixLoader
{
    private const int MaxHeaddim = 256; // the ABI's limit (fa_check_params)

    [GeneratedRegex("^[a-z][a-z0-9_]*$")]
    private static partial Regex IdentifierPattern();

    public static KernelMatrix Load(string path)
    {
        var (toml, root) = TomlFields.Parse(path);
        toml.AllowOnly(root, "the document", "dtypes", "backends");

        var dtypes = ReadDtypes(toml, toml.Table(root, "dtypes", ""));
        var backendsTable = toml.Table(root, "backends", "");
        var backends = backendsTable
            .Select(entry => ReadBackend(toml, entry.Key, entry.Value as TomlTable ?? throw toml.Error($"backends.{entry.Key}", "must be a table."), dtypes))
            .OrderBy(b => b.Name, StringComparer.Ordinal)
            .ToList();
        if (backends.Count == 0)
            throw toml.Error("backends", "lists no backend.");
        return new KernelMatrix(dtypes, backends);
    }

    private static List<DtypeSpec> ReadDtypes(TomlFields toml, TomlTable table)
    {
        var dtypes = new List<DtypeSpec>();
        foreach (var (name, value) in table)
        {
            var where = $"dtypes.{name}";
            CheckIdentifier(toml, where, name);
            var entry = value as TomlTable ?? throw toml.Error(where, "must be a table { abi = \"FA_DTYPE_…\", csharp = \"…\" }.");
            toml.AllowOnly(entry, where, "abi", "csharp");
            dtypes.Add(new DtypeSpec(name, toml.String(entry, "abi", where), toml.String(entry, "csharp", where)));
        }
        return dtypes;
    }

    private static BackendSpec ReadBackend(TomlFields toml, string name, TomlTable table, IReadOnlyList<DtypeSpec> dtypes)
    {
        var where = $"backends.{name}";
        CheckIdentifier(toml, where, name);
        toml.AllowOnly(table, where, "library", "language", "targets", "key_prefix", "template", "extension", "hdims", "dtypes", "directions");

        var defaultHeadDims = ReadHeadDims(toml, table, where);
        var defaultDtypes = ReadDtypeRefs(toml, table, where, dtypes);
        var directionsTable = toml.Table(table, "directions", where);
        var directions = new List<DirectionSpec>();
        foreach (var (directionName, value) in directionsTable)
        {
            var directionWhere = $"{where}.directions.{directionName}";
            CheckIdentifier(toml, directionWhere, directionName);
            var direction = value as TomlTable ?? throw toml.Error(directionWhere, "must be a table.");
            toml.AllowOnly(direction, directionWhere, "hdims", "dtypes", "switches");
            var headDims = ReadHeadDims(toml, direction, directionWhere) ?? defaultHeadDims
                ?? throw toml.Error(directionWhere, "has no hdims and the backend gives none.");
            var directionDtypes = ReadDtypeRefs(toml, direction, directionWhere, dtypes) ?? defaultDtypes
                ?? throw toml.Error(directionWhere, "has no dtypes and the backend gives none.");
            directions.Add(new DirectionSpec(directionName, headDims, directionDtypes, ReadSwitches(toml, direction, directionWhere)));
        }
        if (directions.Count == 0)
            throw toml.Error($"{where}.directions", "lists no direction.");

        var targets = toml.Strings(table, "targets", where, required: true);
        if (targets.Count == 0)
            throw toml.Error($"{where}.targets", "lists no compile target.");
        var extension = toml.String(table, "extension", where);
        if (!extension.StartsWith('.'))
            throw toml.Error($"{where}.extension", $"must start with a dot (\".cu\"); got \"{extension}\".");
        var keyPrefix = toml.String(table, "key_prefix", where);
        CheckIdentifier(toml, $"{where}.key_prefix", keyPrefix);

        return new BackendSpec(
            name,
            toml.String(table, "library", where),
            toml.String(table, "language", where),
            targets,
            keyPrefix,
            toml.String(table, "template", where),
            extension,
            directions);
    }

    private static List<HeadDims>? ReadHeadDims(TomlFields toml, TomlTable table, string where)
    {
        var array = toml.OptionalArray(table, "hdims", where);
        if (array is null)
            return null;
        where = $"{where}.hdims";
        var headDims = new List<HeadDims>();
        foreach (var item in array)
        {
            var dims = item switch
            {
                long d => new HeadDims(CheckHeaddim(toml, where, d), CheckHeaddim(toml, where, d)),
                TomlArray { Count: 2 } pair when pair[0] is long qk && pair[1] is long v =>
                    new HeadDims(CheckHeaddim(toml, where, qk), CheckHeaddim(toml, where, v)),
                _ => throw toml.Error(where, $"entries must be head dims (128) or [qk, v] pairs ([192, 128]); got {TomlFields.Describe(item)}."),
            };
            if (headDims.Contains(dims))
                throw toml.Error(where, $"lists {dims} twice.");
            headDims.Add(dims);
        }
        return headDims.Count > 0 ? headDims : throw toml.Error(where, "is empty.");
    }

    private static int CheckHeaddim(TomlFields toml, string where, long value) =>
        value is >= 1 and <= MaxHeaddim
            ? (int)value
            : throw toml.Error(where, $"head dims must be in 1..{MaxHeaddim}; got {value}.");

    private static List<DtypeSpec>? ReadDtypeRefs(TomlFields toml, TomlTable table, string where, IReadOnlyList<DtypeSpec> known)
    {
        if (!table.ContainsKey("dtypes"))
            return null;
        where = $"{where}.dtypes";
        var names = toml.Strings(table, "dtypes", where, required: true);
        if (names.Count == 0)
            throw toml.Error(where, "is empty.");
        if (names.Distinct().Count() != names.Count)
            throw toml.Error(where, "lists a dtype twice.");
        return names
            .Select(n => known.FirstOrDefault(d => d.Name == n)
                ?? throw toml.Error(where, $"names unknown dtype \"{n}\"; [dtypes] defines {string.Join(", ", known.Select(d => d.Name))}."))
            .ToList();
    }

    private static List<SwitchAxis> ReadSwitches(TomlFields toml, TomlTable direction, string where)
    {
        var table = toml.OptionalTable(direction, "switches", where);
        if (table is null)
            return [];
        var axes = new List<SwitchAxis>();
        foreach (var (name, value) in table)
        {
            var switchWhere = $"{where}.switches.{name}";
            CheckIdentifier(toml, switchWhere, name);
            var array = value as TomlArray ?? throw toml.Error(switchWhere, "must be an array of values.");
            var values = array.Select(v => v switch
            {
                bool b => SwitchValue.Of(b),
                string s => SwitchValue.Of(CheckIdentifier(toml, switchWhere, s)),
                _ => throw toml.Error(switchWhere, $"values must be booleans or strings; got {TomlFields.Describe(v)}."),
            }).ToList();
            if (values.Count == 0)
                throw toml.Error(switchWhere, "has no values.");
            if (values.Any(v => v.IsFlag != values[0].IsFlag))
                throw toml.Error(switchWhere, "mixes booleans and strings.");
            if (values.Distinct().Count() != values.Count)
                throw toml.Error(switchWhere, "lists a value twice.");
            axes.Add(new SwitchAxis(name, values));
        }
        return axes;
    }

    private static string CheckIdentifier(TomlFields toml, string where, string name) =>
        IdentifierPattern().IsMatch(name)
            ? name
            : throw toml.Error(where, $"name \"{name}\" must be lower-case letters, digits and '_' (it becomes part of file names and C identifiers).");
}
