using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;

namespace TokenKernels.Cli.Tests;

/// <summary>What one run of the CLI left behind.</summary>
/// <param name="ExitCode">The process's exit code.</param>
/// <param name="StandardOutput">Everything it wrote to standard output.</param>
/// <param name="StandardError">Everything it wrote to standard error.</param>
internal sealed record CliRun(int ExitCode, string StandardOutput, string StandardError)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StandardOutput}\n--- stderr\n{StandardError}";
}

/// <summary>Runs the CLI as a user does: <c>dotnet TokenKernels.Cli.dll ...</c> in a child process, from this test's output directory.</summary>
internal static class CliProcess
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    /// <summary>Runs the CLI with <paramref name="arguments"/> in <paramref name="workingDirectory"/> (default: the current one) and waits for it.</summary>
    public static CliRun RunIn(string? workingDirectory, params string[] arguments)
    {
        string cli = Path.Combine(AppContext.BaseDirectory, "TokenKernels.Cli.dll");
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        start.ArgumentList.Add(cli);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // Plain output: no colours or cursor movement from Spectre.Console in what the tests read.
        start.Environment["NO_COLOR"] = "1";
        start.Environment["TERM"] = "dumb";
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.StandardInput.Close();
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"tokenkernels {string.Join(' ', arguments)} ran longer than {Timeout}.");
        }
        return new CliRun(process.ExitCode, output.Result, error.Result);
    }

    // The dotnet host that runs this test program when the SDK started it, else the runtime's in DOTNET_ROOT (a GPU machine's
    // carried runtime), else the one on PATH.
    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && File.Exists(Path.Combine(root, "dotnet")))
        {
            return Path.Combine(root, "dotnet");
        }
        return "dotnet";
    }

    /// <summary>Runs the CLI in the current directory.</summary>
    public static CliRun Run(params string[] arguments) => RunIn(null, arguments);
}
