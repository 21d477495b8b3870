using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// .safetensors files built by hand here and in Python (with bfloat16 from PyTorch), ours parsed by hand in Python,
/// and broken files. The Python tests need Debian's numpy and PyTorch and fail, saying so, without them.
/// </summary>
public sealed class SafetensorsTests
{
    private const string Uncovered = "of the data section (the format requires the tensors to cover it without gaps)";

    private static string ReadError(byte[] bytes)
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("tokens.safetensors", bytes);
        var exception = Assert.Throws<TensorFileException>(() => SafetensorsFormat.Read(path));
        Assert.That(exception!.Message, Does.StartWith(path + ": "));
        return exception.Problem;
    }

    private static string ReadError(string header, int dataBytes) => ReadError(HandMade.Safetensors(header, new byte[dataBytes]));

    [Test]
    public void AHandMadeFileIsReadInOffsetOrder()
    {
        // Header order b, a, z; data order a (2 x 2 F32), z (empty I64), b (3 I32); the header padded with spaces.
        string header = """
            {"b":{"dtype":"I32","shape":[3],"data_offsets":[16,28]},
             "__metadata__":{"format":"pt"},
             "a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
             "z":{"dtype":"I64","shape":[0,5],"data_offsets":[16,16]}}
            """ + "      ";
        byte[] data = new byte[28];
        HandMade.Float32Bytes(1f, -2.5f, 3.25f, float.NegativeInfinity).CopyTo(data, 0);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(16), -7);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(20), int.MaxValue);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(24), 0);
        using var directory = new TemporaryDirectory();
        string path = directory.Write("hand.safetensors", HandMade.Safetensors(header, data));

        SafetensorsContents read = SafetensorsFormat.Read(path);

        Assert.That(read.Tensors.Select(tensor => tensor.Name), Is.EqualTo(new[] { "a", "z", "b" }));
        Assert.That(read.Metadata, Is.EqualTo(new Dictionary<string, string> { ["format"] = "pt" }));
        Assert.That(read.Tensors[0].Shape, Is.EqualTo(new long[] { 2, 2 }));
        Assert.That(read.Tensors[0].ToArray<float>(), Is.EqualTo(new[] { 1f, -2.5f, 3.25f, float.NegativeInfinity }));
        Assert.That(read.Tensors[1].Shape, Is.EqualTo(new long[] { 0, 5 }));
        Assert.That(read.Tensors[1].ToArray<long>(), Is.Empty);
        Assert.That(read.Tensors[2].ToArray<int>(), Is.EqualTo(new[] { -7, int.MaxValue, 0 }));
        Assert.That(TensorFile.Read(path).Select(tensor => tensor.Name), Is.EqualTo(new[] { "a", "z", "b" }));
    }

    [Test]
    public void AFileWithNoTensorsIsRead()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("none.safetensors", HandMade.Safetensors("{}      ", []));
        Assert.That(SafetensorsFormat.Read(path).Tensors, Is.Empty);
    }

    [Test]
    public void OurHeaderIsPaddedTo8BytesWithSpaces()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.File("t.safetensors");
        SafetensorsFormat.Write(path, [TestValues.Tensor("abc", StoredDataType.Float16, 3)]);
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        Assert.That(headerLength % 8, Is.EqualTo(0));
        string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.That(header.TrimEnd(' '), Is.EqualTo("""{"abc":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}"""));
        Assert.That(bytes.Length, Is.EqualTo(8 + headerLength + 6));
    }

    [Test]
    public void AnEmptyFileIsNotASafetensorsFile()
        => Assert.That(ReadError([]), Is.EqualTo("empty file (0 bytes): not a safetensors file"));

    [Test]
    public void AFileShorterThanTheHeaderLengthIsRejected()
        => Assert.That(ReadError([1, 2, 3, 4, 5]), Is.EqualTo("5 bytes: too short for a safetensors file (it starts with an 8-byte header length)"));

    [Test]
    public void AHeaderLengthPastTheEndIsRejected()
        => Assert.That(ReadError(HandMade.Safetensors(1000, "{}"u8.ToArray(), [])),
            Is.EqualTo("the header length 1000 reaches past the end of the file (10 bytes)"));

    [TestCase(100_000_001UL)]
    [TestCase(ulong.MaxValue)]
    public void AHugeHeaderLengthIsRejected(ulong headerLength)
        => Assert.That(ReadError(HandMade.Safetensors(headerLength, "{}"u8.ToArray(), [])),
            Is.EqualTo($"the header length {headerLength} is more than the 100000000 bytes safetensors allows: not a safetensors file?"));

    [Test]
    public void AHeaderThatIsNotUtf8IsRejected()
        => Assert.That(ReadError(HandMade.Safetensors(3, [0x7B, 0xFF, 0x7D], [])),
            Is.EqualTo("the header is not valid UTF-8: not a safetensors file?"));

    [TestCase("""{"a": """)]
    [TestCase("""{"a":{"dtype":"F32",}}""")]
    [TestCase("""{'a': 1}""")]
    public void MalformedJsonIsRejected(string header)
        => Assert.That(ReadError(header, 0), Does.StartWith("the header is not valid JSON: "));

    [Test]
    public void AHeaderThatIsNotAnObjectIsRejected()
        => Assert.That(ReadError("[1, 2]", 0), Is.EqualTo("the header is a JSON list, not an object"));

    [TestCase("F64")]
    [TestCase("C64")]
    [TestCase("U8")]
    [TestCase("BOOL")]
    [TestCase("F8_E4M3")]
    [TestCase("f32")]
    public void UnsupportedDtypesAreNamed(string dtype)
        => Assert.That(ReadError($$$"""{"x":{"dtype":"{{{dtype}}}","shape":[1],"data_offsets":[0,8]}}""", 8),
            Is.EqualTo($"tensor 'x': dtype {dtype} is not supported (F32, F16, BF16, I32 and I64 are read)"));

    [TestCase("""{"x":{"shape":[1],"data_offsets":[0,4]}}""", "tensor 'x': no dtype string")]
    [TestCase("""{"x":{"dtype":"F32","data_offsets":[0,4]}}""", "tensor 'x': no shape (a list of non-negative integers)")]
    [TestCase("""{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "tensor 'x': shape is [-1], not a list of non-negative integers")]
    [TestCase("""{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "tensor 'x': shape is [1.5], not a list of non-negative integers")]
    [TestCase("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", "tensor 'x': data_offsets is [0,4,8], not a list of 2 non-negative integers")]
    [TestCase("""{"x":[1]}""", "tensor 'x': its entry is a JSON list, not an object with dtype, shape and data_offsets")]
    [TestCase("""{"__metadata__":{"k":1}}""", "__metadata__['k'] is a JSON number; metadata values must be strings")]
    [TestCase("""{"__metadata__":"pt"}""", "__metadata__ is a JSON string; it must map strings to strings")]
    [TestCase("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "the header names 'x' twice")]
    public void MalformedEntriesAreRejected(string header, string problem)
        => Assert.That(ReadError(header, 4), Is.EqualTo(problem));

    [Test]
    public void OffsetsPastTheDataSectionAreRejected()
        => Assert.That(ReadError("""{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8),
            Is.EqualTo("tensor 'x': data_offsets [0, 16] reach past the end of the data section (8 bytes)"));

    [Test]
    public void OffsetsEndingBeforeTheyBeginAreRejected()
        => Assert.That(ReadError("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8),
            Is.EqualTo("tensor 'x': data_offsets [8, 4] end before they begin"));

    [Test]
    public void OffsetsNotMatchingTheShapeAreRejected()
        => Assert.That(ReadError("""{"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}""", 8),
            Is.EqualTo("tensor 'x': 2 x 3 BF16 is 12 bytes but its data_offsets [0, 8] span 8"));

    [Test]
    public void AShapeTooLargeForMemoryIsRejected()
        => Assert.That(ReadError("""{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", 8),
            Is.EqualTo($"tensor 'x': 4294967296 x 4294967296 F32 is more than the {Array.MaxLength} bytes one tensor may hold"));

    [Test]
    public void OverlappingTensorsAreRejected()
        => Assert.That(ReadError("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12),
            Is.EqualTo("tensors 'a' (bytes 0..8) and 'b' (bytes 4..12) overlap"));

    [Test]
    public void AGapBetweenTensorsIsRejected()
        => Assert.That(ReadError("""{"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}""", 12),
            Is.EqualTo("no tensor covers bytes 4..8 " + Uncovered));

    [Test]
    public void DataPastTheLastTensorIsRejected()
        => Assert.That(ReadError("""{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}""", 8),
            Is.EqualTo("no tensor covers bytes 4..8 " + Uncovered));

    [Test]
    public void DataBeforeTheFirstTensorIsRejected()
        => Assert.That(ReadError("""{"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}""", 8),
            Is.EqualTo("no tensor covers bytes 0..4 " + Uncovered));

    // Writes python.safetensors by hand (json + struct) with the formulas' values, bfloat16 converted by PyTorch,
    // the header's entries in reverse data order; with the safetensors package (when installed) also package.safetensors.
    private const string WriteScript = """
        import json, struct, torch
        def bf16_bytes(values): return torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().astype('<i2').tobytes()
        tensors = [
            ('tokens', 'BF16', [3, 577, 16], bf16_bytes(f32(3 * 577 * 16))),
            ('f32', 'F32', [2, 3, 4], f32(24).astype('<f4').tobytes()),
            ('f16', 'F16', [5], f16(5).astype('<f2').tobytes()),
            ('positions', 'I32', [7], i32(7).astype('<i4').tobytes()),
            ('id', 'I64', [], i64(1).astype('<i8').tobytes()),
            ('none', 'F32', [0, 4], b''),
        ]
        header = {'__metadata__': {'format': 'pt', 'source': 'python'}}
        data = b''
        for name, dtype, shape, raw in tensors:
            header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
            data += raw
        text = json.dumps(dict(reversed(list(header.items())))).encode()
        text += b' ' * (-len(text) % 8)
        open('python.safetensors', 'wb').write(struct.pack('<Q', len(text)) + text + data)
        try:
            import safetensors.torch
        except ImportError:
            print('safetensors package: absent')
        else:
            n = 4 * 9
            safetensors.torch.save_file({
                'tokens': torch.from_numpy(f32(n)).to(torch.bfloat16).reshape(4, 9),
                'positions': torch.from_numpy(i32(9)),
            }, 'package.safetensors', metadata={'format': 'pt'})
            print('safetensors package: used')
        """;

    [Test]
    public void FilesPythonWroteAreReadExactly()
    {
        Python.Require("numpy", "python3-numpy");
        Python.Require("torch", "python3-torch");
        using var directory = new TemporaryDirectory();
        string output = Python.RunChecked(TestValues.PythonFormulas + "\n" + WriteScript, directory.Path);

        SafetensorsContents read = SafetensorsFormat.Read(directory.File("python.safetensors"));

        Assert.That(read.Tensors.Select(tensor => tensor.Name), Is.EqualTo(new[] { "tokens", "f32", "f16", "positions", "id", "none" }));
        Assert.That(read.Metadata, Is.EqualTo(new Dictionary<string, string> { ["format"] = "pt", ["source"] = "python" }));
        Assert.That(read.Tensors[0].Shape, Is.EqualTo(new long[] { 3, 577, 16 }));
        Assert.That(read.Tensors[0].ToArray<BFloat16>().Select(value => value.Bits), Is.EqualTo(TestValues.BFloat16s(3 * 577 * 16).Select(value => value.Bits)),
            "PyTorch's float32 to bfloat16 rounding and ours agree bit for bit");
        Assert.That(read.Tensors[1].ToArray<float>(), Is.EqualTo(TestValues.Float32s(24)));
        Assert.That(read.Tensors[2].ToArray<Float16>(), Is.EqualTo(TestValues.Float16s(5)));
        Assert.That(read.Tensors[3].ToArray<int>(), Is.EqualTo(TestValues.Int32s(7)));
        Assert.That(read.Tensors[4].Shape, Is.Empty);
        Assert.That(read.Tensors[4].ToArray<long>(), Is.EqualTo(TestValues.Int64s(1)));
        Assert.That(read.Tensors[5].Shape, Is.EqualTo(new long[] { 0, 4 }));

        if (output.Contains("safetensors package: used", StringComparison.Ordinal))
        {
            SafetensorsContents package = SafetensorsFormat.Read(directory.File("package.safetensors"));
            Dictionary<string, StoredTensor> byName = package.Tensors.ToDictionary(tensor => tensor.Name);
            Assert.That(byName["tokens"].ToArray<BFloat16>(), Is.EqualTo(TestValues.BFloat16s(36)));
            Assert.That(byName["positions"].ToArray<int>(), Is.EqualTo(TestValues.Int32s(9)));
            Assert.That(package.Metadata["format"], Is.EqualTo("pt"));
        }
    }

    // Parses ours.safetensors by hand and checks every entry against manifest.json and the formulas' values (bfloat16
    // converted by PyTorch); with the safetensors package (when installed) loads it with safetensors.torch too.
    private const string CheckScript = """
        import json, math, struct, torch
        def expected_bytes(dtype, n):
            if dtype == 'BF16': return torch.from_numpy(f32(n)).to(torch.bfloat16).view(torch.int16).numpy().astype('<i2').tobytes()
            return {'F32': f32(n).astype('<f4'), 'F16': f16(n).astype('<f2'), 'I32': i32(n).astype('<i4'), 'I64': i64(n).astype('<i8')}[dtype].tobytes()
        manifest = json.load(open('manifest.json'))
        raw = open('ours.safetensors', 'rb').read()
        n, = struct.unpack('<Q', raw[:8])
        assert n % 8 == 0, n
        header = json.loads(raw[8:8 + n].decode('utf-8'))
        data = raw[8 + n:]
        assert header.pop('__metadata__') == {'format': 'pt', 'producer': 'tokenkernels'}
        assert list(header) == [entry['name'] for entry in manifest], list(header)
        end = 0
        for entry in manifest:
            info = header[entry['name']]
            assert info['dtype'] == entry['dtype'] and info['shape'] == entry['shape'], (entry, info)
            begin, stop = info['data_offsets']
            assert begin == end, (entry, info)
            assert data[begin:stop] == expected_bytes(info['dtype'], math.prod(info['shape'])), entry
            end = stop
        assert end == len(data)
        try:
            import safetensors.torch
        except ImportError:
            pass
        else:
            loaded = safetensors.torch.load_file('ours.safetensors')
            for entry in manifest:
                assert list(loaded[entry['name']].shape) == entry['shape'], entry
        print('checked', len(manifest))
        """;

    [Test]
    public void PythonReadsWhatWeWrite()
    {
        Python.Require("numpy", "python3-numpy");
        Python.Require("torch", "python3-torch");
        using var directory = new TemporaryDirectory();
        StoredTensor[] tensors =
        [
            TestValues.Tensor("tokens", StoredDataType.BFloat16, 3, 577, 16),
            TestValues.Tensor("sizes", StoredDataType.Float32, 2, 3, 4),
            TestValues.Tensor("attention", StoredDataType.Float16, 5),
            TestValues.Tensor("none", StoredDataType.Float32, 0, 4),
            TestValues.Tensor("positions", StoredDataType.Int32, 7),
            TestValues.Tensor("id", StoredDataType.Int64),
        ];
        TensorFile.Write(directory.File("ours.safetensors"), tensors,
            new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "tokenkernels" });
        File.WriteAllText(directory.File("manifest.json"), JsonSerializer.Serialize(tensors.Select(tensor => new
        {
            name = tensor.Name,
            dtype = SafetensorsFormat.DtypeName(tensor.DataType),
            shape = tensor.Shape,
        })));

        string output = Python.RunChecked(TestValues.PythonFormulas + "\n" + CheckScript, directory.Path);
        Assert.That(output.Trim(), Is.EqualTo($"checked {tensors.Length}"));
    }
}
