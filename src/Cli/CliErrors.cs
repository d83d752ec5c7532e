using System.CommandLine;
using Spectre.Console;

namespace FlashAttention.Cli;

/// <summary>Process exit codes of every command.</summary>
internal static class ExitCodes
{
    /// <summary>Success (and, for <c>run</c>, the result passed its check).</summary>
    public const int Ok = 0;

    /// <summary><c>run</c>: the result failed the correctness check.</summary>
    public const int CheckFailed = 1;

    /// <summary>Bad command line or an invalid problem (the library's ArgumentException).</summary>
    public const int Usage = 2;

    /// <summary>No backend can run the problem (NoBackendException).</summary>
    public const int NoBackend = 3;

    /// <summary>Any other failure (I/O, a backend error).</summary>
    public const int Error = 4;
}

/// <summary>A problem with the command line found after parsing (inconsistent options).</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Options every command understands.</summary>
internal static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Show stack traces of errors",
        Recursive = true,
    };
}

/// <summary>Turns exceptions into a short message and an exit code.</summary>
internal static class CliErrors
{
    /// <summary>Runs a command body; library exceptions become messages, never stack traces unless --verbose.</summary>
    public static int Guard(ParseResult parse, Func<int> body)
    {
        bool verbose = parse.GetValue(CommonOptions.Verbose);
        try
        {
            return body();
        }
        catch (UsageException e)
        {
            ReportUsage([e.Message], parse.CommandResult.Command.Name);
            return ExitCodes.Usage;
        }
        catch (NoBackendException e)
        {
            AnsiConsole.MarkupLine("[red]error:[/] no backend can run this problem.");
            Render.Explain(e.Report);
            if (verbose) AnsiConsole.WriteException(e);
            return ExitCodes.NoBackend;
        }
        catch (ArgumentException e)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            if (verbose) AnsiConsole.WriteException(e);
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException
                                      or NotSupportedException or InvalidOperationException or FormatException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            if (verbose) AnsiConsole.WriteException(e);
            else AnsiConsole.MarkupLine("[grey](run with --verbose for the stack trace)[/]");
            return ExitCodes.Error;
        }
    }

    /// <summary>Prints command-line errors and a pointer to --help.</summary>
    public static void ReportUsage(IEnumerable<string> messages, string command)
    {
        var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        foreach (string m in messages)
            err.MarkupLine($"[red]error:[/] {Markup.Escape(m)}");
        string help = command == "flashattn" ? "flashattn --help" : $"flashattn {command} --help";
        err.MarkupLine($"[grey]See '{Markup.Escape(help)}'.[/]");
    }
}
