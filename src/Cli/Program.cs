using System.CommandLine;
using FlashAttention.Cli;

// flashattn: the command-line front end of the library.
//   info   backends, devices and an example of backend selection
//   run    one random problem, checked against a float64 reference and timed
//   bench  the standard benchmark grid → JSON
//   plot   JSON → PNG (TFLOP/s vs seqlen, one series per implementation)
// Exit codes: see ExitCodes.

var root = new RootCommand("FlashAttention for .NET: exact attention on the best available backend.\n" +
                           "Exit codes: 0 success, 1 result outside the correctness bounds, 2 bad options or invalid problem, " +
                           "3 no backend can run the problem, 4 other errors.")
{
    Options = { CommonOptions.Verbose },
};
root.Add(InfoCommand.Create());
root.Add(RunCommand.Create());
root.Add(BenchCommand.Create());
root.Add(PlotCommand.Create());

var parse = root.Parse(args.Length == 0 ? ["--help"] : args);
if (parse.Errors.Count > 0)
{
    // System.CommandLine would print help and return 1; we keep 1 for "check failed".
    CliErrors.ReportUsage(parse.Errors.Select(e => e.Message), parse.CommandResult.Command.Name);
    return ExitCodes.Usage;
}
return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
