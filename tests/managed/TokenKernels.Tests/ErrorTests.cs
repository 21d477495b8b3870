using System;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// Bad input gives a clear exception, never a crash: ArgumentException naming the parameter for what C# checks,
/// TokenKernelsException with the native status and message for what only the native library checks.
/// </summary>
public class ErrorTests
{
    private static readonly float[] Tokens = new float[1 * 2 * 6 * 6 * 3];
    private static readonly TensorShape TokenShape = new TensorShape(1, 2, 6, 6, 3);

    [Test]
    public void InputOfWrongRankNamesInput()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Pooling.WindowAvg(new ReadOnlyHostTensor<float>(Tokens, new TensorShape(2, 6, 6, 3)), (1, 2, 2)));
        Assert.That(ex!.ParamName, Is.EqualTo("input"));
        Assert.That(ex.Message, Does.Contain("rank 5").And.Contain("[2, 6, 6, 3]"));
    }

    [Test]
    public void OutputShapeMismatchNamesOutputAndTheExpectedShape()
    {
        var output = new float[1 * 2 * 4 * 3 * 3];
        var ex = Assert.Throws<ArgumentException>(() =>
            Pooling.WindowAvg(new ReadOnlyHostTensor<float>(Tokens, TokenShape), new HostTensor<float>(output, new TensorShape(1, 2, 4, 3, 3)), (1, 2, 2)));
        Assert.That(ex!.ParamName, Is.EqualTo("output"));
        Assert.That(ex.Message, Does.Contain("[1, 2, 3, 3, 3]"));
    }

    [Test]
    public void OutputOfWrongElementCountForAdaptiveNamesOutput()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Pooling.AdaptiveAvg(new ReadOnlyHostTensor<float>(Tokens, TokenShape), new HostTensor<float>(new float[8], new TensorShape(1, 2, 2, 2))));
        Assert.That(ex!.ParamName, Is.EqualTo("output"));
    }

    [TestCase(0, 2, 2)]
    [TestCase(1, -1, 2)]
    [TestCase(1, 2, 0)]
    public void NonPositiveKernelNamesKernel(int t, int h, int w)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => PoolOptions.WindowAvg((t, h, w)));
        Assert.That(ex!.ParamName, Is.EqualTo("kernel"));
    }

    [Test]
    public void NonPositiveStrideNamesStride()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => PoolOptions.WindowMax((1, 2, 2), (1, 0, 2)));
        Assert.That(ex!.ParamName, Is.EqualTo("stride"));
    }

    [Test]
    public void NonPositiveOutputSizesNameTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => PoolOptions.AdaptiveAvg((1, 0, 2)), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("outputSize"));
            Assert.That(() => PoolOptions.Bilinear(0, 2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("height"));
            Assert.That(() => PoolOptions.Bilinear(2, -3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("width"));
        }
    }

    [Test]
    public void DefaultOptionsNameOptions()
    {
        var ex = Assert.Throws<ArgumentException>(() => Pooling.Pool(new ReadOnlyHostTensor<float>(Tokens, TokenShape), default(PoolOptions)));
        Assert.That(ex!.ParamName, Is.EqualTo("options"));
    }

    [Test]
    public void IntegerTokensNameInput()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Pooling.WindowAvg(new ReadOnlyHostTensor<int>(new int[Tokens.Length], TokenShape), (1, 2, 2)));
        Assert.That(ex!.ParamName, Is.EqualTo("input"));
        Assert.That(ex.Message, Does.Contain("Int32"));
    }

    [Test]
    public void KernelLargerThanInputIsReportedByTheNativeLibrary()
    {
        var ex = Assert.Throws<TokenKernelsException>(() =>
            Pooling.WindowAvg(new ReadOnlyHostTensor<float>(Tokens, TokenShape), (1, 7, 2)));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.StatusName, Is.EqualTo("TK_STATUS_INVALID_ARGUMENT"));
        Assert.That(ex.NativeMessage, Does.Contain("params->kernel[1]").And.Contain("7"));
        Assert.That(ex.Message, Does.StartWith("TK_STATUS_INVALID_ARGUMENT: "));
    }

    [Test]
    public void OverlappingInputAndOutputAreReportedByTheNativeLibrary()
    {
        var shared = new float[Tokens.Length];
        var ex = Assert.Throws<TokenKernelsException>(() =>
            Pooling.WindowAvg(
                new ReadOnlyHostTensor<float>(shared, TokenShape),
                new HostTensor<float>(shared, new TensorShape(1, 2, 3, 3, 3)),
                (1, 2, 2)));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("out"));
    }

    [Test]
    public void ShortSpanNamesData()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ReadOnlyHostTensor<float>(new float[10], TokenShape));
        Assert.That(ex!.ParamName, Is.EqualTo("data"));
        Assert.That(ex.Message, Does.Contain("216"));
    }

    [Test]
    public void NullArrayNamesData()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => new HostTensor<float>((float[])null!, TokenShape));
        Assert.That(ex!.ParamName, Is.EqualTo("data"));
    }

    [Test]
    public void StridesAreCheckedAgainstTheShape()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new HostTensor<float>(new float[300], TokenShape, new TensorStrides(108, 36, 6, 1)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("strides"), "rank differs");
            Assert.That(() => new HostTensor<float>(new float[300], TokenShape, new TensorStrides(216, 108, 18, 3, 2)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("strides"), "channels not contiguous");
            Assert.That(() => new HostTensor<float>(new float[300], TokenShape, new TensorStrides(216, 108, 0, 3, 1)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("strides"), "stride 0 on a dimension of size 6");
            Assert.That(() => new HostTensor<float>(new float[300], TokenShape, new TensorStrides(216, 108, -18, 3, 1)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("strides"), "negative stride");
            Assert.That(() => new HostTensor<float>(new float[300], default(TensorShape)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("shape"), "default shape");
        }
    }

    [Test]
    public void ShapesAreChecked()
    {
        using (Assert.EnterMultipleScope())
        {
            // The fixed-rank constructors name the argument at fault; the span and array ones name the collection.
            Assert.That(() => new TensorShape(1, -2, 3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("size1")
                .And.Message.Contains("Size 1 of the shape is negative"));
            Assert.That(() => new TensorShape(1, 2, 3, 4, 5, 6, 7, -8), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("size7"));
            Assert.That(() => new TensorShape(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("size0"));
            Assert.That(() => new TensorShape(1L << 40, 1L << 40), Throws.ArgumentException.With.Property("ParamName").EqualTo("size1")
                .And.Message.Contains("overflows"));
            Assert.That(() => new TensorShape(stackalloc long[] { 1, -2, 3 }), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape(new long[] { 1, -2, 3 }), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape(new long[] { 1L << 40, 1L << 40 }), Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape(1, 1, 1, 1, 1, 1, 1, 1, 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes")
                .And.Message.Contains("1 to 8 dimensions, got 9"));
            Assert.That(() => new TensorShape(new long[9]), Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape(ReadOnlySpan<long>.Empty), Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape(Array.Empty<long>()), Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorShape((long[])null!), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => new TensorStrides(new long[9]), Throws.ArgumentException.With.Property("ParamName").EqualTo("strides")
                .And.Message.Contains("1 to 8 dimensions, got 9"));
            Assert.That(() => new TensorStrides(Array.Empty<long>()), Throws.ArgumentException.With.Property("ParamName").EqualTo("strides"));
            Assert.That(() => new TensorStrides((long[])null!), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("strides"));
        }
    }

    [Test]
    public void UnsupportedElementTypeIsNamed()
    {
        var ex = Assert.Throws<NotSupportedException>(() => new HostTensor<double>(new double[4], new TensorShape(4)));
        Assert.That(ex!.Message, Does.Contain("Double"));
    }

    [Test]
    public void NegativeThreadCountIsRejectedBeforeTheNativeCall()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => TokenKernelsLibrary.NumThreads = -1);
        Assert.That(ex!.ParamName, Is.EqualTo("value"));
    }

    [TestCase(TokenKernelsLibrary.MaxNumThreads + 1)]
    [TestCase(100000)]
    [TestCase(int.MaxValue)]
    public void ThreadCountAboveTheLimitIsRejectedAndLeavesTheCount(int count)
    {
        int before = TokenKernelsLibrary.NumThreads;
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => TokenKernelsLibrary.NumThreads = count);
        Assert.That(ex!.Message, Does.Contain("1 to 1024"));
        Assert.That(TokenKernelsLibrary.NumThreads, Is.EqualTo(before));
        // The native library refuses it too, by name.
        var native = Assert.Throws<TokenKernelsException>(() => NativeStatus.Check(NativeMethods.tk_set_num_threads(count)));
        Assert.That(native!.NativeMessage, Does.Contain("num_threads").And.Contain("1024"));
        Assert.That(TokenKernelsLibrary.NumThreads, Is.EqualTo(before));
    }

    [Test]
    public unsafe void NativeStatusBecomesATypedExceptionWithTheNativeMessage()
    {
        TokenKernelsLibrary.Load();
        var ex = Assert.Throws<TokenKernelsException>(() => NativeStatus.Check(NativeMethods.tk_set_num_threads(-4)));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("num_threads").And.Contain("-4"));
    }

    [Test]
    public void CudaCallsWithABadOrdinalOrNoBackendAreReportedByTheNativeLibrary()
    {
        var ex = Assert.Throws<TokenKernelsException>(() => CudaStream.Create(deviceOrdinal: 4096));
        Assert.That(ex!.Status, Is.AnyOf(TokenKernelsStatus.InvalidArgument, TokenKernelsStatus.BackendUnavailable));
        Assert.That(ex.NativeMessage, Is.Not.Empty);
    }

    [Test]
    public void DeviceBufferChecksItsArguments()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new DeviceBuffer(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("sizeInBytes"));
            Assert.That(() => DeviceBuffer.Allocate<float>(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("elementCount"));
        }
    }

    [Test]
    public void DeviceTensorChecksItsArguments()
    {
        var shape = new TensorShape(1, 2, 4, 4, 3);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new DeviceTensor(IntPtr.Zero, TensorDataType.Float32, shape),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("data"));
            Assert.That(() => new DeviceTensor(new IntPtr(256), (TensorDataType)17, shape),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("dataType"));
            Assert.That(() => new DeviceTensor(new IntPtr(256), TensorDataType.Float32, shape, default, -1),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("deviceOrdinal"));
        }
    }

    [Test]
    public void DevicePoolingChecksTypesAndDevicesBeforeTheNativeCall()
    {
        var input = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, new TensorShape(1, 2, 4, 4, 3));
        var halfOutput = new DeviceTensor(new IntPtr(4096), TensorDataType.Float16, new TensorShape(1, 2, 2, 2, 3));
        var otherDevice = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, new TensorShape(1, 2, 2, 2, 3), default, 1);
        var wrongShape = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, new TensorShape(1, 2, 3, 2, 3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Pooling.WindowAvg(input, halfOutput, (1, 2, 2)), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Pooling.WindowAvg(input, otherDevice, (1, 2, 2)), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Pooling.WindowAvg(input, wrongShape, (1, 2, 2)), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
        }
    }
}
