using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// <c>tokenkernels compress</c> refusing what it cannot do: the exit code scripts tell the failures apart by, a message that
/// names the offending file or option and what was expected, no stack trace, and no output (nor temporary) file written.
/// </summary>
public sealed class CompressErrorTests
{
    private const int Channels = 8;

    /// <summary>Runs compress in a fresh directory holding <paramref name="inputs"/>; fails if the run left any file there.</summary>
    private static CliRun Compress(Dictionary<string, byte[]> inputs, params string[] arguments)
    {
        using var directory = new TemporaryDirectory();
        foreach ((string name, byte[] bytes) in inputs)
        {
            directory.Write(name, bytes);
        }
        string[] before = CliAssert.FilesIn(directory.Path);
        CliRun run = CliProcess.RunIn(directory.Path, ["compress", .. arguments]);
        Assert.That(CliAssert.FilesIn(directory.Path), Is.EqualTo(before), "a rejected call wrote files:\n" + run);
        return run;
    }

    /// <summary>The bytes of a .npy file of tokens of <paramref name="shape"/> as the CLI's writer stores it.</summary>
    private static byte[] Tokens(StoredDataType dataType, params long[] shape) => Bytes("tokens.npy", TestValues.Tensor("tokens", dataType, shape));

    private static byte[] Bytes(string name, params StoredTensor[] tensors)
    {
        using var directory = new TemporaryDirectory();
        TensorFile.Write(directory.File(name), tensors);
        return File.ReadAllBytes(directory.File(name));
    }

    /// <summary>Softmax rows of shape [.., N]: every row uniform.</summary>
    private static StoredTensor UniformAttention(string name, params long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        return StoredTensor.FromArray(name, Enumerable.Repeat(1f / shape[^1], (int)count).ToArray(), shape);
    }

    private static readonly Dictionary<string, byte[]> SquareInput = new() { ["in.npy"] = Tokens(StoredDataType.Float32, 2, 36, Channels) };

    [Test]
    public void AMissingInputFileIsAnInputError()
        => CliAssert.Failed(Compress([], "--method", "divprune", "--input", "missing.npy", "--output", "out.npy"), 3, "missing.npy", "no such file");

    [Test]
    public void ATruncatedNpyFileIsAnInputError()
    {
        byte[] whole = SquareInput["in.npy"];
        CliRun run = Compress(new() { ["in.npy"] = whole[..(whole.Length - 100)] }, "--method", "divprune", "--input", "in.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "in.npy", "truncated", "2304 bytes of data");
    }

    [Test]
    public void AFileWithoutNumpysMagicIsAnInputError()
    {
        byte[] bytes = (byte[])SquareInput["in.npy"].Clone();
        "NOTNUMPY"u8.CopyTo(bytes);
        CliRun run = Compress(new() { ["in.npy"] = bytes }, "--method", "divprune", "--input", "in.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "in.npy", "not a .npy file", "magic");
    }

    [TestCase("<f8", "float64")]
    [TestCase("<c8", "complex64")]
    public void AnUnsupportedNpyTypeIsAnInputError(string descr, string typeName)
    {
        byte[] bytes = HandMade.Npy($"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1, 4, 2), }}", new byte[64]);
        CliRun run = Compress(new() { ["in.npy"] = bytes }, "--method", "divprune", "--input", "in.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "in.npy", typeName, "float32, float16");
    }

    [Test]
    public void TokensThatAreNotASquareGridNeedGrid()
    {
        CliRun run = Compress(new() { ["in.npy"] = Tokens(StoredDataType.Float32, 2, 42, Channels) }, "--method", "divprune", "--input", "in.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "in.npy", "not a square grid", "--grid");
    }

    [Test]
    public void AGridThatDoesNotMatchNIsAnInputError()
    {
        CliRun run = Compress(SquareInput, "--method", "divprune", "--input", "in.npy", "--output", "out.npy", "--grid", "5x7");
        CliAssert.Failed(run, 3, "in.npy", "5x7", "N = 36");
    }

    [Test]
    public void VisionZipWithoutAttentionIsAnInputError()
    {
        CliRun run = Compress(new() { ["in.npy"] = Tokens(StoredDataType.Float32, 2, 37, Channels) }, "--method", "visionzip", "--input", "in.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "in.npy", "visionzip needs attention", "--attention");
    }

    [Test]
    public void FastVRejectsAttentionOfTheWrongShape()
    {
        var inputs = new Dictionary<string, byte[]>(SquareInput) { ["attention.npy"] = Bytes("attention.npy", UniformAttention("attention", 2, 2, 5, 40)) };
        CliRun run = Compress(inputs, "--method", "fastv", "--input", "in.npy", "--attention", "attention.npy", "--output", "out.npy");
        CliAssert.Failed(run, 3, "fastv cannot take", "--attention attention.npy", "[2, 2, 5, 40]", "N = 36");
        Assert.That(run.StandardError, Does.Not.Contain("(Parameter"), run.ToString());
    }

    [Test]
    public void AnUnknownMethodIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "nosuch", "--input", "in.npy", "--output", "out.npy"), 2, "--method", "nosuch", "divprune");

    [Test]
    public void AParameterOfAnotherMethodIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "tome", "--ratio", "0.5", "--input", "in.npy", "--output", "out.npy"), 2, "--ratio", "tome", "--r");

    [Test]
    public void AValueOutOfRangeIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "divprune", "--ratio", "1.5", "--input", "in.npy", "--output", "out.npy"), 2, "--ratio", "[0, 1]", "1.5");

    [Test]
    public void AValueThatIsNotANumberIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "divprune", "--ratio", "half", "--input", "in.npy", "--output", "out.npy"), 2, "--ratio", "a number", "half");

    [Test]
    public void BFloat16TokensCannotGoToNpy()
    {
        var inputs = new Dictionary<string, byte[]> { ["in.safetensors"] = Bytes("in.safetensors", TestValues.Tensor("tokens", StoredDataType.BFloat16, 2, 36, Channels)) };
        CliRun run = Compress(inputs, "--method", "divprune", "--input", "in.safetensors", "--output", "out.npy");
        CliAssert.Failed(run, 2, "--output out.npy", "bfloat16", ".safetensors");
    }

    [Test]
    public void AnOutputOfAnUnknownKindIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "divprune", "--input", "in.npy", "--output", "out.pt"), 2, "--output out.pt", ".npy or .safetensors");

    [TestCase("out.npy")]
    [TestCase("out.safetensors")]
    public void AnOutputInAMissingDirectoryIsAnOutputError(string name)
    {
        string output = Path.Combine("no-such-directory", name);
        CliAssert.Failed(Compress(SquareInput, "--method", "divprune", "--input", "in.npy", "--output", output), 4, output, "does not exist");
    }

    [Test]
    public void AGridOfMoreThanIntMaxValueTokensIsAUsageError()
        => CliAssert.Failed(Compress(SquareInput, "--method", "fastv", "--input", "in.npy", "--output", "out.npy", "--grid", "65536x65536"),
                            2, "--grid", "2^31 - 1", "65536x65536");

    [Test]
    public void SideFilesOfAnEarlierRunThatThisOneDoesNotWriteAreRemoved()
    {
        using var directory = new TemporaryDirectory();
        directory.Write("in.npy", SquareInput["in.npy"]);
        CliAssert.Succeeded(CliProcess.RunIn(directory.Path, "compress", "--method", "tome", "--input", "in.npy", "--output", "out.npy"));
        Assert.That(CliAssert.FilesIn(directory.Path), Is.EqualTo(new[] { "in.npy", "out.npy", "out.positions.npy", "out.sizes.npy", "out.source_map.npy" }));
        // avgpool gives no positions or sizes: what lies beside out.npy afterwards is avgpool's alone.
        CliAssert.Succeeded(CliProcess.RunIn(directory.Path, "compress", "--method", "avgpool", "--input", "in.npy", "--output", "out.npy"));
        Assert.That(CliAssert.FilesIn(directory.Path), Is.EqualTo(new[] { "in.npy", "out.npy", "out.source_map.npy" }));
    }
}
