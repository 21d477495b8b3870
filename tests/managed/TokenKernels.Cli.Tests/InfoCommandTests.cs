using NUnit.Framework;

namespace TokenKernels.Cli.Tests;

/// <summary><c>tokenkernels info</c>: what it prints agrees with the library as this process loads it.</summary>
public sealed class InfoCommandTests
{
    [Test]
    public void InfoNamesTheLibraryTheCpuVariantAndCuda()
    {
        Assert.That(NativeLibrary.TryLoad(out string? error), Is.True, error);
        CliRun run = CliProcess.Run("info");
        CliAssert.Succeeded(run);
        string output = run.StandardOutput;
        Assert.That(output, Does.Contain("TokenKernels " + TokenKernelsLibrary.VersionString), run.ToString());
        Assert.That(TokenKernelsLibrary.CpuIsa, Is.AnyOf("avx512", "avx2", "portable"));
        Assert.That(output, Does.Match(@"(?m)^cpu\s+" + TokenKernelsLibrary.CpuIsa + @", \d+ threads"), run.ToString());
        Assert.That(output, Does.Match(@"(?m)^cuda\s+(built in|not built)"), run.ToString());
        if (TokenKernelsLibrary.IsCudaBuilt)
        {
            Assert.That(output, Does.Match(@"(?m)^(devices\s+none \(.+\)|device 0\s+.+)$"), run.ToString());
        }
        foreach (Methods.TokenMethod method in Methods.MethodCatalog.All)
        {
            Assert.That(output, Does.Match(@"(?m)^\s+" + method.Name + @"\s+\S"), "info lists " + method.Name + "\n" + run);
        }
    }
}
