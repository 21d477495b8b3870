using System;
using System.Text;
using NUnit.Framework;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>.npy files built byte by byte: what numpy writes that is unusual, and broken or unsupported files.</summary>
public sealed class NpyFormatTests
{
    private const string Accepted = "save float32, float16, int32 or int64 (bfloat16 in .safetensors)";

    private static string ReadError(byte[] bytes, string name = "tokens.npy")
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write(name, bytes);
        var exception = Assert.Throws<TensorFileException>(() => NpyFormat.Read(path));
        Assert.That(exception!.Message, Does.StartWith(path + ": "));
        return exception.Problem;
    }

    [Test]
    public void BigEndianFortranOrderIsConvertedToLittleEndianCOrder()
    {
        // A 2 x 3 int32 array [[0, 1, 2], [3, 4, 5]] stored big-endian, column by column: 0 3 1 4 2 5.
        byte[] data = [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 5];
        using var directory = new TemporaryDirectory();
        string path = directory.Write("m.npy", HandMade.Npy("{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }", data));
        StoredTensor read = NpyFormat.Read(path);
        Assert.That(read.Shape, Is.EqualTo(new long[] { 2, 3 }));
        Assert.That(read.ToArray<int>(), Is.EqualTo(new[] { 0, 1, 2, 3, 4, 5 }));
    }

    [Test]
    public void HeadersWithoutByteOrderOrWithOtherSpacingAreRead()
    {
        using var directory = new TemporaryDirectory();
        string path = directory.Write("v.npy", HandMade.Npy("{\"shape\":(2,),\"fortran_order\":False,\"descr\":\"f4\"}", HandMade.Float32Bytes(1.5f, -2f)));
        Assert.That(NpyFormat.Read(path).ToArray<float>(), Is.EqualTo(new[] { 1.5f, -2f }));
        path = directory.Write("w.npy", HandMade.Npy("{'descr': '|f2', 'fortran_order': False, 'shape': (1L,), }", [0x00, 0x3C]));
        Assert.That(NpyFormat.Read(path).ToFloat32(), Is.EqualTo(new[] { 1f }));
    }

    [Test]
    public void AnEmptyFileIsNotANpyFile()
        => Assert.That(ReadError([]), Is.EqualTo("empty file (0 bytes): not a .npy file"));

    [Test]
    public void AWrongMagicIsNotANpyFile()
        => Assert.That(ReadError(Encoding.ASCII.GetBytes("PK\u0003\u0004 a zip archive, not an array")),
            Is.EqualTo("not a .npy file: it does not start with numpy's magic string \\x93NUMPY"));

    [Test]
    public void AFileEndingInTheHeaderLengthIsTruncated()
        => Assert.That(ReadError([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 118]),
            Is.EqualTo("truncated header: the file ends after 9 bytes, inside the header length"));

    [Test]
    public void AFileEndingInTheHeaderIsTruncated()
    {
        byte[] whole = HandMade.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", new byte[16]);
        Assert.That(ReadError(whole[..40]), Is.EqualTo("truncated header: it is 58 bytes long but the file ends 30 bytes after its start"));
    }

    [Test]
    public void MissingDataIsTruncated()
    {
        byte[] bytes = HandMade.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 576, 1024), }", new byte[1000]);
        Assert.That(ReadError(bytes),
            Is.EqualTo("truncated: the header says 4 x 576 x 1024 float32 (9437184 bytes of data) but the file holds 1000 bytes after the header"));
    }

    [Test]
    public void ExtraDataIsAnError()
    {
        byte[] bytes = HandMade.Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", new byte[12]);
        Assert.That(ReadError(bytes),
            Is.EqualTo("the header says scalar int64 (8 bytes of data) but the file holds 12 bytes after the header: 4 bytes too many"));
    }

    [Test]
    public void AnUnknownFormatVersionIsRejected()
        => Assert.That(ReadError(HandMade.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", [], major: 4)),
            Is.EqualTo("unsupported .npy format version 4.0 (versions 1.0, 2.0 and 3.0 are read)"));

    [TestCase("<f8", "float64 (descr '<f8') is not supported: " + Accepted)]
    [TestCase(">f8", "float64 (descr '>f8') is not supported: " + Accepted)]
    [TestCase("<c8", "complex64 (descr '<c8') is not supported: " + Accepted)]
    [TestCase("<U5", "a unicode string dtype (descr '<U5') is not supported: " + Accepted)]
    [TestCase("|O", "object (descr '|O') is not supported: " + Accepted)]
    [TestCase("|b1", "bool (descr '|b1') is not supported: " + Accepted)]
    [TestCase("<u2", "uint16 (descr '<u2') is not supported: " + Accepted)]
    [TestCase("|V2", "descr '|V2' is anonymous 2-byte records, which is how numpy.save stores ml_dtypes' bfloat16 without saying so: not supported; " + Accepted)]
    public void UnsupportedDtypesAreNamed(string descr, string problem)
        => Assert.That(ReadError(HandMade.Npy($"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}", new byte[16])), Is.EqualTo(problem));

    [Test]
    public void AStructuredDtypeIsRejected()
        => Assert.That(ReadError(HandMade.Npy("{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (1,), }", new byte[8])),
            Is.EqualTo("a structured dtype (a record of fields) is not supported: " + Accepted));

    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ",
        "malformed header: expected ',' or '}' at the end: {'descr': '<f4', 'fortran_order': False, 'shape': (1,)")]
    [TestCase("{'descr': '<f4', 'shape': (1,), }",
        "malformed header: the key 'fortran_order' is missing: {'descr': '<f4', 'shape': (1,), }")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
        "malformed header: keys other than 'descr', 'fortran_order' and 'shape': {'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}")]
    [TestCase("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
        "malformed header: 'fortran_order' is not True or False: {'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        "malformed header: 'shape' holds something other than non-negative integers: {'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")]
    [TestCase("{'descr': '<f4', 'fortran_order': False, 'shape': 4, }",
        "malformed header: 'shape' is not a tuple: {'descr': '<f4', 'fortran_order': False, 'shape': 4, }")]
    [TestCase("__import__('os').system('true')",
        "malformed header: unexpected character '_' at character 1: __import__('os').system('true')")]
    public void MalformedHeadersAreRejected(string header, string problem)
        => Assert.That(ReadError(HandMade.Npy(header, new byte[4])), Is.EqualTo(problem));

    [Test]
    public void AShapeTooLargeForMemoryIsRejectedBeforeReading()
        => Assert.That(ReadError(HandMade.Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", new byte[4])),
            Is.EqualTo($"the header says 100000 x 100000 float32, more than the {Array.MaxLength} bytes one tensor may hold"));
}
