namespace FlashAttention.Cpu;

/// <summary>
/// What the kernels read for one call, resolved once from <see cref="AttentionArgs"/>: pinned
/// row addressing of every tensor, the sequence layout, and the options in kernel form
/// (docs/semantics.md). Disposing unpins the tensors.
/// </summary>
internal sealed unsafe class AttentionPlan : IDisposable
{
    private readonly PinnedTensors _pins = new();
    private readonly float[]? _alibiSlopes;
    private readonly bool _alibiPerSequence;
    private readonly float[]? _sinks;
    private readonly float* _sinkGradient;
    private readonly long _sinkGradientStride;

    /// <param name="args">The validated call with its outputs allocated.</param>
    /// <param name="layout">Sequence lengths and key mapping.</param>
    /// <param name="query">q as the kernels read it (the rotated copy for a kv-cache call with rotary).</param>
    public AttentionPlan(AttentionArgs args, SequenceLayout layout, Tensor query)
    {
        var p = args.Problem;
        Problem = p;
        Layout = layout;
        GroupSize = p.NheadsQ / p.NheadsKv;
        Query = TensorRows.OfTokens(query, _pins);
        Key = TensorRows.OfTokens(args.K, _pins);
        Value = TensorRows.OfTokens(args.V, _pins);
        if (args.Out is not null) Out = TensorRows.OfTokens(args.Out, _pins);
        if (args.Lse is not null)
        {
            Lse = TensorRows.OfLse(args.Lse, _pins);
            HasLse = true;
        }
        if (args.DOut is not null) DOut = TensorRows.OfTokens(args.DOut, _pins);
        if (args.DQ is not null) DQuery = TensorRows.OfTokens(args.DQ, _pins);
        if (args.DK is not null) DKey = TensorRows.OfTokens(args.DK, _pins);
        if (args.DV is not null) DValue = TensorRows.OfTokens(args.DV, _pins);

        if (args.AlibiSlopes is not null)
        {
            _alibiSlopes = args.AlibiSlopes.ToArray<float>();
            _alibiPerSequence = args.AlibiSlopes.Rank == 2;
        }
        _sinks = args.SinkLogits?.ToArray<float>();
        if (args.DSink is not null)
        {
            _sinkGradient = (float*)_pins.Pin(args.DSink);
            _sinkGradientStride = args.DSink.Stride(0);
        }

        if (p.DropoutP > 0)
        {
            Dropout = new DropoutPlan(p, args.DropoutMask is null ? null : new DropoutMaskRows(args.DropoutMask, _pins));
        }
    }

    public AttentionProblem Problem { get; }

    public SequenceLayout Layout { get; }

    /// <summary>Query heads per kv head: query head h reads kv head h / GroupSize.</summary>
    public int GroupSize { get; }

    public int HeadDim => Problem.HeaddimQk;

    public int HeadDimV => Problem.HeaddimV;

    public TensorRows Query { get; }
    public TensorRows Key { get; }
    public TensorRows Value { get; }

    /// <summary>Forward: the output; backward: the forward's output.</summary>
    public TensorRows Out { get; }

    /// <summary>Forward: the optional output (see <see cref="HasLse"/>); backward: the saved input.</summary>
    public TensorRows Lse { get; }

    public bool HasLse { get; }

    public TensorRows DOut { get; }
    public TensorRows DQuery { get; }
    public TensorRows DKey { get; }
    public TensorRows DValue { get; }

    public bool HasAlibi => _alibiSlopes is not null;

    public bool HasSinks => _sinks is not null;

    public DropoutPlan? Dropout { get; }

    /// <summary>−slope of (sequence, head): ALiBi adds −slope·|a − j|.</summary>
    public float NegativeAlibiSlope(int sequence, int head) =>
        _alibiSlopes is null ? 0f : -_alibiSlopes[_alibiPerSequence ? sequence * Problem.NheadsQ + head : head];

    public float Sink(int head) => _sinks![head];

    /// <summary>Backward: writes dsink[head].</summary>
    public void SetSinkGradient(int head, float value) => _sinkGradient[head * _sinkGradientStride] = value;

    /// <summary>
    /// Keys [Begin, End) that query row <paramref name="i"/> sees: the window (L, R) around its
    /// bottom-right aligned position a = i + sk − sq; Begin == End when it sees none.
    /// </summary>
    public (int Begin, int End) VisibleKeys(int i, int queryCount, int keyCount)
    {
        int aligned = i + keyCount - queryCount;
        int left = Problem.WindowLeft, right = Problem.WindowRight;
        int begin = left < 0 ? 0 : Math.Clamp(aligned - left, 0, keyCount);
        int end = right < 0 ? keyCount : Math.Clamp(aligned + right + 1, 0, keyCount);
        return (begin, Math.Max(begin, end));
    }

    public void Dispose() => _pins.Dispose();
}

/// <summary>Dropout in kernel form: the Philox key, counter offset and threshold of <see cref="DropoutRng"/>.</summary>
internal sealed class DropoutPlan(AttentionProblem problem, DropoutMaskRows? mask)
{
    public ulong Seed { get; } = problem.DropoutSeed;
    public ulong Offset { get; } = problem.DropoutOffset;
    public uint Threshold { get; } = DropoutRng.Threshold(problem.DropoutP);

    /// <summary>1 / (1 − p): the weight of a kept element.</summary>
    public float KeepScale { get; } = 1f / (1f - problem.DropoutP);

    public int NheadsQ { get; } = problem.NheadsQ;

    /// <summary>Where the realised mask is returned, when asked for.</summary>
    public DropoutMaskRows? Mask { get; } = mask;

    /// <summary>keep[k] = 1 when key <paramref name="firstKey"/> + k of row (sequence, head, i) is kept.</summary>
    public void Fill(int sequence, int head, int i, int firstKey, Span<byte> keep) =>
        DropoutRng.FillRow(Seed, Offset, sequence, NheadsQ, head, i, firstKey, Threshold, keep);
}

/// <summary>The u8 dropout-mask output (b, hq, sq_max, sk_max), any strides.</summary>
internal readonly unsafe struct DropoutMaskRows
{
    private readonly byte* _origin;
    private readonly long[] _shape, _strides;

    public DropoutMaskRows(Tensor mask, PinnedTensors pins)
    {
        _origin = pins.Pin(mask);
        _shape = mask.Shape.ToArray();
        _strides = mask.Strides.ToArray();
    }

    /// <summary>Sets element (sequence, head, i, key) to <paramref name="value"/>.</summary>
    public void Set(int sequence, int head, int i, int key, byte value) =>
        _origin[sequence * _strides[0] + head * _strides[1] + i * _strides[2] + key * _strides[3]] = value;

    /// <summary>Zeroes the whole mask: positions that are never kept (masked, padding) stay 0.</summary>
    public void Clear()
    {
        for (long b = 0; b < _shape[0]; b++)
            for (long h = 0; h < _shape[1]; h++)
                for (long i = 0; i < _shape[2]; i++)
                {
                    byte* row = _origin + b * _strides[0] + h * _strides[1] + i * _strides[2];
                    for (long j = 0; j < _shape[3]; j++)
                        row[j * _strides[3]] = 0;
                }
    }
}
