using FlashAttention.Cpu;

namespace FlashAttention;

/// <summary>The backends this library knows, in preference order.</summary>
public static class BackendRegistry
{
    /// <summary>Preference order of DESIGN.md: hopper_sm90 → cuda_sm80 → rocm_ck → cpu.</summary>
    public static IReadOnlyList<string> PreferenceOrder { get; } = ["hopper_sm90", "cuda_sm80", "rocm_ck", "cpu"];

    /// <summary>A fresh instance of every backend, in preference order.</summary>
    public static IReadOnlyList<IAttentionBackend> CreateDefault() => [new CpuBackend()];
}
