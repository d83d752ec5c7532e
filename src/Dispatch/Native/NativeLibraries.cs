using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace FlashAttention.Native;

/// <summary>
/// Finds and loads the native backend libraries (<c>libfa_*.so</c>) and resolves the generated
/// <c>LibraryImport</c> declarations to the loaded handles. Search order: the directories in
/// FLASHATTN_NATIVE_DIR (colon-separated), the application directory, and its
/// <c>runtimes/linux-x64/native</c> folder (where a NuGet package puts them).
/// </summary>
internal static class NativeLibraries
{
    public const string DirEnvVar = "FLASHATTN_NATIVE_DIR";

    private static readonly ConcurrentDictionary<string, nint> Loaded = new(StringComparer.Ordinal);

    static NativeLibraries() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Directories searched, in order.</summary>
    public static IReadOnlyList<string> SearchDirectories()
    {
        var dirs = new List<string>();
        string? env = Environment.GetEnvironmentVariable(DirEnvVar);
        if (!string.IsNullOrWhiteSpace(env))
            dirs.AddRange(env.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        dirs.Add(AppContext.BaseDirectory);
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));
        return dirs;
    }

    /// <summary>File name of a library: fa_cuda_sm80 → libfa_cuda_sm80.so.</summary>
    public static string FileName(string libraryName) => $"lib{libraryName}.so";

    /// <summary>Loads <paramref name="libraryName"/> once; null with the reason when it cannot be found or loaded.</summary>
    public static string? TryLoad(string libraryName, out string path)
    {
        path = "";
        string file = FileName(libraryName);
        foreach (string dir in SearchDirectories())
        {
            string candidate = Path.Combine(dir, file);
            if (!File.Exists(candidate)) continue;
            path = candidate;
            if (Loaded.ContainsKey(libraryName)) return null;
            try
            {
                Loaded[libraryName] = NativeLibrary.Load(candidate);
                return null;
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                return $"{candidate} exists but could not be loaded: {e.Message}";
            }
        }
        return $"{file} not found in {string.Join(", ", SearchDirectories())} (build the backend, or set {DirEnvVar})";
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        Loaded.TryGetValue(libraryName, out nint handle) ? handle : 0;
}
