using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace FlashAttention.Cpu;

/// <summary>
/// A worker's zeroed (unless asked otherwise), cache-line aligned buffers for one call, carved from native blocks that
/// are pooled across calls: a decoding step lasts about a millisecond, and fresh allocations of
/// a few hundred KB per worker would each cost page faults. Buffers never move, so the kernels
/// keep raw pointers into them; disposing returns the blocks to the pool.
/// </summary>
internal sealed unsafe class NativeScratch : IDisposable
{
    private const int Alignment = 64;

    // One block holds a worker's tiles at d = 128 (about 230 KB).
    private const nuint BlockBytes = 256 << 10;

    // One arena per core is kept (a call runs at most that many workers at a time); arenas beyond
    // that, and arenas grown past PooledBytes (split-KV partials of a long prefill), are freed.
    private const nuint PooledBytes = 4 << 20;
    private static readonly int s_poolLimit = Environment.ProcessorCount;
    private static readonly ConcurrentBag<NativeScratch> s_pool = [];

    private readonly List<(nint Start, nuint Size)> _blocks = [];
    private int _current;
    private nuint _used, _capacity;

    private NativeScratch()
    {
    }

    /// <summary>An empty arena, from the pool when one is there.</summary>
    public static NativeScratch Rent() => s_pool.TryTake(out var scratch) ? scratch : new NativeScratch();

    /// <param name="count">Floats.</param>
    /// <param name="clear">Whether to zero them (not needed for a buffer always written before it is read).</param>
    public float* Floats(int count, bool clear = true) => (float*)Allocate((nuint)count * sizeof(float), clear);

    public byte* Bytes(int count) => (byte*)Allocate((nuint)count, clear: true);

    private void* Allocate(nuint bytes, bool clear)
    {
        bytes = (Math.Max(bytes, 1) + Alignment - 1) / Alignment * Alignment;
        while (_current < _blocks.Count && _used + bytes > _blocks[_current].Size)
        {
            _current++;
            _used = 0;
        }
        if (_current == _blocks.Count)
        {
            nuint size = Math.Max(bytes, BlockBytes);
            _blocks.Add(((nint)NativeMemory.AlignedAlloc(size, Alignment), size));
            _capacity += size;
            _used = 0;
        }
        byte* start = (byte*)_blocks[_current].Start + _used;
        _used += bytes;
        if (clear)
            NativeMemory.Clear(start, bytes);
        return start;
    }

    /// <summary>Rewinds the arena and returns it to the pool (or frees it when the pool is full).</summary>
    public void Dispose()
    {
        _current = 0;
        _used = 0;
        if (_capacity <= PooledBytes && s_pool.Count < s_poolLimit)
        {
            s_pool.Add(this);
            return;
        }
        foreach (var (start, _) in _blocks)
            NativeMemory.AlignedFree((void*)start);
        _blocks.Clear();
        _capacity = 0;
    }
}
