using System.Runtime.InteropServices;
using FlashAttention.Devices;

namespace FlashAttention.Cli;

/// <summary>One point of the decode grid: one query row per sequence against a full KV cache of <see cref="KvLen"/> keys.</summary>
internal sealed record DecodeConfig(DType DType, int Headdim, int Batch, int KvLen, int Nheads, int NheadsKv)
{
    public string Describe() => $"decode {DType.ShortName()} d={Headdim} b={Batch} kv={KvLen} h={Nheads}/{NheadsKv}";

    /// <summary>Bytes one call must move at least: both caches read once, q read and out written.</summary>
    public double Bytes => (2.0 * Batch * KvLen * NheadsKv * Headdim + 2.0 * Batch * Nheads * Headdim) * DType.SizeOf();

    /// <summary>4·b·h·1·kv·d (the forward formula with seqlen_q = 1).</summary>
    public double Flops => AttentionFlops.Forward(Batch, Nheads, 1, KvLen, Headdim, false);
}

/// <summary>
/// <c>flashattn bench --decode</c>: <c>ForwardWithKvCache</c> with q of one row per sequence, the
/// whole cache in use (cache_seqlens = kv length, no append), the split-KV heuristic
/// (num_splits = 0), reported as GB/s of the bytes the call must move, next to the bandwidth of a
/// device-to-device copy measured in the same run (bytes read + written, as copy benchmarks count).
/// The caches of every configuration are views of one pair of flat buffers per dtype, filled once
/// (a random block copied out on the device), so large caches cost no host-side generation.
/// </summary>
internal sealed partial class DecodeRunner(Dispatcher dispatcher, long maxCacheElements, int warmup, int iters, bool queued = false)
{
    private const long RandomBlock = 1 << 22;
    private readonly Dictionary<(DType, Device), (Tensor K, Tensor V)> _caches = [];
    private readonly Dictionary<Device, double> _copyGbps = [];
    private bool _warmed;

    public (BenchResult? Result, BenchSkip? Skip) Run(DecodeConfig c)
    {
        var options = new AttentionOptions { ReturnLse = false };
        string impl = "ours";
        try
        {
            var rng = new Random(4321 + c.Batch + c.KvLen);
            var hq = ProblemBuilder.Random(rng, c.DType, c.Batch, 1, c.Nheads, c.Headdim);
            long[] cacheShape = [c.Batch, c.KvLen, c.NheadsKv, c.Headdim];
            // Placement on host views, as BenchRunner does, without allocating a host cache of the real size.
            var hostSeqlens = Tensor.FromArray(Enumerable.Repeat(c.KvLen, c.Batch).ToArray(), c.Batch);
            var (backend, device) = dispatcher.Place(AttentionValidator.KvCache(hq, HostCacheStandIn(c), HostCacheStandIn(c),
                new KvCacheInputs { CacheSeqlens = hostSeqlens }, options).Problem);
            impl = "ours:" + backend.Name;
            var pinned = dispatcher.WithBackend(backend.Name);

            var (kFlat, vFlat) = Caches(c.DType, device);
            Tensor k = kFlat.Narrow(0, 0, c.Batch * (long)c.KvLen * c.NheadsKv * c.Headdim).Reshape(cacheShape);
            Tensor v = vFlat.Narrow(0, 0, c.Batch * (long)c.KvLen * c.NheadsKv * c.Headdim).Reshape(cacheShape);
            Tensor q = hq.To(device), output = TensorFactory.Zeros(c.DType, [c.Batch, 1, c.Nheads, c.Headdim], device);
            var cache = new KvCacheInputs { CacheSeqlens = hostSeqlens.To(device) };

            void Work() => pinned.ForwardWithKvCache(q, k, v, cache, options, output);
            // The first configuration also brings the GPU to its clocks and the library to its pools.
            int warm = _warmed ? warmup : Math.Max(warmup, 20);
            _warmed = true;
            var t = Timing.Measure(device, Work, warm, iters, queued);
            return (new BenchResult
            {
                Impl = impl, Direction = "decode", Dtype = c.DType.ShortName(), Causal = false,
                Batch = c.Batch, Seqlen = c.KvLen, SeqlenQ = 1, Nheads = c.Nheads, NheadsKv = c.NheadsKv, Headdim = c.Headdim,
                Ms = t.Median, MsMin = t.Min, Iters = iters, Tflops = c.Flops / (t.Median * 1e-3) / 1e12,
                Gbps = c.Bytes / (t.Median * 1e-3) / 1e9, CopyGbps = CopyGbps(device, kFlat, vFlat),
                Device = device.ToString(),
            }, null);
        }
        catch (NoBackendException e)
        {
            string why = string.Join("; ", e.Report.Verdicts.Select(v => $"{v.Backend}: {Render.Why(v)}"));
            return (null, Skip(c, impl, why));
        }
        catch (Exception e) when (e is CudaException or OutOfMemoryException or ArgumentException or NotSupportedException)
        {
            return (null, Skip(c, impl, e.Message));
        }
    }

    private static Tensor HostCacheStandIn(DecodeConfig c) =>
        // The real shape over one row per sequence (stride 0 along the keys): validation looks at shapes only.
        Tensor.Create(Tensor.Zeros(c.DType, c.Batch, 1, c.NheadsKv, c.Headdim).Storage, c.DType, 0,
            [c.Batch, c.KvLen, c.NheadsKv, c.Headdim], [(long)c.NheadsKv * c.Headdim, 0, c.Headdim, 1]);

    private static BenchSkip Skip(DecodeConfig c, string impl, string reason) => new()
    {
        Impl = impl, Direction = "decode", Dtype = c.DType.ShortName(), Causal = false,
        Batch = c.Batch, Seqlen = c.KvLen, SeqlenQ = 1, Nheads = c.Nheads, NheadsKv = c.NheadsKv, Headdim = c.Headdim, Reason = reason,
    };

    private (Tensor K, Tensor V) Caches(DType dtype, Device device)
    {
        if (_caches.TryGetValue((dtype, device), out var kv)) return kv;
        // Free the other dtype's caches first: two pairs of the largest caches may not fit together.
        foreach (var key in _caches.Keys.Where(key => key.Item2 == device).ToList())
        {
            _caches[key].K.Storage.Dispose();
            _caches[key].V.Storage.Dispose();
            _caches.Remove(key);
        }
        var k = TensorFactory.Zeros(dtype, [maxCacheElements], device);
        var v = TensorFactory.Zeros(dtype, [maxCacheElements], device);
        var rng = new Random(99 + (int)dtype);
        Fill(k, ProblemBuilder.Random(rng, dtype, Math.Min(RandomBlock, maxCacheElements)));
        Fill(v, ProblemBuilder.Random(rng, dtype, Math.Min(RandomBlock, maxCacheElements)));
        _caches[(dtype, device)] = (k, v);
        return (k, v);
    }

    /// <summary>Copies the random block into the start of <paramref name="flat"/>, then doubles the filled part until full.</summary>
    private static unsafe void Fill(Tensor flat, Tensor block)
    {
        long size = flat.DType.SizeOf(), total = flat.ElementCount * size, filled = block.ElementCount * size;
        nint dst = flat.Pin(out var dstPin);
        using (dstPin)
        {
            nint src = block.Pin(out var srcPin);
            using (srcPin)
            {
                if (flat.Device.IsHost) Buffer.MemoryCopy((void*)src, (void*)dst, filled, filled);
                else CudaDriver.CopyToDevice((ulong)dst, (void*)src, filled);
            }
            while (filled < total)
            {
                long n = Math.Min(filled, total - filled);
                Copy(flat.Device, dst + (nint)filled, dst, n);
                filled += n;
            }
            if (!flat.Device.IsHost) CudaDriver.Synchronize();
        }
    }

    /// <summary>GB/s of a device-to-device copy (bytes read + written) of up to 1 GiB, measured once per device.</summary>
    private double CopyGbps(Device device, Tensor a, Tensor b)
    {
        if (_copyGbps.TryGetValue(device, out double gbps)) return gbps;
        long bytes = Math.Min(1L << 30, a.ElementCount * a.DType.SizeOf());
        nint src = a.Pin(out var srcPin), dst = b.Pin(out var dstPin);
        using (srcPin)
        using (dstPin)
        {
            var t = Timing.Measure(device, () => Copy(device, dst, src, bytes), 3, 10);
            gbps = 2.0 * bytes / (t.Median * 1e-3) / 1e9;
        }
        _copyGbps[device] = gbps;
        return gbps;
    }

    private static unsafe void Copy(Device device, nint dst, nint src, long bytes)
    {
        if (device.IsHost)
        {
            Buffer.MemoryCopy((void*)src, (void*)dst, bytes, bytes);
            return;
        }
        CudaDriver.MakeCurrent(device.Ordinal);
        CudaDriver.Check(cuMemcpyDtoD_v2((ulong)dst, (ulong)src, (nuint)bytes), "cuMemcpyDtoD");
    }

    [LibraryImport("libcuda.so.1")]
    private static partial int cuMemcpyDtoD_v2(ulong destination, ulong source, nuint bytes);

    /// <summary>Elements of the largest cache (batch · kv length · kv heads · head dim) over the grid.</summary>
    public static long MaxCacheElements(IEnumerable<DecodeConfig> grid) =>
        grid.Select(c => (long)c.Batch * c.KvLen * c.NheadsKv * c.Headdim).DefaultIfEmpty(0).Max();
}
