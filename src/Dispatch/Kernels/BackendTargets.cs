namespace FlashAttention.Kernels;

/// <summary>A native backend as the kernel matrix declares it: its library and the targets it is compiled for.</summary>
/// <param name="Backend">Backend name (cuda_sm80, hopper_sm90, rocm_ck).</param>
/// <param name="Library">The native library (fa_cuda_sm80 → libfa_cuda_sm80.so).</param>
/// <param name="Language">cuda or hip.</param>
/// <param name="Targets">Compile targets: sm_80, sm_90a, gfx942 ….</param>
public sealed record BackendTargets(string Backend, string Library, string Language, IReadOnlyList<string> Targets)
{
    /// <summary>True when <paramref name="target"/> (e.g. "sm_86" or "gfx942") is one of <see cref="Targets"/>.</summary>
    public bool Covers(string target) => Targets.Contains(target, StringComparer.OrdinalIgnoreCase);
}
