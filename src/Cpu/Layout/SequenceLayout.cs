namespace FlashAttention.Cpu;

/// <summary>
/// Where each sequence's query rows and keys live, resolved once per call from the host
/// metadata (docs/semantics.md, "Per-sequence lengths"): query rows, the key count
/// sk_b = raw − leftpad, and the mapping of key j to its (entry, row) in k/v — dense batch
/// entry, packed varlen row, cache entry (cache_batch_idx) or page (block_table).
/// </summary>
internal sealed class SequenceLayout
{
    private readonly int[] _queryEntry, _queryRow0, _queryCount;
    private readonly int[] _keyOffset, _keyCount;
    private readonly int[] _kvEntry, _kvRow0;
    private readonly int[]? _blockTable;
    private readonly int _pageSize, _maxPagesPerSeq;

    // Dense q rows are (b, i): token order is b·sq + i. Varlen q has no entry axis (0).
    private readonly int _queryRowsPerEntry;

    private SequenceLayout(int[] queryEntry, int[] queryRow0, int[] queryCount, int[] keyOffset, int[] keyCount,
        int[] kvEntry, int[] kvRow0, int[]? blockTable, int pageSize, int maxPagesPerSeq, int queryRowsPerEntry)
    {
        _queryEntry = queryEntry;
        _queryRow0 = queryRow0;
        _queryCount = queryCount;
        _keyOffset = keyOffset;
        _keyCount = keyCount;
        _kvEntry = kvEntry;
        _kvRow0 = kvRow0;
        _blockTable = blockTable;
        _pageSize = pageSize;
        _maxPagesPerSeq = maxPagesPerSeq;
        _queryRowsPerEntry = queryRowsPerEntry;
    }

    public int Batch => _queryCount.Length;

    /// <summary>sq_b.</summary>
    public int QueryCount(int sequence) => _queryCount[sequence];

    /// <summary>sk_b: keys after leftpad and seqused.</summary>
    public int KeyCount(int sequence) => _keyCount[sequence];

    /// <summary>The (entry, row) of query row <paramref name="i"/> in q, out, dout, dq and the LSE.</summary>
    public (int Entry, int Row) QueryRow(int sequence, int i) => (_queryEntry[sequence], _queryRow0[sequence] + i);

    /// <summary>Position of query row <paramref name="i"/> in token order (dense b·sq + i, varlen cu_seqlens_q[b] + i): indexes per-row scratch.</summary>
    public int FlatQueryRow(int sequence, int i) => _queryEntry[sequence] * _queryRowsPerEntry + _queryRow0[sequence] + i;

    /// <summary>The (entry, row) of key <paramref name="j"/> in k and v.</summary>
    public (int Entry, int Row) KeyRow(int sequence, int j) => RawKeyRow(sequence, _keyOffset[sequence] + j);

    /// <summary>
    /// The longest run of keys from <paramref name="j"/> (at most <paramref name="count"/>) that sit in
    /// consecutive rows of one entry — all of them unless a page ends first — and where it starts.
    /// </summary>
    public (int Entry, int Row, int Count) KeyRun(int sequence, int j, int count)
    {
        var (entry, row) = KeyRow(sequence, j);
        return (entry, row, _blockTable is null ? count : Math.Min(count, _pageSize - row));
    }

    /// <summary>The (entry, row) of raw row <paramref name="raw"/> (before leftpad) in k and v.</summary>
    public (int Entry, int Row) RawKeyRow(int sequence, int raw)
    {
        if (_blockTable is null)
            return (_kvEntry[sequence], _kvRow0[sequence] + raw);
        int page = _blockTable[sequence * _maxPagesPerSeq + raw / _pageSize];
        return (page, raw % _pageSize);
    }

    /// <summary>Forward and backward: dense, or varlen with optional seqused_k, leftpad_k and paging.</summary>
    public static SequenceLayout ForAttention(AttentionArgs args)
    {
        var p = args.Problem;
        int batch = p.Batch;
        int[] queryEntry = new int[batch], queryRow0 = new int[batch], queryCount = new int[batch];
        int[] keyOffset = new int[batch], keyCount = new int[batch], kvEntry = new int[batch], kvRow0 = new int[batch];
        if (!p.IsVarlen)
        {
            for (int b = 0; b < batch; b++)
            {
                queryEntry[b] = b;
                queryCount[b] = p.SeqlenQ;
                kvEntry[b] = b;
                keyCount[b] = p.SeqlenK;
            }
            return new(queryEntry, queryRow0, queryCount, keyOffset, keyCount, kvEntry, kvRow0, null, 0, 0, p.SeqlenQ);
        }

        int[] cuQ = args.CuSeqlensQ!.ToArray<int>();
        int[] cuK = args.CuSeqlensK!.ToArray<int>();
        int[]? used = args.SequsedK?.ToArray<int>();
        int[]? leftpad = args.LeftpadK?.ToArray<int>();
        bool paged = args.BlockTable is not null;
        for (int b = 0; b < batch; b++)
        {
            queryRow0[b] = cuQ[b];
            queryCount[b] = cuQ[b + 1] - cuQ[b];
            int raw = used?[b] ?? cuK[b + 1] - cuK[b];
            keyOffset[b] = leftpad?[b] ?? 0;
            keyCount[b] = raw - keyOffset[b];
            // Paged: cu_seqlens_k only gives lengths; every sequence's rows start at its first page.
            kvRow0[b] = paged ? 0 : cuK[b];
        }
        return new(queryEntry, queryRow0, queryCount, keyOffset, keyCount, kvEntry, kvRow0,
            args.BlockTable?.ToArray<int>(), p.PageSize, p.MaxPagesPerSeq, 0);
    }

    /// <summary>ForwardWithKvCache: sequence b holds cache_seqlens[b] + seqlen_new raw rows, minus leftpad.</summary>
    public static SequenceLayout ForKvCache(AttentionArgs args, int[] cacheSeqlens)
    {
        var p = args.Problem;
        int batch = p.Batch;
        int[] queryEntry = new int[batch], queryRow0 = new int[batch], queryCount = new int[batch];
        int[] keyOffset = args.LeftpadK?.ToArray<int>() ?? new int[batch];
        int[] keyCount = new int[batch], kvRow0 = new int[batch];
        int[] kvEntry = args.CacheBatchIdx?.ToArray<int>() ?? Enumerable.Range(0, batch).ToArray();
        for (int b = 0; b < batch; b++)
        {
            queryEntry[b] = b;
            queryCount[b] = p.SeqlenQ;
            keyCount[b] = cacheSeqlens[b] + p.SeqlenNew - keyOffset[b];
        }
        return new(queryEntry, queryRow0, queryCount, keyOffset, keyCount, kvEntry, kvRow0,
            args.BlockTable?.ToArray<int>(), p.PageSize, p.MaxPagesPerSeq, p.SeqlenQ);
    }
}
