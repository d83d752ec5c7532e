using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FlashAttention.Codegen.Bindings;

// A minimal binding of libclang's C API (clang-c/Index.h, LLVM 14): what the header reader uses
// and nothing else. Names and values follow the C header.

internal enum CXCursorKind
{
    CXCursor_StructDecl = 2,
    CXCursor_UnionDecl = 3,
    CXCursor_EnumDecl = 5,
    CXCursor_FieldDecl = 6,
    CXCursor_EnumConstantDecl = 7,
    CXCursor_FunctionDecl = 8,
    CXCursor_ParmDecl = 10,
    CXCursor_TypedefDecl = 20,
}

internal enum CXTypeKind
{
    CXType_Invalid = 0,
    CXType_Void = 2,
    CXType_Bool = 3,
    CXType_Char_U = 4,
    CXType_UChar = 5,
    CXType_UShort = 8,
    CXType_UInt = 9,
    CXType_ULong = 10,
    CXType_ULongLong = 11,
    CXType_Char_S = 13,
    CXType_SChar = 14,
    CXType_Short = 16,
    CXType_Int = 17,
    CXType_Long = 18,
    CXType_LongLong = 19,
    CXType_Float = 21,
    CXType_Double = 22,
    CXType_Pointer = 101,
    CXType_Record = 105,
    CXType_Enum = 106,
    CXType_Typedef = 107,
    CXType_FunctionNoProto = 110,
    CXType_FunctionProto = 111,
    CXType_ConstantArray = 112,
    CXType_IncompleteArray = 114,
    CXType_Elaborated = 119,
}

internal enum CXChildVisitResult
{
    CXChildVisit_Break = 0,
    CXChildVisit_Continue = 1,
    CXChildVisit_Recurse = 2,
}

internal enum CXDiagnosticSeverity
{
    CXDiagnostic_Ignored = 0,
    CXDiagnostic_Note = 1,
    CXDiagnostic_Warning = 2,
    CXDiagnostic_Error = 3,
    CXDiagnostic_Fatal = 4,
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXString
{
    public void* data;
    public uint private_flags;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXCursor
{
    public CXCursorKind kind;
    public int xdata;
    public void* data0, data1, data2;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXType
{
    public CXTypeKind kind;
    public void* data0, data1;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXSourceLocation
{
    public void* ptr_data0, ptr_data1;
    public uint int_data;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXUnsavedFile
{
    public byte* Filename;
    public byte* Contents;
    public nuint Length;
}

internal static unsafe partial class LibClang
{
    /// <summary>Logical name; <see cref="LibClangLoader"/> resolves it to Debian's libclang-14.so.1.</summary>
    internal const string Library = "libclang";

    internal const uint CXTranslationUnit_SkipFunctionBodies = 0x40;

    /// <summary>clang_Type_getSizeOf/getAlignOf/getOffsetOf return a negative CXTypeLayoutError on failure.</summary>
    internal const long CXTypeLayoutError_Incomplete = -2;

    [LibraryImport(Library)] internal static partial nint clang_createIndex(int excludeDeclarationsFromPCH, int displayDiagnostics);
    [LibraryImport(Library)] internal static partial void clang_disposeIndex(nint index);

    [LibraryImport(Library)]
    internal static partial nint clang_parseTranslationUnit(nint index, byte* source_filename, byte** command_line_args, int num_command_line_args,
        CXUnsavedFile* unsaved_files, uint num_unsaved_files, uint options);

    [LibraryImport(Library)] internal static partial void clang_disposeTranslationUnit(nint unit);

    [LibraryImport(Library)] internal static partial uint clang_getNumDiagnostics(nint unit);
    [LibraryImport(Library)] internal static partial nint clang_getDiagnostic(nint unit, uint index);
    [LibraryImport(Library)] internal static partial CXDiagnosticSeverity clang_getDiagnosticSeverity(nint diagnostic);
    [LibraryImport(Library)] internal static partial CXString clang_formatDiagnostic(nint diagnostic, uint options);
    [LibraryImport(Library)] internal static partial uint clang_defaultDiagnosticDisplayOptions();
    [LibraryImport(Library)] internal static partial void clang_disposeDiagnostic(nint diagnostic);

    [LibraryImport(Library)] internal static partial CXCursor clang_getTranslationUnitCursor(nint unit);
    [LibraryImport(Library)]
    internal static partial uint clang_visitChildren(CXCursor parent, delegate* unmanaged[Cdecl]<CXCursor, CXCursor, nint, CXChildVisitResult> visitor, nint client_data);

    [LibraryImport(Library)] internal static partial CXCursorKind clang_getCursorKind(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXString clang_getCursorSpelling(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXType clang_getCursorType(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXType clang_getCursorResultType(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXSourceLocation clang_getCursorLocation(CXCursor cursor);
    [LibraryImport(Library)] internal static partial void clang_getFileLocation(CXSourceLocation location, nint* file, uint* line, uint* column, uint* offset);
    [LibraryImport(Library)] internal static partial CXString clang_getFileName(nint file);
    [LibraryImport(Library)] internal static partial uint clang_isCursorDefinition(CXCursor cursor);
    [LibraryImport(Library)] internal static partial uint clang_Cursor_isAnonymous(CXCursor cursor);
    [LibraryImport(Library)] internal static partial uint clang_Cursor_isVariadic(CXCursor cursor);
    [LibraryImport(Library)] internal static partial int clang_Cursor_getNumArguments(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXCursor clang_Cursor_getArgument(CXCursor cursor, uint index);
    [LibraryImport(Library)] internal static partial CXString clang_Cursor_getRawCommentText(CXCursor cursor);
    [LibraryImport(Library)] internal static partial long clang_getEnumConstantDeclValue(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXType clang_getEnumDeclIntegerType(CXCursor cursor);
    [LibraryImport(Library)] internal static partial CXType clang_getTypedefDeclUnderlyingType(CXCursor cursor);

    [LibraryImport(Library)] internal static partial CXString clang_getTypeSpelling(CXType type);
    [LibraryImport(Library)] internal static partial CXString clang_getTypedefName(CXType type);
    [LibraryImport(Library)] internal static partial CXType clang_getCanonicalType(CXType type);
    [LibraryImport(Library)] internal static partial CXType clang_getPointeeType(CXType type);
    [LibraryImport(Library)] internal static partial CXType clang_Type_getNamedType(CXType type);
    [LibraryImport(Library)] internal static partial CXCursor clang_getTypeDeclaration(CXType type);
    [LibraryImport(Library)] internal static partial CXType clang_getArrayElementType(CXType type);
    [LibraryImport(Library)] internal static partial long clang_getArraySize(CXType type);
    [LibraryImport(Library)] internal static partial long clang_Type_getSizeOf(CXType type);
    [LibraryImport(Library)] internal static partial long clang_Type_getAlignOf(CXType type);
    [LibraryImport(Library)] internal static partial long clang_Type_getOffsetOf(CXType type, byte* field);

    [LibraryImport(Library)] internal static partial byte* clang_getCString(CXString text);
    [LibraryImport(Library)] internal static partial void clang_disposeString(CXString text);

    /// <summary>Copies a CXString into a managed string and disposes it.</summary>
    internal static string Take(CXString text)
    {
        try
        {
            var chars = clang_getCString(text);
            return chars is null ? "" : Marshal.PtrToStringUTF8((nint)chars) ?? "";
        }
        finally
        {
            clang_disposeString(text);
        }
    }

    /// <summary>The direct children of a cursor, collected through clang_visitChildren.</summary>
    internal static List<CXCursor> Children(CXCursor parent)
    {
        var children = new List<CXCursor>();
        var handle = GCHandle.Alloc(children);
        try
        {
            clang_visitChildren(parent, &CollectChild, GCHandle.ToIntPtr(handle));
        }
        finally
        {
            handle.Free();
        }
        return children;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static CXChildVisitResult CollectChild(CXCursor cursor, CXCursor parent, nint clientData)
    {
        ((List<CXCursor>)GCHandle.FromIntPtr(clientData).Target!).Add(cursor);
        return CXChildVisitResult.CXChildVisit_Continue;
    }
}

/// <summary>
/// Finds libclang by name (Debian's libclang1-14 first) the first time the binding is used, and
/// fails with a message saying what to install when it is not there.
/// </summary>
internal static class LibClangLoader
{
    /// <summary>Tried in order; FA_LIBCLANG (a path or name) goes first when set.</summary>
    private static readonly string[] Candidates =
    [
        "libclang-14.so.1",
        "libclang-14.so",
        "/usr/lib/llvm-14/lib/libclang-14.so.1",
        "libclang.so.1",
        "libclang.so",
    ];

    private static readonly Lazy<nint> Handle = new(Load);
    private static int s_resolverInstalled;

    /// <summary>Loads libclang or throws a <see cref="CodegenException"/> naming the fix.</summary>
    public static void EnsureLoaded()
    {
        if (Interlocked.Exchange(ref s_resolverInstalled, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(LibClangLoader).Assembly,
                (name, _, _) => name == LibClang.Library ? Handle.Value : 0);
        }
        _ = Handle.Value;
    }

    private static nint Load()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("FA_LIBCLANG");
        var candidates = string.IsNullOrEmpty(fromEnvironment) ? Candidates : [fromEnvironment, .. Candidates];
        foreach (var candidate in candidates)
        {
            if (NativeLibrary.TryLoad(candidate, out var handle))
                return handle;
        }
        throw new CodegenException(
            $"libclang was not found (tried {string.Join(", ", candidates)}). The binding generator parses C headers with " +
            "Debian's libclang1-14 and needs the compiler headers of libclang-common-14-dev: run tools/setup.sh " +
            "(or apt-get install libclang1-14 libclang-common-14-dev), or set FA_LIBCLANG to the library's path.");
    }
}
