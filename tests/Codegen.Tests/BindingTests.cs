using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FlashAttention.Codegen.Bindings;
using FlashAttention.Codegen.Rendering;
using FlashAttention.Devices;
using FlashAttention.Native;

namespace FlashAttention.Codegen.Tests;

/// <summary>
/// The libclang binding generator: the committed ABI bindings carry libclang's layout, the CLR
/// lays the generated structs out identically, and the generator handles a HIP-style subset job.
/// </summary>
public sealed class BindingTests
{
    private static BindingJob AbiJob => BindingJob.Load(RepoPaths.PathOf(RepositoryLayout.BindingsFile))
        .Single(j => j.Header.EndsWith("flash_attn_abi.h", StringComparison.Ordinal));

    [Fact]
    public void GeneratedLayoutConstantsEqualLibclangsLayout()
    {
        var api = ClangHeaderReader.Read(AbiJob, RepoPaths.Root);

        Assert.Equal(api.Structs.Select(s => s.Name), FlashAttnAbiLayout.Structs.Select(s => s.Name));
        foreach (var (parsed, generated) in api.Structs.Zip(FlashAttnAbiLayout.Structs))
        {
            Assert.Equal(parsed.Size, generated.SizeOf);
            Assert.Equal(parsed.Alignment, generated.AlignOf);
            Assert.Equal(parsed.Fields.Select(f => (f.Name, (int)f.Offset)), generated.Fields.Select(f => (f.Name, f.OffsetOf)));
        }
        Assert.Equal(FlashAttnAbiConstants.FA_ABI_VERSION, api.Constants.Single(c => c.Name == "FA_ABI_VERSION").Value);
        Assert.Equal(
            ["fa_abi_version", "fa_backend_name", "fa_get_capabilities", "fa_supports", "fa_workspace_size", "fa_forward", "fa_backward", "fa_forward_kvcache", "fa_last_error"],
            api.Functions.Select(f => f.Name));
    }

    [Fact]
    public void ClrLayoutOfTheGeneratedStructsEqualsTheCLayout()
    {
        Assert.Equal(FlashAttnAbiLayout.fa_params.SizeOf, Unsafe.SizeOf<fa_params>());
        Assert.Equal(FlashAttnAbiLayout.fa_tensor.SizeOf, Unsafe.SizeOf<fa_tensor>());
        Assert.Equal(FlashAttnAbiLayout.fa_capabilities.SizeOf, Unsafe.SizeOf<fa_capabilities>());
        Assert.Equal(FlashAttnAbiLayout.fa_params.OffsetOf.num_splits, (int)Marshal.OffsetOf<fa_params>(nameof(fa_params.num_splits)));

        Assert.NotEmpty(FlashAttnAbiLayout.Structs);
        foreach (var layout in FlashAttnAbiLayout.Structs)
        {
            Assert.Equal(layout.SizeOf, ManagedSize(layout.Type));
            Assert.Equal(layout.SizeOf, Marshal.SizeOf(layout.Type));
            Assert.Equal(layout.AlignOf, ManagedAlignment(layout.Type));
            foreach (var field in layout.Fields)
                Assert.True(field.OffsetOf == (int)Marshal.OffsetOf(layout.Type, field.Name), $"{layout.Name}.{field.Name}");
            var declared = layout.Type.GetFields(BindingFlags.Public | BindingFlags.Instance).Select(f => f.Name);
            Assert.Equal(layout.Fields.Select(f => f.Name), declared);
        }
    }

    [Fact]
    public void EveryLibraryImplementsTheInterfaceWithItsOwnImports()
    {
        Assert.Equal(["fa_cuda_sm80", "fa_hopper_sm90", "fa_rocm_ck"], FlashAttnAbiLibraries.Names);
        Assert.Null(FlashAttnAbiLibraries.ForLibrary("fa_cpu"));
        var interfaceMethods = typeof(IFlashAttnAbi).GetMethods().Where(m => !m.IsSpecialName).Select(m => m.Name).ToList();

        foreach (var name in FlashAttnAbiLibraries.Names)
        {
            var library = FlashAttnAbiLibraries.ForLibrary(name);
            Assert.NotNull(library);
            Assert.Equal(name, library.LibraryName);
            var native = typeof(IFlashAttnAbi).Assembly.GetType($"FlashAttention.Native.{BindingGenerator.PascalCase(name)}Native", throwOnError: true)!;
            var imports = native.GetMethods(BindingFlags.Static | BindingFlags.NonPublic)
                .Where(m => m.GetCustomAttribute<LibraryImportAttribute>() is { } a && a.LibraryName == name)
                .Select(m => m.Name)
                .ToList();
            Assert.Equal(interfaceMethods, imports);
        }
    }

    [Fact]
    public void CallingAnAbsentLibraryThrowsInsteadOfCrashing()
    {
        var library = FlashAttnAbiLibraries.ForLibrary("fa_rocm_ck")!;
        Assert.ThrowsAny<DllNotFoundException>(() => library.fa_abi_version());
    }

    [Fact]
    public void SubsetJobBindsAllowListedDeclarationsWithOpaqueHandles()
    {
        using var repo = new TempRepository();
        var header = repo.PathOf("native/fake_hip.h");
        Directory.CreateDirectory(Path.GetDirectoryName(header)!);
        File.WriteAllText(header, """
            #include <stddef.h>
            #include <stdint.h>
            #define HIP_VERSION_MAJOR 6
            typedef struct ihipStream_t* hipStream_t;
            typedef enum hipError_t { hipSuccess = 0, hipErrorInvalidValue = 1, hipErrorNotReady = 600 } hipError_t;
            /* Device properties (a subset). */
            typedef struct hipDeviceProp_t {
                char name[256];      /* device name */
                size_t totalGlobalMem;
                int maxThreadsDim[3];
                int warpSize;
                hipError_t lastError;
            } hipDeviceProp_t;
            typedef struct hipUnused_t { double x; } hipUnused_t;
            hipError_t hipGetDeviceProperties(hipDeviceProp_t* prop, int device);
            hipError_t hipStreamCreate(hipStream_t* stream);
            hipError_t hipStreamSynchronize(hipStream_t stream);
            const char* hipGetErrorString(hipError_t error);
            int hipUnusedFunction(hipUnused_t value);
            """);
        var job = AbiJob with
        {
            Header = "native/fake_hip.h",
            ClangArgs = [],
            Output = "src/Dispatch/Generated/HipRuntime.g.cs",
            CLayoutOutput = null,
            Name = "HipRuntime",
            Libraries = ["amdhip64"],
            Functions = ["hipGetDeviceProperties", "hipStreamCreate", "hipStreamSynchronize", "hipGetErrorString"],
            Structs = ["hipDeviceProp_t"],
            Enums = ["hipError_t"],
            OpaqueTypes = ["hipStream_t"],
            Constants = ["HIP_VERSION_MAJOR"],
        };

        var api = ClangHeaderReader.Read(job, repo.Root);
        var file = BindingGenerator.Generate(job, api, new TemplateRenderer(RepoPaths.PathOf("templates"))).Single();
        var code = file.Content;

        Assert.Equal("src/Dispatch/Generated/HipRuntime.g.cs", file.RelativePath);
        Assert.Contains("public const int HIP_VERSION_MAJOR = 6;", code);
        Assert.Contains("internal enum hipError_t : int", code);
        Assert.Contains("public fixed byte name[256];", code);
        Assert.Contains("public nuint totalGlobalMem;", code);
        Assert.Contains("public fixed int maxThreadsDim[3];", code);
        Assert.Contains("public hipError_t lastError;", code);
        Assert.Contains("hipError_t hipStreamCreate(nint* stream);", code);
        Assert.Contains("hipError_t hipStreamSynchronize(nint stream);", code);
        Assert.Contains("byte* hipGetErrorString(hipError_t error);", code);
        Assert.Contains("[LibraryImport(Library)]", code);
        Assert.Contains("public const string Library = \"amdhip64\";", code);
        Assert.Contains("/// <summary>device name</summary>", code);
        Assert.DoesNotContain("hipUnused", code);
        var layout = api.Structs.Single();
        Assert.Equal(256 + 8 + 12 + 4 + 4 + 4, layout.Size); // name, size_t at 256, dims, warpSize, lastError, tail padding to 8
        Assert.Equal(280, layout.Fields.Single(f => f.Name == "lastError").Offset);
    }

    [Fact]
    public void HipRuntimeBindingsCarryLibclangsLayoutAndTheClrAgrees()
    {
        var job = BindingJob.Load(RepoPaths.PathOf(RepositoryLayout.BindingsFile)).Single(j => j.Header.EndsWith("hip_runtime_api.h", StringComparison.Ordinal));
        if (!File.Exists(job.Header))
            Assert.Skip($"{job.Header} is not installed (tools/setup.sh --rocm installs Debian's HIP headers)");
        var api = ClangHeaderReader.Read(job, RepoPaths.Root);

        Assert.Equal(job.Functions.Order(), api.Functions.Select(f => f.Name).Order());
        var props = api.Structs.Single(s => s.Name == "hipDeviceProp_t");
        var generated = HipRuntimeApiLayout.Structs.Single(s => s.Name == "hipDeviceProp_t");
        Assert.Equal(props.Size, generated.SizeOf);
        Assert.Equal(props.Fields.Select(f => (f.Name, (int)f.Offset)), generated.Fields.Select(f => (f.Name, f.OffsetOf)));
        // The CLR lays the C# struct out the same way, the bitfield struct (hipDeviceArch_t) included as 4 bytes.
        Assert.Equal(generated.SizeOf, Unsafe.SizeOf<hipDeviceProp_t>());
        foreach (var field in generated.Fields)
            Assert.True(field.OffsetOf == (int)Marshal.OffsetOf<hipDeviceProp_t>(field.Name), $"hipDeviceProp_t.{field.Name}");
        Assert.Equal(4, props.Fields.Single(f => f.Name == "arch").Type is FixedArrayType { Length: var n } ? n : -1);
        Assert.Equal(HipRuntimeApiConstants.HIP_VERSION_MAJOR, api.Constants.Single(c => c.Name == "HIP_VERSION_MAJOR").Value);
        Assert.Equal(["amdhip64"], HipRuntimeApiLibraries.Names);
    }

    [Fact]
    public void OpaqueStructFieldIsBytesOfItsSize()
    {
        using var repo = new TempRepository();
        var header = repo.PathOf("native/bits.h");
        Directory.CreateDirectory(Path.GetDirectoryName(header)!);
        File.WriteAllText(header, """
            typedef struct flags_t { unsigned a : 1; unsigned b : 3; unsigned c : 20; } flags_t;
            typedef struct props_t { char name[6]; int count; flags_t flags; int after; } props_t;
            int get_props(props_t* p);
            int take_flags(flags_t f);
            """);
        var job = AbiJob with { Header = "native/bits.h", ClangArgs = [], CLayoutOutput = null, Structs = ["props_t"], Functions = ["get_props"], Enums = [], Constants = [], OpaqueStructs = ["flags_t"] };

        var api = ClangHeaderReader.Read(job, repo.Root);
        var code = BindingGenerator.Generate(job, api, new TemplateRenderer(RepoPaths.PathOf("templates"))).Single().Content;
        Assert.Contains("public fixed byte flags[4];", code);
        Assert.Equal(16, api.Structs.Single().Fields.Single(f => f.Name == "after").Offset); // name[6], pad, count at 8, flags (4 bytes) at 12

        var byValue = Assert.Throws<CodegenException>(() => ClangHeaderReader.Read(job with { Functions = ["take_flags"] }, repo.Root));
        Assert.Contains("flags_t is in opaque_structs, which can only be the type of a struct field", byValue.Message);
        var unbound = Assert.Throws<CodegenException>(() => ClangHeaderReader.Read(job with { OpaqueStructs = [], Structs = ["props_t", "flags_t"] }, repo.Root));
        Assert.Contains("bitfield", unbound.Message);
    }

    [Fact]
    public void SubsetJobErrorsNameTheProblem()
    {
        using var repo = new TempRepository();
        var header = repo.PathOf("native/broken.h");
        Directory.CreateDirectory(Path.GetDirectoryName(header)!);
        File.WriteAllText(header, "typedef struct inner_t { int x; } inner_t;\ntypedef struct outer_t { inner_t inner; } outer_t;\nint use(outer_t* o);\n");
        var job = AbiJob with { Header = "native/broken.h", CLayoutOutput = null, Structs = ["outer_t"], Functions = ["use"], Enums = [], Constants = [] };

        var unbound = Assert.Throws<CodegenException>(() => ClangHeaderReader.Read(job, repo.Root));
        Assert.Contains("outer_t.inner uses inner_t, which is not bound", unbound.Message);

        File.WriteAllText(header, "int broken(;\n");
        var syntax = Assert.Throws<CodegenException>(() => ClangHeaderReader.Read(job with { Structs = [], Functions = [] }, repo.Root));
        Assert.Contains("libclang reports errors in native/broken.h", syntax.Message);
        Assert.Contains("broken.h:1:", syntax.Message);

        File.WriteAllText(header, "int present(void);\n");
        var missing = Assert.Throws<CodegenException>(() => ClangHeaderReader.Read(job with { Structs = [], Functions = ["absent"] }, repo.Root));
        Assert.Contains("functions absent not declared", missing.Message);
    }

    private static int ManagedSize(Type type) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;

    private static int ManagedAlignment(Type type) =>
        (int)typeof(BindingTests).GetMethod(nameof(AlignmentOf), BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(type).Invoke(null, null)!;

    private static unsafe int AlignmentOf<T>() where T : unmanaged
    {
        AlignmentProbe<T> probe = default;
        return (int)((byte*)&probe.Value - (byte*)&probe);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct AlignmentProbe<T> where T : unmanaged
    {
        public byte Pad;
        public T Value;
    }
}
