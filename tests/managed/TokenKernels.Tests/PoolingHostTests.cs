using System;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Pooling of host tensors against the double-precision reference, for every mode, element type and layout.</summary>
public class PoolingHostTests
{
    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.WithLayouts))]
    public void Float32MatchesReference(PoolCase c, Layout layout) => CheckAgainstReference<float>(c, layout);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.WithLayouts))]
    public void Float16MatchesReference(PoolCase c, Layout layout) => CheckAgainstReference<Float16>(c, layout);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.WithLayouts))]
    public void BFloat16MatchesReference(PoolCase c, Layout layout) => CheckAgainstReference<BFloat16>(c, layout);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.All))]
    public void SystemHalfMatchesReference(PoolCase c) => CheckAgainstReference<Half>(c, Layout.Contiguous);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.All))]
    public void AllocatingOverloadEqualsCallerOutput(PoolCase c)
    {
        var random = new Random(7);
        (float[] values, _) = Elements.Random<float>(Count(c.Shape), random);
        var input = new ReadOnlyHostTensor<float>(values, new TensorShape(c.Shape));
        (float[] allocated, TensorShape shape) = Pooling.Pool(input, c.Options);

        var provided = new float[shape.ElementCount];
        Pooling.Pool(input, new HostTensor<float>(provided, shape), c.Options);

        Assert.That(shape, Is.EqualTo(Pooling.GetOutputShape(input.Shape, c.Options)));
        Assert.That(allocated, Is.EqualTo(provided));
    }

    [Test]
    public void NamedOverloadsEqualTheOptionsOverload()
    {
        var random = new Random(11);
        long[] shape = { 2, 5, 9, 8, 3 };
        (float[] values, _) = Elements.Random<float>(Count(shape), random);
        var input = new ReadOnlyHostTensor<float>(values, new TensorShape(shape));

        using (Assert.EnterMultipleScope())
        {
            AssertSame(Pooling.WindowAvg(input, (1, 2, 2)), input, PoolOptions.WindowAvg((1, 2, 2)), "WindowAvg allocating");
            AssertSame(Pooling.WindowMax(input, (2, 3, 2), (1, 2, 3)), input, PoolOptions.WindowMax((2, 3, 2), (1, 2, 3)), "WindowMax allocating");
            AssertSame(Pooling.AdaptiveAvg(input, (3, 4, 5)), input, PoolOptions.AdaptiveAvg((3, 4, 5)), "AdaptiveAvg allocating");
            AssertSame(Pooling.AdaptiveMax(input, (3, 4, 5)), input, PoolOptions.AdaptiveMax((3, 4, 5)), "AdaptiveMax allocating");
            AssertSame(Pooling.Bilinear(input, 5, 4), input, PoolOptions.Bilinear(5, 4), "Bilinear allocating");

            AssertSame(IntoOutput(input, PoolOptions.WindowAvg((1, 2, 2)), (i, o) => Pooling.WindowAvg(i, o, (1, 2, 2))), input, PoolOptions.WindowAvg((1, 2, 2)), "WindowAvg");
            AssertSame(IntoOutput(input, PoolOptions.WindowMax((1, 3, 3), (1, 1, 2)), (i, o) => Pooling.WindowMax(i, o, (1, 3, 3), (1, 1, 2))), input, PoolOptions.WindowMax((1, 3, 3), (1, 1, 2)), "WindowMax");
            AssertSame(IntoOutput(input, PoolOptions.AdaptiveAvg((2, 3, 3)), (i, o) => Pooling.AdaptiveAvg(i, o)), input, PoolOptions.AdaptiveAvg((2, 3, 3)), "AdaptiveAvg");
            AssertSame(IntoOutput(input, PoolOptions.AdaptiveMax((2, 3, 3)), (i, o) => Pooling.AdaptiveMax(i, o)), input, PoolOptions.AdaptiveMax((2, 3, 3)), "AdaptiveMax");
            AssertSame(IntoOutput(input, PoolOptions.Bilinear(4, 11), (i, o) => Pooling.Bilinear(i, o)), input, PoolOptions.Bilinear(4, 11), "Bilinear");
        }
    }

    [Test]
    public void OutputShapesOfThePublishedMethods()
    {
        var siglip = new TensorShape(1, 64, 27, 27, 1152);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Pooling.GetOutputShape(siglip, PoolOptions.WindowAvg((1, 2, 2))), Is.EqualTo(new TensorShape(1, 64, 13, 13, 1152)), "LLaVA-Video");
            Assert.That(Pooling.GetOutputShape(siglip, PoolOptions.Bilinear(14, 14)), Is.EqualTo(new TensorShape(1, 64, 14, 14, 1152)), "LLaVA-OneVision");
            Assert.That(Pooling.GetOutputShape(new TensorShape(1, 16, 24, 24, 4096), PoolOptions.AdaptiveAvg((16, 12, 12))),
                Is.EqualTo(new TensorShape(1, 16, 12, 12, 4096)), "PLLaVA");
        }
    }

    [Test]
    public void MethodPresetsAreTheirPublishedSettings()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(PoolOptions.LlavaVideo(), Is.EqualTo(PoolOptions.WindowAvg((1, 2, 2))), "LLaVA-Video: avg_pool2d 2");
            Assert.That(PoolOptions.LlavaVideo(3), Is.EqualTo(PoolOptions.WindowAvg((1, 3, 3))), "LLaVA-Video, stride 3");
            Assert.That(PoolOptions.LlavaOneVision(27, 27), Is.EqualTo(PoolOptions.Bilinear(14, 14)), "LLaVA-OneVision: ceil(27 / 2)");
            Assert.That(PoolOptions.LlavaOneVision(24, 25, 4), Is.EqualTo(PoolOptions.Bilinear(6, 7)), "LLaVA-OneVision, stride 4");
            Assert.That(PoolOptions.Pllava(), Is.EqualTo(PoolOptions.AdaptiveAvg((16, 12, 12))), "PLLaVA's pooling_shape");
            Assert.That(PoolOptions.VideoChatGptTemporal(100), Is.EqualTo(PoolOptions.AdaptiveAvg((100, 1, 1))), "Video-ChatGPT temporal");
            Assert.That(PoolOptions.VideoChatGptSpatial(16, 16), Is.EqualTo(PoolOptions.AdaptiveAvg((1, 16, 16))), "Video-ChatGPT spatial");
            Assert.Throws<ArgumentOutOfRangeException>(() => PoolOptions.LlavaOneVision(27, 27, 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => PoolOptions.LlavaVideo(0));
        }
    }

    [TestCase(PoolMode.WindowMax)]
    [TestCase(PoolMode.AdaptiveMax)]
    [TestCase(PoolMode.WindowAvg)]
    [TestCase(PoolMode.AdaptiveAvg)]
    public void NaNInAWindowGivesNaNOnlyThere(PoolMode mode)
    {
        long[] shape = { 1, 1, 4, 4, 2 };
        var values = new float[Count(shape)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = i;
        }
        values[PoolingReference.Index(shape, 0, 0, 0, 1, 1)] = float.NaN;
        PoolOptions options = mode switch
        {
            PoolMode.WindowMax => PoolOptions.WindowMax((1, 2, 2)),
            PoolMode.WindowAvg => PoolOptions.WindowAvg((1, 2, 2)),
            PoolMode.AdaptiveMax => PoolOptions.AdaptiveMax((1, 2, 2)),
            _ => PoolOptions.AdaptiveAvg((1, 2, 2)),
        };

        (float[] pooled, TensorShape outShape) = Pooling.Pool(new ReadOnlyHostTensor<float>(values, new TensorShape(shape)), options);

        long[] o = outShape.ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(pooled[PoolingReference.Index(o, 0, 0, 0, 0, 1)], Is.NaN, "the window holding the NaN, channel 1");
            Assert.That(pooled[PoolingReference.Index(o, 0, 0, 0, 0, 0)], Is.Not.NaN, "same window, channel 0");
            Assert.That(pooled[PoolingReference.Index(o, 0, 0, 1, 1, 1)], Is.Not.NaN, "another window");
        }
    }

    [Test]
    public void ResultDoesNotDependOnTheThreadCount()
    {
        var random = new Random(3);
        long[] shape = { 2, 9, 27, 27, 16 };
        (float[] values, _) = Elements.Random<float>(Count(shape), random);
        var input = new ReadOnlyHostTensor<float>(values, new TensorShape(shape));
        int before = TokenKernelsLibrary.NumThreads;
        try
        {
            TokenKernelsLibrary.NumThreads = 1;
            (float[] single, _) = Pooling.AdaptiveAvg(input, (4, 5, 7));
            TokenKernelsLibrary.NumThreads = 0;
            (float[] many, _) = Pooling.AdaptiveAvg(input, (4, 5, 7));
            Assert.That(many, Is.EqualTo(single));
        }
        finally
        {
            TokenKernelsLibrary.NumThreads = before;
        }
    }

    [Test]
    public void NonAllocatingCallsAllocateNothing()
    {
        var input = new float[1 * 2 * 6 * 6 * 4];
        var output = new float[1 * 2 * 3 * 3 * 4];
        void PoolOnce()
        {
            var x = new ReadOnlyHostTensor<float>(input, new TensorShape(1, 2, 6, 6, 4));
            var y = new HostTensor<float>(output, new TensorShape(1, 2, 3, 3, 4));
            Pooling.WindowAvg(x, y, (1, 2, 2));
            Pooling.Pool(x, y, PoolOptions.AdaptiveMax((2, 3, 3)));
            Pooling.AdaptiveAvg(x, y);
        }
        PoolOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            PoolOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
    }

    [Test]
    public void EmptyBatchIsAccepted()
    {
        (float[] pooled, TensorShape shape) = Pooling.WindowAvg(new ReadOnlyHostTensor<float>(Array.Empty<float>(), new TensorShape(0, 2, 4, 4, 3)), (1, 2, 2));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(shape, Is.EqualTo(new TensorShape(0, 2, 2, 2, 3)));
            Assert.That(pooled, Is.Empty);
        }
    }

    private static void CheckAgainstReference<T>(PoolCase c, Layout layout)
        where T : unmanaged
    {
        var random = new Random(c.Name.Length * 31 + (int)layout);
        (T[] values, double[] exact) = Elements.Random<T>(Count(c.Shape), random);
        double[] expected = PoolingReference.Pool(exact, c.Shape, c.Options, out long[] outShape);

        T sentinel = Elements.FromDouble<T>(7.0);
        var source = StridedBuffer<T>.Create(c.Shape, layout, sentinel);
        source.Write(values);
        var destination = StridedBuffer<T>.Create(outShape, layout, sentinel);

        Pooling.Pool(
            new ReadOnlyHostTensor<T>(source.Data, source.TensorShape, source.TensorStrides),
            new HostTensor<T>(destination.Data, destination.TensorShape, destination.TensorStrides),
            c.Options);

        T[] actual = destination.Read();
        Assert.That(destination.CountChangedOutside(sentinel), Is.Zero, "elements outside the output view were written");
        for (int i = 0; i < expected.Length; i++)
        {
            double got = Elements.ToDouble(actual[i]);
            if (Math.Abs(got - expected[i]) > Elements.Tolerance<T>(expected[i]))
            {
                Assert.Fail($"element {i} of {expected.Length} (output shape [{string.Join(", ", outShape)}]): expected {expected[i]:R}, got {got:R}");
            }
        }
    }

    private static (float[] Data, TensorShape Shape) IntoOutput(ReadOnlyHostTensor<float> input, PoolOptions options, PoolInto pool)
    {
        TensorShape shape = Pooling.GetOutputShape(input.Shape, options);
        var data = new float[shape.ElementCount];
        pool(input, new HostTensor<float>(data, shape));
        return (data, shape);
    }

    private delegate void PoolInto(ReadOnlyHostTensor<float> input, HostTensor<float> output);

    private static void AssertSame((float[] Data, TensorShape Shape) actual, ReadOnlyHostTensor<float> input, PoolOptions options, string what)
    {
        (float[] expected, TensorShape shape) = Pooling.Pool(input, options);
        Assert.That(actual.Shape, Is.EqualTo(shape), what + " shape");
        Assert.That(actual.Data, Is.EqualTo(expected), what + " values");
    }

    private static long Count(long[] shape)
    {
        long count = 1;
        foreach (long size in shape)
        {
            count *= size;
        }
        return count;
    }
}
