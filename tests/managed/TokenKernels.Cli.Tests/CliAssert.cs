using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace TokenKernels.Cli.Tests;

/// <summary>Checks of a CLI run that the command tests share.</summary>
internal static class CliAssert
{
    // A .NET stack frame as an unhandled exception prints it: "   at Namespace.Type.Method(...)".
    private static readonly Regex StackFrame = new(@"^\s+at\s", RegexOptions.Multiline);

    /// <summary>Fails unless the run exited with 0.</summary>
    public static void Succeeded(CliRun run)
    {
        Assert.That(run.ExitCode, Is.EqualTo(0), run.ToString());
        NoStackTrace(run);
    }

    /// <summary>
    /// Fails unless the run exited with <paramref name="exitCode"/>, its standard error has no stack trace and names every one of
    /// <paramref name="mentions"/> (the offending file or option, and what was expected).
    /// </summary>
    public static void Failed(CliRun run, int exitCode, params string[] mentions)
    {
        Assert.That(run.ExitCode, Is.EqualTo(exitCode), run.ToString());
        Assert.That(run.StandardError, Does.StartWith("error: "), run.ToString());
        foreach (string mention in mentions)
        {
            Assert.That(run.StandardError, Does.Contain(mention), run.ToString());
        }
        NoStackTrace(run);
    }

    /// <summary>Fails when standard output or error holds a line of a stack trace.</summary>
    public static void NoStackTrace(CliRun run)
    {
        Assert.That(StackFrame.IsMatch(run.StandardError), Is.False, "a stack trace on standard error:\n" + run);
        Assert.That(StackFrame.IsMatch(run.StandardOutput), Is.False, "a stack trace on standard output:\n" + run);
    }

    /// <summary>The names of the files under <paramref name="directory"/>, hidden and temporary ones included, sorted.</summary>
    public static string[] FilesIn(string directory)
        => Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(directory, path)).Order(StringComparer.Ordinal).ToArray();
}
