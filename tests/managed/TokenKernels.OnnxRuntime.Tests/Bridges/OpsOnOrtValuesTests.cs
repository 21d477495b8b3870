using System;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NUnit.Framework;
using OrtBFloat16 = Microsoft.ML.OnnxRuntime.BFloat16;
using OrtFloat16 = Microsoft.ML.OnnxRuntime.Float16;
using TkBFloat16 = TokenKernels.BFloat16;
using TkFloat16 = TokenKernels.Float16;

namespace TokenKernels.OnnxRuntime.Tests.Bridges;

/// <summary>
/// TokenKernels ops run on views of OrtValues ONNX Runtime allocated, writing into an OrtValue: the results equal
/// the same ops on arrays, bit for bit.
/// </summary>
public class OpsOnOrtValuesTests
{
    // [B, T, H, W, C] frames, pooled 2x2 in space: [1, 2, 2, 3, 3].
    private static readonly long[] FramesSizes = { 1, 2, 4, 6, 3 };
    private static readonly long[] PooledSizes = { 1, 2, 2, 3, 3 };

    [Test]
    public void PoolingFloatOrtValuesEqualsPoolingArrays()
        => CheckPooling<float, float>(TensorElementType.Float, v => v, v => v);

    [Test]
    public void PoolingFloat16OrtValuesEqualsPoolingArrays()
        => CheckPooling<TkFloat16, OrtFloat16>(TensorElementType.Float16, v => (TkFloat16)v, v => (OrtFloat16)v);

    [Test]
    public void PoolingBFloat16OrtValuesEqualsPoolingArrays()
        => CheckPooling<TkBFloat16, OrtBFloat16>(TensorElementType.BFloat16, v => (TkBFloat16)v, v => (OrtBFloat16)v);

    [Test]
    public void TopKAndGatherOnOrtValuesEqualTheSameOnArrays()
    {
        float[] scores = { 0.5f, 3, -1, 2, 2, 7, 0, 1, 1, 9, -4, 8, 6, 0 };
        float[] x = new float[2 * 7 * 4];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = i * 0.25f - 5;
        }
        using OrtValue scoresValue = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, new long[] { 2, 7 });
        scores.CopyTo(scoresValue.GetTensorMutableDataAsSpan<float>());
        using OrtValue indicesValue = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Int32, new long[] { 2, 3 });
        using OrtValue xValue = OrtValueBridge.CreateTensorValue(x, new TensorShape(2, 7, 4));
        using OrtValue gatheredValue = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, new long[] { 2, 3, 4 });

        TokenPruning.TopK(scoresValue.AsReadOnlyHostTensor<float>(), indicesValue.AsHostTensor<int>());
        // Gather through int64 indices: an OrtValue over a long[] TokenKernels filled from the int32 top-k.
        long[] longIndices = Array.ConvertAll(indicesValue.GetTensorDataAsSpan<int>().ToArray(), i => (long)i);
        using OrtValue longIndicesValue = OrtValueBridge.CreateTensorValue(longIndices, new TensorShape(2, 3));
        TokenPruning.Gather(xValue.AsReadOnlyHostTensor<float>(), longIndicesValue.AsReadOnlyHostTensor<long>(), gatheredValue.AsHostTensor<float>());

        (int[] expectedIndices, _) = TokenPruning.TopK(new ReadOnlyHostTensor<float>(scores, new TensorShape(2, 7)), 3);
        (float[] expectedGathered, _) = TokenPruning.Gather(
            new ReadOnlyHostTensor<float>(x, new TensorShape(2, 7, 4)), new ReadOnlyHostTensor<int>(expectedIndices, new TensorShape(2, 3)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(indicesValue.GetTensorDataAsSpan<int>().ToArray(), Is.EqualTo(expectedIndices));
            Assert.That(expectedIndices, Is.EqualTo(new[] { 1, 3, 5, 2, 4, 5 }), "the top 3 of each row, in increasing order");
            Assert.That(gatheredValue.GetTensorDataAsSpan<float>().ToArray(), Is.EqualTo(expectedGathered));
        }
    }

    /// <summary>
    /// 2x2 average pooling of frames held by an OrtValue ONNX Runtime allocated and filled through its own span,
    /// written into an OrtValue ONNX Runtime allocated, against the same pooling of arrays.
    /// </summary>
    private static void CheckPooling<T, TOrt>(TensorElementType elementType, Func<float, T> toTokenKernels, Func<float, TOrt> toOrt)
        where T : unmanaged
        where TOrt : unmanaged
    {
        var frames = new T[48 * 3];
        using OrtValue framesValue = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, elementType, FramesSizes);
        Span<TOrt> ortFrames = framesValue.GetTensorMutableDataAsSpan<TOrt>();
        for (int i = 0; i < frames.Length; i++)
        {
            // Multiples of 1/4 up to 36: exact in float16 and bfloat16, so both sides start from the same bits.
            float v = (i * 37 % 145) * 0.25f;
            frames[i] = toTokenKernels(v);
            ortFrames[i] = toOrt(v);
        }
        using OrtValue pooledValue = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, elementType, PooledSizes);

        Pooling.WindowAvg(framesValue.AsReadOnlyHostTensor<T>(), pooledValue.AsHostTensor<T>(), kernel: (1, 2, 2));

        (T[] expected, TensorShape expectedShape) = Pooling.WindowAvg(new ReadOnlyHostTensor<T>(frames, new TensorShape(FramesSizes)), kernel: (1, 2, 2));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(expectedShape, Is.EqualTo(new TensorShape(PooledSizes)));
            Assert.That(MemoryMarshal.AsBytes(pooledValue.GetTensorDataAsSpan<TOrt>()).ToArray(), Is.EqualTo(MemoryMarshal.AsBytes<T>(expected).ToArray()));
            Assert.That(pooledValue.GetTensorDataAsSpan<TOrt>().ToArray(), Has.Some.Not.EqualTo(default(TOrt)), "the output was written");
        }
    }
}
