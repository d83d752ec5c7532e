using System.Runtime.InteropServices;
using FlashAttention.Devices;
using FlashAttention.Native;

namespace FlashAttention.Tests.Native;

/// <summary>
/// The dispatcher's ROCm path without an AMD GPU: the HIP probe (through the generated HIP
/// runtime bindings, driven here by a fake runtime), the rocm_ck backend's verdicts in Explain,
/// and — when libfa_rocm_ck.so is on FLASHATTN_NATIVE_DIR (.ci/run builds it and points there) —
/// the library's own refusals through the generated ABI bindings.
/// </summary>
public sealed unsafe class RocmBackendTests
{
    private static readonly Tensor Q = Tensor.Zeros(DType.BFloat16, 1, 64, 2, 64);

    [Theory]
    [InlineData("gfx90a:sramecc+:xnack-", "gfx90a")]
    [InlineData("gfx942", "gfx942")]
    [InlineData(" gfx1100 ", "gfx1100")]
    [InlineData("", "gfx?")]
    [InlineData("gfx", "gfx?")]
    [InlineData("sm_90", "gfx?")]
    public void Gfx_target_is_the_arch_name_without_its_features(string gcnArchName, string target) =>
        Assert.Equal(target, HipRuntime.GfxTarget(gcnArchName));

    [Fact]
    public void Probe_lists_each_device_with_its_gfx_target()
    {
        var runtime = new FakeHipRuntime(
            ("AMD Instinct MI250X", "gfx90a:sramecc+:xnack-", 110, 64L << 30),
            ("AMD Instinct MI300X", "gfx942:sramecc+:xnack-", 304, 192L << 30),
            ("AMD Radeon RX 7900 XTX", "gfx1100", 48, 24L << 30));
        var probe = HipRuntime.ProbeDevices(runtime, "libamdhip64.so");
        Assert.True(probe.Loaded);
        Assert.Equal("HIP runtime 5.2 (libamdhip64.so), 3 device(s)", probe.Detail);
        Assert.Equal(["gfx90a", "gfx942", "gfx1100"], probe.Devices.Select(d => d.Arch));
        Assert.Equal([Device.Rocm(0), Device.Rocm(1), Device.Rocm(2)], probe.Devices.Select(d => d.Device));
        Assert.Equal("rocm:1: AMD Instinct MI300X (gfx942, 304 CUs, 192 GiB)", probe.Devices[1].ToString());
    }

    [Fact]
    public void Probe_without_a_device_keeps_the_runtime_error()
    {
        var probe = HipRuntime.ProbeDevices(new FakeHipRuntime { CountResult = hipError_t.hipErrorNoDevice }, "libamdhip64.so.5");
        Assert.False(probe.Loaded);
        Assert.Empty(probe.Devices);
        Assert.Equal("libamdhip64.so.5: hipGetDeviceCount failed with hipErrorNoDevice (100)", probe.Detail);
    }

    [Fact]
    public void Probe_of_this_machine_agrees_with_its_detail()
    {
        Assert.False(string.IsNullOrWhiteSpace(HipRuntime.Detail));
        if (HipRuntime.IsLoaded)
            Assert.All(HipRuntime.Devices, d => Assert.StartsWith("gfx", d.Arch, StringComparison.Ordinal));
        else
            Assert.Empty(HipRuntime.Devices);
    }

    [Fact]
    public void Allocating_without_a_rocm_device_names_the_reason()
    {
        if (HipRuntime.Devices.Count > 0) return;
        var e = Assert.ThrowsAny<Exception>(() => HipRuntime.Allocate(Device.Rocm(0), 64));
        Assert.True(e is InvalidOperationException or ArgumentOutOfRangeException, e.ToString());
        Assert.Contains(HipRuntime.IsLoaded ? "ROCm device(s)" : HipRuntime.Detail, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Explain_says_why_rocm_ck_is_not_used()
    {
        var verdict = FlashAttn.Explain(Q, Q, Q).Verdicts.Single(v => v.Backend == "rocm_ck");
        if (HipRuntime.Devices.Any(d => d.Arch is "gfx90a" or "gfx942") && verdict.Kind is BackendVerdictKind.Chosen or BackendVerdictKind.Eligible or BackendVerdictKind.Refused)
            return; // a machine with an MI200/MI300 and the library: nothing to explain
        Assert.Equal(BackendVerdictKind.Unavailable, verdict.Kind);
        // The three gates, each with its reason: the library, the runtime, a gfx90a/gfx942 device.
        Assert.Matches("libfa_rocm_ck\\.so not found|libfa_rocm_ck\\.so loaded, but (libamdhip64|.*hipGetDeviceCount)|rocm_ck needs a gfx90a or gfx942 GPU", verdict.Availability);
        Assert.StartsWith("rocm_ck: unavailable, ", verdict.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Library_reports_its_targets_and_capabilities_through_the_bindings()
    {
        var library = LoadLibraryOrSkip();
        Assert.Equal((uint)FlashAttnAbiConstants.FA_ABI_VERSION, library.fa_abi_version());
        Assert.Equal("rocm_ck", Marshal.PtrToStringUTF8((nint)library.fa_backend_name()));
        fa_capabilities caps = default;
        caps.struct_size = (uint)sizeof(fa_capabilities);
        Assert.Equal(fa_status.FA_OK, library.fa_get_capabilities(&caps));
        string archs = Marshal.PtrToStringUTF8((nint)caps.archs) ?? "";
        Assert.Contains("gfx90a", archs, StringComparison.Ordinal);
        var forward = (AttentionFeatures)(long)caps.features[(int)AttentionOp.Forward];
        Assert.True(forward.HasFlag(AttentionFeatures.Causal) && forward.HasFlag(AttentionFeatures.Dropout), forward.ToString());
    }

    [Fact]
    public void Library_refuses_a_valid_problem_only_for_want_of_an_amd_gpu()
    {
        var library = LoadLibraryOrSkip();
        var problem = AttentionValidator.Forward(Q, Q, Q, new AttentionOptions { Causal = true }).Problem with { Device = Device.Rocm(0) };
        string reason = Supports(library, problem, out var status);
        if (HipRuntime.Devices.Any(d => d.Arch is "gfx90a" or "gfx942"))
        {
            Assert.Equal(fa_status.FA_OK, status);
            return;
        }
        Assert.Equal(fa_status.FA_ERR_UNSUPPORTED, status);
        Assert.Matches("rocm_ck needs a ROCm \\(HIP\\) device|rocm_ck cannot run fa_forward: it holds code for gfx|no fwd kernel instance", reason);
    }

    [Fact]
    public void Library_names_what_it_does_not_implement()
    {
        var library = LoadLibraryOrSkip();
        var fp32 = Tensor.Zeros(DType.Float32, 1, 64, 2, 64);
        string reason = Supports(library, AttentionValidator.Forward(fp32, fp32, fp32, null).Problem with { Device = Device.Rocm(0) }, out var status);
        Assert.Equal(fa_status.FA_ERR_UNSUPPORTED, status);
        Assert.Contains("rocm_ck cannot run fa_forward: it does not support dtype fp32", reason, StringComparison.Ordinal);

        var p = NativeParams.Describe(AttentionValidator.Forward(Q, Q, Q, null).Problem with { Device = Device.Rocm(0) });
        p.num_splits = 2;
        p.dropout_p = 0.1f;
        byte* buffer = stackalloc byte[1024];
        status = library.fa_supports(&p, fa_op.FA_OP_FORWARD, buffer, 1024);
        Assert.Equal(fa_status.FA_ERR_UNSUPPORTED, status);
        Assert.Contains("dropout is not implemented in its split-KV kernel", Marshal.PtrToStringUTF8((nint)buffer), StringComparison.Ordinal);
    }

    private static string Supports(IFlashAttnAbi library, AttentionProblem problem, out fa_status status)
    {
        var p = NativeParams.Describe(problem);
        byte* buffer = stackalloc byte[1024];
        status = library.fa_supports(&p, (fa_op)problem.Op, buffer, 1024);
        return Marshal.PtrToStringUTF8((nint)buffer) ?? "";
    }

    private static IFlashAttnAbi LoadLibraryOrSkip()
    {
        string? missing = NativeLibraries.TryLoad("fa_rocm_ck", out _);
        if (missing is not null) Assert.Skip(missing);
        return FaRocmCkLibrary.Instance;
    }

    /// <summary>A HIP runtime with the devices a test gives it; only the probe's calls are implemented.</summary>
    private sealed class FakeHipRuntime(params (string Name, string Arch, int Cus, long Bytes)[] devices) : IHipRuntimeApi
    {
        private static readonly nint NoDeviceName = Marshal.StringToCoTaskMemUTF8("hipErrorNoDevice");

        public hipError_t CountResult { get; init; } = hipError_t.hipSuccess;

        public string LibraryName => "fake";

        public hipError_t hipRuntimeGetVersion(int* runtimeVersion)
        {
            *runtimeVersion = 50221153;
            return hipError_t.hipSuccess;
        }

        public hipError_t hipGetDeviceCount(int* count)
        {
            *count = CountResult == hipError_t.hipSuccess ? devices.Length : 0;
            return CountResult;
        }

        public hipError_t hipGetDeviceProperties(hipDeviceProp_t* prop, int deviceId)
        {
            var (name, arch, cus, bytes) = devices[deviceId];
            Write(prop->name, 256, name);
            Write(prop->gcnArchName, 256, arch);
            prop->multiProcessorCount = cus;
            prop->totalGlobalMem = (nuint)bytes;
            return hipError_t.hipSuccess;
        }

        public byte* hipGetErrorName(hipError_t hip_error) => hip_error == hipError_t.hipErrorNoDevice ? (byte*)NoDeviceName : null;

        private static void Write(byte* destination, int capacity, string text)
        {
            int n = System.Text.Encoding.UTF8.GetBytes(text, new Span<byte>(destination, capacity - 1));
            destination[n] = 0;
        }

        public hipError_t hipDeviceGetAttribute(int* pi, hipDeviceAttribute_t attr, int deviceId) => throw new NotSupportedException();
        public hipError_t hipDeviceTotalMem(nuint* bytes, int device) => throw new NotSupportedException();
        public hipError_t hipDriverGetVersion(int* driverVersion) => throw new NotSupportedException();
        public hipError_t hipSetDevice(int deviceId) => throw new NotSupportedException();
        public hipError_t hipGetDevice(int* deviceId) => throw new NotSupportedException();
        public hipError_t hipDeviceSynchronize() => throw new NotSupportedException();
        public hipError_t hipMalloc(void** ptr, nuint size) => throw new NotSupportedException();
        public hipError_t hipFree(void* ptr) => throw new NotSupportedException();
        public hipError_t hipMemcpy(void* dst, void* src, nuint sizeBytes, hipMemcpyKind kind) => throw new NotSupportedException();
        public hipError_t hipMemcpyAsync(void* dst, void* src, nuint sizeBytes, hipMemcpyKind kind, nint stream) => throw new NotSupportedException();
        public hipError_t hipMemset(void* dst, int value, nuint sizeBytes) => throw new NotSupportedException();
        public hipError_t hipStreamCreate(nint* stream) => throw new NotSupportedException();
        public hipError_t hipStreamDestroy(nint stream) => throw new NotSupportedException();
        public hipError_t hipStreamSynchronize(nint stream) => throw new NotSupportedException();
        public hipError_t hipEventCreate(nint* @event) => throw new NotSupportedException();
        public hipError_t hipEventRecord(nint @event, nint stream) => throw new NotSupportedException();
        public hipError_t hipEventSynchronize(nint @event) => throw new NotSupportedException();
        public hipError_t hipEventElapsedTime(float* ms, nint start, nint stop) => throw new NotSupportedException();
        public hipError_t hipEventDestroy(nint @event) => throw new NotSupportedException();
        public hipError_t hipGetLastError() => throw new NotSupportedException();
        public byte* hipGetErrorString(hipError_t hipError) => throw new NotSupportedException();
    }
}
