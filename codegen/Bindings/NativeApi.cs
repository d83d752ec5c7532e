namespace FlashAttention.Codegen.Bindings;

/// <summary>What a header declares that a binding job selected, with the layout libclang computed.</summary>
internal sealed record NativeApi(
    IReadOnlyList<NativeConstant> Constants,
    IReadOnlyList<NativeEnum> Enums,
    IReadOnlyList<NativeStruct> Structs,
    IReadOnlyList<NativeFunction> Functions);

internal sealed record NativeConstant(string Name, long Value);

/// <summary>A C enum. <see cref="UnderlyingType"/> is the C# integer type of the same size that holds every value.</summary>
internal sealed record NativeEnum(string Name, string UnderlyingType, IReadOnlyList<NativeEnumMember> Members, string? Comment);

internal sealed record NativeEnumMember(string Name, long Value, string? Comment);

/// <summary>A C struct and its layout in bytes.</summary>
internal sealed record NativeStruct(string Name, long Size, long Alignment, IReadOnlyList<NativeField> Fields, string? Comment);

internal sealed record NativeField(string Name, NativeType Type, long Offset, string? Comment);

internal sealed record NativeFunction(string Name, NativeType ReturnType, IReadOnlyList<NativeParameter> Parameters, string? Comment);

internal sealed record NativeParameter(string Name, NativeType Type);

/// <summary>A C type as the C# side spells it.</summary>
internal abstract record NativeType
{
    /// <summary>The C# type name (fixed-size arrays give their element type; see <see cref="FixedArrayType"/>).</summary>
    public abstract string CSharp { get; }
}

/// <summary>A C# primitive: int, uint, byte, float, nuint, void, and nint for opaque handles.</summary>
internal sealed record PrimitiveType(string Name) : NativeType
{
    public override string CSharp => Name;
}

/// <summary>A bound enum or struct, by its C name.</summary>
internal sealed record NamedType(string Name, bool IsEnum) : NativeType
{
    public override string CSharp => Name;
}

internal sealed record PointerType(NativeType Pointee) : NativeType
{
    public override string CSharp => Pointee.CSharp + "*";
}

/// <summary>A constant-size array field (char[64]); C# declares it as a fixed buffer of the element type.</summary>
internal sealed record FixedArrayType(PrimitiveType Element, long Length) : NativeType
{
    public override string CSharp => Element.CSharp;
}
