namespace FlashAttention.Cli;

/// <summary>
/// The random inputs of one <see cref="ProblemSpec"/>, in host memory, plus what the library
/// needs to run it. Everything is a deterministic function of the spec (its seed included).
/// </summary>
internal sealed class HostProblem
{
    public required ProblemSpec Spec { get; init; }

    /// <summary>Dense (b, sq, hq, d) or varlen (total_q, hq, d).</summary>
    public required Tensor Q { get; init; }
    /// <summary>Dense (b, sk, hk, d), varlen (total_k, hk, d), or the K cache (kv_batch|pages, rows, hk, d).</summary>
    public required Tensor K { get; init; }
    public required Tensor V { get; init; }
    /// <summary>Gradient of the output for the backward pass, shaped like out.</summary>
    public Tensor? DOut { get; init; }

    public required AttentionOptions Options { get; init; }
    public VarlenInputs? Varlen { get; init; }
    public KvCacheInputs? Cache { get; init; }

    /// <summary>Query rows of each sequence.</summary>
    public required int[] LengthsQ { get; init; }
    /// <summary>Keys each sequence attends to (kv-cache: cache_seqlens + seqlen_new).</summary>
    public required int[] LengthsK { get; init; }
    /// <summary>kv-cache: keys already in the cache before the call.</summary>
    public int[]? CacheSeqlens { get; init; }
    /// <summary>Paged kv-cache: (batch, pages_per_seq) page indices.</summary>
    public int[]? BlockTable { get; init; }
    public int PagesPerSeq { get; init; }

    /// <summary>The forward (or kv-cache) problem with host tensors, as the validator sees it.</summary>
    public required AttentionProblem Forward { get; init; }
    /// <summary>The backward problem with host tensors, when --backward.</summary>
    public AttentionProblem? Backward { get; init; }

    /// <summary>Sequences in the batch.</summary>
    public int Batch => LengthsQ.Length;
    public int MaxSeqlenQ => LengthsQ.Length == 0 ? 0 : LengthsQ.Max();
}

/// <summary>Builds a <see cref="HostProblem"/> from a spec.</summary>
internal static class ProblemBuilder
{
    public static HostProblem Build(ProblemSpec spec)
    {
        var rng = new Random(spec.Seed);
        int b = spec.Batch, hq = spec.Heads, hk = spec.HeadsKv, d = spec.Headdim, dv = spec.HeaddimV;
        var options = new AttentionOptions
        {
            Causal = spec.Causal,
            WindowLeft = spec.WindowLeft,
            WindowRight = spec.WindowRight,
            Softcap = spec.Softcap,
            AlibiSlopes = spec.Alibi ? Tensor.FromArray(AlibiSlopes(hq), hq) : null,
            DropoutP = spec.Dropout,
            DropoutSeed = 0x5EED_0000_0000UL + (ulong)(uint)spec.Seed,
            DropoutOffset = 0,
            ReturnDropoutMask = spec.Dropout > 0,
            NumSplits = spec.NumSplits,
        };

        if (spec.KvCache) return BuildKvCache(spec, rng, options);

        int[] lensQ, lensK;
        if (spec.Varlen)
        {
            lensQ = RandomLengths(rng, b, spec.SeqlenQ);
            // Self-attention shapes keep equal lengths per sequence, as in a packed training batch.
            lensK = spec.SeqlenK == spec.SeqlenQ ? (int[])lensQ.Clone() : RandomLengths(rng, b, spec.SeqlenK);
        }
        else
        {
            lensQ = Enumerable.Repeat(spec.SeqlenQ, b).ToArray();
            lensK = Enumerable.Repeat(spec.SeqlenK, b).ToArray();
        }

        Tensor q, k, v, dout;
        VarlenInputs? varlen = null;
        if (spec.Varlen)
        {
            int totalQ = lensQ.Sum(), totalK = lensK.Sum();
            q = Random(rng, spec.DType, totalQ, hq, d);
            k = Random(rng, spec.DType, totalK, hk, d);
            v = Random(rng, spec.DType, totalK, hk, dv);
            dout = Random(rng, spec.DType, totalQ, hq, dv);
            varlen = new VarlenInputs
            {
                CuSeqlensQ = Tensor.FromArray(PrefixSums(lensQ), b + 1),
                CuSeqlensK = Tensor.FromArray(PrefixSums(lensK), b + 1),
                MaxSeqlenQ = lensQ.Max(),
                MaxSeqlenK = lensK.Max(),
            };
        }
        else
        {
            q = Random(rng, spec.DType, b, spec.SeqlenQ, hq, d);
            k = Random(rng, spec.DType, b, spec.SeqlenK, hk, d);
            v = Random(rng, spec.DType, b, spec.SeqlenK, hk, dv);
            dout = Random(rng, spec.DType, b, spec.SeqlenQ, hq, dv);
        }

        var forward = AttentionValidator.Forward(q, k, v, options, null, varlen).Problem;
        AttentionProblem? backward = null;
        if (spec.Backward)
        {
            // Placeholders with the forward's output shapes, only to describe the backward problem.
            var outShape = AttentionValidator.OutputShapes.Out(forward);
            var lseShape = AttentionValidator.OutputShapes.Lse(forward);
            backward = AttentionValidator.Backward(
                Tensor.Zeros(spec.DType, outShape), q, k, v, Tensor.Zeros(spec.DType, outShape), Tensor.Zeros(DType.Float32, lseShape),
                options, varlen: varlen).Problem;
        }

        return new HostProblem
        {
            Spec = spec, Q = q, K = k, V = v, DOut = spec.Backward ? dout : null,
            Options = options, Varlen = varlen, LengthsQ = lensQ, LengthsK = lensK,
            Forward = forward, Backward = backward,
        };
    }

    private static HostProblem BuildKvCache(ProblemSpec spec, Random rng, AttentionOptions options)
    {
        int b = spec.Batch, hq = spec.Heads, hk = spec.HeadsKv, d = spec.Headdim, dv = spec.HeaddimV;
        int sNew = spec.SeqlenNew;
        int pagesPerSeq = 0;
        int capacity = spec.SeqlenK;
        if (spec.PageSize > 0)
        {
            pagesPerSeq = (spec.SeqlenK + spec.PageSize - 1) / spec.PageSize;
            capacity = pagesPerSeq * spec.PageSize;
        }

        // Keys already cached: random, leaving room for the new ones.
        var cacheSeqlens = new int[b];
        for (int s = 0; s < b; s++) cacheSeqlens[s] = rng.Next(0, capacity - sNew + 1);

        Tensor kCache, vCache;
        int[]? blockTable = null;
        if (spec.PageSize > 0)
        {
            // A shuffled pool with a few spare pages, so page order differs from sequence order.
            int numPages = b * pagesPerSeq + 3;
            var pages = Enumerable.Range(0, numPages).ToArray();
            rng.Shuffle(pages);
            blockTable = pages[..(b * pagesPerSeq)];
            kCache = Random(rng, spec.DType, numPages, spec.PageSize, hk, d);
            vCache = Random(rng, spec.DType, numPages, spec.PageSize, hk, dv);
        }
        else
        {
            kCache = Random(rng, spec.DType, b, capacity, hk, d);
            vCache = Random(rng, spec.DType, b, capacity, hk, dv);
        }
        var q = Random(rng, spec.DType, b, spec.SeqlenQ, hq, d);
        Tensor? kNew = sNew > 0 ? Random(rng, spec.DType, b, sNew, hk, d) : null;
        Tensor? vNew = sNew > 0 ? Random(rng, spec.DType, b, sNew, hk, dv) : null;

        var cache = new KvCacheInputs
        {
            CacheSeqlens = Tensor.FromArray((int[])cacheSeqlens.Clone(), b),
            KNew = kNew,
            VNew = vNew,
            BlockTable = blockTable is null ? null : Tensor.FromArray((int[])blockTable.Clone(), b, pagesPerSeq),
        };
        var problem = AttentionValidator.KvCache(q, kCache, vCache, cache, options).Problem;
        return new HostProblem
        {
            Spec = spec, Q = q, K = kCache, V = vCache, Options = options, Cache = cache,
            LengthsQ = Enumerable.Repeat(spec.SeqlenQ, b).ToArray(),
            LengthsK = cacheSeqlens.Select(c => c + sNew).ToArray(),
            CacheSeqlens = cacheSeqlens, BlockTable = blockTable, PagesPerSeq = pagesPerSeq,
            Forward = problem,
        };
    }

    /// <summary>ALiBi's geometric slopes 2^(−8(h+1)/H) (Press et al.).</summary>
    public static float[] AlibiSlopes(int heads)
    {
        var slopes = new float[heads];
        for (int h = 0; h < heads; h++) slopes[h] = (float)Math.Pow(2, -8.0 * (h + 1) / heads);
        return slopes;
    }

    /// <summary>A host tensor of standard-normal values rounded to <paramref name="dtype"/>.</summary>
    public static Tensor Random(Random rng, DType dtype, params long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n *= s;
        var values = new double[n];
        for (long i = 0; i < n; i++) values[i] = Gaussian(rng);
        return Tensor.FromDoubles(dtype, values, shape);
    }

    private static double Gaussian(Random rng)
    {
        // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1].
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    private static int[] RandomLengths(Random rng, int count, int max)
    {
        var lens = new int[count];
        for (int i = 0; i < count; i++) lens[i] = rng.Next(1, max + 1);
        lens[rng.Next(count)] = max; // the longest sequence is exactly max
        return lens;
    }

    private static int[] PrefixSums(int[] lengths)
    {
        var cu = new int[lengths.Length + 1];
        for (int i = 0; i < lengths.Length; i++) cu[i + 1] = cu[i] + lengths[i];
        return cu;
    }
}
