using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Attention-based pruning on a CUDA device against the CPU backend on the same inputs; skipped without a device.</summary>
public class PruningCudaTests
{
    [SetUp]
    public void RequireDevice()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
    }

    [TestCase(1, 1, 1, 7, 0, 1, 0, 7)]
    [TestCase(2, 12, 40, 300, 39, 40, 35, 291)]
    [TestCase(3, 4, 33, 65, 0, 33, 1, 65)]
    public void AttentionImportanceOnDeviceEqualsTheCpuBitForBit(int batch, int heads, int queries, int keys, int q0, int q1, int k0, int k1)
    {
        foreach (ImportanceOptions options in new[] { new ImportanceOptions(q0, q1, k0, k1), new ImportanceOptions(q0, q1, k0, k1) { HeadReduce = ReduceMode.Sum, QueryReduce = ReduceMode.Sum } })
        {
            CompareAttentionImportance<float>(batch, heads, queries, keys, options);
            CompareAttentionImportance<BFloat16>(batch, heads, queries, keys, options);
        }
    }

    [TestCase(1, 2, 2, 5, 9, 64, false, false)]
    [TestCase(2, 8, 2, 37, 200, 128, true, false)]
    [TestCase(2, 4, 1, 16, 16, 80, true, true)]
    [TestCase(1, 6, 3, 70, 150, 96, false, true)]
    public void QkImportanceOnDeviceMatchesTheCpu(int batch, int heads, int keyHeads, int queries, int keys, int headDim, bool causal, bool withLse)
    {
        var s = new QkShape(batch, heads, keyHeads, queries, keys, headDim);
        var options = new ImportanceOptions(queries / 3, queries, keys / 4, keys) { Causal = causal };
        CompareQkImportance<float>(s, options, withLse, useWorkspace: false);
        CompareQkImportance<Float16>(s, options with { HeadReduce = ReduceMode.Sum }, withLse, useWorkspace: true);
        CompareQkImportance<BFloat16>(s, options with { QueryReduce = ReduceMode.Sum }, withLse, useWorkspace: false);
    }

    [TestCase(1, 9, 4)]
    [TestCase(4, 577, 64)]
    [TestCase(3, 2880, 576)]
    [TestCase(2, 40, 40)]
    [TestCase(2, 40, 0)]
    public void TopKOnDeviceEqualsTheCpu(int batch, int tokens, int k)
    {
        var random = new Random(tokens + k);
        float[] scores = Enumerable.Range(0, batch * tokens).Select(_ => random.Next(30) switch
        {
            0 => float.NaN,
            1 => float.NegativeInfinity,
            _ => random.Next(12) / 4f,
        }).ToArray();
        int[] lengths = Enumerable.Range(0, batch).Select(b => b == 0 ? tokens : random.Next(tokens + 1)).ToArray();
        int[] itemK = Enumerable.Range(0, batch).Select(b => b == 0 ? k : random.Next(k + 1)).ToArray();
        var shape = new TensorShape(batch, tokens);
        var lengthsShape = new TensorShape(batch);
        (int[] indices, int[] ranked, TensorShape outShape) = TokenPruning.TopKRanked(
            new ReadOnlyHostTensor<float>(scores, shape), k, new ReadOnlyHostTensor<int>(lengths, lengthsShape), new ReadOnlyHostTensor<int>(itemK, lengthsShape));

        using var stream = CudaStream.Create();
        using DeviceBuffer s = Upload(scores, stream);
        using DeviceBuffer l = Upload(lengths, stream);
        using DeviceBuffer ik = Upload(itemK, stream);
        using var i = DeviceBuffer.Allocate<int>(Math.Max(1, indices.Length));
        using var r = DeviceBuffer.Allocate<int>(Math.Max(1, ranked.Length));
        DeviceTensor scoresTensor = s.AsTensor(shape, TensorDataType.Float32);
        long bytes = TokenPruning.GetTopKWorkspaceSize(scoresTensor, k);
        using var workspace = new DeviceBuffer(Math.Max(1, bytes));
        TokenPruning.TopK(scoresTensor, i.AsTensor(outShape, TensorDataType.Int32), l.AsTensor(lengthsShape, TensorDataType.Int32), ik.AsTensor(lengthsShape, TensorDataType.Int32),
            r.AsTensor(outShape, TensorDataType.Int32), stream, workspace.Pointer, bytes);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Download<int>(i, indices.Length, stream), Is.EqualTo(indices));
            Assert.That(Download<int>(r, ranked.Length, stream), Is.EqualTo(ranked));
        }
    }

    [Test]
    public void TopKOnDeviceClampsLengthsAndItemK()
    {
        float[] scores = Enumerable.Range(0, 2 * 12).Select(n => (float)(n * 7 % 12)).ToArray();
        var shape = new TensorShape(2, 12);
        var outShape = new TensorShape(2, 5);
        (int[] expected, _) = TokenPruning.TopK(new ReadOnlyHostTensor<float>(scores, shape), 5,
            new ReadOnlyHostTensor<int>(new[] { 12, 0 }, new TensorShape(2)), new ReadOnlyHostTensor<int>(new[] { 5, 0 }, new TensorShape(2)));

        using var stream = CudaStream.Create();
        using DeviceBuffer s = Upload(scores, stream);
        using DeviceBuffer l = Upload(new[] { 40, -3 }, stream);
        using DeviceBuffer ik = Upload(new[] { 9, -1 }, stream);
        using var i = DeviceBuffer.Allocate<int>(10);
        TokenPruning.TopK(s.AsTensor(shape, TensorDataType.Float32), i.AsTensor(outShape, TensorDataType.Int32),
            l.AsTensor(new TensorShape(2), TensorDataType.Int32), ik.AsTensor(new TensorShape(2), TensorDataType.Int32), stream: stream);
        Assert.That(Download<int>(i, 10, stream), Is.EqualTo(expected));
    }

    [Test]
    public void GatherOnDeviceEqualsTheCpuAndZeroesIndicesOutOfRange()
    {
        (Float16[] x, _) = Elements.Random<Float16>(2 * 9 * 6, new Random(51));
        long[] indices = { 8, 0, -1, 4, 3, 3, 12, -5 };
        var xShape = new TensorShape(2, 9, 6);
        var indexShape = new TensorShape(2, 4);
        var outShape = new TensorShape(2, 4, 6);
        long[] valid = indices.Select(i => i >= 9 || i < -1 ? -1 : i).ToArray();
        (Float16[] expected, _) = TokenPruning.Gather(new ReadOnlyHostTensor<Float16>(x, xShape), new ReadOnlyHostTensor<long>(valid, indexShape));

        using var stream = CudaStream.Create();
        using DeviceBuffer xd = Upload(x, stream);
        using DeviceBuffer i64 = Upload(indices, stream);
        using DeviceBuffer i32 = Upload(indices.Select(i => (int)i).ToArray(), stream);
        using var o64 = DeviceBuffer.Allocate<Float16>(expected.Length);
        using var o32 = DeviceBuffer.Allocate<Float16>(expected.Length);
        TokenPruning.Gather(xd.AsTensor(xShape, TensorDataType.Float16), i64.AsTensor(indexShape, TensorDataType.Int64), o64.AsTensor(outShape, TensorDataType.Float16), stream);
        TokenPruning.Gather(xd.AsTensor(xShape, TensorDataType.Float16), i32.AsTensor(indexShape, TensorDataType.Int32), o32.AsTensor(outShape, TensorDataType.Float16), stream);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Download<Float16>(o64, expected.Length, stream), Is.EqualTo(expected));
            Assert.That(Download<Float16>(o32, expected.Length, stream), Is.EqualTo(expected));
        }
    }

    [TestCase(2, 20, 5, 3, false)]
    [TestCase(2, 577, 65, 10, true)]
    [TestCase(1, 64, 0, 64, true)]
    public void ContextualOnDeviceMatchesTheCpu(int batch, int tokens, int kept, int contextual, bool useWorkspace)
    {
        var random = new Random(tokens * 3 + kept);
        (BFloat16[] metric, _) = Elements.Random<BFloat16>(batch * tokens * 16, random);
        (float[] x, _) = Elements.Random<float>(batch * tokens * 8, random);
        long[] keptIndices = Enumerable.Range(0, batch)
            .SelectMany(_ => Enumerable.Range(0, tokens).OrderBy(_ => random.Next()).Take(kept).Select(n => (long)n)).ToArray();
        var metricShape = new TensorShape(batch, tokens, 16);
        var xShape = new TensorShape(batch, tokens, 8);
        var keptShape = new TensorShape(batch, kept);
        var outShape = new TensorShape(batch, contextual, 8);
        var expected = new float[outShape.ElementCount];
        TokenPruning.VisionZipContextual(new ReadOnlyHostTensor<BFloat16>(metric, metricShape), new ReadOnlyHostTensor<float>(x, xShape),
            new ReadOnlyHostTensor<long>(keptIndices, keptShape), new HostTensor<float>(expected, outShape));

        using var stream = CudaStream.Create();
        using DeviceBuffer md = Upload(metric, stream);
        using DeviceBuffer xd = Upload(x, stream);
        using DeviceBuffer kd = DeviceBuffer.Allocate<long>(Math.Max(1, keptIndices.Length));
        kd.CopyFrom<long>(keptIndices, 0, stream);
        using var od = DeviceBuffer.Allocate<float>(expected.Length);
        DeviceTensor m = md.AsTensor(metricShape, TensorDataType.BFloat16);
        DeviceTensor xt = xd.AsTensor(xShape, TensorDataType.Float32);
        DeviceTensor kt = kd.AsTensor(keptShape, TensorDataType.Int64);
        long bytes = useWorkspace ? TokenPruning.GetVisionZipContextualWorkspaceSize(contextual, m, xt, kt) : 0;
        using var workspace = new DeviceBuffer(Math.Max(1, bytes));
        TokenPruning.VisionZipContextual(m, xt, kt, od.AsTensor(outShape, TensorDataType.Float32), stream, useWorkspace ? workspace.Pointer : IntPtr.Zero, bytes);
        Assert.That(Download<float>(od, expected.Length, stream), Is.EqualTo(expected).Within(1e-5));
    }

    private static void CompareAttentionImportance<T>(int batch, int heads, int queries, int keys, ImportanceOptions options)
        where T : unmanaged
    {
        (T[] attn, _) = PruningReference.Probabilities<T>(batch * heads * queries, keys, new Random(batch + heads + queries + keys));
        var shape = new TensorShape(batch, heads, queries, keys);
        (float[] expected, TensorShape outShape) = TokenPruning.AttentionImportance(new ReadOnlyHostTensor<T>(attn, shape), options);

        using var stream = CudaStream.Create();
        using DeviceBuffer a = Upload(attn, stream);
        using var o = DeviceBuffer.Allocate<float>(Math.Max(1, expected.Length));
        TokenPruning.AttentionImportance(a.AsTensor(shape, TensorDataTypeExtensions.Of<T>()), o.AsTensor(outShape, TensorDataType.Float32), options, stream);
        Assert.That(Download<float>(o, expected.Length, stream), Is.EqualTo(expected), typeof(T).Name + ", " + options);
    }

    private static void CompareQkImportance<T>(QkShape s, ImportanceOptions options, bool withLse, bool useWorkspace)
        where T : unmanaged
    {
        var random = new Random(s.GetHashCode());
        (T[] q, double[] qExact) = Elements.Random<T>(s.QueryElements, random);
        (T[] k, double[] kExact) = Elements.Random<T>(s.KeyElements, random);
        float[]? lse = withLse
            ? PruningReference.LogSumExp(qExact, kExact, s, ImportanceOptions.SdpaScale(s.HeadDim), options.Causal).Select(v => (float)v).ToArray()
            : null;
        var qShape = new TensorShape(s.Batch, s.Heads, s.Queries, s.HeadDim);
        var kShape = new TensorShape(s.Batch, s.KeyHeads, s.Keys, s.HeadDim);
        var lseShape = new TensorShape(s.Batch, s.Heads, s.Queries);
        (float[] expected, TensorShape outShape) = TokenPruning.QkImportance(
            new ReadOnlyHostTensor<T>(q, qShape), new ReadOnlyHostTensor<T>(k, kShape), options,
            lse == null ? default : new ReadOnlyHostTensor<float>(lse, lseShape));

        using var stream = CudaStream.Create();
        using DeviceBuffer qd = Upload(q, stream);
        using DeviceBuffer kd = Upload(k, stream);
        using DeviceBuffer ld = Upload(lse ?? new float[1], stream);
        using var od = DeviceBuffer.Allocate<float>(expected.Length);
        TensorDataType dataType = TensorDataTypeExtensions.Of<T>();
        DeviceTensor qt = qd.AsTensor(qShape, dataType);
        DeviceTensor kt = kd.AsTensor(kShape, dataType);
        DeviceTensor? lt = lse == null ? null : ld.AsTensor(lseShape, TensorDataType.Float32);
        long bytes = useWorkspace ? TokenPruning.GetQkImportanceWorkspaceSize(qt, kt, options, lt) : 0;
        using var workspace = new DeviceBuffer(Math.Max(1, bytes));
        TokenPruning.QkImportance(qt, kt, od.AsTensor(outShape, TensorDataType.Float32), options, lt, stream, useWorkspace ? workspace.Pointer : IntPtr.Zero, bytes);
        float[] actual = Download<float>(od, expected.Length, stream);
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.That(actual[i], Is.EqualTo(expected[i]).Within(PruningHostTests.QkTolerance(expected[i])), typeof(T).Name + ", " + options + ", column " + i);
            }
        }
    }

    private static DeviceBuffer Upload<T>(T[] values, CudaStream stream)
        where T : unmanaged
    {
        var buffer = DeviceBuffer.Allocate<T>(Math.Max(1, values.Length));
        buffer.CopyFrom<T>(values, 0, stream);
        return buffer;
    }

    private static T[] Download<T>(DeviceBuffer buffer, int count, CudaStream stream)
        where T : unmanaged
    {
        var values = new T[count];
        buffer.CopyTo<T>(values, 0, stream);
        return values;
    }
}
