using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// A host tensor of one of the models' element types ("float32", "float16", "bfloat16", "int32", "int64"), held in an
/// array of the TokenKernels element type (float, <see cref="Float16"/>, <see cref="BFloat16"/>, int, long) that the
/// direct calls read and ONNX Runtime's inputs wrap without a copy.
/// </summary>
internal sealed class TestTensor
{
    public TestTensor(string type, long[] shape, Array data)
    {
        Type = type;
        Shape = shape;
        Data = data;
    }

    public string Type { get; }

    public long[] Shape { get; }

    public Array Data { get; }

    public TensorShape TensorShape => new TensorShape(Shape);

    /// <summary>The elements as <typeparamref name="T"/>[] (the array itself).</summary>
    public T[] As<T>() => (T[])Data;

    /// <summary>The elements as a read-only host tensor of their shape.</summary>
    public ReadOnlyHostTensor<T> Host<T>()
        where T : unmanaged => new ReadOnlyHostTensor<T>(As<T>(), TensorShape);

    public static long Count(long[] shape) => shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>A tensor of <paramref name="type"/> holding the float32 <paramref name="values"/> rounded to it (to nearest even).</summary>
    public static TestTensor FromFloats(string type, long[] shape, float[] values) => type switch
    {
        "float32" => new TestTensor(type, shape, values),
        "float16" => new TestTensor(type, shape, values.Select(v => (Float16)v).ToArray()),
        "bfloat16" => new TestTensor(type, shape, values.Select(v => (BFloat16)v).ToArray()),
        _ => throw new ArgumentException("not a float type: " + type, nameof(type)),
    };

    /// <summary>Uniform values in [<paramref name="low"/>, <paramref name="high"/>) rounded to <paramref name="type"/>.</summary>
    public static TestTensor Uniform(string type, long[] shape, Random random, float low = -1f, float high = 1f) =>
        FromFloats(type, shape, Enumerable.Range(0, checked((int)Count(shape))).Select(_ => low + (high - low) * (float)random.NextDouble()).ToArray());

    public static TestTensor Int64(long[] shape, long[] values) => new TestTensor("int64", shape, values);

    /// <summary>The elements as float32.</summary>
    public float[] ToFloats() => Type switch
    {
        "float32" => As<float>(),
        "float16" => As<Float16>().Select(v => (float)v).ToArray(),
        "bfloat16" => As<BFloat16>().Select(v => (float)v).ToArray(),
        _ => throw new InvalidOperationException("not a float tensor: " + Type),
    };

    /// <summary>
    /// The elements as integers to compare exactly: the bits of each float (so NaN equals NaN and -0 differs from 0),
    /// the values of integer tensors.
    /// </summary>
    public long[] Bits() => Type switch
    {
        "float32" => As<float>().Select(v => (long)(uint)BitConverter.SingleToInt32Bits(v)).ToArray(),
        "float16" => As<Float16>().Select(v => (long)v.Bits).ToArray(),
        "bfloat16" => As<BFloat16>().Select(v => (long)v.Bits).ToArray(),
        "int32" => As<int>().Select(v => (long)v).ToArray(),
        "int64" => As<long>(),
        _ => throw new InvalidOperationException("unknown type " + Type),
    };

    /// <summary>ONNX Runtime's element type of a model type name.</summary>
    public static TensorElementType ElementType(string type) => type switch
    {
        "float32" => TensorElementType.Float,
        "float16" => TensorElementType.Float16,
        "bfloat16" => TensorElementType.BFloat16,
        "int32" => TensorElementType.Int32,
        "int64" => TensorElementType.Int64,
        _ => throw new ArgumentException("unknown type " + type, nameof(type)),
    };

    /// <summary>Bytes per element of a model type.</summary>
    public static int ElementSize(string type) => type switch
    {
        "float16" or "bfloat16" => 2,
        "float32" or "int32" => 4,
        "int64" => 8,
        _ => throw new ArgumentException("unknown type " + type, nameof(type)),
    };

    /// <summary>A tensor of an ONNX Runtime output, copied out.</summary>
    public static TestTensor FromOrtValue(string type, OrtValue value)
    {
        long[] shape = value.GetTensorTypeAndShape().Shape;
        ReadOnlySpan<byte> bytes = value.GetTensorMutableRawData();
        Array data = type switch
        {
            "float32" => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            "float16" => MemoryMarshal.Cast<byte, Float16>(bytes).ToArray(),
            "bfloat16" => MemoryMarshal.Cast<byte, BFloat16>(bytes).ToArray(),
            "int32" => MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
            "int64" => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            _ => throw new ArgumentException("unknown type " + type, nameof(type)),
        };
        return new TestTensor(type, shape, data);
    }

    /// <summary>An ONNX Runtime value over this tensor's array (pinned until the handle is disposed).</summary>
    public PinnedValue ToOrtValue() => new PinnedValue(this);

    /// <summary>An OrtValue over a pinned array.</summary>
    public sealed class PinnedValue : IDisposable
    {
        private GCHandle _handle;

        public PinnedValue(TestTensor tensor)
        {
            _handle = GCHandle.Alloc(tensor.Data, GCHandleType.Pinned);
            long bytes = (long)tensor.Data.Length * ElementSize(tensor.Type);
            Value = OrtValue.CreateTensorValueWithData(
                OrtMemoryInfo.DefaultInstance, ElementType(tensor.Type), tensor.Shape, _handle.AddrOfPinnedObject(), bytes);
        }

        public OrtValue Value { get; }

        public void Dispose()
        {
            Value.Dispose();
            _handle.Free();
        }
    }
}

/// <summary>Runs the test models through ONNX Runtime.</summary>
internal static class OrtRunner
{
    /// <summary>
    /// Runs <paramref name="model"/> on the CPU execution provider (or with <paramref name="options"/>) with
    /// <paramref name="inputs"/> by name, and returns every output of the graph by name.
    /// </summary>
    public static Dictionary<string, TestTensor> Run(string model, IReadOnlyDictionary<string, TestTensor> inputs, SessionOptions? options = null)
    {
        ModelSpec spec = TestModels.Get(model);
        using SessionOptions ownOptions = options ?? CustomOpLibrary.CpuOptions();
        using var session = new InferenceSession(TestModels.PathOf(model), ownOptions);
        var pinned = new List<TestTensor.PinnedValue>();
        try
        {
            foreach ((string name, _, _) in spec.Inputs)
            {
                pinned.Add(inputs[name].ToOrtValue());
            }
            using var runOptions = new RunOptions();
            string[] outputNames = spec.Outputs.Select(o => o.Name).ToArray();
            using IDisposableReadOnlyCollection<OrtValue> results = session.Run(
                runOptions, spec.Inputs.Select(i => i.Name).ToArray(), pinned.Select(p => p.Value).ToArray(), outputNames);
            var outputs = new Dictionary<string, TestTensor>();
            int index = 0;
            foreach (OrtValue result in results)
            {
                outputs[outputNames[index]] = TestTensor.FromOrtValue(spec.Outputs[index].Type, result);
                index++;
            }
            return outputs;
        }
        finally
        {
            foreach (TestTensor.PinnedValue value in pinned)
            {
                value.Dispose();
            }
        }
    }
}
