using System.Buffers;

namespace FlashAttention.Cpu;

/// <summary>Keeps the storages of one call pinned and releases them together.</summary>
internal sealed unsafe class PinnedTensors : IDisposable
{
    private readonly List<MemoryHandle> _handles = [];

    /// <summary>Pins <paramref name="tensor"/>'s storage and returns the address of its element [0, …, 0].</summary>
    public byte* Pin(Tensor tensor)
    {
        nint address = tensor.Pin(out var handle);
        _handles.Add(handle);
        return (byte*)address;
    }

    public void Dispose()
    {
        foreach (var handle in _handles)
            handle.Dispose();
        _handles.Clear();
    }
}
