using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>Element type of a tensor (<c>tk_dtype</c>).</summary>
public enum TensorDataType
{
    /// <summary>IEEE float32 (<see cref="float"/>).</summary>
    Float32 = NativeMethods.TK_DTYPE_F32,

    /// <summary>IEEE float16 (<see cref="TokenKernels.Float16"/>, or <c>System.Half</c> on .NET 8+).</summary>
    Float16 = NativeMethods.TK_DTYPE_F16,

    /// <summary>bfloat16 (<see cref="TokenKernels.BFloat16"/>).</summary>
    BFloat16 = NativeMethods.TK_DTYPE_BF16,

    /// <summary>32-bit signed integer (index tensors).</summary>
    Int32 = NativeMethods.TK_DTYPE_I32,

    /// <summary>64-bit signed integer (index tensors).</summary>
    Int64 = NativeMethods.TK_DTYPE_I64,
}

/// <summary>Sizes and element-type mapping of <see cref="TensorDataType"/>.</summary>
public static class TensorDataTypeExtensions
{
    /// <summary>Size in bytes of one element.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dataType"/> is not a defined value.</exception>
    public static int ElementSize(this TensorDataType dataType) => dataType switch
    {
        TensorDataType.Float32 => 4,
        TensorDataType.Float16 => 2,
        TensorDataType.BFloat16 => 2,
        TensorDataType.Int32 => 4,
        TensorDataType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Not a TensorDataType."),
    };

    /// <summary>True for the feature types the operations accept: float32, float16 and bfloat16.</summary>
    public static bool IsFloatingPoint(this TensorDataType dataType)
        => dataType == TensorDataType.Float32 || dataType == TensorDataType.Float16 || dataType == TensorDataType.BFloat16;

    /// <summary>The tensor data type stored as <typeparamref name="T"/>.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public static TensorDataType Of<T>()
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            return TensorDataType.Float32;
        }
        if (typeof(T) == typeof(Float16))
        {
            return TensorDataType.Float16;
        }
#if NET
        if (typeof(T) == typeof(Half))
        {
            return TensorDataType.Float16;
        }
#endif
        if (typeof(T) == typeof(BFloat16))
        {
            return TensorDataType.BFloat16;
        }
        if (typeof(T) == typeof(int))
        {
            return TensorDataType.Int32;
        }
        if (typeof(T) == typeof(long))
        {
            return TensorDataType.Int64;
        }
        throw new NotSupportedException(
            typeof(T).Name + " is not a TokenKernels element type: use float, Float16"
#if NET
            + ", System.Half"
#endif
            + ", BFloat16, int or long.");
    }
}
