using System;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>Conversions between float32 and the tokens' element types (float32, Float16, BFloat16).</summary>
internal static class ElementConversion
{
    /// <summary>Values of float32, Float16 or BFloat16 as float32 (the same array for float32).</summary>
    public static float[] ToFloat32<T>(T[] values)
        where T : unmanaged
        => values is float[] floats ? floats : ToFloat32<T>(values.AsSpan());

    /// <summary>Values of float32, Float16 or BFloat16 as a new float32 array, each converted exactly.</summary>
    public static float[] ToFloat32<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var converted = new float[values.Length];
        if (typeof(T) == typeof(float))
        {
            System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(values).CopyTo(converted);
        }
        else if (typeof(T) == typeof(Float16))
        {
            ReadOnlySpan<Float16> half = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Float16>(values);
            for (int i = 0; i < half.Length; i++)
            {
                converted[i] = half[i];
            }
        }
        else if (typeof(T) == typeof(BFloat16))
        {
            ReadOnlySpan<BFloat16> brain = System.Runtime.InteropServices.MemoryMarshal.Cast<T, BFloat16>(values);
            for (int i = 0; i < brain.Length; i++)
            {
                converted[i] = brain[i];
            }
        }
        else
        {
            throw new NotSupportedException("Tokens are float32, float16 or bfloat16; got " + typeof(T).Name + ".");
        }
        return converted;
    }

    /// <summary>Float32 values in the element type <typeparamref name="T"/>, each rounded once (the same array for float32).</summary>
    public static T[] FromFloat32<T>(float[] values)
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            return (T[])(object)values;
        }
        var converted = new T[values.Length];
        if (typeof(T) == typeof(Float16))
        {
            var half = (Float16[])(object)converted;
            for (int i = 0; i < values.Length; i++)
            {
                half[i] = (Float16)values[i];
            }
        }
        else if (typeof(T) == typeof(BFloat16))
        {
            var brain = (BFloat16[])(object)converted;
            for (int i = 0; i < values.Length; i++)
            {
                brain[i] = (BFloat16)values[i];
            }
        }
        else
        {
            throw new NotSupportedException("Tokens are float32, float16 or bfloat16; got " + typeof(T).Name + ".");
        }
        return converted;
    }
}

/// <summary>A computation generic in the tokens' element type, for <see cref="ElementTypes.Dispatch{TResult}"/>.</summary>
/// <typeparam name="TResult">What it returns.</typeparam>
internal interface IElementTypeAction<out TResult>
{
    /// <summary>Runs with the element type <typeparamref name="T"/>.</summary>
    TResult Invoke<T>()
        where T : unmanaged;
}

/// <summary>The one place the CLI turns a runtime element type into a type argument.</summary>
internal static class ElementTypes
{
    /// <summary>Runs <paramref name="action"/> with float, Float16 or BFloat16 for <paramref name="dataType"/>.</summary>
    public static TResult Dispatch<TResult>(TensorDataType dataType, IElementTypeAction<TResult> action) => dataType switch
    {
        TensorDataType.Float32 => action.Invoke<float>(),
        TensorDataType.Float16 => action.Invoke<Float16>(),
        TensorDataType.BFloat16 => action.Invoke<BFloat16>(),
        _ => throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Tokens are float32, float16 or bfloat16."),
    };

    /// <summary>"f32", "f16" or "bf16".</summary>
    public static string ShortName(TensorDataType dataType) => dataType switch
    {
        TensorDataType.Float32 => "f32",
        TensorDataType.Float16 => "f16",
        TensorDataType.BFloat16 => "bf16",
        _ => dataType.ToString(),
    };

    /// <summary>The element type named "f32", "f16" or "bf16" (also "float32", "float16", "bfloat16"); null for anything else.</summary>
    public static TensorDataType? Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" or "float" => TensorDataType.Float32,
        "f16" or "float16" or "half" => TensorDataType.Float16,
        "bf16" or "bfloat16" => TensorDataType.BFloat16,
        _ => null,
    };
}
