using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>
/// numpy's .npy format (numpy.save / numpy.load): one array per file. Reads format versions 1.0, 2.0 and 3.0 holding
/// float32, float16, int32 or int64 in either byte order and in C or Fortran order (Fortran order is converted to C
/// order on reading); writes version 1.0 (2.0 when the header does not fit 1.0's 16-bit length), little-endian,
/// C order, with the header padded to 64 bytes as numpy pads it.
/// </summary>
/// <remarks>
/// numpy has no bfloat16: ml_dtypes' bfloat16 arrays are saved with the descr '&lt;V2' (anonymous 2-byte records),
/// which cannot be told apart from any other 2-byte record, so such files are rejected and bfloat16 goes in
/// .safetensors files instead.
/// </remarks>
internal static class NpyFormat
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private const string Accepted = "save float32, float16, int32 or int64 (bfloat16 in .safetensors)";

    /// <summary>Reads the array in <paramref name="path"/>, named after the file's stem.</summary>
    /// <exception cref="TensorFileException">The file is missing, unreadable, not a .npy file or holds an unsupported type.</exception>
    public static StoredTensor Read(string path)
    {
        using FileStream stream = TensorFileIO.OpenForReading(path);
        long length = stream.Length;
        if (length == 0)
        {
            throw new TensorFileException(path, "empty file (0 bytes): not a .npy file");
        }

        Span<byte> prefix = stackalloc byte[12];
        int magicLength = (int)Math.Min(length, Magic.Length);
        TensorFileIO.ReadExactly(path, stream, prefix[..magicLength]);
        if (!prefix[..magicLength].SequenceEqual(Magic.AsSpan(0, magicLength)) || magicLength < Magic.Length)
        {
            throw new TensorFileException(path, "not a .npy file: it does not start with numpy's magic string \\x93NUMPY");
        }
        if (length < 8)
        {
            throw new TensorFileException(path, $"truncated header: the file ends after {length} bytes, inside the format version");
        }
        TensorFileIO.ReadExactly(path, stream, prefix[6..8]);
        byte major = prefix[6];
        byte minor = prefix[7];
        if (major is < 1 or > 3 || minor != 0)
        {
            throw new TensorFileException(path, $"unsupported .npy format version {major}.{minor} (versions 1.0, 2.0 and 3.0 are read)");
        }
        int lengthFieldSize = major == 1 ? 2 : 4;
        int prefixLength = 8 + lengthFieldSize;
        if (length < prefixLength)
        {
            throw new TensorFileException(path, $"truncated header: the file ends after {length} bytes, inside the header length");
        }
        TensorFileIO.ReadExactly(path, stream, prefix[8..prefixLength]);
        long headerLength = major == 1
            ? BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..])
            : BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
        if (prefixLength + headerLength > length)
        {
            throw new TensorFileException(path,
                $"truncated header: it is {headerLength} bytes long but the file ends {length - prefixLength} bytes after its start");
        }

        var headerBytes = new byte[headerLength];
        TensorFileIO.ReadExactly(path, stream, headerBytes);
        string header;
        try
        {
            // Versions 1.0 and 2.0 write the header in latin-1, 3.0 in UTF-8.
            header = major == 3
                ? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(headerBytes)
                : Encoding.Latin1.GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new TensorFileException(path, "malformed header: version 3.0 headers are UTF-8 and this one is not");
        }

        (StoredDataType dataType, bool bigEndian, bool fortranOrder, long[] shape) = ParseHeader(path, header);

        long? dataBytes = StoredTensor.DataBytes(shape, dataType);
        string described = $"{StoredTensor.DescribeShape(shape)} {dataType.LongName()}";
        if (dataBytes is null || dataBytes > StoredTensor.MaxDataBytes)
        {
            throw new TensorFileException(path,
                $"the header says {described}, more than the {StoredTensor.MaxDataBytes} bytes one tensor may hold");
        }
        long available = length - prefixLength - headerLength;
        if (available < dataBytes)
        {
            throw new TensorFileException(path,
                $"truncated: the header says {described} ({dataBytes} bytes of data) but the file holds {available} bytes after the header");
        }
        if (available > dataBytes)
        {
            throw new TensorFileException(path,
                $"the header says {described} ({dataBytes} bytes of data) but the file holds {available} bytes after the header: {available - dataBytes} bytes too many");
        }

        var data = new byte[dataBytes.Value];
        TensorFileIO.ReadExactly(path, stream, data);
        if (bigEndian)
        {
            SwapByteOrder(data, dataType.ElementSize());
        }
        if (fortranOrder && shape.Length > 1)
        {
            data = FortranToC(data, shape, dataType.ElementSize());
        }
        return new StoredTensor(System.IO.Path.GetFileNameWithoutExtension(path), dataType, shape, data);
    }

    /// <summary>Writes <paramref name="tensor"/> to <paramref name="path"/> (replacing it atomically).</summary>
    /// <exception cref="TensorFileException">The tensor is bfloat16, or the file cannot be written.</exception>
    public static void Write(string path, StoredTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        string descr = tensor.DataType switch
        {
            StoredDataType.Float32 => "<f4",
            StoredDataType.Float16 => "<f2",
            StoredDataType.Int32 => "<i4",
            StoredDataType.Int64 => "<i8",
            StoredDataType.BFloat16 => throw new TensorFileException(path,
                "bfloat16 cannot be stored in a .npy file (numpy has no bfloat16 type): write a .safetensors file instead"),
            _ => throw new ArgumentOutOfRangeException(nameof(tensor), tensor.DataType, "unknown stored data type"),
        };
        byte[] header = BuildHeader(descr, tensor.Shape);
        TensorFileIO.WriteAtomically(path, stream =>
        {
            stream.Write(header);
            stream.Write(tensor.Data);
        });
    }

    /// <summary>Magic, version, header length and the header text padded with spaces and a newline to a multiple of 64 bytes.</summary>
    private static byte[] BuildHeader(string descr, long[] shape)
    {
        string shapeText = shape.Length switch
        {
            0 => "()",
            1 => $"({shape[0]},)",
            _ => "(" + string.Join(", ", shape) + ")",
        };
        string dictionary = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shapeText}, }}";
        const int Alignment = 64;
        int version = 1;
        int prefixLength = 10;
        int headerLength = RoundUp(prefixLength + dictionary.Length + 1, Alignment) - prefixLength;
        if (headerLength > ushort.MaxValue)
        {
            version = 2;
            prefixLength = 12;
            headerLength = RoundUp(prefixLength + dictionary.Length + 1, Alignment) - prefixLength;
        }
        var bytes = new byte[prefixLength + headerLength];
        Magic.CopyTo(bytes, 0);
        bytes[6] = (byte)version;
        bytes[7] = 0;
        if (version == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)headerLength);
        }
        Span<byte> text = bytes.AsSpan(prefixLength);
        text.Fill((byte)' ');
        Encoding.ASCII.GetBytes(dictionary, text);
        text[^1] = (byte)'\n';
        return bytes;
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    private static (StoredDataType DataType, bool BigEndian, bool FortranOrder, long[] Shape) ParseHeader(string path, string header)
    {
        object? parsed;
        try
        {
            parsed = PythonLiteral.Parse(header);
        }
        catch (FormatException exception)
        {
            throw new TensorFileException(path, $"malformed header: {exception.Message}: {Abbreviate(header)}");
        }
        if (parsed is not Dictionary<string, object?> entries)
        {
            throw new TensorFileException(path, $"malformed header: not a dict: {Abbreviate(header)}");
        }
        foreach (string key in new[] { "descr", "fortran_order", "shape" })
        {
            if (!entries.ContainsKey(key))
            {
                throw new TensorFileException(path, $"malformed header: the key '{key}' is missing: {Abbreviate(header)}");
            }
        }
        if (entries.Count != 3)
        {
            throw new TensorFileException(path,
                $"malformed header: keys other than 'descr', 'fortran_order' and 'shape': {Abbreviate(header)}");
        }

        (StoredDataType dataType, bool bigEndian) = ParseDescr(path, entries["descr"]);
        if (entries["fortran_order"] is not bool fortranOrder)
        {
            throw new TensorFileException(path, $"malformed header: 'fortran_order' is not True or False: {Abbreviate(header)}");
        }
        if (entries["shape"] is not List<object?> dimensions)
        {
            throw new TensorFileException(path, $"malformed header: 'shape' is not a tuple: {Abbreviate(header)}");
        }
        var shape = new long[dimensions.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (dimensions[i] is not long dimension || dimension < 0)
            {
                throw new TensorFileException(path,
                    $"malformed header: 'shape' holds something other than non-negative integers: {Abbreviate(header)}");
            }
            shape[i] = dimension;
        }
        return (dataType, bigEndian, fortranOrder, shape);
    }

    /// <summary>The element type and byte order a descr names, or the exception saying it is not accepted.</summary>
    private static (StoredDataType DataType, bool BigEndian) ParseDescr(string path, object? descr)
    {
        if (descr is not string text)
        {
            throw new TensorFileException(path, $"a structured dtype (a record of fields) is not supported: {Accepted}");
        }
        // numpy.save writes '<' or '>' for multi-byte types; '=' (native), '|' (not applicable) and no prefix only
        // appear in hand-made headers, and numpy.load reads them in the reading machine's order: little-endian on
        // every platform TokenKernels runs on.
        bool bigEndian = text.StartsWith('>');
        string code = text.Length > 0 && text[0] is '<' or '>' or '=' or '|' ? text[1..] : text;
        switch (code)
        {
            case "f4":
                return (StoredDataType.Float32, bigEndian);
            case "f2":
                return (StoredDataType.Float16, bigEndian);
            case "i4":
                return (StoredDataType.Int32, bigEndian);
            case "i8":
                return (StoredDataType.Int64, bigEndian);
            case "V2":
                throw new TensorFileException(path,
                    $"descr '{text}' is anonymous 2-byte records, which is how numpy.save stores ml_dtypes' bfloat16 without saying so: not supported; {Accepted}");
        }
        throw new TensorFileException(path, $"{DescribeDtype(code)} (descr '{text}') is not supported: {Accepted}");
    }

    /// <summary>numpy's name for a type code without its byte order, e.g. "f8" → "float64", "U7" → "unicode string".</summary>
    private static string DescribeDtype(string code)
    {
        if (code.Length == 0)
        {
            return "an empty dtype";
        }
        string size = code[1..];
        int bits = int.TryParse(size, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int bytes)
            ? bytes * 8
            : 0;
        string sized(string kind) => bits > 0 ? kind + bits : kind;
        return code[0] switch
        {
            'f' => sized("float"),
            'c' => sized("complex"),
            'i' => sized("int"),
            'u' => sized("uint"),
            'b' => "bool",
            '?' => "bool",
            'U' => "a unicode string dtype",
            'S' => "a byte string dtype",
            'a' => "a byte string dtype",
            'O' => "object",
            'V' => "a raw record (void) dtype",
            'M' => "datetime64",
            'm' => "timedelta64",
            _ => $"the dtype '{code}'",
        };
    }

    private static void SwapByteOrder(byte[] data, int elementSize)
    {
        for (int start = 0; start < data.Length; start += elementSize)
        {
            data.AsSpan(start, elementSize).Reverse();
        }
    }

    /// <summary>Reorders a Fortran-order (first index fastest) array into C order (last index fastest).</summary>
    private static byte[] FortranToC(byte[] source, long[] shape, int elementSize)
    {
        var result = new byte[source.Length];
        if (source.Length == 0)
        {
            return result;
        }
        int rank = shape.Length;
        var fortranStrides = new long[rank];
        long stride = elementSize;
        for (int axis = 0; axis < rank; axis++)
        {
            fortranStrides[axis] = stride;
            stride *= shape[axis];
        }
        var index = new long[rank];
        long sourceOffset = 0;
        for (long target = 0; target < result.LongLength; target += elementSize)
        {
            Array.Copy(source, sourceOffset, result, target, elementSize);
            // Odometer over the C-order index, keeping the Fortran-order offset in step.
            for (int axis = rank - 1; axis >= 0; axis--)
            {
                index[axis]++;
                sourceOffset += fortranStrides[axis];
                if (index[axis] < shape[axis])
                {
                    break;
                }
                sourceOffset -= fortranStrides[axis] * shape[axis];
                index[axis] = 0;
            }
        }
        return result;
    }

    private static string Abbreviate(string header)
    {
        string trimmed = header.TrimEnd();
        return trimmed.Length <= 200 ? trimmed : trimmed[..200] + "...";
    }
}
