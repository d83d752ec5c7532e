using FlashAttention.Tests.Infrastructure;
using FlashAttention.Tests.Reference;

namespace FlashAttention.Tests.Matrix;

/// <summary>
/// The host inputs of one <see cref="MatrixCase"/>, built deterministically from its seed, and the
/// calls of the public API on any device (inputs placed with <see cref="TensorFactory.To"/>).
/// </summary>
internal sealed class CaseInputs
{
    public required MatrixCase Case { get; init; }
    /// <summary>Packed tensor when the API takes one: qkv or kv.</summary>
    public Tensor? Packed { get; init; }
    public required Tensor Q { get; init; }
    public required Tensor K { get; init; }
    public required Tensor V { get; init; }
    public required AttentionOptions Options { get; init; }
    public VarlenInputs? Varlen { get; init; }
    public KvCacheInputs? Cache { get; init; }
    /// <summary>Varlen q rows that belong to no sequence (UnusedRows).</summary>
    public int UnusedFrom { get; init; } = -1;

    public RefInputs Ref => new() { Q = Q, K = K, V = V, Options = Options, Varlen = Varlen, Cache = Cache };

    // ------------------------------------------------------------------ building

    public static CaseInputs Build(MatrixCase c)
    {
        var data = new TestData(c.Seed);
        DType dt = c.DType;
        int b = c.Batch, hq = c.Hq, hk = c.Hk, d = c.D, dv = c.HeaddimV;
        double qScale = c.Softcap > 0 ? c.Softcap / 4.0 : 1.0;
        Tensor? alibi = c.Alibi switch
        {
            AlibiMode.PerHead => data.Uniform(0, 0.3, hq),
            AlibiMode.PerBatchHead => data.Uniform(0, 0.3, b, hq),
            _ => null,
        };
        Tensor? sinks = c.Sinks ? Tensor.FromDoubles(DType.Float32, data.Normals(hq, 1.5), hq) : null;
        // Strided cases get strided descales too, (b, hk) views of (hk, b) storage: native backends stage them.
        Tensor? Descale() => !c.Descales ? null
            : c.Api == MatrixApi.Strided ? data.Uniform(0.5, 2, hk, b).Transpose(0, 1) : data.Uniform(0.5, 2, b, hk);
        var options = new AttentionOptions
        {
            Causal = c.Causal,
            WindowLeft = c.WindowLeft,
            WindowRight = c.WindowRight,
            Softcap = c.Softcap,
            AlibiSlopes = alibi,
            DropoutP = c.Dropout,
            DropoutSeed = c.Dropout > 0 ? (ulong)data.Rng.NextInt64() : 0,
            DropoutOffset = c.Dropout > 0 ? (ulong)data.Int(0, 1 << 20) : 0,
            ReturnDropoutMask = c.Dropout > 0,
            SinkLogits = sinks,
            NumSplits = c.NumSplits,
            Deterministic = c.Deterministic,
            QDescale = Descale(),
            KDescale = Descale(),
            VDescale = Descale(),
        };

        switch (c.Api)
        {
            case MatrixApi.Dense:
                return new CaseInputs
                {
                    Case = c, Options = options,
                    Q = data.Randn(dt, qScale, b, c.Sq, hq, d),
                    K = data.Randn(dt, b, c.Sk, hk, d),
                    V = data.Randn(dt, b, c.Sk, hk, dv),
                };
            case MatrixApi.Strided:
                return new CaseInputs
                {
                    Case = c, Options = options,
                    Q = data.Randn(dt, qScale, b, hq, c.Sq, d).Transpose(1, 2),
                    K = data.Randn(dt, b, hk, c.Sk, d).Transpose(1, 2),
                    V = data.Randn(dt, b, hk, c.Sk, dv).Transpose(1, 2),
                };
            case MatrixApi.QkvPacked:
            {
                var qkv = data.Randn(dt, b, c.Sq, 3, hq, d);
                return new CaseInputs { Case = c, Options = options, Packed = qkv, Q = qkv.Select(2, 0), K = qkv.Select(2, 1), V = qkv.Select(2, 2) };
            }
            case MatrixApi.KvPacked:
            {
                var kv = data.Randn(dt, b, c.Sk, 2, hk, d);
                return new CaseInputs { Case = c, Options = options, Packed = kv, Q = data.Randn(dt, qScale, b, c.Sq, hq, d), K = kv.Select(2, 0), V = kv.Select(2, 1) };
            }
            case MatrixApi.Varlen:
            case MatrixApi.VarlenQkvPacked:
            case MatrixApi.VarlenKvPacked:
                return BuildVarlen(c, data, options, qScale);
            default:
                return BuildKvCache(c, data, options);
        }
    }

    /// <summary>Random lengths in [max(1, L−20), L] (upstream's "random" padding); with ZeroLengths every 3rd and the last (but never the first) are 0.</summary>
    private static int[] Lengths(TestData data, int batch, int max, bool zero)
    {
        var r = new int[batch];
        for (int s = 0; s < batch; s++)
        {
            r[s] = data.Int(Math.Max(1, max - 20), max);
            // Sequence 0 always has rows: a batch whose sequences are all empty is its own edge case (EdgeCaseTests).
            if (zero && s > 0 && (s % 3 == 1 || s == batch - 1)) r[s] = 0;
        }
        if (!zero && max > 0) r[data.Int(0, batch - 1)] = max; // the longest equals max
        return r;
    }

    private static int[] Prefix(int[] lengths)
    {
        var cu = new int[lengths.Length + 1];
        for (int i = 0; i < lengths.Length; i++) cu[i + 1] = cu[i] + lengths[i];
        return cu;
    }

    private static CaseInputs BuildVarlen(MatrixCase c, TestData data, AttentionOptions options, double qScale)
    {
        DType dt = c.DType;
        int b = c.Batch, hq = c.Hq, hk = c.Hk, d = c.D, dv = c.HeaddimV;
        bool selfAttn = c.Api == MatrixApi.VarlenQkvPacked;
        int[] lenQ = Lengths(data, b, c.Sq, c.ZeroLengths && !selfAttn);
        int[] lenK = selfAttn ? lenQ : Lengths(data, b, c.Sk, c.ZeroLengths);
        int[] cuQ = Prefix(lenQ), cuK = Prefix(lenK);
        int extraQ = c.UnusedRows ? 3 : 0;
        int totalQ = cuQ[^1] + extraQ, totalK = cuK[^1];

        // seqused_k: only the first seqused[s] of each slot's keys; leftpad: keys start lp rows into the slot.
        int[]? used = null, leftpad = null;
        if (c.Seqused)
            used = lenK.Select(l => data.Int(0, l)).ToArray();
        if (c.Leftpad)
            leftpad = Enumerable.Range(0, b).Select(s => data.Int(0, used?[s] ?? lenK[s])).ToArray();

        VarlenInputs varlen;
        Tensor q, k, v;
        Tensor? packed = null;
        int maxSq = lenQ.Max(), maxSk = lenK.Max();
        bool explicitMax = c.ExplicitMaxSeqlen;
        if (c.Api == MatrixApi.VarlenQkvPacked)
        {
            packed = data.Randn(dt, totalQ, 3, hq, d);
            q = packed.Select(1, 0); k = packed.Select(1, 1); v = packed.Select(1, 2);
        }
        else if (c.Api == MatrixApi.VarlenKvPacked)
        {
            q = data.Randn(dt, qScale, totalQ, hq, d);
            packed = data.Randn(dt, totalK, 2, hk, d);
            k = packed.Select(1, 0); v = packed.Select(1, 1);
        }
        else if (c.PageSize > 0)
        {
            q = data.Randn(dt, qScale, totalQ, hq, d);
            int ps = c.PageSize;
            int maxPages = Math.Max(1, (maxSk + ps - 1) / ps);
            int numPages = maxPages * b + 2;
            var perm = Enumerable.Range(0, numPages).OrderBy(_ => data.Rng.Next()).ToArray();
            var table = new int[b, maxPages];
            int next = 0;
            for (int s = 0; s < b; s++)
                for (int pIdx = 0; pIdx < maxPages; pIdx++)
                    table[s, pIdx] = perm[next++];
            k = data.Randn(dt, numPages, ps, hk, d);
            v = data.Randn(dt, numPages, ps, hk, dv);
            varlen = new VarlenInputs
            {
                CuSeqlensQ = TestData.Ints(cuQ), CuSeqlensK = TestData.Ints(cuK),
                MaxSeqlenQ = explicitMax ? maxSq : null, MaxSeqlenK = explicitMax ? maxSk : null,
                SequsedK = used is null ? null : TestData.Ints(used),
                LeftpadK = leftpad is null ? null : TestData.Ints(leftpad),
                BlockTable = TestData.Ints2D(table),
            };
            return new CaseInputs { Case = c, Options = options, Q = q, K = k, V = v, Varlen = varlen, UnusedFrom = c.UnusedRows ? cuQ[^1] : -1 };
        }
        else
        {
            q = data.Randn(dt, qScale, totalQ, hq, d);
            k = data.Randn(dt, totalK, hk, d);
            v = data.Randn(dt, totalK, hk, dv);
        }
        varlen = new VarlenInputs
        {
            CuSeqlensQ = TestData.Ints(cuQ), CuSeqlensK = TestData.Ints(cuK),
            MaxSeqlenQ = explicitMax ? maxSq : null, MaxSeqlenK = explicitMax ? maxSk : null,
            SequsedK = used is null ? null : TestData.Ints(used),
            LeftpadK = leftpad is null ? null : TestData.Ints(leftpad),
        };
        return new CaseInputs { Case = c, Options = options, Packed = packed, Q = q, K = k, V = v, Varlen = varlen, UnusedFrom = c.UnusedRows ? cuQ[^1] : -1 };
    }

    private static CaseInputs BuildKvCache(MatrixCase c, TestData data, AttentionOptions options)
    {
        DType dt = c.DType;
        int b = c.Batch, hq = c.Hq, hk = c.Hk, d = c.D, dv = c.HeaddimV, sq = c.Sq, cap = c.Sk;
        // Paged: the capacity per sequence is max_pages · page_size (≥ Sk); the rotary table covers it.
        int capacity = c.PageSize > 0 ? (cap + c.PageSize - 1) / c.PageSize * c.PageSize : cap;
        int seqlenNew = !c.Append ? 0 : c.RandomSeqlenNew ? data.Int(1, sq) : sq;
        int[] seqlens = new int[b];
        // With rotary, q row t sits at position cache_seqlens + t: keep every position inside the table
        // (as upstream's test does; positions past it are a separate bad-input case).
        int reach = c.Rotary != RotaryMode.None ? Math.Max(seqlenNew, sq) : seqlenNew;
        for (int s = 0; s < b; s++)
            seqlens[s] = c.Append ? data.Int(0, cap - reach) : data.Int(1, cap);
        int[]? leftpad = c.Leftpad ? seqlens.Select(l => data.Int(0, l)).ToArray() : null;

        Tensor kCache, vCache;
        Tensor? blockTable = null, batchIdx = null;
        if (c.PageSize > 0)
        {
            int ps = c.PageSize, maxPages = (cap + ps - 1) / ps;
            int numPages = maxPages * b + 3;
            var perm = Enumerable.Range(0, numPages).OrderBy(_ => data.Rng.Next()).ToArray();
            var table = new int[b, maxPages];
            int next = 0;
            for (int s = 0; s < b; s++)
                for (int pIdx = 0; pIdx < maxPages; pIdx++)
                    table[s, pIdx] = perm[next++];
            blockTable = TestData.Ints2D(table);
            kCache = data.Randn(dt, numPages, ps, hk, d);
            vCache = data.Randn(dt, numPages, ps, hk, dv);
        }
        else
        {
            int kvBatch = c.BatchIdx ? b + 2 : b;
            if (c.BatchIdx)
                batchIdx = TestData.Ints(Enumerable.Range(0, kvBatch).OrderBy(_ => data.Rng.Next()).Take(b).ToArray());
            kCache = data.Randn(dt, kvBatch, cap, hk, d);
            vCache = data.Randn(dt, kvBatch, cap, hk, dv);
        }
        Tensor? kNew = null, vNew = null, cos = null, sin = null;
        if (c.Append)
        {
            kNew = data.Randn(dt, b, seqlenNew, hk, d);
            vNew = data.Randn(dt, b, seqlenNew, hk, dv);
        }
        if (c.Rotary != RotaryMode.None)
        {
            int rotaryDim = (int)Math.Floor(c.RotaryFraction * d / 16) * 16;
            int half = rotaryDim / 2;
            var angles = new double[capacity * half];
            var sinV = new double[capacity * half];
            for (int pos = 0; pos < capacity; pos++)
                for (int i = 0; i < half; i++)
                {
                    double theta = pos * Math.Pow(10000, -2.0 * i / rotaryDim) + data.Rng.NextDouble() * 0.1;
                    angles[pos * half + i] = Math.Cos(theta);
                    sinV[pos * half + i] = Math.Sin(theta);
                }
            cos = Tensor.FromDoubles(dt, angles, capacity, half);
            sin = Tensor.FromDoubles(dt, sinV, capacity, half);
        }
        var cache = new KvCacheInputs
        {
            CacheSeqlens = TestData.Ints(seqlens),
            KNew = kNew, VNew = vNew,
            RotaryCos = cos, RotarySin = sin,
            RotaryInterleaved = c.Rotary == RotaryMode.Interleaved,
            CacheBatchIdx = batchIdx,
            BlockTable = blockTable,
            LeftpadK = leftpad is null ? null : TestData.Ints(leftpad),
        };
        return new CaseInputs
        {
            Case = c, Options = options with { ReturnDropoutMask = false },
            Q = data.Randn(dt, b, sq, hq, d), K = kCache, V = vCache, Cache = cache,
        };
    }
}
