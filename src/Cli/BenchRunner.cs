using FlashAttention.Devices;

namespace FlashAttention.Cli;

/// <summary>
/// Runs grid points. Every configuration of the grid has batch·seqlen = tokens and
/// nheads·headdim = model dim, so all share one set of flat buffers per (dtype, device),
/// viewed with each configuration's shape: random inputs are generated once.
/// </summary>
internal sealed class BenchRunner(Dispatcher dispatcher, int tokens, int modelDim, int warmup, int iters, bool check, bool queued = false)
{
    private readonly Dictionary<DType, Tensor[]> _host = [];
    private readonly Dictionary<(DType, Device), Buffers> _device = [];
    private readonly HashSet<string> _warmedDirections = [];

    /// <summary>Flat device tensors: inputs q, k, v, dout and outputs out, dq, dk, dv.</summary>
    private sealed record Buffers(Tensor Q, Tensor K, Tensor V, Tensor DOut, Tensor Out, Tensor DQ, Tensor DK, Tensor DV);

    public (BenchResult? Result, BenchSkip? Skip) Run(BenchConfig c)
    {
        long[] shape = [c.Batch, c.Seqlen, c.Nheads, c.Headdim];
        var options = new AttentionOptions { Causal = c.Causal };
        string impl = "ours";
        try
        {
            // Where this configuration runs, decided on host views as the CLI's run does.
            var host = HostInputs(c.DType);
            Tensor hq = View(host[0], shape), hk = View(host[1], shape), hv = View(host[2], shape), hdout = View(host[3], shape);
            var problem = c.Direction == "fwd"
                ? AttentionValidator.Forward(hq, hk, hv, options).Problem
                : AttentionValidator.Backward(hdout, hq, hk, hv, hdout, Tensor.Zeros(DType.Float32, c.Batch, c.Nheads, c.Seqlen), options).Problem;
            var (backend, device) = dispatcher.Place(problem);
            impl = "ours:" + backend.Name;
            var pinned = dispatcher.WithBackend(backend.Name);

            var buf = DeviceBuffers(c.DType, device);
            Tensor q = View(buf.Q, shape), k = View(buf.K, shape), v = View(buf.V, shape), dout = View(buf.DOut, shape);
            Tensor output = View(buf.Out, shape), dq = View(buf.DQ, shape), dk = View(buf.DK, shape), dv = View(buf.DV, shape);

            var first = pinned.Forward(q, k, v, options, output);
            var lse = first.Lse!;
            // The public API has no LSE destination, so a forward that returns its LSE allocates it on
            // every call; the timed forward-only loop asks for none (fwd+bwd needs it and pays the allocation).
            var noLse = options with { ReturnLse = false };
            Action work = c.Direction switch
            {
                "fwd" => () => pinned.Forward(q, k, v, noLse, output),
                "bwd" => () => pinned.Backward(dout, q, k, v, output, lse, options, dq, dk, dv),
                _ => () =>
                {
                    var f = pinned.Forward(q, k, v, options, output);
                    pinned.Backward(dout, q, k, v, output, f.Lse!, options, dq, dk, dv);
                },
            };
            // The first config of each direction also pays for JIT tiering; give it extra warm-up.
            int warm = _warmedDirections.Add(c.Direction) ? Math.Max(warmup, 3) : warmup;
            var t = Timing.Measure(device, work, warm, iters, queued);
            double? maxErr = check && c.Direction != "bwd" ? FirstSequenceError(c, hq, hk, hv, output) : null;
            return (new BenchResult
            {
                Impl = impl, Direction = c.Direction, Dtype = c.DType.ShortName(), Causal = c.Causal,
                Batch = c.Batch, Seqlen = c.Seqlen, Nheads = c.Nheads, Headdim = c.Headdim,
                Ms = t.Median, MsMin = t.Min, Iters = iters, Tflops = c.Flops / (t.Median * 1e-3) / 1e12,
                Device = device.ToString(), MaxErr = maxErr,
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

    private static BenchSkip Skip(BenchConfig c, string impl, string reason) => new()
    {
        Impl = impl, Direction = c.Direction, Dtype = c.DType.ShortName(), Causal = c.Causal,
        Batch = c.Batch, Seqlen = c.Seqlen, Nheads = c.Nheads, Headdim = c.Headdim, Reason = reason,
    };

    /// <summary>max |out − float64 reference| over the first sequence of the batch (all heads).</summary>
    private static double FirstSequenceError(BenchConfig c, Tensor hq, Tensor hk, Tensor hv, Tensor output)
    {
        var seq = new RefSequence(c.Seqlen, c.Seqlen, hq.Select(0, 0).ToDoubleArray(), hk.Select(0, 0).ToDoubleArray(), hv.Select(0, 0).ToDoubleArray());
        var (left, right) = ReferenceAttention.Normalize(c.Causal, -1, -1, c.Seqlen, c.Seqlen, alibi: false);
        var p = new RefParams(c.Nheads, c.Nheads, c.Headdim, c.Headdim, 1.0 / Math.Sqrt(c.Headdim), 0, left, right, null, 0);
        var reference = ReferenceAttention.Forward(seq, p, null, ReferenceAttention.Exact);
        double[] actual = output.Select(0, 0).ToHost().ToDoubleArray();
        double worst = 0;
        for (int i = 0; i < actual.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - reference.Out[i]));
        return worst;
    }

    private static Tensor View(Tensor flat, long[] shape)
    {
        long n = 1;
        foreach (long s in shape) n *= s;
        return flat.Narrow(0, 0, n).Reshape(shape);
    }

    private Tensor[] HostInputs(DType dtype)
    {
        if (!_host.TryGetValue(dtype, out var t))
        {
            var rng = new Random(1234 + (int)dtype);
            long n = (long)tokens * modelDim;
            t = [ProblemBuilder.Random(rng, dtype, n), ProblemBuilder.Random(rng, dtype, n), ProblemBuilder.Random(rng, dtype, n), ProblemBuilder.Random(rng, dtype, n)];
            _host[dtype] = t;
        }
        return t;
    }

    private Buffers DeviceBuffers(DType dtype, Device device)
    {
        if (!_device.TryGetValue((dtype, device), out var b))
        {
            var host = HostInputs(dtype);
            long[] flat = [(long)tokens * modelDim];
            b = new Buffers(host[0].To(device), host[1].To(device), host[2].To(device), host[3].To(device),
                TensorFactory.Zeros(AttentionValidator.OutDTypeFor(dtype), flat, device), TensorFactory.Zeros(dtype, flat, device),
                TensorFactory.Zeros(dtype, flat, device), TensorFactory.Zeros(dtype, flat, device));
            _device[(dtype, device)] = b;
        }
        return b;
    }
}
