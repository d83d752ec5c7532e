namespace FlashAttention.Codegen.Matrix;

/// <summary>The kernel matrix as read from <c>codegen/kernels.toml</c>: per backend, the axes it specialises on.</summary>
internal sealed record KernelMatrix(IReadOnlyList<DtypeSpec> Dtypes, IReadOnlyList<BackendSpec> Backends)
{
    public BackendSpec? FindBackend(string name) => Backends.FirstOrDefault(b => b.Name == name);
}

/// <summary>An element type: its short name (keys, CLI, CMake), the ABI constant and the C# <c>DType</c> member.</summary>
internal sealed record DtypeSpec(string Name, string AbiConstant, string CSharpMember);

/// <summary>A native backend: its library, compile targets, how its instance files are named and rendered.</summary>
internal sealed record BackendSpec(
    string Name,
    string Library,
    string Language,
    IReadOnlyList<string> Targets,
    string KeyPrefix,
    string Template,
    string Extension,
    IReadOnlyList<DirectionSpec> Directions);

/// <summary>One kernel direction of a backend (fwd, bwd, fwd_split, …) and the axes it is expanded over.</summary>
internal sealed record DirectionSpec(
    string Name,
    IReadOnlyList<HeadDims> HeadDims,
    IReadOnlyList<DtypeSpec> Dtypes,
    IReadOnlyList<SwitchAxis> Switches);

/// <summary>The QK and V head dims of an instance; they differ for asymmetric (MLA-style) instances.</summary>
internal readonly record struct HeadDims(int Qk, int V)
{
    public bool IsAsymmetric => Qk != V;

    /// <summary>The key token: <c>hdim128</c>, or <c>hdim192_128</c> when V differs.</summary>
    public string Token => IsAsymmetric ? $"hdim{Qk}_{V}" : $"hdim{Qk}";

    public override string ToString() => IsAsymmetric ? $"{Qk}/{V}" : Qk.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A feature switch and the values an instance is specialised for, in key order.</summary>
internal sealed record SwitchAxis(string Name, IReadOnlyList<SwitchValue> Values)
{
    public bool IsFlag => Values[0].IsFlag;
}

/// <summary>A switch value: a flag (bool) or a choice (string).</summary>
internal readonly record struct SwitchValue(bool? Flag, string? Choice)
{
    public static SwitchValue Of(bool flag) => new(flag, null);

    public static SwitchValue Of(string choice) => new(null, choice);

    public bool IsFlag => Flag is not null;

    /// <summary>The value as CMake and the instance table write it: 1/0 for flags, the choice otherwise.</summary>
    public string Text => Flag is { } f ? (f ? "1" : "0") : Choice!;

    public override string ToString() => Flag is { } f ? (f ? "true" : "false") : Choice!;
}
