namespace FlashAttention.Kernels;

/// <summary>The kernel instances of one backend, with the queries the dispatcher and Explain need.</summary>
public sealed class BackendKernels
{
    internal BackendKernels(BackendTargets targets, IReadOnlyList<KernelInstance> instances)
    {
        Targets = targets;
        Instances = instances;
        Directions = instances.Select(i => i.Direction).Distinct().ToList();
    }

    public string Backend => Targets.Backend;

    public BackendTargets Targets { get; }

    /// <summary>Every instance, in the matrix's order.</summary>
    public IReadOnlyList<KernelInstance> Instances { get; }

    /// <summary>The directions the backend has kernels for (fwd, bwd, …).</summary>
    public IReadOnlyList<string> Directions { get; }

    /// <summary>The QK head dims compiled for a direction, ascending: a head dim runs in the smallest bucket that holds it.</summary>
    public IReadOnlyList<int> HeaddimBuckets(string direction) =>
        Instances.Where(i => i.Direction == direction).Select(i => i.Headdim).Distinct().Order().ToList();

    /// <summary>The bucket a head dim runs in for a direction (padded up to it), or null when it exceeds every bucket.</summary>
    public int? BucketFor(string direction, int headdim)
    {
        foreach (var bucket in HeaddimBuckets(direction))
        {
            if (bucket >= headdim)
                return bucket;
        }
        return null;
    }

    /// <summary>The dtypes compiled for a direction.</summary>
    public IReadOnlyList<DType> Dtypes(string direction) =>
        Instances.Where(i => i.Direction == direction).Select(i => i.DType).Distinct().Order().ToList();

    /// <summary>
    /// The instance for a key, or null when it was not generated. <paramref name="headdim"/> and
    /// <paramref name="headdimV"/> are buckets (already padded); switches not given are not compared.
    /// </summary>
    public KernelInstance? Find(string direction, DType dtype, int headdim, int headdimV, IReadOnlyDictionary<string, SwitchValue>? switches = null) =>
        Instances.FirstOrDefault(i =>
            i.Direction == direction && i.DType == dtype && i.Headdim == headdim && i.HeaddimV == headdimV
            && (switches is null || i.Matches(switches)));
}
