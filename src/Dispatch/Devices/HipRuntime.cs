using System.Runtime.InteropServices;

namespace FlashAttention.Devices;

/// <summary>
/// Probes the HIP runtime (<c>libamdhip64.so</c>) for AMD GPUs through the bindings that codegen
/// generates from <c>hip_runtime_api.h</c> (<c>Generated/HipRuntimeApi.g.cs</c>). Like
/// <see cref="CudaDriver"/> it never fails: without the runtime or a GPU there are simply no
/// ROCm devices, and the reason is kept. A device's <see cref="GpuInfo.Arch"/> is the gfx target
/// of its <c>gcnArchName</c> ("gfx90a" of "gfx90a:sramecc+:xnack-"), which decides whether the
/// rocm_ck backend holds code for it. <see cref="Allocate"/> and the copies are what
/// <see cref="TensorFactory"/> needs to place tensors on a ROCm device (as <see cref="CudaDriver"/>'s
/// do for CUDA).
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

    /// <summary>Allocates zeroed device memory on ROCm device <paramref name="device"/>, owned by the returned storage.</summary>
    /// <exception cref="HipException">The runtime refused (no device, out of memory).</exception>
    public static NativeStorage Allocate(Device device, long bytes)
    {
        if (!IsLoaded)
            throw new InvalidOperationException($"HIP is not available: {Detail}.");
        if (device.Kind != DeviceKind.Rocm || device.Ordinal < 0 || device.Ordinal >= Devices.Count)
            throw new ArgumentOutOfRangeException(nameof(device), device, $"This machine has {Devices.Count} ROCm device(s).");
        var memory = new HipMemory(device.Ordinal, bytes);
        return new NativeStorage(memory.Pointer, bytes, device, memory);
    }

    /// <summary>Copies host bytes to device memory (synchronous).</summary>
    public static void CopyToDevice(nint destination, void* source, long bytes)
    {
        if (bytes > 0) Check(Api.hipMemcpy((void*)destination, source, (nuint)bytes, hipMemcpyKind.hipMemcpyHostToDevice), "hipMemcpy");
    }

    /// <summary>Copies device bytes to host memory (synchronous).</summary>
    public static void CopyToHost(void* destination, nint source, long bytes)
    {
        if (bytes > 0) Check(Api.hipMemcpy(destination, (void*)source, (nuint)bytes, hipMemcpyKind.hipMemcpyDeviceToHost), "hipMemcpy");
    }

    /// <summary>Waits for all work on the current device.</summary>
    public static void Synchronize() => Check(Api.hipDeviceSynchronize(), "hipDeviceSynchronize");

    private static IHipRuntimeApi Api => Amdhip64Library.Instance;

    internal static void Check(hipError_t result, string call)
    {
        if (result != hipError_t.hipSuccess) throw new HipException(call, (int)result, ErrorName(Api, result));
    }

    /// <summary>Device memory from hipMalloc on one device, freed exactly once.</summary>
    private sealed class HipMemory : SafeHandle
    {
        private readonly int _device;

        public HipMemory(int device, long bytes) : base(0, ownsHandle: true)
        {
            _device = device;
            if (bytes <= 0) return;
            Check(Api.hipSetDevice(device), "hipSetDevice");
            void* pointer = null;
            Check(Api.hipMalloc(&pointer, (nuint)bytes), "hipMalloc");
            SetHandle((nint)pointer);
            Check(Api.hipMemset(pointer, 0, (nuint)bytes), "hipMemset");
        }

        public nint Pointer => handle;

        public override bool IsInvalid => handle == 0;

        protected override bool ReleaseHandle()
        {
            Api.hipSetDevice(_device);
            return Api.hipFree((void*)handle) == hipError_t.hipSuccess;
        }
    }

    private static string ErrorName(IHipRuntimeApi api, hipError_t error)
    {
        byte* name = api.hipGetErrorName(error);
        string text = name != null ? Marshal.PtrToStringUTF8((nint)name) ?? "" : "";
        return text.Length > 0 ? $"{text} ({(int)error})" : $"HIP error {(int)error}";
    }
}

/// <summary>A HIP runtime call failed.</summary>
public sealed class HipException(string call, int code, string message)
    : Exception($"{call} failed with HIP error {code}: {message}")
{
    public int Code { get; } = code;
}

/// <summary>What <see cref="HipRuntime"/> found.</summary>
internal sealed record HipProbe(bool Loaded, string Detail, IReadOnlyList<GpuInfo> Devices);
