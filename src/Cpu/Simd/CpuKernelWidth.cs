using System.Runtime.Intrinsics;

namespace FlashAttention.Cpu;

/// <summary>The SIMD register width the kernels are compiled for.</summary>
internal enum CpuKernelWidth
{
    Scalar,
    Vector128,
    Vector256,
    Vector512,
}

internal static class CpuKernelWidths
{
    /// <summary>The widest width this machine accelerates.</summary>
    public static CpuKernelWidth Best =>
        Vector512.IsHardwareAccelerated ? CpuKernelWidth.Vector512
        : Vector256.IsHardwareAccelerated ? CpuKernelWidth.Vector256
        : Vector128.IsHardwareAccelerated ? CpuKernelWidth.Vector128
        : CpuKernelWidth.Scalar;

    /// <summary>Whether kernels of <paramref name="width"/> run accelerated here (scalar always does).</summary>
    public static bool IsSupported(CpuKernelWidth width) => width switch
    {
        CpuKernelWidth.Scalar => true,
        CpuKernelWidth.Vector128 => Vector128.IsHardwareAccelerated,
        CpuKernelWidth.Vector256 => Vector256.IsHardwareAccelerated,
        CpuKernelWidth.Vector512 => Vector512.IsHardwareAccelerated,
        _ => false,
    };
}
