using System;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// Device memory, streams and pooling on a CUDA device, checked against the CPU backend on the same inputs.
/// Skipped, with the reason, where no device is usable.
/// </summary>
public class CudaTests
{
    [SetUp]
    public void RequireDevice()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
    }

    [Test]
    public void DeviceIsDescribed()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TokenKernelsLibrary.IsCudaBuilt, Is.True);
            Assert.That(Cuda.DeviceCount, Is.GreaterThanOrEqualTo(1));
            Assert.That(Cuda.GetDeviceName(0), Is.Not.Null.And.Not.Empty);
            Assert.That(Cuda.GetComputeCapability(0)?.Major, Is.GreaterThanOrEqualTo(3));
            Assert.That(Cuda.GetDeviceName(Cuda.DeviceCount), Is.Null);
        }
    }

    [Test]
    public void DeviceBufferRoundTripsHostData()
    {
        var source = new float[1000];
        for (int i = 0; i < source.Length; i++)
        {
            source[i] = i * 0.5f;
        }
        using var stream = CudaStream.Create();
        using var buffer = DeviceBuffer.Allocate<float>(source.Length + 10);

        buffer.Clear(stream);
        buffer.CopyFrom<float>(source, destinationOffsetInBytes: 10 * sizeof(float), stream);
        var back = new float[source.Length + 10];
        buffer.CopyTo<float>(back, 0, stream);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(back.AsSpan(0, 10).ToArray(), Is.All.Zero);
            Assert.That(back.AsSpan(10).ToArray(), Is.EqualTo(source));
            Assert.That(buffer.SizeInBytes, Is.EqualTo((source.Length + 10) * sizeof(float)));
            Assert.That(() => buffer.CopyFrom<float>(source, destinationOffsetInBytes: 11 * sizeof(float)),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("destinationOffsetInBytes"));
            Assert.That(() => buffer.AsTensor(new TensorShape(1011), TensorDataType.Float32),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("shape"));
        }
    }

    [Test]
    public void DisposedObjectsSayTheyWereDisposed()
    {
        var buffer = new DeviceBuffer(64);
        var stream = CudaStream.Create();
        buffer.Dispose();
        stream.Dispose();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => buffer.Pointer, Throws.TypeOf<ObjectDisposedException>());
            Assert.That(() => stream.Synchronize(), Throws.TypeOf<ObjectDisposedException>());
        }
    }

    [Test]
    public void AWrappedStreamIsNotDestroyed()
    {
        using var owner = CudaStream.Create();
        var view = new CudaStream(owner.Handle, ownsHandle: false);
        view.Dispose();
        Assert.That(() => owner.Synchronize(), Throws.Nothing);
    }

    [Test]
    public void HostMemoryIsNotADeviceTensor()
    {
        var host = new float[2 * 4 * 4 * 3];
        var output = new DeviceBuffer(2 * 2 * 2 * 3 * sizeof(float));
        try
        {
            unsafe
            {
                fixed (float* p = host)
                {
                    var input = new DeviceTensor((IntPtr)p, TensorDataType.Float32, new TensorShape(1, 2, 4, 4, 3));
                    var ex = Assert.Throws<TokenKernelsException>(() =>
                        Pooling.WindowAvg(input, output.AsTensor(new TensorShape(1, 2, 2, 2, 3), TensorDataType.Float32), (1, 2, 2)));
                    Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
                    Assert.That(ex.NativeMessage, Does.Contain("x"));
                }
            }
        }
        finally
        {
            output.Dispose();
        }
    }

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.All))]
    public void Float32OnDeviceMatchesTheCpu(PoolCase c) => CompareWithCpu<float>(c, TensorDataType.Float32);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.All))]
    public void Float16OnDeviceMatchesTheCpu(PoolCase c) => CompareWithCpu<Float16>(c, TensorDataType.Float16);

    [TestCaseSource(typeof(PoolCase), nameof(PoolCase.All))]
    public void BFloat16OnDeviceMatchesTheCpu(PoolCase c) => CompareWithCpu<BFloat16>(c, TensorDataType.BFloat16);

    [Test]
    public void StridedDeviceViewsMatchTheCpu()
    {
        long[] shape = { 2, 5, 7, 9, 13 };
        PoolOptions options = PoolOptions.AdaptiveAvg((3, 4, 5));
        var random = new Random(9);
        (float[] values, _) = Elements.Random<float>(2 * 5 * 7 * 9 * 13, random);
        var source = StridedBuffer<float>.Create(shape, Layout.FrameAndRowStrides, 0f);
        source.Write(values);
        (float[] expected, TensorShape outShape) = Pooling.Pool(new ReadOnlyHostTensor<float>(values, new TensorShape(shape)), options);
        var destination = StridedBuffer<float>.Create(outShape.ToArray(), Layout.ChannelSlice, 7f);

        using var stream = CudaStream.Create();
        using var input = DeviceBuffer.Allocate<float>(source.Buffer.Length);
        using var output = DeviceBuffer.Allocate<float>(destination.Buffer.Length);
        input.CopyFrom<float>(source.Buffer, 0, stream);
        output.CopyFrom<float>(destination.Buffer, 0, stream);
        var x = new DeviceTensor(input.Pointer + source.Offset * sizeof(float), TensorDataType.Float32, source.TensorShape, source.TensorStrides);
        var y = new DeviceTensor(output.Pointer + destination.Offset * sizeof(float), TensorDataType.Float32, destination.TensorShape, destination.TensorStrides);
        Pooling.Pool(x, y, options, stream);
        output.CopyTo<float>(destination.Buffer, 0, stream);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(destination.CountChangedOutside(7f), Is.Zero);
            Assert.That(destination.Read(), Is.EqualTo(expected).Within(1e-5));
        }
    }

    private static void CompareWithCpu<T>(PoolCase c, TensorDataType dataType)
        where T : unmanaged
    {
        var random = new Random(c.Name.Length);
        long count = new TensorShape(c.Shape).ElementCount;
        (T[] values, _) = Elements.Random<T>(count, random);
        var inputShape = new TensorShape(c.Shape);
        (T[] expected, TensorShape outputShape) = Pooling.Pool(new ReadOnlyHostTensor<T>(values, inputShape), c.Options);

        using var stream = CudaStream.Create();
        using var input = DeviceBuffer.Allocate<T>(count);
        using var output = DeviceBuffer.Allocate<T>(outputShape.ElementCount);
        input.CopyFrom<T>(values, 0, stream);
        Pooling.Pool(input.AsTensor(inputShape, dataType), output.AsTensor(outputShape, dataType), c.Options, stream);
        stream.Synchronize();
        var actual = new T[outputShape.ElementCount];
        output.CopyTo<T>(actual, 0, stream);

        for (int i = 0; i < actual.Length; i++)
        {
            double want = Elements.ToDouble(expected[i]);
            double got = Elements.ToDouble(actual[i]);
            if (Math.Abs(got - want) > Elements.Tolerance<T>(want))
            {
                Assert.Fail($"element {i} of {actual.Length}: CPU {want:R}, CUDA {got:R}");
            }
        }
    }
}
