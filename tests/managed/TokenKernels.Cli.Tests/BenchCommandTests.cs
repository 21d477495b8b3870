using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using NUnit.Framework;
using TokenKernels.Cli.Bench;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Tests;

/// <summary><c>tokenkernels bench</c>, kept cheap: two methods, <c>--quick</c> (no long video), one timed call.</summary>
public sealed class BenchCommandTests
{
    [Test]
    public void BenchPrintsATableAndWritesJson()
    {
        using var directory = new TemporaryDirectory();
        CliRun run = CliProcess.RunIn(directory.Path, "bench", "--quick", "--runs", "1", "--methods", "divprune,evs", "--json", "out.json");
        CliAssert.Succeeded(run);
        Assert.That(run.StandardOutput, Does.Contain("median ms").And.Contain("divprune").And.Contain("evs"), run.ToString());

        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(directory.File("out.json")));
        JsonElement[] results = json.RootElement.GetProperty("results").EnumerateArray().ToArray();
        BenchCase[] cases = new[] { "divprune", "evs" }.SelectMany(name => BenchCases.For(MethodCatalog.Find(name)!)).Where(c => !c.IsLong).ToArray();
        Assert.That(results.Select(r => (r.GetProperty("method").GetString(), r.GetProperty("workload").GetString())),
            Is.EqualTo(cases.Select(c => ((string?)c.Method.Name, (string?)c.Workload))));
        foreach ((JsonElement result, BenchCase benchCase) in results.Zip(cases))
        {
            int tokensIn = result.GetProperty("tokensIn").GetInt32();
            Assert.That(tokensIn, Is.EqualTo(benchCase.Length));
            int expectedOut = benchCase.Method.Name == "divprune"
                ? (int)Math.Round(0.098 * tokensIn, MidpointRounding.ToEven)
                : (int)VideoPruning.EvsRetainedTokens(benchCase.Grid.Frames, benchCase.Grid.Height, benchCase.Grid.Width, 0.75);
            Assert.That(result.GetProperty("tokensOut").GetInt32(), Is.EqualTo(expectedOut), benchCase.Workload);
            Assert.That(result.GetProperty("runs").GetInt32(), Is.EqualTo(1));
            Assert.That(result.GetProperty("medianMilliseconds").GetDouble(), Is.GreaterThan(0));
            Assert.That(result.GetProperty("dataType").GetString(), Is.EqualTo("f32"));
        }
    }

    [Test]
    public void JsonToStandardOutputIsOnlyJson()
    {
        CliRun run = CliProcess.Run("bench", "--quick", "--runs", "1", "--methods", "divprune", "--json", "-");
        CliAssert.Succeeded(run);
        using JsonDocument json = JsonDocument.Parse(run.StandardOutput);
        Assert.That(json.RootElement.GetProperty("results").GetArrayLength(), Is.EqualTo(BenchCases.For(MethodCatalog.Find("divprune")!).Count()));
    }

    [Test]
    public void AnUnknownMethodIsAUsageError()
        => CliAssert.Failed(CliProcess.Run("bench", "--methods", "nosuch"), 2, "--methods", "nosuch", "divprune");

    [Test]
    public void ZeroRunsIsAUsageError()
        => CliAssert.Failed(CliProcess.Run("bench", "--runs", "0"), 2, "--runs", "1 or more");

    [Test]
    public void CudaWithoutADeviceIsRefusedSayingWhy()
    {
        Assert.That(NativeLibrary.TryLoad(out string? error), Is.True, error);
        if (Cuda.IsAvailable)
        {
            Assert.Ignore("A CUDA device is present: CudaCommandTests times the methods on it.");
        }
        CliAssert.Failed(CliProcess.Run("bench", "--methods", "divprune", "--device", "cuda"), 1, "--device cuda", "no CUDA device", Cuda.UnavailableReason!);
    }
}
