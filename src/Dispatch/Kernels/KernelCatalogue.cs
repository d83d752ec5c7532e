namespace FlashAttention.Kernels;

/// <summary>
/// Every kernel instance the native backends are built with, generated from codegen/kernels.toml
/// (KernelCatalogue.g.cs), so managed dispatch cannot name a kernel that was not generated.
/// A library built with CMake's FA_HDIMS / FA_DTYPES filters holds a subset: its fa_supports()
/// says so for the instances left out.
/// </summary>
public static partial class KernelCatalogue
{
    // Initialised in this order: the index is built from the two lists above it.

    /// <summary>Every instance of every backend.</summary>
    public static IReadOnlyList<KernelInstance> All { get; } = GeneratedInstances();

    /// <summary>The backends of the matrix with their compile targets.</summary>
    public static IReadOnlyList<BackendTargets> Backends { get; } = GeneratedBackends();

    private static readonly Dictionary<string, BackendKernels> s_byBackend = Backends.ToDictionary(
        b => b.Backend,
        b => new BackendKernels(b, All.Where(i => i.Backend == b.Backend).ToList()),
        StringComparer.Ordinal);

    /// <summary>The instances of <paramref name="backend"/>; throws for a name the matrix does not have.</summary>
    public static BackendKernels For(string backend) =>
        TryFor(backend) ?? throw new ArgumentException(
            $"No kernels are generated for backend '{backend}'; the catalogue has {string.Join(", ", s_byBackend.Keys)}.", nameof(backend));

    /// <summary>The instances of <paramref name="backend"/>, or null (e.g. for "cpu", which has no generated kernels).</summary>
    public static BackendKernels? TryFor(string backend) => s_byBackend.GetValueOrDefault(backend);

    private static partial IReadOnlyList<BackendTargets> GeneratedBackends();

    private static partial IReadOnlyList<KernelInstance> GeneratedInstances();

    private static IReadOnlyDictionary<string, SwitchValue> Switches(params ReadOnlySpan<(string Name, SwitchValue Value)> switches) =>
        KernelInstance.SwitchSet(switches);
}
