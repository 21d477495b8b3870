using System;
using System.Buffers.Binary;
using System.IO;
using System.Text;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>A fresh directory under the system's temporary directory, removed on dispose.</summary>
internal sealed class TemporaryDirectory : IDisposable
{
    public TemporaryDirectory()
    {
        Path = Directory.CreateTempSubdirectory("tokenkernels-cli-tests-").FullName;
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The full path of <paramref name="name"/> inside the directory.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="name"/> and returns its full path.</summary>
    public string Write(string name, byte[] bytes)
    {
        string path = File(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>
/// The values the tests store, from formulas the Python snippets compute too (<see cref="PythonFormulas"/>), so files
/// written on one side are checked exactly on the other.
/// </summary>
internal static class TestValues
{
    /// <summary>Python (numpy) definitions of the same formulas: f32(n), f16(n), i32(n), i64(n) as numpy arrays.</summary>
    public const string PythonFormulas = """
        import numpy as np
        def base(n): return ((np.arange(n, dtype=np.int64) * 7919) % 2001) - 1000
        def f32(n): return base(n).astype(np.float32) / np.float32(64)
        def f16(n): return f32(n).astype(np.float16)
        def i32(n): return base(n).astype(np.int32)
        def i64(n): return base(n) * (1 << 33) + 7
        """;

    private static long Base(long i) => i * 7919 % 2001 - 1000;

    /// <summary>Multiples of 1/64 within ±15.7: exact in float32 and float16, rounded in bfloat16.</summary>
    public static float Float32(long i) => Base(i) / 64f;

    public static int Int32(long i) => (int)Base(i);

    /// <summary>Uses the upper 32 bits too.</summary>
    public static long Int64(long i) => Base(i) * (1L << 33) + 7;

    public static float[] Float32s(long count) => Fill(count, Float32);

    public static Float16[] Float16s(long count) => Fill(count, i => (Float16)Float32(i));

    public static BFloat16[] BFloat16s(long count) => Fill(count, i => (BFloat16)Float32(i));

    public static int[] Int32s(long count) => Fill(count, Int32);

    public static long[] Int64s(long count) => Fill(count, Int64);

    /// <summary>A tensor of <paramref name="dataType"/> and <paramref name="shape"/> holding the formula's values.</summary>
    public static StoredTensor Tensor(string name, StoredDataType dataType, params long[] shape)
    {
        long count = 1;
        foreach (long dimension in shape)
        {
            count *= dimension;
        }
        return dataType switch
        {
            StoredDataType.Float32 => StoredTensor.FromArray(name, Float32s(count), shape),
            StoredDataType.Float16 => StoredTensor.FromArray(name, Float16s(count), shape),
            StoredDataType.BFloat16 => StoredTensor.FromArray(name, BFloat16s(count), shape),
            StoredDataType.Int32 => StoredTensor.FromArray(name, Int32s(count), shape),
            StoredDataType.Int64 => StoredTensor.FromArray(name, Int64s(count), shape),
            _ => throw new ArgumentOutOfRangeException(nameof(dataType)),
        };
    }

    /// <summary>The type with the short name <paramref name="shortName"/> (f32, f16, bf16, i32, i64).</summary>
    public static StoredDataType DataTypeNamed(string shortName)
        => Array.Find(Enum.GetValues<StoredDataType>(), type => type.ShortName() == shortName);

    private static T[] Fill<T>(long count, Func<long, T> value)
    {
        var values = new T[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = value(i);
        }
        return values;
    }
}

/// <summary>Builds files byte by byte for the tests, independently of the readers and writers under test.</summary>
internal static class HandMade
{
    /// <summary>A safetensors file: the 8-byte little-endian length of <paramref name="header"/>, the header, then <paramref name="data"/>.</summary>
    public static byte[] Safetensors(string header, byte[] data)
    {
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        return Safetensors((ulong)headerBytes.Length, headerBytes, data);
    }

    /// <summary>A safetensors file with the header length field given explicitly (possibly wrong).</summary>
    public static byte[] Safetensors(ulong headerLength, byte[] header, byte[] data)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    /// <summary>A version 1.0 .npy file with the header text <paramref name="header"/> (a newline is appended) and <paramref name="data"/>.</summary>
    public static byte[] Npy(string header, byte[] data, byte major = 1)
    {
        byte[] text = Encoding.Latin1.GetBytes(header + "\n");
        int lengthSize = major == 1 ? 2 : 4;
        var bytes = new byte[8 + lengthSize + text.Length + data.Length];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', major, 0 }.CopyTo(bytes, 0);
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)text.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)text.Length);
        }
        text.CopyTo(bytes, 8 + lengthSize);
        data.CopyTo(bytes, 8 + lengthSize + text.Length);
        return bytes;
    }

    /// <summary>Little-endian bytes of float32 values.</summary>
    public static byte[] Float32Bytes(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }
        return bytes;
    }
}
