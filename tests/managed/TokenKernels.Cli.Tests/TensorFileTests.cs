using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>StoredTensor, the .npy and .safetensors readers and writers in process, and TensorFile's dispatch and errors.</summary>
public sealed class TensorFileTests
{
    private static readonly long[][] Shapes =
    [
        [],
        [7],
        [2, 3, 4, 5],
        [3, 0, 4],
        [3, 577, 1024],
    ];

    private static IEnumerable<TestCaseData> RoundTripCases()
    {
        foreach (StoredDataType dataType in Enum.GetValues<StoredDataType>())
        {
            foreach (long[] shape in Shapes)
            {
                foreach (string extension in new[] { ".npy", ".safetensors" })
                {
                    if (dataType == StoredDataType.BFloat16 && extension == ".npy")
                    {
                        continue;
                    }
                    yield return new TestCaseData(dataType.ShortName(), shape, extension)
                        .SetArgDisplayNames(dataType.ShortName(), StoredTensor.DescribeShape(shape).Replace(" ", ""), extension);
                }
            }
        }
    }

    [TestCaseSource(nameof(RoundTripCases))]
    public void WrittenTensorsReadBackUnchanged(string typeName, long[] shape, string extension)
    {
        StoredDataType dataType = TestValues.DataTypeNamed(typeName);
        using var directory = new TemporaryDirectory();
        string path = directory.File("tokens" + extension);
        StoredTensor written = TestValues.Tensor("tokens", dataType, shape);

        TensorFile.Write(path, [written]);
        IReadOnlyList<StoredTensor> read = TensorFile.Read(path);

        Assert.That(read, Has.Count.EqualTo(1));
        Assert.That(read[0].Name, Is.EqualTo("tokens"));
        Assert.That(read[0].DataType, Is.EqualTo(dataType));
        Assert.That(read[0].Shape, Is.EqualTo(shape));
        Assert.That(read[0].Data, Is.EqualTo(written.Data));
        Assert.That(Directory.GetFiles(directory.Path), Has.Length.EqualTo(1), "no temporary file left behind");
    }

    [Test]
    public void ValuesComeBackAsTheirOwnType()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("all.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcödé \"quoted\"" };
        StoredTensor[] tensors =
        [
            StoredTensor.FromArray("f32", TestValues.Float32s(6), 2, 3),
            StoredTensor.FromArray("f16", TestValues.Float16s(5), 5),
            StoredTensor.FromArray("bf16", TestValues.BFloat16s(4), 4, 1),
            StoredTensor.FromArray("empty", Array.Empty<int>(), 0),
            StoredTensor.FromArray("i32", TestValues.Int32s(3), 3),
            StoredTensor.FromArray("i64", TestValues.Int64s(1)),
        ];

        TensorFile.Write(path, tensors, metadata);
        SafetensorsContents read = SafetensorsFormat.Read(path);

        Assert.That(read.Tensors.Select(tensor => tensor.Name), Is.EqualTo(tensors.Select(tensor => tensor.Name)), "data order = written order");
        Assert.That(read.Metadata, Is.EqualTo(metadata));
        Assert.That(read.Tensors[0].ToArray<float>(), Is.EqualTo(TestValues.Float32s(6)));
        Assert.That(read.Tensors[1].ToArray<Float16>(), Is.EqualTo(TestValues.Float16s(5)));
        Assert.That(read.Tensors[2].ToArray<BFloat16>(), Is.EqualTo(TestValues.BFloat16s(4)));
        Assert.That(read.Tensors[3].ToArray<int>(), Is.Empty);
        Assert.That(read.Tensors[4].ToArray<int>(), Is.EqualTo(TestValues.Int32s(3)));
        Assert.That(read.Tensors[5].ToArray<long>(), Is.EqualTo(TestValues.Int64s(1)));
        Assert.That(read.Tensors[5].Shape, Is.Empty);
    }

    [Test]
    public void ToFloat32ConvertsTheThreeFloatTypesExactly()
    {
        float[] expected = TestValues.Float32s(100);
        Assert.That(StoredTensor.FromArray("a", expected, 100).ToFloat32(), Is.EqualTo(expected));
        Assert.That(StoredTensor.FromArray("a", TestValues.Float16s(100), 100).ToFloat32(), Is.EqualTo(expected), "multiples of 1/64 are exact in float16");
        float[] viaBFloat16 = TestValues.BFloat16s(100).Select(value => (float)value).ToArray();
        Assert.That(StoredTensor.FromArray("a", TestValues.BFloat16s(100), 100).ToFloat32(), Is.EqualTo(viaBFloat16));
        var special = new[] { Float16.NaN, Float16.PositiveInfinity, Float16.NegativeInfinity, Float16.Epsilon };
        float[] converted = StoredTensor.FromArray("s", special, 4).ToFloat32();
        Assert.That(float.IsNaN(converted[0]) && converted[1] == float.PositiveInfinity && converted[2] == float.NegativeInfinity);
        Assert.That(converted[3], Is.EqualTo(MathF.Pow(2, -24)));
    }

    [Test]
    public void ToFloat32RejectsIntegers()
    {
        StoredTensor positions = StoredTensor.FromArray("positions", new[] { 1, 2 }, 2);
        var exception = Assert.Throws<InvalidOperationException>(() => positions.ToFloat32());
        Assert.That(exception!.Message, Is.EqualTo("tensor 'positions' holds int32 values; float32, float16 or bfloat16 was expected."));
    }

    [Test]
    public void ToArrayOfAnotherTypeIsAClearError()
    {
        StoredTensor tokens = StoredTensor.FromArray("tokens", new float[4], 2, 2);
        var exception = Assert.Throws<InvalidOperationException>(() => tokens.ToArray<Float16>());
        Assert.That(exception!.Message, Is.EqualTo("tensor 'tokens' holds float32 values, not float16."));
        Assert.Throws<InvalidOperationException>(() => tokens.ToArray<int>());
    }

    [Test]
    public void FromArrayChecksTheElementCount()
    {
        var exception = Assert.Throws<ArgumentException>(() => StoredTensor.FromArray("x", new float[5], 2, 3));
        Assert.That(exception!.Message, Does.StartWith("tensor 'x': the shape 2 x 3 has 6 elements but 5 values were given."));
        Assert.Throws<ArgumentException>(() => StoredTensor.FromArray("x", new float[0], 2, -1));
        Assert.Throws<ArgumentException>(() => StoredTensor.FromArray("x", new float[2]), "a scalar has one element");
        Assert.Throws<NotSupportedException>(() => StoredTensor.FromArray("x", new double[1]));
    }

    [Test]
    public void TheConstructorChecksTheDataLength()
    {
        var exception = Assert.Throws<ArgumentException>(() => new StoredTensor("x", StoredDataType.Float16, [3], new byte[4]));
        Assert.That(exception!.Message, Does.StartWith("tensor 'x': 3 float16 needs 6 bytes of data, got 4."));
    }

    [Test]
    public void AHeaderTooLongForVersion1IsWrittenAsVersion2()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("deep.npy");
        // 30000 dimensions of 1: "1, " each, past version 1.0's 65535-byte header.
        long[] shape = Enumerable.Repeat(1L, 30000).ToArray();
        NpyFormat.Write(path, StoredTensor.FromArray("deep", new[] { 2.5f }, shape));

        byte[] bytes = File.ReadAllBytes(path);
        Assert.That(bytes[6], Is.EqualTo(2), "format version 2.0");
        int headerLength = BitConverter.ToInt32(bytes, 8);
        Assert.That((12 + headerLength) % 64, Is.EqualTo(0), "header padded to 64 bytes");
        StoredTensor read = NpyFormat.Read(path);
        Assert.That(read.Shape, Is.EqualTo(shape));
        Assert.That(read.ToArray<float>(), Is.EqualTo(new[] { 2.5f }));
    }

    [Test]
    public void NpyHeadersArePaddedTo64Bytes()
    {
        using var directory = new TemporaryDirectory();
        foreach (long[] shape in Shapes)
        {
            string path = directory.File("t.npy");
            NpyFormat.Write(path, TestValues.Tensor("t", StoredDataType.Int32, shape));
            byte[] bytes = File.ReadAllBytes(path);
            int headerLength = BitConverter.ToUInt16(bytes, 8);
            Assert.That((10 + headerLength) % 64, Is.EqualTo(0), StoredTensor.DescribeShape(shape));
            Assert.That(bytes[10 + headerLength - 1], Is.EqualTo((byte)'\n'));
        }
    }

    [Test]
    public void Bfloat16CannotBeWrittenToNpy()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("tokens.npy");
        var exception = Assert.Throws<TensorFileException>(
            () => TensorFile.Write(path, [StoredTensor.FromArray("tokens", TestValues.BFloat16s(2), 2)]));
        Assert.That(exception!.Message, Is.EqualTo(
            path + ": bfloat16 cannot be stored in a .npy file (numpy has no bfloat16 type): write a .safetensors file instead"));
        Assert.That(Directory.GetFiles(directory.Path), Is.Empty, "nothing written");
    }

    [Test]
    public void NpyTakesExactlyOneTensor()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("two.npy");
        StoredTensor tensor = TestValues.Tensor("a", StoredDataType.Float32, 2);
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Write(path, [tensor, tensor]));
        Assert.That(exception!.Message, Is.EqualTo(path + ": a .npy file holds exactly one tensor, 2 were given: write a .safetensors file for several"));
        Assert.Throws<TensorFileException>(() => TensorFile.Write(path, []));
        Assert.That(Directory.GetFiles(directory.Path), Is.Empty, "nothing written");
    }

    [Test]
    public void SafetensorsRejectsDuplicateAndReservedNames()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("t.safetensors");
        StoredTensor a = TestValues.Tensor("a", StoredDataType.Float32, 2);
        var duplicate = Assert.Throws<TensorFileException>(() => TensorFile.Write(path, [a, a]));
        Assert.That(duplicate!.Message, Is.EqualTo(path + ": two tensors are named 'a'"));
        var reserved = Assert.Throws<TensorFileException>(
            () => TensorFile.Write(path, [TestValues.Tensor("__metadata__", StoredDataType.Float32, 2)]));
        Assert.That(reserved!.Message, Is.EqualTo(path + ": a tensor cannot be named __metadata__ (the key the format keeps for metadata)"));
        Assert.That(Directory.GetFiles(directory.Path), Is.Empty, "nothing written");
    }

    [Test]
    public void AnUnknownExtensionNamesTheAcceptedOnes()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("tokens.pt", [1, 2, 3]);
        var reading = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(reading!.Message, Is.EqualTo(path + ": the extension .pt: token files are .npy or .safetensors"));
        string bare = directory.File("tokens");
        var writing = Assert.Throws<TensorFileException>(() => TensorFile.Write(bare, [TestValues.Tensor("t", StoredDataType.Float32, 1)]));
        Assert.That(writing!.Message, Is.EqualTo(bare + ": no extension: token files are .npy or .safetensors"));
    }

    [Test]
    public void ExtensionsAreMatchedWithoutCase()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("Tokens.NPY");
        TensorFile.Write(path, [TestValues.Tensor("x", StoredDataType.Float16, 3)]);
        Assert.That(TensorFile.Read(path)[0].Name, Is.EqualTo("Tokens"));
    }

    [TestCase("missing.npy")]
    [TestCase("missing.safetensors")]
    public void AMissingFileIsReported(string name)
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File(name);
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(exception!.Message, Is.EqualTo(path + ": no such file"));
        Assert.That(exception.Path, Is.EqualTo(path));
    }

    [Test]
    public void AFileInAMissingDirectoryIsReported()
    {
        using var directory = new TemporaryDirectory();
        string path = Path.Combine(directory.Path, "no-such-dir", "tokens.npy");
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(exception!.Message, Is.EqualTo(path + ": no such file (its directory does not exist)"));
    }

    [TestCase("dir.npy")]
    [TestCase("dir.safetensors")]
    public void ADirectoryIsNotAFile(string name)
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File(name);
        Directory.CreateDirectory(path);
        var reading = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(reading!.Message, Is.EqualTo(path + ": is a directory, not a file"));
        var writing = Assert.Throws<TensorFileException>(() => TensorFile.Write(path, [TestValues.Tensor("t", StoredDataType.Float32, 1)]));
        Assert.That(writing!.Message, Is.EqualTo(path + ": is a directory; a file name was expected"));
    }

    [Test]
    public void WritingIntoAMissingDirectoryIsReported()
    {
        using var directory = new TemporaryDirectory();
        string missing = Path.Combine(directory.Path, "no-such-dir");
        string path = Path.Combine(missing, "out.safetensors");
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Write(path, [TestValues.Tensor("t", StoredDataType.Float32, 1)]));
        Assert.That(exception!.Message, Is.EqualTo($"{path}: cannot be written: the directory {missing} does not exist"));
    }

    [Test]
    public void AFailedWriteLeavesTheOldFileAndNoTemporaryFile()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("out.npy", [42]);
        Assert.Throws<InvalidOperationException>(() => TensorFileIO.WriteAtomically(path, stream =>
        {
            stream.Write(new byte[1000]);
            throw new InvalidOperationException("the writer failed half way");
        }));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(new byte[] { 42 }), "the old file is untouched");
        Assert.That(Directory.GetFiles(directory.Path), Is.EqualTo(new[] { path }), "the temporary file is gone");
    }

    [Test]
    public void AWriteReplacesAnExistingFile()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("out.npy", new byte[5000]);
        TensorFile.Write(path, [TestValues.Tensor("out", StoredDataType.Int64, 3)]);
        Assert.That(TensorFile.Read(path)[0].ToArray<long>(), Is.EqualTo(TestValues.Int64s(3)));
        Assert.That(Directory.GetFiles(directory.Path), Has.Length.EqualTo(1));
    }
}
