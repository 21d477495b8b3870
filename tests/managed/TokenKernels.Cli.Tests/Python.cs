using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;
using NUnit.Framework;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// Debian's Python (/usr/bin/python3, which has numpy and PyTorch from apt; a python3 earlier on PATH may lack them),
/// run as a child process for the interoperability tests.
/// </summary>
internal static class Python
{
    public const string Executable = "/usr/bin/python3";

    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    /// <summary>Runs <paramref name="script"/> in <paramref name="workingDirectory"/> and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) Run(string script, string workingDirectory)
    {
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{Executable} did not start.");
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            Assert.Fail($"{Executable} cannot be run ({exception.Message}): these tests need Debian's python3 with numpy (apt install python3-numpy).");
            throw;
        }
        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{Executable} ran longer than {Timeout}.");
            }
            return (process.ExitCode, output.Result + error.Result);
        }
    }

    /// <summary>Runs <paramref name="script"/> and fails the test unless it exits with 0.</summary>
    public static string RunChecked(string script, string workingDirectory)
    {
        (int exitCode, string output) = Run(script, workingDirectory);
        Assert.That(exitCode, Is.EqualTo(0), $"{Executable} failed:\n{output}");
        return output;
    }

    /// <summary>Fails the test, saying what to install, unless <c>import <paramref name="module"/></c> works.</summary>
    public static void Require(string module, string debianPackage)
    {
        (int exitCode, string output) = Run("import " + module, Path.GetTempPath());
        if (exitCode != 0)
        {
            Assert.Fail($"these tests need {module} in {Executable} (apt install {debianPackage}): {output.Trim()}");
        }
    }
}
