namespace FlashAttention.Codegen.Matrix;

/// <summary>Expands the matrix into its instances: per backend and direction, head dims × dtypes × switch values.</summary>
internal static class MatrixExpander
{
    /// <summary>
    /// Every instance, in a stable order: backends by name, then directions, head dims, dtypes and
    /// switch values as the matrix lists them (the last switch varies fastest).
    /// </summary>
    public static IReadOnlyList<KernelInstanceSpec> Expand(KernelMatrix matrix)
    {
        var instances = new List<KernelInstanceSpec>();
        foreach (var backend in matrix.Backends)
        {
            foreach (var direction in backend.Directions)
            {
                foreach (var headDims in direction.HeadDims)
                {
                    foreach (var dtype in direction.Dtypes)
                    {
                        foreach (var settings in SwitchCombinations(direction.Switches))
                            instances.Add(new KernelInstanceSpec(backend, direction.Name, dtype, headDims, settings));
                    }
                }
            }
        }

        var duplicate = instances.GroupBy(i => i.Key).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new CodegenException($"kernels.toml: two instances expand to the key {duplicate.Key}; rename a switch or value.");
        return instances;
    }

    /// <summary>The cartesian product of the switch axes, first axis slowest.</summary>
    private static IEnumerable<IReadOnlyList<SwitchSetting>> SwitchCombinations(IReadOnlyList<SwitchAxis> axes)
    {
        IEnumerable<IReadOnlyList<SwitchSetting>> combinations = [[]];
        foreach (var axis in axes)
        {
            combinations = combinations
                .SelectMany(prefix => axis.Values.Select(value => (IReadOnlyList<SwitchSetting>)[.. prefix, new SwitchSetting(axis, value)]))
                .ToList();
        }
        return combinations;
    }
}
