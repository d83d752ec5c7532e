using System.Buffers;

namespace FlashAttention;

/// <summary>
/// The memory behind one or more <see cref="Tensor"/> views: managed host memory, or a raw
/// host or device address with an optional owner that frees it.
/// </summary>
public abstract class TensorStorage : IDisposable
{
    /// <summary>Where the memory lives.</summary>
    public abstract Device Device { get; }

    /// <summary>Bytes addressable from the start of the storage.</summary>
    public abstract long ByteLength { get; }

    /// <summary>
    /// Keeps the memory at a fixed address until the handle is disposed and returns that
    /// address (a device address for device storage, which never moves).
    /// </summary>
    public abstract MemoryHandle Pin();

    /// <summary>Releases owned memory; views over it become invalid.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>Host storage over a <see cref="Memory{T}"/> (arrays, pooled buffers, native memory managers).</summary>
public sealed class ManagedStorage<T> : TensorStorage where T : unmanaged
{
    public ManagedStorage(Memory<T> memory) => Memory = memory;

    public Memory<T> Memory { get; }

    public override Device Device => Device.Cpu;

    public override long ByteLength => (long)Memory.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();

    public override MemoryHandle Pin() => Memory.Pin();
}

/// <summary>
/// Storage at a raw address: pinned or unmanaged host memory, or GPU memory. The owner, when
/// given, is disposed with the storage (e.g. a handle that frees device memory).
/// </summary>
public sealed class NativeStorage : TensorStorage
{
    private IDisposable? _owner;

    public NativeStorage(nint address, long byteLength, Device device, IDisposable? owner = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        if (address == 0 && byteLength > 0)
            throw new ArgumentNullException(nameof(address), "A storage of non-zero length needs a non-null address.");
        Address = address;
        ByteLength = byteLength;
        Device = device;
        _owner = owner;
    }

    public nint Address { get; }

    public override long ByteLength { get; }

    public override Device Device { get; }

    public override unsafe MemoryHandle Pin() => new((void*)Address);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _owner?.Dispose();
            _owner = null;
        }
    }
}
