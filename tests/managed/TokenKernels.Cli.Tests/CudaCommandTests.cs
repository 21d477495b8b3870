using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Cli.Methods;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// <c>--device cuda</c> against <c>--device cpu</c> for every method the CLI runs on CUDA, and the refusals: run where a CUDA device
/// is present, ignored (with the reason) where none is.
/// </summary>
public sealed class CudaCommandTests
{
    private static IEnumerable<TestCaseData> CudaMethods =>
        from method in MethodCatalog.All.Where(m => m.RunsOnCuda)
        from dataType in new[] { StoredDataType.Float32, StoredDataType.Float16, StoredDataType.BFloat16 }
        select new TestCaseData(method.Name, dataType.ShortName());

    private static void RequireCuda()
    {
        TokenKernelsLibrary.Load();
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("No CUDA device: " + Cuda.UnavailableReason + ".");
        }
    }

    [TestCaseSource(nameof(CudaMethods))]
    public void CompressOnCudaGivesTheCpusResult(string methodName, string dataTypeName)
    {
        RequireCuda();
        TokenMethod method = MethodCatalog.Find(methodName)!;
        StoredDataType dataType = new[] { StoredDataType.Float32, StoredDataType.Float16, StoredDataType.BFloat16 }.Single(t => t.ShortName() == dataTypeName);
        using var directory = new TemporaryDirectory();
        // Two items of a video of 5 frames of 6 x 7 patches (an image method gets 1 frame), 40 channels, N(0, 1)-like values
        // with frames correlated so that the video methods find something to remove.
        int frames = method.IsVideo || method.AcceptsFrames ? 5 : 1;
        long[] shape = frames > 1 ? new long[] { 2, frames, 6, 7, 40 } : new long[] { 2, 42, 40 };
        var random = new Random(7);
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        long frame = 42 * 40;
        for (long i = 0; i < values.Length; i++)
        {
            float fresh = (float)(random.NextDouble() * 2 - 1);
            values[i] = i % (frames * frame) >= frame ? 0.9f * values[i - frame] + 0.4f * fresh : fresh;
        }
        string input = directory.File("tokens.safetensors");
        StoredTensor tokens = dataType switch
        {
            StoredDataType.Float16 => StoredTensor.FromArray("tokens", ElementConversion.FromFloat32<Float16>(values), shape),
            StoredDataType.BFloat16 => StoredTensor.FromArray("tokens", ElementConversion.FromFloat32<BFloat16>(values), shape),
            _ => StoredTensor.FromArray("tokens", values, shape),
        };
        TensorFile.Write(input, new[] { tokens });
        string grid = frames > 1 ? $"{frames}x6x7" : "6x7";
        // PLLaVA's defaults (16, 12, 12) would keep this small video whole: pool it for real.
        string[] settings = methodName == "adaptive-avg" ? new[] { "--out-frames", "2", "--out-height", "3", "--out-width", "4" } : Array.Empty<string>();

        CliRun cpu = CliProcess.Run(["compress", "--method", methodName, "-i", input, "-o", directory.File("cpu.safetensors"), "--grid", grid, "--device", "cpu", .. settings]);
        CliRun cuda = CliProcess.Run(["compress", "--method", methodName, "-i", input, "-o", directory.File("cuda.safetensors"), "--grid", grid, "--device", "cuda", .. settings]);
        Assert.That(cpu.ExitCode, Is.EqualTo(0), cpu.ToString());
        Assert.That(cuda.ExitCode, Is.EqualTo(0), cuda.ToString());

        Dictionary<string, StoredTensor> onCpu = TensorFile.Read(directory.File("cpu.safetensors")).ToDictionary(t => t.Name);
        Dictionary<string, StoredTensor> onCuda = TensorFile.Read(directory.File("cuda.safetensors")).ToDictionary(t => t.Name);
        Assert.That(onCuda.Keys, Is.EquivalentTo(onCpu.Keys), "the same outputs");
        foreach (string name in new[] { "source_map", "positions", "tokens_per_item" }.Where(onCpu.ContainsKey))
        {
            Assert.That(onCuda[name].Shape, Is.EqualTo(onCpu[name].Shape), name);
            Assert.That(onCuda[name].ToArray<int>(), Is.EqualTo(onCpu[name].ToArray<int>()), name + ": the same tokens kept and merged");
        }
        foreach (string name in new[] { "tokens", "sizes" }.Where(onCpu.ContainsKey))
        {
            Assert.That(onCuda[name].Shape, Is.EqualTo(onCpu[name].Shape), name);
            // The element type's rounding of the same float32 result: one unit in the last place of values about 1.
            float tolerance = dataType switch { StoredDataType.Float16 => 2e-3f, StoredDataType.BFloat16 => 1.6e-2f, _ => 1e-5f };
            Assert.That(onCuda[name].ToFloat32(), Is.EqualTo(onCpu[name].ToFloat32()).Within(tolerance), name);
        }
    }

    [Test]
    public void BenchOnCudaTimesTheMethodsThatRunThere()
    {
        RequireCuda();
        CliRun run = CliProcess.Run("bench", "--device", "cuda", "--methods", "evs,divprune,prunevid", "--quick", "--runs", "1");
        Assert.That(run.ExitCode, Is.EqualTo(0), run.ToString());
        Assert.That(run.StandardOutput, Does.Contain("evs").And.Contain("cuda"), run.ToString());
        Assert.That(run.StandardError, Does.Contain("prunevid run on the CPU only"), run.ToString());
    }

    [Test]
    public void AMethodThatRunsOnTheCpuOnlyIsRefusedOnCuda()
    {
        using var directory = new TemporaryDirectory();
        string input = directory.File("tokens.npy");
        TensorFile.Write(input, new[] { StoredTensor.FromArray("tokens", new float[2 * 3 * 4 * 8], 1, 2, 3, 4, 8) });
        CliRun run = CliProcess.Run("compress", "--method", "prunevid", "-i", input, "-o", directory.File("out.npy"), "--device", "cuda");
        Assert.That(run.ExitCode, Is.EqualTo(2), run.ToString());
        Assert.That(run.StandardError, Does.Contain("prunevid runs on the CPU only"), run.ToString());
        Assert.That(System.IO.File.Exists(directory.File("out.npy")), Is.False);
    }

    [Test]
    public void WithoutADeviceCudaIsRefusedWithTheReason()
    {
        TokenKernelsLibrary.Load();
        if (Cuda.IsAvailable)
        {
            Assert.Ignore("A CUDA device is present.");
        }
        using var directory = new TemporaryDirectory();
        string input = directory.File("tokens.npy");
        TensorFile.Write(input, new[] { StoredTensor.FromArray("tokens", new float[2 * 3 * 4 * 8], 1, 2, 3, 4, 8) });
        CliRun compress = CliProcess.Run("compress", "--method", "evs", "-i", input, "-o", directory.File("out.npy"), "--device", "cuda");
        Assert.That(compress.ExitCode, Is.EqualTo(1), compress.ToString());
        Assert.That(compress.StandardError, Does.Contain("no CUDA device"), compress.ToString());
        Assert.That(System.IO.File.Exists(directory.File("out.npy")), Is.False);
        CliRun bench = CliProcess.Run("bench", "--device", "cuda", "--methods", "evs");
        Assert.That(bench.ExitCode, Is.EqualTo(1), bench.ToString());
        Assert.That(bench.StandardError, Does.Contain("no CUDA device"), bench.ToString());
    }
}
