namespace FlashAttention.Native;

/// <summary>Fills the C ABI's <c>fa_params</c> from a problem (for supports()) or from validated args (for a call).</summary>
internal static unsafe class NativeParams
{
    /// <summary>Marks an optional input as present when there is no tensor yet; supports() never dereferences it.</summary>
    // Never dereferenced, but aligned like a real allocation: backends refuse misaligned tensors.
    private static readonly void* Present = (void*)256;

    /// <summary>The problem's sizes and options, with placeholder addresses for every input it uses.</summary>
    public static fa_params Describe(AttentionProblem p)
    {
        var r = Scalars(p);
        r.q.data = r.k.data = r.v.data = r.@out.data = Present;
        if (p.Op == AttentionOp.Backward)
        {
            r.dout.data = r.dq.data = r.dk.data = r.dv.data = Present;
            r.softmax_lse = (float*)Present;
            if (p.Has(AttentionFeatures.Sinks)) r.dsink = (float*)Present;
        }
        if (p.Has(AttentionFeatures.Lse)) r.softmax_lse = (float*)Present;
        if (p.Has(AttentionFeatures.Alibi)) r.alibi_slopes = (float*)Present;
        if (p.Has(AttentionFeatures.Sinks)) r.sink_logits = (float*)Present;
        if (p.Has(AttentionFeatures.DropoutMask)) r.dropout_mask = (byte*)Present;
        if (p.Has(AttentionFeatures.Varlen)) r.cu_seqlens_q = r.cu_seqlens_k = (int*)Present;
        if (p.Has(AttentionFeatures.Seqused)) r.seqused_k = (int*)Present;
        if (p.Has(AttentionFeatures.LeftpadK)) r.leftpad_k = (int*)Present;
        if (p.Has(AttentionFeatures.PagedKv)) r.block_table = (int*)Present;
        if (p.Op == AttentionOp.ForwardKvCache) r.cache_seqlens = (int*)Present;
        if (p.Has(AttentionFeatures.CacheBatchIdx)) r.cache_batch_idx = (int*)Present;
        if (p.Has(AttentionFeatures.KvAppend)) r.k_new.data = r.v_new.data = Present;
        if (p.Has(AttentionFeatures.Rotary)) r.rotary_cos = r.rotary_sin = Present;
        return r;
    }

    /// <summary>The call's parameters; <paramref name="address"/> pins a tensor and returns its device address.</summary>
    public static fa_params Build(AttentionArgs a, Func<Tensor, nint> address)
    {
        var r = Scalars(a.Problem);
        void* Ptr(Tensor? t) => t is null ? null : (void*)address(t);
        fa_tensor View(Tensor? t)
        {
            if (t is null) return default;
            // Dense/cache views are (batch|page, row, head, dim); varlen views are (row, head, dim).
            return t.Rank == 4
                ? new fa_tensor { data = Ptr(t), batch_stride = t.Stride(0), row_stride = t.Stride(1), head_stride = t.Stride(2) }
                : new fa_tensor { data = Ptr(t), batch_stride = 0, row_stride = t.Stride(0), head_stride = t.Stride(1) };
        }

        r.q = View(a.Q);
        r.k = View(a.K);
        r.v = View(a.V);
        r.@out = View(a.Out);
        r.dout = View(a.DOut);
        r.dq = View(a.DQ);
        r.dk = View(a.DK);
        r.dv = View(a.DV);
        r.k_new = View(a.KNew);
        r.v_new = View(a.VNew);
        if (a.Lse is Tensor lse)
        {
            r.softmax_lse = (float*)Ptr(lse);
            // (batch, heads, rows) dense; (heads, total_q) varlen.
            r.lse_batch_stride = lse.Rank == 3 ? lse.Stride(0) : 0;
            r.lse_head_stride = lse.Rank == 3 ? lse.Stride(1) : lse.Stride(0);
        }
        if (a.AlibiSlopes is Tensor alibi)
        {
            r.alibi_slopes = (float*)Ptr(alibi);
            r.alibi_batch_stride = alibi.Rank == 2 ? alibi.Stride(0) : 0;
        }
        if (a.BlockTable is Tensor table)
        {
            r.block_table = (int*)Ptr(table);
            r.block_table_batch_stride = table.Stride(0);
        }
        if ((a.QDescale ?? a.KDescale ?? a.VDescale) is Tensor descale)
        {
            // (batch, nheads_kv) each. The ABI has one pair of strides for all three: the caller passes
            // contiguous ones (NativeBackend stages others), which differ at most on axes of size 1.
            r.descale_batch_stride = descale.Stride(0);
            r.descale_head_stride = descale.Stride(1);
        }
        r.q_descale = (float*)Ptr(a.QDescale);
        r.k_descale = (float*)Ptr(a.KDescale);
        r.v_descale = (float*)Ptr(a.VDescale);
        r.sink_logits = (float*)Ptr(a.SinkLogits);
        r.dsink = (float*)Ptr(a.DSink);
        r.dropout_mask = (byte*)Ptr(a.DropoutMask);
        r.cu_seqlens_q = (int*)Ptr(a.CuSeqlensQ);
        r.cu_seqlens_k = (int*)Ptr(a.CuSeqlensK);
        r.seqused_k = (int*)Ptr(a.SequsedK);
        r.leftpad_k = (int*)Ptr(a.LeftpadK);
        r.cache_seqlens = (int*)Ptr(a.CacheSeqlens);
        r.cache_batch_idx = (int*)Ptr(a.CacheBatchIdx);
        r.rotary_cos = Ptr(a.RotaryCos);
        r.rotary_sin = Ptr(a.RotarySin);
        return r;
    }

    private static fa_params Scalars(AttentionProblem p) => new()
    {
        struct_size = (uint)sizeof(fa_params),
        abi_version = FlashAttnAbiConstants.FA_ABI_VERSION,
        dtype = (fa_dtype)p.DType,
        out_dtype = (fa_dtype)p.OutDType,
        batch = p.Batch,
        seqlen_q = p.SeqlenQ,
        seqlen_k = p.SeqlenK,
        nheads_q = p.NheadsQ,
        nheads_kv = p.NheadsKv,
        headdim_qk = p.HeaddimQk,
        headdim_v = p.HeaddimV,
        total_q = p.TotalQ,
        total_k = p.TotalK,
        kv_batch = p.KvBatch,
        softmax_scale = p.SoftmaxScale,
        softcap = p.Softcap,
        is_causal = p.IsCausal ? 1 : 0,
        window_left = p.WindowLeft,
        window_right = p.WindowRight,
        deterministic = p.Deterministic ? 1 : 0,
        dropout_p = p.DropoutP,
        dropout_seed = p.DropoutSeed,
        dropout_offset = p.DropoutOffset,
        page_size = p.PageSize,
        max_pages_per_seq = p.MaxPagesPerSeq,
        seqlen_new = p.SeqlenNew,
        rotary_dim = p.RotaryDim,
        rotary_interleaved = p.RotaryInterleaved ? 1 : 0,
        seqlen_rotary = p.SeqlenRotary,
        num_splits = p.NumSplits,
        device = p.Device.Ordinal,
    };
}
