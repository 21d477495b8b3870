using System;

namespace TokenKernels.Cli.TensorFiles;

/// <summary>The element types the CLI reads from and writes to token files.</summary>
internal enum StoredDataType
{
    /// <summary>IEEE 754 binary32.</summary>
    Float32,

    /// <summary>IEEE 754 binary16 (<see cref="TokenKernels.Float16"/>).</summary>
    Float16,

    /// <summary>bfloat16 (<see cref="TokenKernels.BFloat16"/>), the upper half of a float32.</summary>
    BFloat16,

    /// <summary>Signed 32-bit integer.</summary>
    Int32,

    /// <summary>Signed 64-bit integer.</summary>
    Int64,
}

/// <summary>Sizes and names of <see cref="StoredDataType"/> values.</summary>
internal static class StoredDataTypes
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this StoredDataType type) => type switch
    {
        StoredDataType.Float32 => 4,
        StoredDataType.Float16 => 2,
        StoredDataType.BFloat16 => 2,
        StoredDataType.Int32 => 4,
        StoredDataType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown stored data type"),
    };

    /// <summary>The short name used in the CLI's output: f32, f16, bf16, i32, i64.</summary>
    public static string ShortName(this StoredDataType type) => type switch
    {
        StoredDataType.Float32 => "f32",
        StoredDataType.Float16 => "f16",
        StoredDataType.BFloat16 => "bf16",
        StoredDataType.Int32 => "i32",
        StoredDataType.Int64 => "i64",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown stored data type"),
    };

    /// <summary>The name numpy and PyTorch give the type: float32, float16, bfloat16, int32, int64.</summary>
    public static string LongName(this StoredDataType type) => type switch
    {
        StoredDataType.Float32 => "float32",
        StoredDataType.Float16 => "float16",
        StoredDataType.BFloat16 => "bfloat16",
        StoredDataType.Int32 => "int32",
        StoredDataType.Int64 => "int64",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown stored data type"),
    };
}
