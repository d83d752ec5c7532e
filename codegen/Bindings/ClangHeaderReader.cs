using System.Runtime.InteropServices;
using System.Text;
using static FlashAttention.Codegen.Bindings.LibClang;

namespace FlashAttention.Codegen.Bindings;

/// <summary>
/// Parses a C header with libclang and returns the declarations a <see cref="BindingJob"/> selects,
/// with every type mapped to C# and every struct's layout as clang computed it for the job's target.
/// </summary>
internal sealed unsafe class ClangHeaderReader
{
    /// <summary>Fixed-width typedefs are mapped by name, so the C# type says what the C source says.</summary>
    private static readonly Dictionary<string, string> WellKnownTypedefs = new()
    {
        ["int8_t"] = "sbyte", ["uint8_t"] = "byte",
        ["int16_t"] = "short", ["uint16_t"] = "ushort",
        ["int32_t"] = "int", ["uint32_t"] = "uint",
        ["int64_t"] = "long", ["uint64_t"] = "ulong",
        ["size_t"] = "nuint", ["uintptr_t"] = "nuint",
        ["ptrdiff_t"] = "nint", ["intptr_t"] = "nint", ["ssize_t"] = "nint",
    };

    private const string ConstantProbePrefix = "codegen_constant_";

    private readonly BindingJob _job;
    private readonly string _headerPath;
    private readonly List<NativeConstant> _constants = [];
    private readonly List<NativeEnum> _enums = [];
    private readonly List<NativeStruct> _structs = [];
    private readonly List<NativeFunction> _functions = [];
    private readonly HashSet<string> _opaque;
    private readonly HashSet<string> _opaqueStructs;

    private ClangHeaderReader(BindingJob job, string headerPath)
    {
        _job = job;
        _headerPath = headerPath;
        _opaque = job.OpaqueTypes.ToHashSet(StringComparer.Ordinal);
        _opaqueStructs = job.OpaqueStructs.ToHashSet(StringComparer.Ordinal);
    }

    public static NativeApi Read(BindingJob job, string repositoryRoot)
    {
        LibClangLoader.EnsureLoaded();
        var headerPath = Path.GetFullPath(Path.Combine(repositoryRoot, job.Header));
        if (!File.Exists(headerPath))
            throw new CodegenException($"bindings.toml: header {job.Header} does not exist.");
        var reader = new ClangHeaderReader(job, headerPath);
        return reader.Parse(repositoryRoot);
    }

    private NativeApi Parse(string repositoryRoot)
    {
        var arguments = new List<string>
        {
            "-x", "c", "-std=c11", $"--target={_job.Target}",
            "-resource-dir", ClangResourceDirectory.Find(),
            "-fparse-all-comments",
            "-I", Path.GetDirectoryName(_headerPath)!,
        };
        foreach (var include in _job.IncludeDirs)
            arguments.AddRange(["-I", Path.GetFullPath(Path.Combine(repositoryRoot, include))]);
        arguments.AddRange(_job.ClangArgs);

        // The translation unit is a probe file that includes the header and turns each requested
        // macro into an enum constant, so that clang evaluates the macro for us.
        var probePath = Path.Combine(Path.GetDirectoryName(_headerPath)!, "codegen_probe.c");
        var probe = new StringBuilder($"#include \"{Path.GetFileName(_headerPath)}\"\n");
        foreach (var constant in _job.Constants)
            probe.Append($"enum {{ {ConstantProbePrefix}{constant} = ({constant}) }};\n");

        var index = clang_createIndex(excludeDeclarationsFromPCH: 0, displayDiagnostics: 0);
        var pinned = new List<nint>();
        try
        {
            byte* Utf8(string s)
            {
                var p = Marshal.StringToCoTaskMemUTF8(s);
                pinned.Add(p);
                return (byte*)p;
            }

            var argv = stackalloc byte*[arguments.Count];
            for (var i = 0; i < arguments.Count; i++)
                argv[i] = Utf8(arguments[i]);
            var probeText = probe.ToString();
            var unsaved = new CXUnsavedFile
            {
                Filename = Utf8(probePath),
                Contents = Utf8(probeText),
                Length = (nuint)Encoding.UTF8.GetByteCount(probeText),
            };
            var unit = clang_parseTranslationUnit(index, Utf8(probePath), argv, arguments.Count, &unsaved, 1, CXTranslationUnit_SkipFunctionBodies);
            if (unit == 0)
                throw new CodegenException($"libclang could not parse {_job.Header} (arguments: {string.Join(' ', arguments)}).");
            try
            {
                ThrowOnErrors(unit);
                Collect(clang_getTranslationUnitCursor(unit));
            }
            finally
            {
                clang_disposeTranslationUnit(unit);
            }
        }
        finally
        {
            foreach (var p in pinned)
                Marshal.FreeCoTaskMem(p);
            clang_disposeIndex(index);
        }

        CheckAllowListsFound();
        CheckReferencedTypesAreBound();
        return new NativeApi(_constants, _enums, _structs, _functions);
    }

    private void ThrowOnErrors(nint unit)
    {
        var errors = new List<string>();
        var count = clang_getNumDiagnostics(unit);
        for (uint i = 0; i < count; i++)
        {
            var diagnostic = clang_getDiagnostic(unit, i);
            try
            {
                if (clang_getDiagnosticSeverity(diagnostic) >= CXDiagnosticSeverity.CXDiagnostic_Error)
                    errors.Add(Take(clang_formatDiagnostic(diagnostic, clang_defaultDiagnosticDisplayOptions())));
            }
            finally
            {
                clang_disposeDiagnostic(diagnostic);
            }
        }
        if (errors.Count > 0)
            throw new CodegenException($"libclang reports errors in {_job.Header}:\n  " + string.Join("\n  ", errors));
    }

    private void Collect(CXCursor translationUnit)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var cursor in Children(translationUnit))
        {
            var kind = clang_getCursorKind(cursor);
            var name = Take(clang_getCursorSpelling(cursor));
            switch (kind)
            {
                case CXCursorKind.CXCursor_EnumDecl when name.Length > 0 && IsDefinition(cursor) && clang_Cursor_isAnonymous(cursor) == 0:
                    if (Selected(_job.Enums, name, cursor) && seen.Add("enum " + name))
                        _enums.Add(ReadEnum(cursor, name));
                    ReadConstantProbes(cursor);
                    break;
                case CXCursorKind.CXCursor_EnumDecl:
                    ReadConstantProbes(cursor);
                    break;
                case CXCursorKind.CXCursor_StructDecl when name.Length > 0 && IsDefinition(cursor) && clang_Cursor_isAnonymous(cursor) == 0:
                    if (Selected(_job.Structs, name, cursor) && seen.Add("struct " + name))
                        _structs.Add(ReadStruct(cursor, name));
                    break;
                case CXCursorKind.CXCursor_UnionDecl when Selected(_job.Structs, name, cursor) && IsDefinition(cursor):
                    throw new CodegenException($"{Where(cursor)}: union {name} cannot be bound; list its typedef in opaque_types or leave it out.");
                case CXCursorKind.CXCursor_FunctionDecl when Selected(_job.Functions, name, cursor) && seen.Add("function " + name):
                    _functions.Add(ReadFunction(cursor, name));
                    break;
            }
        }
    }

    private static bool IsDefinition(CXCursor cursor) => clang_isCursorDefinition(cursor) != 0;

    /// <summary>An allow-listed name, or (no allow-list) any declaration made in the job's header itself.</summary>
    private bool Selected(IReadOnlyList<string> allowList, string name, CXCursor cursor) =>
        allowList.Count > 0 ? allowList.Contains(name) : FileOf(cursor) == _headerPath;

    private NativeEnum ReadEnum(CXCursor cursor, string name)
    {
        var members = Children(cursor)
            .Where(c => clang_getCursorKind(c) == CXCursorKind.CXCursor_EnumConstantDecl)
            .Select(c => new NativeEnumMember(Take(clang_getCursorSpelling(c)), clang_getEnumConstantDeclValue(c), Comment(c)))
            .ToList();
        var integerType = clang_getEnumDeclIntegerType(cursor);
        var size = clang_Type_getSizeOf(integerType);
        // C gives an enum without negative values an unsigned type; C# callers expect int, which has
        // the same size and holds the same values when none exceeds int.MaxValue.
        var underlying = size switch
        {
            4 when members.All(m => m.Value is >= int.MinValue and <= int.MaxValue) => "int",
            4 => "uint",
            8 => "long",
            _ => throw new CodegenException($"{Where(cursor)}: enum {name} has a {size}-byte type; only 4 and 8 are supported."),
        };
        return new NativeEnum(name, underlying, members, Comment(cursor));
    }

    private NativeStruct ReadStruct(CXCursor cursor, string name)
    {
        var type = clang_getCursorType(cursor);
        var fields = new List<NativeField>();
        foreach (var child in Children(cursor))
        {
            var kind = clang_getCursorKind(child);
            if (kind is CXCursorKind.CXCursor_StructDecl or CXCursorKind.CXCursor_UnionDecl)
                throw new CodegenException($"{Where(child)}: struct {name} declares a nested struct or union; only plain fields can be bound.");
            if (kind != CXCursorKind.CXCursor_FieldDecl)
                continue;

            var fieldName = Take(clang_getCursorSpelling(child));
            var fieldNameUtf8 = Encoding.UTF8.GetBytes(fieldName + "\0");
            long offsetBits;
            fixed (byte* p = fieldNameUtf8)
                offsetBits = clang_Type_getOffsetOf(type, p);
            if (offsetBits < 0 || offsetBits % 8 != 0)
                throw new CodegenException($"{Where(child)}: {name}.{fieldName} has no byte offset (bitfield or layout error {offsetBits}).");
            fields.Add(new NativeField(fieldName, Resolve(clang_getCursorType(child), $"{name}.{fieldName}", allowArray: true), offsetBits / 8, Comment(child)));
        }
        return new NativeStruct(name, clang_Type_getSizeOf(type), clang_Type_getAlignOf(type), fields, Comment(cursor));
    }

    private NativeFunction ReadFunction(CXCursor cursor, string name)
    {
        if (clang_Cursor_isVariadic(cursor) != 0)
            throw new CodegenException($"{Where(cursor)}: {name} is variadic and cannot be bound; remove it from the functions list.");
        var parameters = new List<NativeParameter>();
        var count = clang_Cursor_getNumArguments(cursor);
        for (uint i = 0; i < count; i++)
        {
            var argument = clang_Cursor_getArgument(cursor, i);
            var argumentName = Take(clang_getCursorSpelling(argument));
            if (argumentName.Length == 0)
                argumentName = $"arg{i}";
            parameters.Add(new NativeParameter(argumentName, Resolve(clang_getCursorType(argument), $"{name}({argumentName})", allowArray: false)));
        }
        var returnType = Resolve(clang_getCursorResultType(cursor), $"{name} (result)", allowArray: false);
        return new NativeFunction(name, returnType, parameters, Comment(cursor));
    }

    private void ReadConstantProbes(CXCursor enumCursor)
    {
        foreach (var member in Children(enumCursor))
        {
            var name = Take(clang_getCursorSpelling(member));
            if (name.StartsWith(ConstantProbePrefix, StringComparison.Ordinal))
                _constants.Add(new NativeConstant(name[ConstantProbePrefix.Length..], clang_getEnumConstantDeclValue(member)));
        }
    }

    /// <summary>Maps a clang type to its C# form; <paramref name="context"/> names the declaration for errors.</summary>
    private NativeType Resolve(CXType type, string context, bool allowArray)
    {
        switch (type.kind)
        {
            case CXTypeKind.CXType_Elaborated:
                return Resolve(clang_Type_getNamedType(type), context, allowArray);

            case CXTypeKind.CXType_Typedef:
            {
                var typedefName = Take(clang_getTypedefName(type));
                if (_opaque.Contains(typedefName))
                    return new PrimitiveType("nint");
                if (_opaqueStructs.Contains(typedefName))
                    return OpaqueStruct(type, typedefName, context, allowArray);
                if (WellKnownTypedefs.TryGetValue(typedefName, out var primitive))
                    return new PrimitiveType(primitive);
                return Resolve(clang_getTypedefDeclUnderlyingType(clang_getTypeDeclaration(type)), context, allowArray);
            }

            case CXTypeKind.CXType_Record:
            case CXTypeKind.CXType_Enum:
            {
                var declaration = clang_getTypeDeclaration(type);
                var name = Take(clang_getCursorSpelling(declaration));
                if (type.kind == CXTypeKind.CXType_Record && _opaqueStructs.Contains(name))
                    return OpaqueStruct(type, name, context, allowArray);
                if (name.Length == 0 || clang_Cursor_isAnonymous(declaration) != 0)
                    throw new CodegenException($"{context}: anonymous {Take(clang_getTypeSpelling(type))} cannot be bound; give it a name.");
                return new NamedType(name, type.kind == CXTypeKind.CXType_Enum);
            }

            case CXTypeKind.CXType_Pointer:
            {
                var pointee = clang_getPointeeType(type);
                var canonical = clang_getCanonicalType(pointee);
                if (canonical.kind is CXTypeKind.CXType_FunctionProto or CXTypeKind.CXType_FunctionNoProto)
                    return new PrimitiveType("nint");
                if (canonical.kind == CXTypeKind.CXType_Record && clang_Type_getSizeOf(canonical) == CXTypeLayoutError_Incomplete)
                    throw new CodegenException($"{context}: points to the incomplete {Take(clang_getTypeSpelling(pointee))}; list its typedef in opaque_types to bind it as nint.");
                return new PointerType(Resolve(pointee, context, allowArray: false));
            }

            case CXTypeKind.CXType_ConstantArray when allowArray:
            {
                var element = Resolve(clang_getArrayElementType(type), context, allowArray: false) switch
                {
                    PrimitiveType p when p.Name != "void" => p,
                    NamedType { IsEnum: true } e => new PrimitiveType(EnumUnderlying(e.Name, context)),
                    var other => throw new CodegenException($"{context}: an array of {other.CSharp} cannot be a C# fixed buffer; only arrays of integers and floats are supported."),
                };
                return new FixedArrayType(element, clang_getArraySize(type));
            }

            default:
                return Builtin(type.kind) is { } builtin
                    ? new PrimitiveType(builtin)
                    : throw new CodegenException($"{context}: type {Take(clang_getTypeSpelling(type))} ({type.kind}) is not supported by the binding generator.");
        }
    }

    /// <summary>
    /// A struct listed in opaque_structs (one with bitfields, such as hipDeviceArch_t): a field of
    /// that type becomes a byte array of its size, keeping the enclosing struct's layout.
    /// </summary>
    private static NativeType OpaqueStruct(CXType type, string name, string context, bool allowArray)
    {
        if (!allowArray)
            throw new CodegenException($"{context}: {name} is in opaque_structs, which can only be the type of a struct field (not a parameter, result or pointee).");
        var size = clang_Type_getSizeOf(type);
        if (size <= 0)
            throw new CodegenException($"{context}: {name} in opaque_structs has no size ({size}).");
        return new FixedArrayType(new PrimitiveType("byte"), size);
    }

    private string EnumUnderlying(string name, string context) =>
        _enums.FirstOrDefault(e => e.Name == name)?.UnderlyingType
        ?? throw new CodegenException($"{context}: an array of enum {name}, which is not bound.");

    private static string? Builtin(CXTypeKind kind) => kind switch
    {
        CXTypeKind.CXType_Void => "void",
        CXTypeKind.CXType_Bool => "byte",
        CXTypeKind.CXType_Char_S or CXTypeKind.CXType_Char_U or CXTypeKind.CXType_UChar => "byte",
        CXTypeKind.CXType_SChar => "sbyte",
        CXTypeKind.CXType_Short => "short",
        CXTypeKind.CXType_UShort => "ushort",
        CXTypeKind.CXType_Int => "int",
        CXTypeKind.CXType_UInt => "uint",
        CXTypeKind.CXType_Long => "nint",   // LP64 targets; fixed-width typedefs are preferred above
        CXTypeKind.CXType_ULong => "nuint",
        CXTypeKind.CXType_LongLong => "long",
        CXTypeKind.CXType_ULongLong => "ulong",
        CXTypeKind.CXType_Float => "float",
        CXTypeKind.CXType_Double => "double",
        _ => null,
    };

    private void CheckAllowListsFound()
    {
        void Check(string kind, IReadOnlyList<string> allowList, IEnumerable<string> found)
        {
            var missing = allowList.Except(found).ToList();
            if (missing.Count > 0)
                throw new CodegenException($"bindings.toml: {kind} {string.Join(", ", missing)} not declared (with a definition) by {_job.Header} or the headers it includes.");
        }

        Check("functions", _job.Functions, _functions.Select(f => f.Name));
        Check("structs", _job.Structs, _structs.Select(s => s.Name));
        Check("enums", _job.Enums, _enums.Select(e => e.Name));
        Check("constants", _job.Constants, _constants.Select(c => c.Name));
    }

    private void CheckReferencedTypesAreBound()
    {
        var bound = _enums.Select(e => e.Name).Concat(_structs.Select(s => s.Name)).ToHashSet(StringComparer.Ordinal);
        var uses = _structs.SelectMany(s => s.Fields.Select(f => (User: $"{s.Name}.{f.Name}", f.Type)))
            .Concat(_functions.SelectMany(f => f.Parameters.Select(p => (User: $"{f.Name}({p.Name})", p.Type)).Append(($"{f.Name} (result)", f.ReturnType))));
        foreach (var (user, type) in uses)
        {
            var named = Innermost(type) as NamedType;
            if (named is not null && !bound.Contains(named.Name))
                throw new CodegenException($"bindings.toml: {user} uses {named.Name}, which is not bound; add it to {(named.IsEnum ? "enums" : "structs")} (or opaque_types for a handle).");
        }
    }

    private static NativeType Innermost(NativeType type) => type is PointerType p ? Innermost(p.Pointee) : type;

    /// <summary>The comment clang attaches to a declaration (with -fparse-all-comments, plain comments too), without its markers.</summary>
    private static string? Comment(CXCursor cursor)
    {
        var raw = Take(clang_Cursor_getRawCommentText(cursor));
        if (raw.Length == 0)
            return null;
        var lines = raw.ReplaceLineEndings("\n").Split('\n')
            .Select(line => line.Trim().TrimStart('/').Trim())
            .Select(line => line.StartsWith("/*", StringComparison.Ordinal) ? line[2..].TrimStart('*') : line)
            .Select(line => line.EndsWith("*/", StringComparison.Ordinal) ? line[..^2] : line)
            .Select(line => line.TrimStart('*').Trim())
            .Select(line => line.StartsWith("!<", StringComparison.Ordinal) ? line[2..].TrimStart() : line) /* Doxygen "after the member" markers: ///< and /*!< */
            .Select(line => line.StartsWith('<') ? line[1..].TrimStart() : line)
            .Where(line => line.Length > 0);
        var text = string.Join(" ", lines);
        return text.Length > 0 ? text : null;
    }

    private static string FileOf(CXCursor cursor)
    {
        nint file;
        uint line, column, offset;
        clang_getFileLocation(clang_getCursorLocation(cursor), &file, &line, &column, &offset);
        return file == 0 ? "" : Path.GetFullPath(Take(clang_getFileName(file)));
    }

    private static string Where(CXCursor cursor)
    {
        nint file;
        uint line, column, offset;
        clang_getFileLocation(clang_getCursorLocation(cursor), &file, &line, &column, &offset);
        return file == 0 ? "<unknown>" : $"{Take(clang_getFileName(file))}:{line}:{column}";
    }
}

/// <summary>
/// Finds clang's resource directory (its own stddef.h, stdint.h …, from libclang-common-14-dev):
/// FA_CLANG_RESOURCE_DIR when set, else the newest /usr/lib/llvm-14/lib/clang/&lt;version&gt; that has them.
/// </summary>
internal static class ClangResourceDirectory
{
    private static readonly string[] Roots = ["/usr/lib/llvm-14/lib/clang", "/usr/lib/clang", "/usr/local/lib/clang"];

    public static string Find()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("FA_CLANG_RESOURCE_DIR");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return HasBuiltinHeaders(fromEnvironment)
                ? fromEnvironment
                : throw new CodegenException($"FA_CLANG_RESOURCE_DIR={fromEnvironment} has no include/stddef.h.");
        }
        var found = Roots
            .Where(Directory.Exists)
            .SelectMany(root => Directory.EnumerateDirectories(root))
            .Where(HasBuiltinHeaders)
            .OrderByDescending(d => Version.TryParse(Path.GetFileName(d), out var v) ? v : new Version(0, 0))
            .FirstOrDefault();
        return found ?? throw new CodegenException(
            $"clang's builtin headers (stddef.h, stdint.h) were not found under {string.Join(", ", Roots)}; " +
            "run tools/setup.sh (it installs libclang-common-14-dev), or set FA_CLANG_RESOURCE_DIR.");
    }

    private static bool HasBuiltinHeaders(string directory) =>
        File.Exists(Path.Combine(directory, "include", "stddef.h")) && File.Exists(Path.Combine(directory, "include", "stdint.h"));
}
