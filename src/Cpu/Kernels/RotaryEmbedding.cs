namespace FlashAttention.Cpu;

/// <summary>
/// Rotary position embedding with the call's cos/sin tables (seqlen_ro, rotary_dim / 2), in fp32:
/// pairs (2i, 2i+1) when interleaved, else (i, i + rotary_dim/2) (GPT-NeoX), each turned by
/// (x, y) → (x cos − y sin, x sin + y cos); columns ≥ rotary_dim are left alone. Only the rows of
/// the positions used are read (the tables span the whole cache).
/// </summary>
internal sealed unsafe class RotaryEmbedding : IDisposable
{
    private readonly PinnedTensors _pins = new();
    private readonly byte* _cos, _sin;
    private readonly long _cosRowBytes, _sinRowBytes;
    private readonly DType _dtype;
    private readonly int _pairs;
    private readonly bool _interleaved;

    public RotaryEmbedding(AttentionArgs args)
    {
        var cos = args.RotaryCos!;
        var sin = args.RotarySin!;
        _dtype = cos.DType;
        _cos = _pins.Pin(cos);
        _sin = _pins.Pin(sin);
        _cosRowBytes = cos.Stride(0) * _dtype.SizeOf();
        _sinRowBytes = sin.Stride(0) * _dtype.SizeOf();
        _pairs = args.Problem.RotaryDim / 2;
        _interleaved = args.Problem.RotaryInterleaved;
    }

    /// <summary>Rotates the fp32 row <paramref name="row"/> in place for <paramref name="position"/>.</summary>
    public void Rotate(float* row, int position)
    {
        byte* cosRow = _cos + position * _cosRowBytes, sinRow = _sin + position * _sinRowBytes;
        for (int i = 0; i < _pairs; i++)
        {
            float cos = Element(cosRow, i), sin = Element(sinRow, i);
            float* x = row + (_interleaved ? 2 * i : i);
            float* y = row + (_interleaved ? 2 * i + 1 : i + _pairs);
            float xv = *x, yv = *y;
            *x = xv * cos - yv * sin;
            *y = xv * sin + yv * cos;
        }
    }

    public void Dispose() => _pins.Dispose();

    private float Element(byte* tableRow, int i) => _dtype switch
    {
        DType.Float16 => (float)((Half*)tableRow)[i],
        DType.BFloat16 => BFloat16.ToSingle(((BFloat16*)tableRow)[i]),
        _ => ((float*)tableRow)[i],
    };
}
