using FlashAttention.Devices;

namespace FlashAttention.Tests.Unit;

public class FlopsTests
{
    [Fact]
    public void Forward_is_four_b_h_sq_sk_d_halved_for_causal()
    {
        Assert.Equal(4.0 * 2 * 8 * 128 * 256 * 64, AttentionFlops.Forward(2, 8, 128, 256, 64, causal: false));
        Assert.Equal(2.0 * 2 * 8 * 128 * 256 * 64, AttentionFlops.Forward(2, 8, 128, 256, 64, causal: true));
        Assert.Equal(2.0 * 1 * 16 * 1024 * 1024 * (192 + 128), AttentionFlops.Forward(1, 16, 1024, 1024, 192, 128, causal: false));
        Assert.Equal(2.5 * 4.0 * 4 * 16 * 4096 * 4096 * 128 * 0.5, AttentionFlops.Backward(4, 16, 4096, 4096, 128, causal: true));
    }
}

public class TensorFactoryTests
{
    [Fact]
    public void Host_zeros_and_copies()
    {
        var z = TensorFactory.Zeros(DType.BFloat16, [3, 4], Device.Cpu);
        Assert.Equal("bf16[3, 4] on cpu", z.ToString());
        Assert.All(z.ToDoubleArray(), x => Assert.Equal(0.0, x));

        var t = Tensor.FromArray(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), 3, 4);
        Assert.Same(t, t.To(Device.Cpu));          // already there and contiguous
        Assert.Same(t, t.ToHost());

        var view = t.Transpose(0, 1).Narrow(0, 1, 2); // [2, 3], non-contiguous
        var copy = view.To(Device.Cpu);
        Assert.NotSame(view, copy);
        Assert.True(copy.IsContiguous);
        Assert.NotSame(t.Storage, copy.Storage);
        Assert.Equal(view.ToArray<float>(), copy.ToArray<float>());
        Assert.Equal([1f, 5, 9, 2, 6, 10], copy.ToArray<float>());
    }

    [Fact]
    public void Rocm_allocation_without_a_device_says_why()
    {
        if (HipRuntime.Devices.Count > 0) return; // a machine with an AMD GPU allocates
        var e = Assert.ThrowsAny<Exception>(() => TensorFactory.Zeros(DType.Float16, [2], Device.Rocm(0)));
        Assert.True(e is InvalidOperationException or ArgumentOutOfRangeException, e.ToString());
        Assert.Contains(HipRuntime.IsLoaded ? "ROCm device(s)" : "HIP is not available", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_allocation_without_a_driver_says_why()
    {
        if (CudaDriver.IsLoaded && CudaDriver.Devices.Count > 0)
        {
            // On a GPU machine: a round trip through device memory keeps every bit.
            var t = Tensor.FromDoubles(DType.Float16, [1, 2, 3, 4, 5, 6], 2, 3).Transpose(0, 1);
            var dev = t.To(Device.Cuda(0));
            Assert.Equal(DeviceKind.Cuda, dev.Device.Kind);
            Assert.Equal(t.ToDoubleArray(), dev.ToHost().ToDoubleArray());
            Assert.Equal(t.ToDoubleArray(), dev.Transpose(0, 1).ToHost().Transpose(0, 1).ToDoubleArray());
            return;
        }
        var e = Assert.Throws<InvalidOperationException>(() => TensorFactory.Zeros(DType.Float16, [2], Device.Cuda(0)));
        Assert.Contains("CUDA is not available", e.Message, StringComparison.Ordinal);
        Assert.Contains(CudaDriver.Detail, e.Message, StringComparison.Ordinal);
    }
}

public class DeviceProbingTests
{
    [Fact]
    public void Cuda_probing_never_throws_and_explains_an_absent_driver()
    {
        bool loaded = CudaDriver.IsLoaded;
        Assert.False(string.IsNullOrWhiteSpace(CudaDriver.Detail));
        if (!loaded)
        {
            Assert.Empty(CudaDriver.Devices);
            Assert.Matches("libcuda\\.so\\.1|cuInit", CudaDriver.Detail);
            Assert.Throws<InvalidOperationException>(() => CudaDriver.MakeCurrent(0));
        }
        else
        {
            Assert.Contains("CUDA driver", CudaDriver.Detail, StringComparison.Ordinal);
            foreach (var gpu in CudaDriver.Devices)
            {
                Assert.Equal(DeviceKind.Cuda, gpu.Device.Kind);
                Assert.Matches("^sm_[0-9]+$", gpu.Arch);
                Assert.True(gpu.ComputeCapability >= 30, gpu.ToString());
                Assert.True(gpu.ComputeUnits > 0 && gpu.MemoryBytes > 0, gpu.ToString());
            }
            Assert.Throws<ArgumentOutOfRangeException>(() => CudaDriver.MakeCurrent(CudaDriver.Devices.Count));
        }
    }

    [Fact]
    public void Hip_probing_never_throws_and_explains_an_absent_runtime()
    {
        Assert.False(string.IsNullOrWhiteSpace(HipRuntime.Detail));
        if (!HipRuntime.IsLoaded)
        {
            Assert.Empty(HipRuntime.Devices);
            // Either the library is missing, or it loaded and found no device (seen on NVIDIA machines whose image ships it).
            Assert.Matches("libamdhip64|hipGetDeviceCount", HipRuntime.Detail);
        }
        else
        {
            Assert.Contains("HIP runtime", HipRuntime.Detail, StringComparison.Ordinal);
            Assert.All(HipRuntime.Devices, g => Assert.Equal(DeviceKind.Rocm, g.Device.Kind));
        }
    }

    [Fact]
    public void Device_names()
    {
        Assert.Equal("cpu", Device.Cpu.ToString());
        Assert.Equal("cuda:1", Device.Cuda(1).ToString());
        Assert.Equal("rocm:0", Device.Rocm().ToString());
        Assert.True(Device.Cpu.IsHost);
        Assert.False(Device.Cuda().IsHost);
        var info = new GpuInfo(Device.Cuda(0), "Test GPU", "sm_90", 132, 80L << 30) { ComputeCapability = 90 };
        Assert.Equal("cuda:0: Test GPU (sm_90, 132 SMs, 80 GiB)", info.ToString());
    }
}
