using System.Buffers;
using System.Runtime.InteropServices;
using FlashAttention.Devices;

namespace FlashAttention.Native;

/// <summary>Which GPUs a native backend runs on, as data.</summary>
/// <param name="Name">Backend name, e.g. "cuda_sm80".</param>
/// <param name="Library">The generated binding of its library.</param>
/// <param name="DeviceKind">CUDA or ROCm.</param>
/// <param name="Requirement">What the device must be, for messages ("an sm_90 GPU").</param>
/// <param name="Accepts">Whether a device qualifies.</param>
internal sealed record NativeBackendSpec(string Name, IFlashAttnAbi Library, DeviceKind DeviceKind, string Requirement, Func<GpuInfo, bool> Accepts);

/// <summary>
/// A backend implemented by a native library behind the C ABI. Gates, each with its own
/// reason: the library file (missing / unloadable / ABI mismatch), then a suitable device,
/// then the library's own capabilities and <c>fa_supports()</c>.
/// </summary>
internal sealed unsafe class NativeBackend : AttentionBackend
{
    private const int ReasonBufferSize = 1024;

    private static readonly BackendCapabilities NoCapabilities = new()
    {
        DeviceKind = DeviceKind.Cuda,
        DTypes = new Dictionary<AttentionOp, DType[]>(),
        Features = new Dictionary<AttentionOp, AttentionFeatures>(),
    };

    private readonly NativeBackendSpec _spec;
    private readonly Lazy<(BackendAvailability Availability, BackendCapabilities Capabilities)> _probe;

    public NativeBackend(NativeBackendSpec spec)
    {
        _spec = spec;
        _probe = new(ProbeOnce);
    }

    public override string Name => _spec.Name;

    public override BackendAvailability Availability => _probe.Value.Availability;

    public override BackendCapabilities Capabilities => _probe.Value.Capabilities;

    private (BackendAvailability, BackendCapabilities) ProbeOnce()
    {
        var none = NoCapabilities with { DeviceKind = _spec.DeviceKind };
        string? missing = NativeLibraries.TryLoad(_spec.Library.LibraryName, out string path);
        if (missing is not null) return (BackendAvailability.Unavailable(missing), none);
        try
        {
            return ProbeLoaded(path, none);
        }
        catch (EntryPointNotFoundException e)
        {
            // A library of another project, or a build that failed half-way: refuse it, don't crash the caller.
            return (BackendAvailability.Unavailable($"{path} lacks an entry point of the FlashAttention ABI: {e.Message}"), none);
        }
    }

    private (BackendAvailability, BackendCapabilities) ProbeLoaded(string path, BackendCapabilities none)
    {

        uint abi = _spec.Library.fa_abi_version();
        if (abi != FlashAttnAbiConstants.FA_ABI_VERSION)
            return (BackendAvailability.Unavailable($"{path} implements ABI version {abi}; this library needs {FlashAttnAbiConstants.FA_ABI_VERSION}"), none);
        var caps = ReadCapabilities();

        var (loaded, detail, devices) = _spec.DeviceKind == DeviceKind.Cuda
            ? (CudaDriver.IsLoaded, CudaDriver.Detail, CudaDriver.Devices)
            : (HipRuntime.IsLoaded, HipRuntime.Detail, HipRuntime.Devices);
        if (!loaded)
            return (BackendAvailability.Unavailable($"{path} loaded, but {detail}"), caps);
        var device = devices.FirstOrDefault(_spec.Accepts);
        if (device is null)
        {
            string found = devices.Count == 0 ? "none" : string.Join("; ", devices);
            return (BackendAvailability.Unavailable($"{Name} needs {_spec.Requirement}; found {found}"), caps);
        }
        return (BackendAvailability.Available($"{path} on {device}"), caps);
    }

    private BackendCapabilities ReadCapabilities()
    {
        fa_capabilities c = default;
        c.struct_size = (uint)sizeof(fa_capabilities);
        Check(_spec.Library.fa_get_capabilities(&c), "fa_get_capabilities");
        uint dtypeBits = c.dtypes;
        var dtypes = Enum.GetValues<DType>().Where(d => (dtypeBits & (1u << (int)d)) != 0).ToArray();
        var features = new Dictionary<AttentionOp, AttentionFeatures>();
        var dtypesPerOp = new Dictionary<AttentionOp, DType[]>();
        foreach (var op in Enum.GetValues<AttentionOp>())
        {
            ulong bits = c.features[(int)op];
            if (bits == 0) continue; // the library does not implement this entry point
            features[op] = (AttentionFeatures)(long)bits;
            // fp8 is a forward-only input type.
            dtypesPerOp[op] = op == AttentionOp.Forward ? dtypes : dtypes.Where(d => d != DType.Float8E4M3).ToArray();
        }
        return new BackendCapabilities
        {
            DeviceKind = _spec.DeviceKind,
            DTypes = dtypesPerOp,
            Features = features,
            MaxHeaddim = c.max_headdim,
            HeaddimAlign = Math.Max(1, c.headdim_align),
            PageSizeAlign = Math.Max(1, c.page_size_align),
            MaxSplits = c.max_splits,
        };
    }

    protected override void ExtraReasons(AttentionProblem problem, List<string> reasons)
    {
        int align = Capabilities.HeaddimAlign;
        if (problem.HeaddimQk % align != 0 || problem.HeaddimV % align != 0)
            reasons.Add($"{Name} requires head dims that are multiples of {align} (zero-padding for native backends is not implemented yet). Got {problem.HeaddimQk}/{problem.HeaddimV} instead.");
        if (reasons.Count > 0 || !Availability.IsAvailable) return;

        // The library's own verdict; with no tensors yet, present optional inputs are marked
        // by a non-null placeholder address (supports() never dereferences pointers).
        var p = NativeParams.Describe(problem);
        byte* reason = stackalloc byte[ReasonBufferSize];
        reason[0] = 0;
        var status = _spec.Library.fa_supports(&p, (fa_op)problem.Op, reason, ReasonBufferSize);
        if (status != fa_status.FA_OK)
            reasons.Add(Marshal.PtrToStringUTF8((nint)reason) is { Length: > 0 } text ? text : $"{Name} refused the problem ({status}).");
    }

    public override void Run(AttentionArgs args)
    {
        var problem = args.Problem;
        if (_spec.DeviceKind == DeviceKind.Cuda) CudaDriver.MakeCurrent(problem.Device.Ordinal);
        // The ABI takes device addresses of contiguous metadata (and rotary tables, and the fp8
        // descales, whose one pair of strides q, k and v share): stage host or strided ones as
        // contiguous device copies for the duration of the call.
        var staged = new List<Tensor>();
        Tensor? Place(Tensor? t)
        {
            if (t is null) return null;
            var placed = t.To(problem.Device);
            if (!ReferenceEquals(placed, t)) staged.Add(placed);
            return placed;
        }
        var onDevice = args with
        {
            AlibiSlopes = Place(args.AlibiSlopes), SinkLogits = Place(args.SinkLogits),
            QDescale = Place(args.QDescale), KDescale = Place(args.KDescale), VDescale = Place(args.VDescale),
            CuSeqlensQ = Place(args.CuSeqlensQ), CuSeqlensK = Place(args.CuSeqlensK), SequsedK = Place(args.SequsedK),
            LeftpadK = Place(args.LeftpadK), BlockTable = Place(args.BlockTable),
            CacheSeqlens = Place(args.CacheSeqlens), CacheBatchIdx = Place(args.CacheBatchIdx),
            RotaryCos = Place(args.RotaryCos), RotarySin = Place(args.RotarySin),
        };

        var pins = new List<MemoryHandle>();
        try
        {
            var p = NativeParams.Build(onDevice, t =>
            {
                nint address = t.Pin(out var handle);
                pins.Add(handle);
                return address;
            });
            var status = problem.Op switch
            {
                AttentionOp.Forward => _spec.Library.fa_forward(&p),
                AttentionOp.Backward => _spec.Library.fa_backward(&p),
                _ => _spec.Library.fa_forward_kvcache(&p),
            };
            Check(status, problem.Op switch { AttentionOp.Forward => "fa_forward", AttentionOp.Backward => "fa_backward", _ => "fa_forward_kvcache" });
            // Staged copies are freed below; the kernels must be done with them first.
            if (staged.Count > 0)
            {
                if (_spec.DeviceKind == DeviceKind.Cuda) CudaDriver.Synchronize();
                else HipRuntime.Synchronize();
            }
        }
        finally
        {
            foreach (var pin in pins) pin.Dispose();
            foreach (var t in staged) t.Storage.Dispose();
        }
    }

    private void Check(fa_status status, string call)
    {
        if (status == fa_status.FA_OK) return;
        string message = $"{Name} {call}: {Marshal.PtrToStringUTF8((nint)_spec.Library.fa_last_error())}";
        throw status switch
        {
            fa_status.FA_ERR_INVALID_ARGUMENT => new ArgumentException(message),
            fa_status.FA_ERR_UNSUPPORTED => new NotSupportedException(message),
            _ => new NativeBackendException(Name, (int)status, message),
        };
    }
}

/// <summary>A native backend call failed on the device (launch error, out of memory, internal error).</summary>
public sealed class NativeBackendException(string backend, int status, string message) : Exception(message)
{
    public string Backend { get; } = backend;

    /// <summary>The fa_status value.</summary>
    public int Status { get; } = status;
}
