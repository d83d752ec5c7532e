using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using FlashAttention.Devices;

namespace FlashAttention.Cli;

/// <summary>One GPU in a benchmark file.</summary>
internal sealed record GpuRecord(string Name, string Arch, int ComputeUnits, double MemoryGib);

/// <summary>
/// The machine a benchmark ran on (the <c>machine</c> object of the JSON files). <see cref="Software"/>
/// is open-ended so that peer scripts can add their versions (e.g. "torch", "cuda").
/// </summary>
internal sealed record MachineRecord
{
    public required string Cpu { get; init; }
    public required int Cores { get; init; }
    public required string Simd { get; init; }
    public required List<GpuRecord> Gpus { get; init; }
    public required string Os { get; init; }
    public required Dictionary<string, string> Software { get; init; }
    public string? GitCommit { get; init; }
}

/// <summary>Facts about this machine for <c>info</c> and the benchmark files.</summary>
internal static class MachineInfo
{
    /// <summary>"model name" of /proc/cpuinfo, or the architecture when that is unavailable.</summary>
    public static string CpuModel()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int c and > 0)
                    return line[(c + 1)..].Trim();
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>Widest hardware-accelerated vector and notable x86 extensions, e.g. "Vector512 (AVX-512F, FMA)".</summary>
    public static string Simd()
    {
        string widest = Vector512.IsHardwareAccelerated ? "Vector512" : Vector256.IsHardwareAccelerated ? "Vector256"
            : Vector128.IsHardwareAccelerated ? "Vector128" : "scalar";
        var ext = new List<string>();
        if (Avx512F.IsSupported) ext.Add("AVX-512F");
        if (Avx512BW.IsSupported) ext.Add("AVX-512BW");
        if (Avx2.IsSupported) ext.Add("AVX2");
        if (Fma.IsSupported) ext.Add("FMA");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) ext.Add("NEON");
        return ext.Count == 0 ? widest : $"{widest} ({string.Join(", ", ext)})";
    }

    public static List<GpuRecord> Gpus() =>
        CudaDriver.Devices.Concat(HipRuntime.Devices)
            .Select(g => new GpuRecord(g.Name, g.Arch, g.ComputeUnits, Math.Round(g.MemoryBytes / (double)(1L << 30), 1)))
            .ToList();

    public static MachineRecord Record() => new()
    {
        Cpu = CpuModel(),
        Cores = Environment.ProcessorCount,
        Simd = Simd(),
        Gpus = Gpus(),
        Os = RuntimeInformation.OSDescription,
        Software = new Dictionary<string, string>
        {
            ["dotnet"] = Environment.Version.ToString(),
            ["flashattn"] = typeof(Dispatcher).Assembly.GetName().Version?.ToString() ?? "?",
            ["cuda_driver"] = CudaDriver.IsLoaded ? CudaDriver.Detail : "none",
        },
        GitCommit = GitCommit(),
    };

    /// <summary>
    /// HEAD of the repository around the working directory, with "-dirty" when there are local changes; null without git.
    /// FLASHATTN_GIT_COMMIT overrides it (the GPU machine gets a copy of the tree without .git; tools/device/gpu-check.sh sets it).
    /// </summary>
    public static string? GitCommit()
    {
        if (Environment.GetEnvironmentVariable("FLASHATTN_GIT_COMMIT") is { Length: > 0 } given) return given;
        string? head = Git("rev-parse HEAD");
        if (head is null) return null;
        string? status = Git("status --porcelain --untracked-files=no");
        return string.IsNullOrEmpty(status) ? head : head + "-dirty";
    }

    private static string? Git(string arguments)
    {
        try
        {
            var psi = new ProcessStartInfo("git", arguments)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var p = Process.Start(psi);
            if (p is null) return null;
            string output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(5000);
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // git not installed
        }
    }
}
