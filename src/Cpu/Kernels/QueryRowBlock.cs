using System.Runtime.CompilerServices;

namespace FlashAttention.Cpu;

/// <summary>
/// The query rows of one work item with what masking needs per row. Rows are a range of a
/// packed (position, head) space, t → (i = t / heads, head = firstHead + t % heads), so the
/// query heads that share a kv head (GQA) share its key/value tiles, and a decoding step with
/// one position still fills several lanes.
/// </summary>
/// <remarks>
/// Lane vectors (<see cref="NegativeSlope"/>, and the tile-relative <see cref="BeginInTile"/>,
/// <see cref="EndInTile"/>, <see cref="AlignedInTile"/>) hold one float per row, padded with
/// lanes that see no key. Tile-relative values keep the comparisons exact in fp32 at any length.
/// </remarks>
internal sealed unsafe class QueryRowBlock
{
    private readonly int* _position, _head, _begin, _end, _aligned;
    private int _maxBegin, _minEnd;

    public QueryRowBlock(int capacity, NativeScratch scratch)
    {
        // In the worker's pooled native scratch rather than fresh arrays: a worker's buffers come back
        // to the thread that used them (warm in its core's caches) call after call.
        _position = (int*)scratch.Bytes(capacity * sizeof(int));
        _head = (int*)scratch.Bytes(capacity * sizeof(int));
        _begin = (int*)scratch.Bytes(capacity * sizeof(int));
        _end = (int*)scratch.Bytes(capacity * sizeof(int));
        _aligned = (int*)scratch.Bytes(capacity * sizeof(int));
        NegativeSlope = scratch.Floats(capacity);
        BeginInTile = scratch.Floats(capacity);
        EndInTile = scratch.Floats(capacity);
        AlignedInTile = scratch.Floats(capacity);
    }

    public int Sequence { get; private set; }

    /// <summary>Rows held.</summary>
    public int Count { get; private set; }

    /// <summary><see cref="Count"/> rounded up to whole registers.</summary>
    public int Lanes { get; private set; }

    /// <summary>−ALiBi slope per lane (0 without ALiBi).</summary>
    public float* NegativeSlope { get; }

    /// <summary>Per lane, the first visible key relative to the current tile, clamped to [0, tile keys].</summary>
    public float* BeginInTile { get; }

    /// <summary>Per lane, the end of the visible keys relative to the current tile, clamped to [0, tile keys].</summary>
    public float* EndInTile { get; }

    /// <summary>Per lane, the aligned position a = i + sk − sq relative to the current tile (ALiBi).</summary>
    public float* AlignedInTile { get; }

    /// <summary>Position i of row <paramref name="row"/> within its sequence.</summary>
    public int Position(int row) => _position[row];

    public int Head(int row) => _head[row];

    /// <summary>First visible key of row <paramref name="row"/>.</summary>
    public int Begin(int row) => _begin[row];

    /// <summary>End of the visible keys of row <paramref name="row"/>.</summary>
    public int End(int row) => _end[row];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Fill(AttentionPlan plan, int sequence, int firstHead, int heads, int firstRow, int count, int laneWidth)
    {
        var layout = plan.Layout;
        int queryCount = layout.QueryCount(sequence), keyCount = layout.KeyCount(sequence);
        Sequence = sequence;
        Count = count;
        Lanes = (count + laneWidth - 1) / laneWidth * laneWidth;
        int maxBegin = 0, minEnd = int.MaxValue;
        int* positions = _position, headOf = _head, begins = _begin, ends = _end, aligned = _aligned;
        float* slopes = NegativeSlope;
        // Packed row t is position t / heads of head firstHead + t % heads: stepped, not divided.
        int i = firstRow / heads, headInGroup = firstRow % heads;
        for (int r = 0; r < count; r++, headInGroup = headInGroup + 1 == heads ? 0 : headInGroup + 1, i += headInGroup == 0 ? 1 : 0)
        {
            int head = firstHead + headInGroup;
            var (begin, end) = plan.VisibleKeys(i, queryCount, keyCount);
            positions[r] = i;
            headOf[r] = head;
            begins[r] = begin;
            ends[r] = end;
            aligned[r] = i + keyCount - queryCount;
            maxBegin = Math.Max(maxBegin, begin);
            minEnd = Math.Min(minEnd, end);
            slopes[r] = plan.NegativeAlibiSlope(sequence, head);
        }
        _maxBegin = maxBegin;
        _minEnd = minEnd;
        for (int r = count; r < Lanes; r++)
        {
            NegativeSlope[r] = 0f;
            BeginInTile[r] = EndInTile[r] = AlignedInTile[r] = 0f;
        }
    }

    /// <summary>Whether some row does not see every key of [firstKey, firstKey + keyCount) (padding lanes are never read).</summary>
    public bool NeedsMask(int firstKey, int keyCount) => _maxBegin > firstKey || _minEnd < firstKey + keyCount;

    /// <summary>Sets the tile-relative lane vectors for the tile starting at <paramref name="firstKey"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SetTile(int firstKey, int keyCount)
    {
        for (int r = 0; r < Count; r++)
        {
            BeginInTile[r] = Math.Clamp(_begin[r] - firstKey, 0, keyCount);
            EndInTile[r] = Math.Clamp(_end[r] - firstKey, 0, keyCount);
            AlignedInTile[r] = _aligned[r] - firstKey;
        }
    }
}
