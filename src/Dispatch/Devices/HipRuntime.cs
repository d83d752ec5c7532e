using System.Runtime.InteropServices;

namespace FlashAttention.Devices;

/// <summary>
/// Probes the HIP runtime (<c>libamdhip64.so</c>) for AMD GPUs through the bindings that codegen
/// generates from <c>hip_runtime_api.h</c> (<c>Generated/HipRuntimeApi.g.cs</c>). Like
/// <see cref="CudaDriver"/> it never fails: without the runtime or a GPU there are simply no
/// ROCm devices, and the reason is kept. A device's <see cref="GpuInfo.Arch"/> is the gfx target
/// of its <c>gcnArchName</c> ("gfx90a" of "gfx90a:sramecc+:xnack-"), which decides whether the
/// rocm_ck backend holds code for it.
/// </summary>
public static unsafe class HipRuntime
{
    /// <summary>
    /// hipDeviceProp_t is read into a buffer this large: the generated struct has HIP 5.2's layout
    /// (which <c>hipGetDeviceProperties</c> keeps for binaries built against 5.x), and a runtime that
    /// wrote a later, longer layout must not write past what was allocated.
    /// </summary>
    private const int PropertiesBufferBytes = 8192;

    private static readonly string[] LibraryNames = ["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"];
    private static readonly Lazy<HipProbe> Probe = new(() => ProbeLibrary());

    /// <summary>True when the runtime loaded and answered.</summary>
    public static bool IsLoaded => Probe.Value.Loaded;

    /// <summary>Runtime path, version and device count, or why there are none.</summary>
    public static string Detail => Probe.Value.Detail;

    /// <summary>The ROCm devices found (empty without the runtime).</summary>
    public static IReadOnlyList<GpuInfo> Devices => Probe.Value.Devices;

    /// <summary>"gfx90a:sramecc+:xnack-" → "gfx90a"; anything that is not a gfx target → "gfx?".</summary>
    public static string GfxTarget(string gcnArchName)
    {
        string target = gcnArchName.Split(':', 2)[0].Trim();
        return target.StartsWith("gfx", StringComparison.Ordinal) && target.Length > 3 && target.Skip(3).All(char.IsAsciiLetterOrDigit)
            ? target
            : "gfx?";
    }

    private static HipProbe ProbeLibrary()
    {
        string? found = LibraryNames.FirstOrDefault(name => NativeLibrary.TryLoad(name, out _));
        if (found is null)
            return new HipProbe(false, "libamdhip64.so not found (no ROCm runtime on this machine)", []);
        try
        {
            return ProbeDevices(Amdhip64Library.Instance, found);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // The bindings import "amdhip64", which .NET resolves as libamdhip64.so; a runtime that ships
            // only a versioned file, or an older one without an entry point, ends here.
            return new HipProbe(false, $"{found} loaded, but its HIP runtime API could not be bound: {e.Message}", []);
        }
    }

    /// <summary>The devices <paramref name="api"/> reports (any implementation of the generated interface).</summary>
    internal static HipProbe ProbeDevices(IHipRuntimeApi api, string library)
    {
        int version = 0;
        api.hipRuntimeGetVersion(&version);
        int count = 0;
        hipError_t rc = api.hipGetDeviceCount(&count);
        if (rc != hipError_t.hipSuccess)
            return new HipProbe(false, $"{library}: hipGetDeviceCount failed with {ErrorName(api, rc)}", []);

        var devices = new List<GpuInfo>();
        byte* buffer = stackalloc byte[PropertiesBufferBytes];
        for (int i = 0; i < count; i++)
        {
            new Span<byte>(buffer, PropertiesBufferBytes).Clear();
            var props = (hipDeviceProp_t*)buffer;
            rc = api.hipGetDeviceProperties(props, i);
            if (rc != hipError_t.hipSuccess)
                return new HipProbe(false, $"hipGetDeviceProperties({i}) failed with {ErrorName(api, rc)}", []);
            string name = Marshal.PtrToStringUTF8((nint)props->name) ?? "?";
            string arch = GfxTarget(Marshal.PtrToStringUTF8((nint)props->gcnArchName) ?? "");
            devices.Add(new GpuInfo(Device.Rocm(i), name, arch, props->multiProcessorCount, (long)props->totalGlobalMem));
        }
        string runtime = version > 0 ? $"HIP runtime {version / 10_000_000}.{version / 100_000 % 100} ({library})" : $"HIP runtime {library}";
        return new HipProbe(true, $"{runtime}, {count} device(s)", devices);
    }

    private static string ErrorName(IHipRuntimeApi api, hipError_t error)
    {
        byte* name = api.hipGetErrorName(error);
        string text = name != null ? Marshal.PtrToStringUTF8((nint)name) ?? "" : "";
        return text.Length > 0 ? $"{text} ({(int)error})" : $"HIP error {(int)error}";
    }
}

/// <summary>What <see cref="HipRuntime"/> found.</summary>
internal sealed record HipProbe(bool Loaded, string Detail, IReadOnlyList<GpuInfo> Devices);
