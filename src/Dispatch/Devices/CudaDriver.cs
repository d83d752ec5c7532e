using System.Runtime.InteropServices;
using static FlashAttention.Devices.CudaDriverInterop;

namespace FlashAttention.Devices;

/// <summary>One GPU as its driver describes it.</summary>
/// <param name="Device">The memory space (kind and ordinal).</param>
/// <param name="Name">Marketing name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="Arch">Compile target family: "sm_90", "sm_80", "gfx90a" …</param>
/// <param name="ComputeUnits">Streaming multiprocessors (CUDA) or compute units (ROCm).</param>
/// <param name="MemoryBytes">Device memory.</param>
public sealed record GpuInfo(Device Device, string Name, string Arch, int ComputeUnits, long MemoryBytes)
{
    /// <summary>CUDA compute capability as major·10 + minor (90 for sm_90); 0 for other vendors.</summary>
    public int ComputeCapability { get; init; }

    public override string ToString() =>
        $"{Device}: {Name} ({Arch}, {ComputeUnits} {(Device.Kind == DeviceKind.Cuda ? "SMs" : "CUs")}, {MemoryBytes / (1L << 30)} GiB)";
}

/// <summary>
/// The CUDA driver, loaded on first use if present. Probing never fails: a machine without
/// <c>libcuda.so.1</c> or without a GPU simply has no CUDA devices, and the reason is kept.
/// </summary>
public static unsafe class CudaDriver
{
    private static readonly Lazy<(bool Loaded, string Detail, IReadOnlyList<GpuInfo> Devices)> Probe = new(ProbeOnce);
    private static readonly object ContextLock = new();
    private static readonly Dictionary<int, nint> Contexts = [];
    private static readonly Dictionary<int, nint> Pools = []; // 0: memory pools unsupported on that device

    /// <summary>True when the driver loaded and initialised.</summary>
    public static bool IsLoaded => Probe.Value.Loaded;

    /// <summary>Driver version and path, or why the driver is unavailable.</summary>
    public static string Detail => Probe.Value.Detail;

    /// <summary>The CUDA devices found (empty without a driver).</summary>
    public static IReadOnlyList<GpuInfo> Devices => Probe.Value.Devices;

    private static (bool, string, IReadOnlyList<GpuInfo>) ProbeOnce()
    {
        if (!NativeLibrary.TryLoad(Library, out _))
            return (false, $"{Library} not found (no NVIDIA driver on this machine)", []);
        try
        {
            int rc = cuInit(0);
            if (rc != 0) return (false, $"cuInit failed: {ErrorString(rc)}", []);
            Check(cuDriverGetVersion(out int version), "cuDriverGetVersion");
            Check(cuDeviceGetCount(out int count), "cuDeviceGetCount");
            var devices = new List<GpuInfo>();
            byte* name = stackalloc byte[256];
            for (int i = 0; i < count; i++)
            {
                Check(cuDeviceGet(out int dev, i), "cuDeviceGet");
                Check(cuDeviceGetName(name, 256, dev), "cuDeviceGetName");
                int major = Attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
                int minor = Attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
                int sms = Attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
                Check(cuDeviceTotalMem_v2(out nuint bytes, dev), "cuDeviceTotalMem");
                devices.Add(new GpuInfo(FlashAttention.Device.Cuda(i), Marshal.PtrToStringUTF8((nint)name) ?? "?", $"sm_{major}{minor}", sms, (long)bytes)
                {
                    ComputeCapability = major * 10 + minor,
                });
            }
            return (true, $"CUDA driver {version / 1000}.{version % 1000 / 10}, {count} device(s)", devices);
        }
        catch (CudaException e)
        {
            return (false, e.Message, []);
        }
    }

    private static int Attribute(int device, int attribute)
    {
        Check(cuDeviceGetAttribute(out int value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    /// <summary>Makes device <paramref name="ordinal"/>'s primary context current on this thread.</summary>
    public static void MakeCurrent(int ordinal)
    {
        if (!IsLoaded)
            throw new InvalidOperationException($"CUDA is not available: {Detail}.");
        if (ordinal < 0 || ordinal >= Devices.Count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"This machine has {Devices.Count} CUDA device(s).");
        nint context;
        lock (ContextLock)
        {
            if (!Contexts.TryGetValue(ordinal, out context))
            {
                Check(cuDevicePrimaryCtxRetain(out context, ordinal), "cuDevicePrimaryCtxRetain");
                Contexts[ordinal] = context;
            }
        }
        Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    /// <summary>Waits for all work on the current context.</summary>
    public static void Synchronize() => Check(cuCtxSynchronize(), "cuCtxSynchronize");

    /// <summary>Allocates zeroed device memory owned by the returned storage.</summary>
    public static NativeStorage Allocate(Device device, long bytes)
    {
        MakeCurrent(device.Ordinal);
        var memory = new CudaMemory(device.Ordinal, bytes);
        return new NativeStorage((nint)memory.Pointer, bytes, device, memory);
    }

    /// <summary>Copies host bytes to device memory.</summary>
    public static void CopyToDevice(ulong destination, void* source, long bytes)
    {
        if (bytes > 0) Check(cuMemcpyHtoD_v2(destination, source, (nuint)bytes), "cuMemcpyHtoD");
    }

    /// <summary>Copies device bytes to host memory.</summary>
    public static void CopyToHost(void* destination, ulong source, long bytes)
    {
        if (bytes > 0) Check(cuMemcpyDtoH_v2(destination, source, (nuint)bytes), "cuMemcpyDtoH");
    }

    /// <summary>Milliseconds between two points on the default stream around one call of <paramref name="work"/>, synchronised after it.</summary>
    public static float Time(Action work) => TimeQueued(work, 1)[0];

    /// <summary>
    /// Milliseconds of each of <paramref name="iters"/> calls of <paramref name="work"/> enqueued back to back on the
    /// default stream, events between them and one synchronisation at the end: the host runs ahead, so a call's host
    /// work is hidden wherever it is shorter than the device work (the throughput a loop of calls sees).
    /// </summary>
    public static float[] TimeQueued(Action work, int iters)
    {
        var events = new nint[iters + 1];
        try
        {
            for (int i = 0; i <= iters; i++) Check(cuEventCreate(out events[i], 0), "cuEventCreate");
            Check(cuEventRecord(events[0], 0), "cuEventRecord");
            for (int i = 0; i < iters; i++)
            {
                work();
                Check(cuEventRecord(events[i + 1], 0), "cuEventRecord");
            }
            Check(cuEventSynchronize(events[iters]), "cuEventSynchronize");
            var ms = new float[iters];
            for (int i = 0; i < iters; i++) Check(cuEventElapsedTime(out ms[i], events[i], events[i + 1]), "cuEventElapsedTime");
            return ms;
        }
        finally
        {
            foreach (nint e in events)
                if (e != 0) cuEventDestroy_v2(e);
        }
    }

    internal static void Check(int result, string call)
    {
        if (result != 0) throw new CudaException(call, result, ErrorString(result));
    }

    private static string ErrorString(int result) =>
        cuGetErrorString(result, out byte* message) == 0 && message != null
            ? Marshal.PtrToStringUTF8((nint)message) ?? $"error {result}"
            : $"error {result}";

    /// <summary>
    /// The library's stream-ordered memory pool of a device (created on first use, current context = that device),
    /// keeping what it once held (release threshold: all), or 0 where the device has no memory pools.
    /// Why: cuMemFree waits for the whole device, and a tensor freed in a loop (an LSE returned by every
    /// forward, freed by its owner or the finaliser) then stalled the stream each time; cuMemAlloc maps memory
    /// synchronously. Pool allocations and frees are ordered on the default stream, where every call of the
    /// library runs (the native backends launch on it), and host copies (cuMemcpy*) are ordered after them.
    /// </summary>
    private static nint PoolOf(int ordinal)
    {
        lock (ContextLock)
        {
            if (Pools.TryGetValue(ordinal, out nint pool)) return pool;
            pool = 0;
            if (cuDeviceGet(out int dev, ordinal) == 0 &&
                cuDeviceGetAttribute(out int supported, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, dev) == 0 && supported != 0)
            {
                byte* props = stackalloc byte[MemPoolPropsBytes];
                new Span<byte>(props, MemPoolPropsBytes).Clear();
                ((int*)props)[0] = CU_MEM_ALLOCATION_TYPE_PINNED; // allocType
                ((int*)props)[1] = 0;                              // handleTypes: none
                ((int*)props)[2] = CU_MEM_LOCATION_TYPE_DEVICE;    // location.type
                ((int*)props)[3] = dev;                            // location.id
                if (cuMemPoolCreate(out nint created, props) == 0)
                {
                    ulong keep = ulong.MaxValue;
                    cuMemPoolSetAttribute(created, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
                    pool = created; // lives as long as the process, as the primary context does
                }
            }
            Pools[ordinal] = pool;
            return pool;
        }
    }

    /// <summary>Device memory (from the device's pool, stream-ordered; else cuMemAlloc), zeroed, freed exactly once.</summary>
    private sealed class CudaMemory : SafeHandle
    {
        private readonly int _ordinal;
        private readonly bool _pooled;

        public CudaMemory(int ordinal, long bytes) : base(0, ownsHandle: true)
        {
            _ordinal = ordinal;
            if (bytes <= 0) return;
            nint pool = PoolOf(ordinal);
            ulong pointer;
            if (pool != 0)
            {
                Check(cuMemAllocFromPoolAsync(out pointer, (nuint)bytes, pool, 0), "cuMemAllocFromPoolAsync");
                _pooled = true;
                SetHandle((nint)pointer);
                Check(cuMemsetD8Async(pointer, 0, (nuint)bytes, 0), "cuMemsetD8Async");
            }
            else
            {
                Check(cuMemAlloc_v2(out pointer, (nuint)bytes), "cuMemAlloc");
                SetHandle((nint)pointer);
                Check(cuMemsetD8_v2(pointer, 0, (nuint)bytes), "cuMemsetD8");
            }
        }

        public ulong Pointer => (ulong)handle;

        public override bool IsInvalid => handle == 0;

        protected override bool ReleaseHandle()
        {
            if (Contexts.TryGetValue(_ordinal, out nint ctx)) cuCtxSetCurrent(ctx);
            return (_pooled ? cuMemFreeAsync((ulong)handle, 0) : cuMemFree_v2((ulong)handle)) == 0;
        }
    }
}

/// <summary>A CUDA driver call failed.</summary>
public sealed class CudaException(string call, int code, string message)
    : Exception($"{call} failed with CUDA error {code}: {message}")
{
    public int Code { get; } = code;
}
