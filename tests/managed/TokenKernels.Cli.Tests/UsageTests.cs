using NUnit.Framework;

namespace TokenKernels.Cli.Tests;

/// <summary>The command line itself: help, unknown commands and options.</summary>
public sealed class UsageTests
{
    [Test]
    public void HelpListsTheCommands()
    {
        CliRun run = CliProcess.Run("--help");
        Assert.That(run.ExitCode, Is.EqualTo(0), run.ToString());
        foreach (string command in new[] { "info", "compress", "demo", "bench" })
        {
            Assert.That(run.StandardOutput, Does.Contain(command), run.ToString());
        }
    }

    [Test]
    public void AnUnknownOptionIsAUsageError()
    {
        CliRun run = CliProcess.Run("info", "--no-such-option");
        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.StandardError, Does.Contain("--no-such-option"), run.ToString());
        Assert.That(run.StandardError, Does.Not.Contain("   at "), "no stack trace: " + run);
    }
}
