namespace FlashAttention.Codegen.Matrix;

/// <summary>One point of the expanded matrix: a kernel instance, its key and its file.</summary>
internal sealed record KernelInstanceSpec(
    BackendSpec Backend,
    string Direction,
    DtypeSpec Dtype,
    HeadDims HeadDims,
    IReadOnlyList<SwitchSetting> Switches)
{
    /// <summary>The full dispatch key, also the file name without extension.</summary>
    public string Key { get; } = BuildKey(Backend, Direction, Dtype, HeadDims, Switches);

    public string FileName => Key + Backend.Extension;

    private static string BuildKey(BackendSpec backend, string direction, DtypeSpec dtype, HeadDims headDims, IReadOnlyList<SwitchSetting> switches)
    {
        var parts = new List<string> { backend.KeyPrefix, direction, headDims.Token, dtype.Name };
        parts.AddRange(switches.Select(s => s.KeyToken).OfType<string>());
        return string.Join('_', parts);
    }
}

/// <summary>The value a switch takes in one instance.</summary>
internal sealed record SwitchSetting(SwitchAxis Axis, SwitchValue Value)
{
    public string Name => Axis.Name;

    /// <summary>What the key carries for this setting, or null when it carries nothing (false flag, default choice).</summary>
    public string? KeyToken => Value switch
    {
        { Flag: true } => Name,
        { Flag: false } => null,
        _ when Value == Axis.Values[0] => null,
        _ => $"{Name}_{Value.Choice}",
    };
}
