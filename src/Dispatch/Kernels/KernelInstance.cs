using System.Collections.ObjectModel;

namespace FlashAttention.Kernels;

/// <summary>
/// One compiled kernel instance of a native backend, as codegen/kernels.toml declares it: the
/// direction (fwd, bwd, fwd_split …), dtype, head dims and the switch values it is specialised for.
/// </summary>
/// <param name="Backend">Backend name (cuda_sm80, hopper_sm90, rocm_ck).</param>
/// <param name="Direction">Kernel direction as the matrix names it (fwd, bwd, fwd_split, fwd_splitkv, fwd_appendkv).</param>
/// <param name="Headdim">The QK head dim the instance is compiled for (a bucket: smaller head dims are padded up to it).</param>
/// <param name="HeaddimV">The V head dim; differs from <paramref name="Headdim"/> for asymmetric instances.</param>
/// <param name="Switches">Every switch of the direction, in key order.</param>
/// <param name="File">The generated source file; its name without extension is <see cref="Key"/>.</param>
public sealed record KernelInstance(
    string Backend,
    string Direction,
    DType DType,
    int Headdim,
    int HeaddimV,
    IReadOnlyDictionary<string, SwitchValue> Switches,
    string File)
{
    /// <summary>The full key (e.g. fa_sm80_fwd_hdim128_bf16_causal), as in file names and native tables.</summary>
    public string Key => Path.GetFileNameWithoutExtension(File);

    /// <summary>True when the flag switch <paramref name="name"/> is on (false when off or absent).</summary>
    public bool Has(string name) => Switches.TryGetValue(name, out var value) && value.Flag == true;

    /// <summary>The choice of switch <paramref name="name"/>, or null when absent or a flag.</summary>
    public string? Choice(string name) => Switches.TryGetValue(name, out var value) ? value.Choice : null;

    /// <summary>True when the instance is specialised for every given switch value.</summary>
    public bool Matches(IReadOnlyDictionary<string, SwitchValue> switches) =>
        switches.All(s => Switches.TryGetValue(s.Key, out var value) && value == s.Value);

    public bool Equals(KernelInstance? other) => other is not null && Backend == other.Backend && File == other.File;

    public override int GetHashCode() => HashCode.Combine(Backend, File);

    public override string ToString() => Key;

    /// <summary>Builds the switch dictionary in key order (used by the generated catalogue).</summary>
    internal static IReadOnlyDictionary<string, SwitchValue> SwitchSet(params ReadOnlySpan<(string Name, SwitchValue Value)> switches)
    {
        var dictionary = new Dictionary<string, SwitchValue>(switches.Length, StringComparer.Ordinal);
        foreach (var (name, value) in switches)
            dictionary.Add(name, value);
        return new ReadOnlyDictionary<string, SwitchValue>(dictionary);
    }
}
