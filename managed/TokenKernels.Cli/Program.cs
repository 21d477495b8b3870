using System;
using System.CommandLine;
using TokenKernels.Cli;
using TokenKernels.Cli.Commands;

RootCommand root = CliCommands.Build();
ParseResult parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
    {
        Console.Error.WriteLine("error: " + error.Message);
    }
    Console.Error.WriteLine("Run 'tokenkernels --help' for the commands and options.");
    return ExitCodes.Usage;
}
try
{
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (Environment.GetEnvironmentVariable("TOKENKERNELS_CLI_STACK_TRACES") != "1")
{
    // Commands turn the errors a user can cause into messages and exit codes; anything else is a bug, reported in one line.
    Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message} (set TOKENKERNELS_CLI_STACK_TRACES=1 for the stack trace, and report it)");
    return ExitCodes.Failure;
}
