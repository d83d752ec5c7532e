namespace FlashAttention.Codegen;

/// <summary>
/// A problem the user can fix (bad matrix or config, template error, bad command line, missing
/// libclang). The message is shown as is, so it names the file and what was expected.
/// </summary>
internal sealed class CodegenException : Exception
{
    public CodegenException(string message) : base(message) { }

    public CodegenException(string message, Exception inner) : base(message, inner) { }
}
