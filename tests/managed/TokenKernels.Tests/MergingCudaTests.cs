using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Token merging on a CUDA device against the CPU backend on the same inputs; skipped without a device.</summary>
public class MergingCudaTests
{
    [SetUp]
    public void RequireDevice()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
    }

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void Float32OnDeviceMatchesTheCpu(MergeCase c) => CompareWithCpu<float, float>(c, useWorkspace: false);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void Float16WithABFloat16MetricOnDeviceMatchesTheCpuWithACallerWorkspace(MergeCase c) => CompareWithCpu<BFloat16, Float16>(c, useWorkspace: true);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void MatchingOnDeviceMatchesTheCpu(MergeCase c)
    {
        (float[] metric, _) = Elements.Random<float>(c.Batch * c.Tokens * c.MetricChannels, new Random(MergingHostTests.Seed(c.Name)));
        var options = new MergeOptions(c.R) { ProtectFirst = c.ProtectFirst, ProtectSecond = c.ProtectSecond };
        var metricShape = new TensorShape(c.Batch, c.Tokens, c.MetricChannels);
        (int[] dst, float[] best, TensorShape shape) = TokenMerging.Match(new ReadOnlyHostTensor<float>(metric, metricShape), options);

        using var stream = CudaStream.Create();
        using var m = DeviceBuffer.Allocate<float>(metric.Length);
        using var d = DeviceBuffer.Allocate<int>(dst.Length);
        using var s = DeviceBuffer.Allocate<float>(best.Length);
        m.CopyFrom<float>(metric, 0, stream);
        TokenMerging.Match(m.AsTensor(metricShape, TensorDataType.Float32), d.AsTensor(shape, TensorDataType.Int32), s.AsTensor(shape, TensorDataType.Float32), options, stream);
        var deviceDst = new int[dst.Length];
        var deviceBest = new float[best.Length];
        d.CopyTo<int>(deviceDst, 0, stream);
        s.CopyTo<float>(deviceBest, 0, stream);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(deviceDst, Is.EqualTo(dst));
            Assert.That(deviceBest, Is.EqualTo(best).Within(1e-5));
        }
    }

    [Test]
    public void UnmergeOnDeviceMatchesTheCpu()
    {
        (float[] y, _) = Elements.Random<float>(2 * 5 * 7, new Random(4));
        int[] map = Enumerable.Range(0, 2 * 9).Select(i => i * 7 % 5).ToArray();
        var yShape = new TensorShape(2, 5, 7);
        var mapShape = new TensorShape(2, 9);
        (float[] expected, TensorShape shape) = TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(y, yShape), new ReadOnlyHostTensor<int>(map, mapShape));

        using var stream = CudaStream.Create();
        using var yd = DeviceBuffer.Allocate<float>(y.Length);
        using var md = DeviceBuffer.Allocate<int>(map.Length);
        using var od = DeviceBuffer.Allocate<float>(expected.Length);
        yd.CopyFrom<float>(y, 0, stream);
        md.CopyFrom<int>(map, 0, stream);
        TokenMerging.Unmerge(yd.AsTensor(yShape, TensorDataType.Float32), md.AsTensor(mapShape, TensorDataType.Int32), od.AsTensor(shape, TensorDataType.Float32), stream);
        var actual = new float[expected.Length];
        od.CopyTo<float>(actual, 0, stream);
        Assert.That(actual, Is.EqualTo(expected));
    }

    [Test]
    public void HostMemoryIsNotADeviceTensor()
    {
        var host = new float[2 * 9 * 4];
        using var output = DeviceBuffer.Allocate<float>(2 * 6 * 4);
        unsafe
        {
            fixed (float* p = host)
            {
                var metric = new DeviceTensor((IntPtr)p, TensorDataType.Float32, new TensorShape(2, 9, 4));
                var ex = Assert.Throws<TokenKernelsException>(() =>
                    TokenMerging.Merge(metric, metric, output.AsTensor(new TensorShape(2, 6, 4), TensorDataType.Float32), new MergeOptions(3)));
                Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
                Assert.That(ex.NativeMessage, Does.Contain("metric"));
            }
        }
    }

    private static void CompareWithCpu<TMetric, T>(MergeCase c, bool useWorkspace)
        where TMetric : unmanaged
        where T : unmanaged
    {
        var random = new Random(MergingHostTests.Seed(c.Name));
        (TMetric[] metric, double[] metricExact) = Elements.Random<TMetric>(c.Batch * c.Tokens * c.MetricChannels, random);
        (T[] x, _) = Elements.Random<T>(c.Batch * c.Tokens * c.Channels, random);
        float[] sizes = Enumerable.Range(0, c.Batch * c.Tokens).Select(_ => (float)(1 + 3 * random.NextDouble())).ToArray();
        var metricShape = new TensorShape(c.Batch, c.Tokens, c.MetricChannels);
        var xShape = new TensorShape(c.Batch, c.Tokens, c.Channels);
        var mapShape = new TensorShape(c.Batch, c.Tokens);
        TensorDataType metricType = TensorDataTypeExtensions.Of<TMetric>();
        TensorDataType xType = TensorDataTypeExtensions.Of<T>();

        using var stream = CudaStream.Create();
        using var md = DeviceBuffer.Allocate<TMetric>(metric.Length);
        using var xd = DeviceBuffer.Allocate<T>(x.Length);
        using var sd = DeviceBuffer.Allocate<float>(sizes.Length);
        md.CopyFrom<TMetric>(metric, 0, stream);
        xd.CopyFrom<T>(x, 0, stream);
        sd.CopyFrom<float>(sizes, 0, stream);

        foreach (MergeMode mode in Enum.GetValues<MergeMode>())
        {
            foreach (MergeOrder order in Enum.GetValues<MergeOrder>())
            {
                MergeOptions options = c.Options(metricExact, mode, order);
                MergeResult<T> expected = TokenMerging.Merge(
                    new ReadOnlyHostTensor<TMetric>(metric, metricShape), new ReadOnlyHostTensor<T>(x, xShape), options, new ReadOnlyHostTensor<float>(sizes, mapShape));
                TensorShape outShape = expected.Shape;
                var rowShape = new TensorShape(c.Batch, outShape[1]);

                using var od = DeviceBuffer.Allocate<T>(Math.Max(1, outShape.ElementCount));
                using var osd = DeviceBuffer.Allocate<float>(Math.Max(1, rowShape.ElementCount));
                using var mapd = DeviceBuffer.Allocate<int>(mapShape.ElementCount);
                using var cd = DeviceBuffer.Allocate<int>(c.Batch);
                DeviceTensor metricTensor = md.AsTensor(metricShape, metricType);
                DeviceTensor xTensor = xd.AsTensor(xShape, xType);
                long workspaceBytes = useWorkspace ? TokenMerging.GetWorkspaceSize(metricTensor, options, xTensor) : 0;
                using var workspace = new DeviceBuffer(workspaceBytes);
                TokenMerging.Merge(
                    metricTensor, xTensor, od.AsTensor(outShape, xType), options,
                    sd.AsTensor(mapShape, TensorDataType.Float32), osd.AsTensor(rowShape, TensorDataType.Float32),
                    mapd.AsTensor(mapShape, TensorDataType.Int32), cd.AsTensor(new TensorShape(c.Batch), TensorDataType.Int32),
                    stream, workspace.Pointer, workspace.SizeInBytes);
                stream.Synchronize();

                var actual = new T[outShape.ElementCount];
                var actualSizes = new float[rowShape.ElementCount];
                var actualMap = new int[mapShape.ElementCount];
                var actualCounts = new int[c.Batch];
                od.CopyTo<T>(actual, 0, stream);
                osd.CopyTo<float>(actualSizes, 0, stream);
                mapd.CopyTo<int>(actualMap, 0, stream);
                cd.CopyTo<int>(actualCounts, 0, stream);

                string what = options.ToString();
                Assert.That(actualCounts, Is.EqualTo(expected.MergeCounts), what + ": merge counts");
                Assert.That(actualMap, Is.EqualTo(expected.SourceMap), what + ": source map");
                Assert.That(actualSizes, Is.EqualTo(expected.Sizes).Within(1e-5), what + ": sizes");
                for (int i = 0; i < actual.Length; i++)
                {
                    double want = Elements.ToDouble(expected.X[i]);
                    double got = Elements.ToDouble(actual[i]);
                    if (!(Math.Abs(got - want) <= Elements.Tolerance<T>(want)))
                    {
                        Assert.Fail($"{what}: element {i} of {actual.Length}: CPU {want:R}, CUDA {got:R}");
                    }
                }
            }
        }
    }
}
