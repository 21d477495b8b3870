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
return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
