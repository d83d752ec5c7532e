using FlashAttention.Cpu;
using FlashAttention.Native;

namespace FlashAttention;

/// <summary>The backends this library knows, in preference order.</summary>
public static class BackendRegistry
{
    /// <summary>Preference order of DESIGN.md: hopper_sm90 → cuda_sm80 → rocm_ck → cpu.</summary>
    public static IReadOnlyList<string> PreferenceOrder { get; } = ["hopper_sm90", "cuda_sm80", "rocm_ck", "cpu"];

    /// <summary>A fresh instance of every backend, in preference order.</summary>
    public static IReadOnlyList<IAttentionBackend> CreateDefault() =>
    [
        new NativeBackend(new("hopper_sm90", FaHopperSm90Library.Instance, DeviceKind.Cuda,
            "an sm_90 GPU (H100/H200)", gpu => gpu.ComputeCapability == 90)),
        new NativeBackend(new("cuda_sm80", FaCudaSm80Library.Instance, DeviceKind.Cuda,
            "an sm_80 or newer GPU", gpu => gpu.ComputeCapability >= 80)),
        new NativeBackend(new("rocm_ck", FaRocmCkLibrary.Instance, DeviceKind.Rocm,
            "a gfx90a or gfx942 GPU (MI200/MI300)", gpu => gpu.Arch is "gfx90a" or "gfx942")),
        new CpuBackend(),
    ];
}
