using System.Runtime.InteropServices;

namespace FlashAttention.Devices;

/// <summary>
/// Probes the HIP runtime (<c>libamdhip64.so</c>) for AMD GPUs. Like <see cref="CudaDriver"/>
/// it never fails: without the runtime or a GPU there are simply no ROCm devices, and the
/// reason is kept. Only ABI-stable entry points with scalar arguments are used here.
/// </summary>
public static unsafe class HipRuntime
{
    private static readonly string[] LibraryNames = ["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"];
    private static readonly Lazy<(bool Loaded, string Detail, IReadOnlyList<GpuInfo> Devices)> Probe = new(ProbeOnce);

    private const int HipDeviceAttributeMultiprocessorCount = 63; // hipDeviceAttributeMultiprocessorCount (HIP 5.x/6.x)

    /// <summary>True when the runtime loaded and answered.</summary>
    public static bool IsLoaded => Probe.Value.Loaded;

    /// <summary>Runtime path and device count, or why there are none.</summary>
    public static string Detail => Probe.Value.Detail;

    /// <summary>The ROCm devices found (empty without the runtime).</summary>
    public static IReadOnlyList<GpuInfo> Devices => Probe.Value.Devices;

    private static (bool, string, IReadOnlyList<GpuInfo>) ProbeOnce()
    {
        nint lib = 0;
        string? found = null;
        foreach (string candidate in LibraryNames)
        {
            if (NativeLibrary.TryLoad(candidate, out lib))
            {
                found = candidate;
                break;
            }
        }
        if (found is null)
            return (false, "libamdhip64.so not found (no ROCm runtime on this machine)", []);

        var getCount = (delegate* unmanaged<int*, int>)Export(lib, "hipGetDeviceCount");
        var getName = (delegate* unmanaged<byte*, int, int, int>)Export(lib, "hipDeviceGetName");
        var totalMem = (delegate* unmanaged<nuint*, int, int>)Export(lib, "hipDeviceTotalMem");
        var getAttr = (delegate* unmanaged<int*, int, int, int>)Export(lib, "hipDeviceGetAttribute");
        if (getCount == null)
            return (false, $"{found} has no hipGetDeviceCount", []);
        int count = 0;
        int rc = getCount(&count);
        if (rc != 0)
            return (false, $"hipGetDeviceCount failed with HIP error {rc}", []);
        var devices = new List<GpuInfo>();
        byte* name = stackalloc byte[256];
        for (int i = 0; i < count; i++)
        {
            name[0] = 0;
            if (getName != null) getName(name, 256, i);
            nuint bytes = 0;
            if (totalMem != null) totalMem(&bytes, i);
            int cus = 0;
            if (getAttr != null) getAttr(&cus, HipDeviceAttributeMultiprocessorCount, i);
            // The gfx target name is only in hipDeviceProp_t, whose layout changes between HIP
            // releases; the rocm_ck backend reads it through its generated HIP bindings.
            devices.Add(new GpuInfo(Device.Rocm(i), Marshal.PtrToStringUTF8((nint)name) ?? "?", "gfx?", cus, (long)bytes));
        }
        return (true, $"HIP runtime {found}, {count} device(s)", devices);
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address) ? address : 0;
}
