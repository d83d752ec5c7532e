namespace FlashAttention.Cpu;

/// <summary>
/// Addresses the head-dim rows of a pinned tensor by (entry, row, head), whatever its rank:
/// tokens (b, s, h, d) → (b, s, h); packed tokens (total, h, d) → (0, t, h); pages
/// (pages, page_size, h, d) → (page, r, h); LSE (b, h, s) or (h, total) → likewise with rows of
/// one element. The last dimension has unit stride (checked by the validator).
/// </summary>
internal readonly unsafe struct TensorRows
{
    private readonly byte* _origin;
    private readonly long _entryStride, _rowStride, _headStride;
    private readonly int _entries, _rows, _heads, _width, _elementSize;

    private TensorRows(byte* origin, DType dtype, (long Entry, long Row, long Head) strides, (int Entries, int Rows, int Heads, int Width) shape)
    {
        _origin = origin;
        DType = dtype;
        _elementSize = dtype.SizeOf();
        (_entryStride, _rowStride, _headStride) = strides;
        (_entries, _rows, _heads, _width) = shape;
    }

    public DType DType { get; }

    /// <summary>Elements between consecutive rows of one entry and head.</summary>
    public long RowStride => _rowStride;

    /// <summary>Bytes between consecutive rows of one entry and head.</summary>
    public long RowBytes => _rowStride * _elementSize;

    /// <summary>The first element of row (<paramref name="entry"/>, <paramref name="row"/>, <paramref name="head"/>).</summary>
    public byte* At(int entry, int row, int head) =>
        _origin + (entry * _entryStride + row * _rowStride + head * _headStride) * _elementSize;

    public int Entries => _entries;
    public int Rows => _rows;
    public int Heads => _heads;

    /// <summary>Rows over all entries and heads.</summary>
    public long RowCount => (long)_entries * _rows * _heads;

    /// <summary>
    /// The same (entry, row, head) addressing over an fp32 buffer laid out (entry, head, row,
    /// <paramref name="rowStride"/>): each head's rows consecutive at a chosen stride.
    /// </summary>
    public TensorRows Staged(float* buffer, int rowStride) =>
        new((byte*)buffer, DType.Float32, ((long)_heads * _rows * rowStride, rowStride, (long)_rows * rowStride),
            (_entries, _rows, _heads, _width));

    /// <summary>Zeroes every element of the view (and nothing around it: views may be slices of packed tensors).</summary>
    public void Clear()
    {
        nuint rowBytes = (nuint)(_width * _elementSize);
        for (int e = 0; e < _entries; e++)
            for (int r = 0; r < _rows; r++)
                for (int h = 0; h < _heads; h++)
                    System.Runtime.InteropServices.NativeMemory.Clear(At(e, r, h), rowBytes);
    }

    /// <summary>q/k/v/out/dout/dq/dk/dv/k_new/v_new: rank 4 (entry, row, head, dim) or rank 3 (row, head, dim).</summary>
    public static TensorRows OfTokens(Tensor tensor, PinnedTensors pins) => tensor.Rank switch
    {
        4 => new(pins.Pin(tensor), tensor.DType, (tensor.Stride(0), tensor.Stride(1), tensor.Stride(2)),
            ((int)tensor.Size(0), (int)tensor.Size(1), (int)tensor.Size(2), (int)tensor.Size(3))),
        3 => new(pins.Pin(tensor), tensor.DType, (0, tensor.Stride(0), tensor.Stride(1)),
            (1, (int)tensor.Size(0), (int)tensor.Size(1), (int)tensor.Size(2))),
        _ => throw new ArgumentException($"Expected a rank-3 or rank-4 token tensor; got {tensor}.", nameof(tensor)),
    };

    /// <summary>LSE: dense (b, h, s) or packed (h, total); one fp32 value per (entry, row, head).</summary>
    public static TensorRows OfLse(Tensor lse, PinnedTensors pins) => lse.Rank switch
    {
        3 => new(pins.Pin(lse), lse.DType, (lse.Stride(0), lse.Stride(2), lse.Stride(1)),
            ((int)lse.Size(0), (int)lse.Size(2), (int)lse.Size(1), 1)),
        2 => new(pins.Pin(lse), lse.DType, (0, lse.Stride(1), lse.Stride(0)),
            (1, (int)lse.Size(1), (int)lse.Size(0), 1)),
        _ => throw new ArgumentException($"Expected a rank-2 or rank-3 LSE tensor; got {lse}.", nameof(lse)),
    };
}
