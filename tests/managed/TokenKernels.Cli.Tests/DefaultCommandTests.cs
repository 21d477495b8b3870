using System.IO;
using NUnit.Framework;
using TokenKernels.Cli.Commands;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Tests;

/// <summary><c>tokenkernels</c> with no command: the demo into ./tokenkernels-demo, then the quick bench (about 20 s on 2 cores).</summary>
public sealed class DefaultCommandTests
{
    [Test]
    public void NoCommandRunsTheDemoThenTheQuickBench()
    {
        using var directory = new TemporaryDirectory();
        CliRun run = CliProcess.RunIn(directory.Path);
        CliAssert.Succeeded(run);
        string pictures = directory.File(DemoCommand.DefaultOutputDirectory);
        Assert.That(File.Exists(Path.Combine(pictures, "sheet.png")), Is.True, run.ToString());
        foreach (TokenMethod method in DemoCommand.DefaultMethods)
        {
            Assert.That(File.Exists(Path.Combine(pictures, method.Name + ".png")), Is.True, method.Name);
        }
        Assert.That(run.StandardOutput, Does.Contain("median ms"), run.ToString());
        foreach (TokenMethod method in MethodCatalog.All)
        {
            Assert.That(run.StandardOutput, Does.Contain("│ " + method.Name + " "), "the bench table's row of " + method.Name);
        }
        Assert.That(run.StandardOutput, Does.Not.Contain("long video"), "--quick leaves the long video out");
    }
}
