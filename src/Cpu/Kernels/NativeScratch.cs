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

    // Arenas are kept per CPU: the one a worker returns on CPU c is rented next on c, where its
    // lines are still cached (caller threads move between CPUs; the VM's two vCPUs pass a line
    // across in ~250 ns). Besides those, up to one per core waits in a shared pool (concurrent
    // calls); arenas beyond that, and arenas grown past PooledBytes (split-KV partials of a long
    // prefill), are freed.
    private const nuint PooledBytes = 4 << 20;
    private static readonly int s_poolLimit = Environment.ProcessorCount;
    private static readonly ConcurrentBag<NativeScratch> s_pool = [];
    private static readonly NativeScratch?[] s_perCpu = new NativeScratch?[Math.Max(Environment.ProcessorCount, 1024)];

    private readonly List<(nint Start, nuint Size)> _blocks = [];
    private int _current;
    private nuint _used, _capacity;

    private NativeScratch()
    {
    }

    /// <summary>An empty arena: the one last returned on this CPU, else one from the pool, else a new one.</summary>
    public static NativeScratch Rent()
    {
        int cpu = Thread.GetCurrentProcessorId();
        if ((uint)cpu < (uint)s_perCpu.Length && Interlocked.Exchange(ref s_perCpu[cpu], null) is { } local)
            return local;
        return s_pool.TryTake(out var scratch) ? scratch : new NativeScratch();
    }

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
        if (_capacity <= PooledBytes)
        {
            int cpu = Thread.GetCurrentProcessorId();
            if ((uint)cpu < (uint)s_perCpu.Length && Interlocked.CompareExchange(ref s_perCpu[cpu], this, null) is null)
                return;
            if (s_pool.Count < s_poolLimit)
            {
                s_pool.Add(this);
                return;
            }
        }
        foreach (var (start, _) in _blocks)
            NativeMemory.AlignedFree((void*)start);
        _blocks.Clear();
        _capacity = 0;
    }
}
