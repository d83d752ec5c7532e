namespace FlashAttention.Cpu;

/// <summary>The three entry points at one SIMD width: resolve the call into a plan, run the kernels.</summary>
internal static class CpuAttention<TOps, TVec>
    where TOps : struct, IVectorOps<TOps, TVec>
    where TVec : unmanaged
{
    public static void Run(AttentionArgs args, int maxWorkers)
    {
        switch (args.Problem.Op)
        {
            case AttentionOp.Forward:
                using (var plan = new AttentionPlan(args, SequenceLayout.ForAttention(args), args.Q))
                    ForwardKernel<TOps, TVec>.Run(plan, maxWorkers, stageKeyValues: true);
                break;
            case AttentionOp.Backward:
                using (var plan = new AttentionPlan(args, SequenceLayout.ForAttention(args), args.Q))
                    BackwardKernel<TOps, TVec>.Run(plan, maxWorkers);
                break;
            case AttentionOp.ForwardKvCache:
                RunKvCache(args, maxWorkers);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(args), args.Problem.Op, "Unknown attention op.");
        }
    }

    /// <summary>Append (with rotary) into the cache, rotate q, then attend over each sequence's cache rows.</summary>
    private static void RunKvCache(AttentionArgs args, int maxWorkers)
    {
        int[] cacheSeqlens = args.CacheSeqlens!.ToArray<int>();
        using var rotary = args.Problem.RotaryDim > 0 ? new RotaryEmbedding(args) : null;
        var query = rotary is null ? args.Q : KvCacheUpdate<TOps, TVec>.RotateQueries(args, cacheSeqlens, rotary, maxWorkers);
        using var plan = new AttentionPlan(args, SequenceLayout.ForKvCache(args, cacheSeqlens), query);
        if (args.KNew is not null)
            KvCacheUpdate<TOps, TVec>.Append(args, plan, cacheSeqlens, rotary, maxWorkers);
        ForwardKernel<TOps, TVec>.Run(plan, maxWorkers, stageKeyValues: false);
    }
}
