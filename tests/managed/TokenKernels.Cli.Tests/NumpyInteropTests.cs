using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using NUnit.Framework;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// .npy files written by numpy (Debian's /usr/bin/python3) read here, and files written here loaded by numpy. numpy is
/// required: without it these tests fail, saying so.
/// </summary>
[NonParallelizable]
public sealed class NumpyInteropTests
{
    private TemporaryDirectory? _numpyFiles;

    /// <summary>One array numpy writes: type code, byte order, format version, memory order and shape.</summary>
    private sealed record NumpyCase(string Name, string Code, char ByteOrder, int Version, char Order, long[] Shape);

    private static readonly NumpyCase[] Cases = BuildCases();

    private static NumpyCase[] BuildCases()
    {
        var cases = new List<NumpyCase>();
        foreach (string code in new[] { "f4", "f2", "i4", "i8" })
        {
            foreach (char byteOrder in "<>")
            {
                foreach (int version in new[] { 1, 2, 3 })
                {
                    foreach (char order in "CF")
                    {
                        string endian = byteOrder == '<' ? "little" : "big";
                        cases.Add(new NumpyCase($"{code}-{endian}-v{version}-{order}", code, byteOrder, version, order, [3, 5, 7]));
                    }
                }
            }
        }
        cases.Add(new NumpyCase("scalar", "f4", '<', 1, 'C', []));
        cases.Add(new NumpyCase("empty", "f4", '<', 1, 'C', [0]));
        cases.Add(new NumpyCase("zero-middle-F", "i8", '>', 1, 'F', [3, 0, 4]));
        cases.Add(new NumpyCase("rank4-F", "f2", '>', 2, 'F', [2, 3, 4, 5]));
        cases.Add(new NumpyCase("tokens-F", "f4", '<', 1, 'F', [3, 577, 64]));
        return cases.ToArray();
    }

    private static IEnumerable<string> CaseNames() => Cases.Select(c => c.Name);

    // numpy writes every case: the array (random values, with NaN, infinities and -0.0 first for floats) in the asked
    // byte order, version and memory order, and beside it its values as little-endian C-order bytes (tofile).
    private const string WriteCasesScript = """
        import json
        import numpy as np
        rng = np.random.default_rng(20261206)
        def values(code, shape):
            n = int(np.prod(shape))
            if code[0] == 'f':
                a = (rng.standard_normal(n) * 100).astype(code)
                specials = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=code)
                a[:min(n, 4)] = specials[:min(n, 4)]
            else:
                info = np.iinfo(code)
                a = rng.integers(info.min, info.max, size=n, dtype=code, endpoint=True)
            return a.reshape(shape)
        for case in json.load(open('cases.json')):
            x = values(case['code'], tuple(case['shape']))
            a = x.astype(case['byteOrder'] + case['code'])
            if case['order'] == 'F':
                a = np.asfortranarray(a)
            with open(case['name'] + '.npy', 'wb') as f:
                np.lib.format.write_array(f, a, version=(case['version'], 0))
            np.ascontiguousarray(x).astype('<' + case['code']).tofile(case['name'] + '.raw')
            with open(case['name'] + '.npy', 'rb') as f:
                start = f.read(256)
            assert start[6] == case['version'], (case, start[:8])
            fortran = b"'fortran_order': True" in start
            assert fortran == (case['order'] == 'F' and a.ndim > 1 and a.size > 0) or case['name'] == 'zero-middle-F', (case, start)
        np.save('float64.npy', np.arange(3.0))
        np.save('complex64.npy', np.zeros(2, np.complex64))
        np.save('unicode.npy', np.array(['ab', 'c']))
        np.save('object.npy', np.array([1, 'a', None], dtype=object))
        np.save('void2.npy', np.zeros(3, dtype='V2'))
        print('written')
        """;

    [OneTimeSetUp]
    public void WriteFilesWithNumpy()
    {
        Python.Require("numpy", "python3-numpy");
        _numpyFiles = new TemporaryDirectory();
        File.WriteAllText(_numpyFiles.File("cases.json"), JsonSerializer.Serialize(Cases.Select(c => new
        {
            name = c.Name,
            code = c.Code,
            byteOrder = c.ByteOrder.ToString(),
            version = c.Version,
            order = c.Order.ToString(),
            shape = c.Shape,
        })));
        Python.RunChecked(WriteCasesScript, _numpyFiles.Path);
    }

    [OneTimeTearDown]
    public void RemoveNumpyFiles() => _numpyFiles?.Dispose();

    [TestCaseSource(nameof(CaseNames))]
    public void ArraysNumpyWroteAreReadExactly(string name)
    {
        NumpyCase numpyCase = Cases.Single(c => c.Name == name);
        StoredTensor read = NpyFormat.Read(_numpyFiles!.File(name + ".npy"));
        StoredDataType expectedType = numpyCase.Code switch
        {
            "f4" => StoredDataType.Float32,
            "f2" => StoredDataType.Float16,
            "i4" => StoredDataType.Int32,
            _ => StoredDataType.Int64,
        };
        Assert.That(read.Name, Is.EqualTo(name));
        Assert.That(read.DataType, Is.EqualTo(expectedType));
        Assert.That(read.Shape, Is.EqualTo(numpyCase.Shape));
        Assert.That(read.Data, Is.EqualTo(File.ReadAllBytes(_numpyFiles.File(name + ".raw"))), "the values, little-endian, in C order");
    }

    [TestCase("float64", "float64 (descr '<f8')")]
    [TestCase("complex64", "complex64 (descr '<c8')")]
    [TestCase("unicode", "a unicode string dtype (descr '<U2')")]
    [TestCase("object", "object (descr '|O')")]
    public void UnsupportedArraysNumpyWroteAreNamed(string name, string what)
    {
        string path = _numpyFiles!.File(name + ".npy");
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(exception!.Message, Is.EqualTo($"{path}: {what} is not supported: save float32, float16, int32 or int64 (bfloat16 in .safetensors)"));
    }

    [Test]
    public void TwoByteRecordsAreNotTakenForBfloat16()
    {
        string path = _numpyFiles!.File("void2.npy");
        var exception = Assert.Throws<TensorFileException>(() => TensorFile.Read(path));
        Assert.That(exception!.Message, Does.StartWith($"{path}: descr '|V2' is anonymous 2-byte records"));
    }

    private static readonly long[][] WrittenShapes = [[], [7], [2, 3, 4, 5], [3, 0, 4], [3, 577, 1024]];

    // Loads every file of manifest.json with numpy.load and checks dtype, shape, values (the same formulas as
    // TestValues) and that the data starts on a 64-byte boundary.
    private const string CheckOurFilesScript = """
        import json
        formulas = {'<f4': f32, '<f2': f16, '<i4': i32, '<i8': i64}
        cases = json.load(open('manifest.json'))
        for case in cases:
            a = np.load(case['file'])
            assert a.dtype.str == case['descr'], (case, a.dtype.str)
            assert a.shape == tuple(case['shape']), (case, a.shape)
            expected = formulas[case['descr']](a.size).reshape(a.shape)
            assert a.tobytes() == expected.tobytes(), case
            with open(case['file'], 'rb') as f:
                assert np.lib.format.read_magic(f) == (1, 0)
                np.lib.format.read_array_header_1_0(f)
                assert f.tell() % 64 == 0, (case, f.tell())
        print('checked', len(cases))
        """;

    [Test]
    public void NumpyLoadsWhatWeWrite()
    {
        using var directory = new TemporaryDirectory();
        var manifest = new List<object>();
        foreach (StoredDataType dataType in new[] { StoredDataType.Float32, StoredDataType.Float16, StoredDataType.Int32, StoredDataType.Int64 })
        {
            foreach (long[] shape in WrittenShapes)
            {
                string file = $"{dataType.ShortName()}-{manifest.Count}.npy";
                TensorFile.Write(directory.File(file), [TestValues.Tensor("t", dataType, shape)]);
                string descr = "<" + dataType switch
                {
                    StoredDataType.Float32 => "f4",
                    StoredDataType.Float16 => "f2",
                    StoredDataType.Int32 => "i4",
                    _ => "i8",
                };
                manifest.Add(new { file, descr, shape });
            }
        }
        File.WriteAllText(directory.File("manifest.json"), JsonSerializer.Serialize(manifest));
        string output = Python.RunChecked(TestValues.PythonFormulas + "\n" + CheckOurFilesScript, directory.Path);
        Assert.That(output.Trim(), Is.EqualTo($"checked {manifest.Count}"));
    }
}
