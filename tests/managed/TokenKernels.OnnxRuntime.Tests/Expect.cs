using System;
using System.Linq;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>Comparisons of ONNX Runtime's outputs with the direct TokenKernels calls.</summary>
internal static class Expect
{
    /// <summary>The dimensions of a TokenKernels shape.</summary>
    public static long[] Dims(TensorShape shape) => Enumerable.Range(0, shape.Rank).Select(d => shape[d]).ToArray();

    /// <summary>
    /// <paramref name="actual"/> (an ONNX Runtime output) has <paramref name="expected"/>'s shape and the same elements
    /// bit for bit; int64 outputs are compared with the int32 values the direct call gives.
    /// </summary>
    public static void Same(TestTensor actual, TestTensor expected, string what)
    {
        Assert.That(actual.Shape, Is.EqualTo(expected.Shape), what + ": shape");
        Assert.That(actual.Bits(), Is.EqualTo(expected.Bits()), what + ": elements (float bits, integer values)");
    }

    /// <summary>Expected features of the direct call, of the model's element type.</summary>
    public static TestTensor Features<T>(string type, TensorShape shape, T[] data)
        where T : unmanaged => new TestTensor(type, Dims(shape), data);

    public static TestTensor Floats(TensorShape shape, float[] data) => new TestTensor("float32", Dims(shape), data);

    public static TestTensor Floats(long[] shape, float[] data) => new TestTensor("float32", shape, data);

    /// <summary>The int32 indices of the direct call as the int64 the graph carries.</summary>
    public static TestTensor Int64(long[] shape, int[] data) => new TestTensor("int64", shape, data.Select(v => (long)v).ToArray());

    public static TestTensor Int64(TensorShape shape, int[] data) => Int64(Dims(shape), data);

    public static TestTensor Int32(long[] shape, int[] data) => new TestTensor("int32", shape, data);

    /// <summary>The model's name for element type <typeparamref name="T"/>.</summary>
    public static string TypeName<T>()
        where T : unmanaged =>
        typeof(T) == typeof(float) ? "float32"
        : typeof(T) == typeof(Float16) ? "float16"
        : typeof(T) == typeof(BFloat16) ? "bfloat16"
        : throw new ArgumentException("not a feature type: " + typeof(T));
}
