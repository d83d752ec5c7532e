using FlashAttention.Codegen.Matrix;

namespace FlashAttention.Codegen.Kernels;

// What the kernel templates see (Scriban exposes each property in snake_case: HdimV → hdim_v).

/// <param name="Cpp">The value as a C++ argument: true/false for flags, the choice name otherwise.</param>
/// <param name="CsharpLiteral">The value as a C# literal: true/false, or "choice".</param>
internal sealed record SwitchView(string Name, bool IsFlag, string Text, string Cpp, string CsharpLiteral, string? Choice);

/// <param name="DirectionMacro">The direction in upper case for macro names (FWD_SPLIT).</param>
/// <param name="DtypeAbi">The ABI's fa_dtype constant (FA_DTYPE_BF16).</param>
/// <param name="DtypeCsharp">The FlashAttention.DType member (BFloat16).</param>
internal sealed record InstanceView(
    string Key,
    string File,
    string Backend,
    string Direction,
    string DirectionMacro,
    string Dtype,
    string DtypeAbi,
    string DtypeCsharp,
    int Hdim,
    int HdimV,
    IReadOnlyList<SwitchView> Switches)
{
    /// <summary>The switches as CMake arguments: causal=1 bias=alibi.</summary>
    public string CmakeSwitches => string.Join(" ", Switches.Select(s => $"{s.Name}={s.Text}"));

    public static InstanceView From(KernelInstanceSpec instance) => new(
        instance.Key,
        instance.FileName,
        instance.Backend.Name,
        instance.Direction,
        instance.Direction.ToUpperInvariant(),
        instance.Dtype.Name,
        instance.Dtype.AbiConstant,
        instance.Dtype.CSharpMember,
        instance.HeadDims.Qk,
        instance.HeadDims.V,
        instance.Switches.Select(s => new SwitchView(
            s.Name,
            s.Value.IsFlag,
            s.Value.Text,
            s.Value.Flag is { } f ? (f ? "true" : "false") : s.Value.Choice!,
            s.Value.Flag is { } g ? (g ? "true" : "false") : $"\"{s.Value.Choice}\"",
            s.Value.Choice)).ToList());
}

/// <summary>A direction of a backend: its macro suffix and the switch names in argument order.</summary>
internal sealed record DirectionView(string Name, string Macro, IReadOnlyList<string> SwitchNames);

/// <summary>Consecutive instances compiled in or out together (same QK head dim and dtype).</summary>
/// <param name="Guard">The preprocessor condition, from CMake's FA_HDIMS / FA_DTYPES filters.</param>
internal sealed record InstanceGroupView(string Guard, IReadOnlyList<InstanceView> Instances);

internal sealed record BackendView(
    string Name,
    string Library,
    string Language,
    IReadOnlyList<string> Targets,
    string KeyPrefix,
    IReadOnlyList<DirectionView> Directions)
{
    public static BackendView From(BackendSpec backend) => new(
        backend.Name,
        backend.Library,
        backend.Language,
        backend.Targets,
        backend.KeyPrefix,
        backend.Directions.Select(d => new DirectionView(d.Name, d.Name.ToUpperInvariant(), d.Switches.Select(s => s.Name).ToList())).ToList());
}
