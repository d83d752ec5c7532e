using FlashAttention.Devices;

namespace FlashAttention;

/// <summary>Allocation and host↔device copies for <see cref="Tensor"/>s on any device.</summary>
public static class TensorFactory
{
    /// <summary>A new zero-filled contiguous tensor on <paramref name="device"/>.</summary>
    public static Tensor Zeros(DType dtype, long[] shape, Device device)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (device.IsHost) return Tensor.Zeros(dtype, shape);
        long count = 1;
        foreach (long s in shape) count = checked(count * s);
        var storage = device.Kind switch
        {
            DeviceKind.Cuda => CudaDriver.Allocate(device, checked(count * dtype.SizeOf())),
            DeviceKind.Rocm => HipRuntime.Allocate(device, checked(count * dtype.SizeOf())),
            _ => throw new NotSupportedException($"Allocating on {device} is not supported: there is no {device.Kind} runtime binding."),
        };
        return Tensor.Create(storage, dtype, 0, shape);
    }

    /// <summary>
    /// A contiguous copy of <paramref name="tensor"/> on <paramref name="device"/> (the same tensor
    /// when it is already there and contiguous).
    /// </summary>
    public static unsafe Tensor To(this Tensor tensor, Device device)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device == device && tensor.IsContiguous) return tensor;
        var host = tensor.Device.IsHost ? tensor : ToHost(tensor);
        if (device.IsHost) return host.IsContiguous ? host : Gather(host);
        var contiguous = host.IsContiguous ? host : Gather(host);
        var result = Zeros(contiguous.DType, contiguous.Shape.ToArray(), device);
        nint src = contiguous.Pin(out var srcPin);
        using (srcPin)
        {
            nint dst = result.Pin(out var dstPin);
            using (dstPin)
            {
                long bytes = contiguous.ElementCount * contiguous.DType.SizeOf();
                if (device.Kind == DeviceKind.Rocm) HipRuntime.CopyToDevice(dst, (void*)src, bytes);
                else CudaDriver.CopyToDevice((ulong)dst, (void*)src, bytes);
            }
        }
        return result;
    }

    /// <summary>A host copy of a device tensor (strided views are gathered into row-major order).</summary>
    public static unsafe Tensor ToHost(this Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device.IsHost) return tensor;
        if (tensor.Device.Kind is not (DeviceKind.Cuda or DeviceKind.Rocm))
            throw new NotSupportedException($"Copying from {tensor.Device} is not supported: there is no {tensor.Device.Kind} runtime binding.");
        // Copy the whole span the view addresses, then gather on the host.
        long span = tensor.ElementCount == 0 ? 0 : tensor.LastElementOffset() - tensor.Offset + 1;
        var staging = Tensor.Zeros(tensor.DType, span);
        nint src = tensor.Pin(out var srcPin);
        using (srcPin)
        {
            nint dst = staging.Pin(out var dstPin);
            using (dstPin)
            {
                if (tensor.Device.Kind == DeviceKind.Rocm) HipRuntime.CopyToHost((void*)dst, src, span * tensor.DType.SizeOf());
                else CudaDriver.CopyToHost((void*)dst, (ulong)src, span * tensor.DType.SizeOf());
            }
        }
        var view = Tensor.Create(staging.Storage, tensor.DType, 0, tensor.Shape, tensor.Strides);
        return view.IsContiguous ? view : Gather(view);
    }

    /// <summary>A contiguous host copy of a strided host view.</summary>
    private static unsafe Tensor Gather(Tensor host)
    {
        var result = Tensor.Zeros(host.DType, host.Shape.ToArray());
        int size = host.DType.SizeOf();
        nint src = host.Pin(out var srcPin);
        using (srcPin)
        {
            nint dst = result.Pin(out var dstPin);
            using (dstPin)
            {
                byte* s = (byte*)src, d = (byte*)dst;
                long i = 0;
                foreach (long off in host.ElementOffsets())
                    Buffer.MemoryCopy(s + off * size, d + i++ * size, size, size);
            }
        }
        return result;
    }
}
