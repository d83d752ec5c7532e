using System.Globalization;
using FlashAttention.Codegen.Matrix;

namespace FlashAttention.Codegen;

/// <summary>The command line of codegen.</summary>
internal sealed record CodegenOptions(bool Check, bool List, bool Help, string? Root, string? Out, InstanceFilter Filter)
{
    public const string Usage = """
        Usage: dotnet run --project codegen -- [options]

        Regenerates, from codegen/kernels.toml, codegen/bindings.toml and templates/*.sbn:
          backends/<backend>/generated/    kernel instances, sources.cmake, instances.g.inc
          backends/common/generated/       the C layout checks of the ABI structs
          src/Dispatch/Generated/          KernelCatalogue.g.cs and the libclang-generated bindings
        Files whose content is unchanged are not rewritten; stale generated files are deleted.

        Options:
          --check              write nothing; exit 1 listing every stale, missing or extra file
          --list               print the instance keys (after filters) and exit
          --backend NAME...    only these backends (cuda_sm80, hopper_sm90, rocm_ck)
          --hdim N...          only these QK head dims
          --dtype NAME...      only these dtypes (fp16, bf16, e4m3)
          --out DIR            write the kernel build tree (instances, sources.cmake, instances.g.inc
                               per backend) into DIR/<backend>/ instead of the repository; required
                               with filters. Build it with cmake -DFA_GENERATED_DIR=DIR.
          --root DIR           the repository (default: the folder holding MultiBackend.sln above
                               the current directory)
          -h, --help           this text

        Values may repeat (--hdim 64 128) or be comma-separated (--hdim 64,128).
        """;

    public static CodegenOptions Parse(IReadOnlyList<string> args)
    {
        bool check = false, list = false, help = false;
        string? root = null, output = null;
        var backends = new HashSet<string>(StringComparer.Ordinal);
        var headdims = new HashSet<int>();
        var dtypes = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            switch (arg)
            {
                case "--check": check = true; break;
                case "--list": list = true; break;
                case "-h" or "--help": help = true; break;
                case "--root": root = SingleValue(args, ref i); break;
                case "--out": output = SingleValue(args, ref i); break;
                case "--backend":
                    foreach (var value in Values(args, ref i))
                        backends.Add(value);
                    break;
                case "--hdim":
                    foreach (var value in Values(args, ref i))
                    {
                        headdims.Add(int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var headdim)
                            ? headdim
                            : throw new CodegenException($"--hdim expects head dims such as 64 or 128; got '{value}'."));
                    }
                    break;
                case "--dtype":
                    foreach (var value in Values(args, ref i))
                        dtypes.Add(value.ToLowerInvariant());
                    break;
                default:
                    throw new CodegenException($"Unknown argument '{arg}'.");
            }
        }
        return new CodegenOptions(check, list, help, root, output, new InstanceFilter(backends, headdims, dtypes));
    }

    private static string SingleValue(IReadOnlyList<string> args, ref int i)
    {
        var option = args[i];
        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
            throw new CodegenException($"{option} expects a value.");
        return args[++i];
    }

    /// <summary>The values after an option up to the next option; each may be a comma-separated list.</summary>
    private static List<string> Values(IReadOnlyList<string> args, ref int i)
    {
        var option = args[i];
        var values = new List<string>();
        while (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            values.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return values.Count > 0 ? values : throw new CodegenException($"{option} expects at least one value.");
    }
}
