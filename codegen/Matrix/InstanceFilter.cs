namespace FlashAttention.Codegen.Matrix;

/// <summary>
/// The subset of the matrix a developer asked for (--backend, --hdim, --dtype). An empty set
/// means "any". Head dims match the QK head dim, as CMake's FA_HDIMS does.
/// </summary>
internal sealed record InstanceFilter(
    IReadOnlySet<string> Backends,
    IReadOnlySet<int> Headdims,
    IReadOnlySet<string> Dtypes)
{
    public static InstanceFilter None { get; } = new(new HashSet<string>(), new HashSet<int>(), new HashSet<string>());

    public bool IsEmpty => Backends.Count == 0 && Headdims.Count == 0 && Dtypes.Count == 0;

    public bool Includes(BackendSpec backend) => Backends.Count == 0 || Backends.Contains(backend.Name);

    public bool Includes(KernelInstanceSpec instance) =>
        Includes(instance.Backend)
        && (Headdims.Count == 0 || Headdims.Contains(instance.HeadDims.Qk))
        && (Dtypes.Count == 0 || Dtypes.Contains(instance.Dtype.Name));

    /// <summary>Checks every requested value against the matrix, so a typo fails instead of selecting nothing.</summary>
    public void Validate(KernelMatrix matrix, IReadOnlyList<KernelInstanceSpec> all)
    {
        foreach (var name in Backends.Where(n => matrix.FindBackend(n) is null).Order(StringComparer.Ordinal))
            throw new CodegenException($"--backend {name}: no such backend; the matrix has {string.Join(", ", matrix.Backends.Select(b => b.Name))}.");
        foreach (var name in Dtypes.Where(n => matrix.Dtypes.All(d => d.Name != n)).Order(StringComparer.Ordinal))
            throw new CodegenException($"--dtype {name}: no such dtype; the matrix has {string.Join(", ", matrix.Dtypes.Select(d => d.Name))}.");

        var inBackends = all.Where(i => Includes(i.Backend)).ToList();
        var offered = inBackends.Select(i => i.HeadDims.Qk).ToHashSet();
        foreach (var headdim in Headdims.Where(h => !offered.Contains(h)).Order())
            throw new CodegenException($"--hdim {headdim}: no instance has this head dim; available: {string.Join(", ", offered.Order())}.");
        if (!inBackends.Any(Includes))
            throw new CodegenException("The filters select no instance (no backend offers that head dim with that dtype).");
    }
}
