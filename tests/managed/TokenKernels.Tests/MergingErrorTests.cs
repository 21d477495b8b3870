using System;
using NUnit.Framework;

namespace TokenKernels.Tests;

/// <summary>
/// Bad merge arguments give ArgumentException naming the parameter for what C# checks, TokenKernelsException with
/// the native message for what only the native library checks, and nothing is written.
/// </summary>
public class MergingErrorTests
{
    private static readonly TensorShape MetricShape = new TensorShape(2, 9, 4);
    private static readonly TensorShape TokenShape = new TensorShape(2, 9, 3);
    private static readonly MergeOptions Options = new MergeOptions(3);

    private static ReadOnlyHostTensor<float> Metric => new ReadOnlyHostTensor<float>(new float[72], MetricShape);

    private static ReadOnlyHostTensor<float> Tokens => new ReadOnlyHostTensor<float>(new float[54], TokenShape);

    private static HostTensor<float> Output => new HostTensor<float>(new float[36], new TensorShape(2, 6, 3));

    [Test]
    public void OptionsRejectBadValues()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new MergeOptions(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("R"));
            Assert.That(() => new MergeOptions(2) { R = -3 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("R"));
            Assert.That(() => new MergeOptions(2) { Threshold = float.NaN }, Throws.ArgumentException.With.Property("ParamName").EqualTo("Threshold"));
            Assert.That(() => MergeOptions.ByThreshold(float.NaN), Throws.ArgumentException.With.Property("ParamName").EqualTo("threshold"));
            Assert.That(() => MergeOptions.ByThreshold(0.5f, -1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("maxMerges"));
            Assert.That(() => new MergeOptions(2) { Mode = (MergeMode)5 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Mode"));
            Assert.That(() => new MergeOptions(2) { Order = (MergeOrder)(-1) }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Order"));
        }
    }

    [Test]
    public void WithMethodsRejectBadValuesByTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Options.WithR(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("r")
                .And.Message.Contains("0 or more"));
            Assert.That(() => Options.WithThreshold(float.NaN), Throws.ArgumentException.With.Property("ParamName").EqualTo("threshold")
                .And.Message.Contains("NaN"));
            Assert.That(() => Options.WithMode((MergeMode)5), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("mode")
                .And.Message.Contains("Not a MergeMode"));
            Assert.That(() => Options.WithOrder((MergeOrder)(-1)), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("order")
                .And.Message.Contains("Not a MergeOrder"));
        }
    }

    // A size is a weight of the mean: zero, negative or non-finite is refused by name, before anything is written.
    [TestCase(0f)]
    [TestCase(-1f)]
    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void SizeThatIsNotPositiveAndFiniteIsNamed(float bad)
    {
        float[] sizes = new float[18];
        Array.Fill(sizes, 1f);
        sizes[9 + 4] = bad;
        float[] output = new float[36];
        Array.Fill(output, 7f);
        var ex = Assert.Throws<TokenKernelsException>(() =>
            TokenMerging.Merge(Metric, Tokens, new HostTensor<float>(output, new TensorShape(2, 6, 3)), Options,
                new ReadOnlyHostTensor<float>(sizes, new TensorShape(2, 9))));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("size[1, 4]").And.Contain("positive finite"));
        Assert.That(output, Is.All.EqualTo(7f));
    }

    [Test]
    public void WrongRanksNameTheirParameter()
    {
        float[] flat = new float[72];
        var flatShape = new TensorShape(18, 4);
        var ex = Assert.Throws<ArgumentException>(() => TokenMerging.Merge(new ReadOnlyHostTensor<float>(flat, flatShape), Tokens, Output, Options));
        Assert.That(ex!.ParamName, Is.EqualTo("metric"));
        Assert.That(ex.Message, Does.Contain("[B, N, Cm]").And.Contain("[18, 4]"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenMerging.Merge(Metric, new ReadOnlyHostTensor<float>(new float[54], new TensorShape(18, 3)), Output, Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => TokenMerging.Merge(default(ReadOnlyHostTensor<float>), Tokens, Output, Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("metric").And.Message.Contains("default tensor"));
            Assert.That(() => TokenMerging.Match(new ReadOnlyHostTensor<float>(flat, flatShape), Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("metric"));
            Assert.That(() => TokenMerging.GetOutputShape(new TensorShape(9, 3), Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("inputShape"));
            Assert.That(() => TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(new float[18], new TensorShape(6, 3)), new ReadOnlyHostTensor<int>(new int[18], new TensorShape(2, 9))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(new float[36], new TensorShape(2, 6, 3)), new ReadOnlyHostTensor<int>(new int[18], new TensorShape(18))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sourceMap"));
        }
    }

    [TestCase(3, 9)]
    [TestCase(2, 8)]
    public void TokensThatDisagreeWithTheMetricNameX(int batch, int tokens)
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            TokenMerging.Merge(Metric, new ReadOnlyHostTensor<float>(new float[batch * tokens * 3], new TensorShape(batch, tokens, 3)), Output, Options));
        Assert.That(ex!.ParamName, Is.EqualTo("x"));
        Assert.That(ex.Message, Does.Contain("B = 2").And.Contain("N = 9"));
    }

    [Test]
    public void AWrongOutputShapeNamesOutputAndTheExpectedShape()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            TokenMerging.Merge(Metric, Tokens, new HostTensor<float>(new float[42], new TensorShape(2, 7, 3)), Options));
        Assert.That(ex!.ParamName, Is.EqualTo("output"));
        Assert.That(ex.Message, Does.Contain("[2, 6, 3]").And.Contain("r 3"));
    }

    [Test]
    public void OptionalTensorsOfTheWrongShapeNameTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenMerging.Merge(Metric, Tokens, Output, Options, sizes: new ReadOnlyHostTensor<float>(new float[18], new TensorShape(9, 2))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes").And.Message.Contains("[2, 9]"));
            Assert.That(() => TokenMerging.Merge(Metric, Tokens, Output, Options, outputSizes: new HostTensor<float>(new float[18], new TensorShape(2, 9))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("outputSizes").And.Message.Contains("[2, 6]"));
            Assert.That(() => TokenMerging.Merge(Metric, Tokens, Output, Options, sourceMap: new HostTensor<int>(new int[12], new TensorShape(2, 6))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sourceMap"));
            Assert.That(() => TokenMerging.Merge(Metric, Tokens, Output, Options, mergeCounts: new HostTensor<int>(new int[3], new TensorShape(3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("mergeCounts"));
            Assert.That(() => TokenMerging.Match(Metric, new HostTensor<int>(new int[8], new TensorShape(2, 4)), new HostTensor<float>(new float[10], new TensorShape(2, 5)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("destinations").And.Message.Contains("[2, 5]"));
        }
    }

    [Test]
    public void ThresholdModeWithoutMergeCountsNamesMergeCounts()
    {
        var output = new float[54];
        var ex = Assert.Throws<ArgumentException>(() =>
            TokenMerging.Merge(Metric, Tokens, new HostTensor<float>(output, TokenShape), MergeOptions.ByThreshold(0.5f)));
        Assert.That(ex!.ParamName, Is.EqualTo("mergeCounts"));
        Assert.That(ex.Message, Does.Contain("[2]"));
    }

    [Test]
    public void IntegerTokensOrMetricNameTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenMerging.Merge(new ReadOnlyHostTensor<int>(new int[72], MetricShape), Tokens, Output, Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("metric").And.Message.Contains("Int32"));
            Assert.That(() => TokenMerging.Merge(Metric, new ReadOnlyHostTensor<int>(new int[54], TokenShape), new HostTensor<int>(new int[36], new TensorShape(2, 6, 3)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
        }
    }

    [Test]
    public void NegativeTokenCountIsRejectedAndTooManyIsReportedByTheNativeLibrary()
    {
        Assert.That(() => TokenMerging.GetOutputTokens(-1, Options), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
        var ex = Assert.Throws<TokenKernelsException>(() => TokenMerging.GetOutputTokens(1L << 31, Options));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("tokens").And.Contain("2147483648"));
    }

    [Test]
    public void OverlappingOutputIsReportedByTheNativeLibraryAndNothingIsWritten()
    {
        var shared = new float[72];
        for (int i = 0; i < shared.Length; i++)
        {
            shared[i] = i;
        }
        var sizes = new float[12];
        var ex = Assert.Throws<TokenKernelsException>(() =>
            TokenMerging.Merge(
                new ReadOnlyHostTensor<float>(shared, MetricShape), new ReadOnlyHostTensor<float>(shared.AsSpan(0, 54), TokenShape),
                new HostTensor<float>(shared.AsSpan(10, 36), new TensorShape(2, 6, 3)), Options,
                outputSizes: new HostTensor<float>(sizes, new TensorShape(2, 6))));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
            Assert.That(ex.NativeMessage, Does.Contain("out"));
            Assert.That(ex.Message, Does.StartWith("TK_STATUS_INVALID_ARGUMENT: "));
            Assert.That(sizes, Is.All.Zero, "nothing was written");
            for (int i = 0; i < shared.Length; i++)
            {
                Assert.That(shared[i], Is.EqualTo(i), "nothing was written");
            }
        }
    }

    [Test]
    public void SourceMapEntriesOutOfRangeAreReportedByTheNativeLibrary()
    {
        var map = new int[18];
        map[13] = 6;
        var output = new float[54];
        output.AsSpan().Fill(3f);
        var ex = Assert.Throws<TokenKernelsException>(() =>
            TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(new float[36], new TensorShape(2, 6, 3)), new ReadOnlyHostTensor<int>(map, new TensorShape(2, 9)), new HostTensor<float>(output, TokenShape)));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("source_map[1, 4]").And.Contain("6"));
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [Test]
    public void UnmergeChecksItsOutput()
    {
        float[] yData = new float[36];
        int[] mapData = new int[18];
        ReadOnlyHostTensor<float> Y() => new ReadOnlyHostTensor<float>(yData, new TensorShape(2, 6, 3));
        ReadOnlyHostTensor<int> Map() => new ReadOnlyHostTensor<int>(mapData, new TensorShape(2, 9));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenMerging.Unmerge(Y(), Map(), new HostTensor<float>(new float[48], new TensorShape(2, 8, 3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output").And.Message.Contains("[2, 9, 3]"));
            Assert.That(() => TokenMerging.Unmerge(Y(), new ReadOnlyHostTensor<int>(new int[27], new TensorShape(3, 9))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sourceMap"));
        }
    }

    [Test]
    public void DeviceCallsCheckTypesShapesAndDevicesBeforeTheNativeCall()
    {
        var metric = new DeviceTensor(new IntPtr(256), TensorDataType.BFloat16, MetricShape);
        var x = new DeviceTensor(new IntPtr(4096), TensorDataType.Float16, TokenShape);
        var output = new DeviceTensor(new IntPtr(8192), TensorDataType.Float16, new TensorShape(2, 6, 3));
        var floatOutput = new DeviceTensor(new IntPtr(8192), TensorDataType.Float32, new TensorShape(2, 6, 3));
        var otherDevice = new DeviceTensor(new IntPtr(8192), TensorDataType.Float16, new TensorShape(2, 6, 3), default, 1);
        var counts = new DeviceTensor(new IntPtr(9000), TensorDataType.Int32, new TensorShape(2));
        var floatCounts = new DeviceTensor(new IntPtr(9000), TensorDataType.Float32, new TensorShape(2));
        var map64 = new DeviceTensor(new IntPtr(9000), TensorDataType.Int64, new TensorShape(2, 9));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenMerging.Merge(metric, x, floatOutput, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenMerging.Merge(metric, x, otherDevice, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenMerging.Merge(metric, x, output, Options, mergeCounts: floatCounts), Throws.ArgumentException.With.Property("ParamName").EqualTo("mergeCounts"));
            Assert.That(() => TokenMerging.Merge(metric, x, output, Options, sourceMap: map64), Throws.ArgumentException.With.Property("ParamName").EqualTo("sourceMap"));
            Assert.That(() => TokenMerging.Merge(metric, x, new DeviceTensor(new IntPtr(8192), TensorDataType.Float16, TokenShape), MergeOptions.ByThreshold(0.5f)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("mergeCounts"));
            Assert.That(() => TokenMerging.Merge(metric, x, output, Options, mergeCounts: counts, workspaceBytes: 64), Throws.ArgumentException.With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => TokenMerging.Merge(metric, x, output, Options, workspace: new IntPtr(1024), workspaceBytes: -1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => TokenMerging.Merge(default, x, output, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("metric"));
            Assert.That(() => TokenMerging.Match(metric, counts, floatCounts, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("destinations"));
            Assert.That(() => TokenMerging.Unmerge(output, new DeviceTensor(new IntPtr(9000), TensorDataType.Float32, new TensorShape(2, 9)), x),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sourceMap"));
            Assert.That(() => TokenMerging.Unmerge(output, map64, new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, TokenShape)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
        }
    }

    [Test]
    public void DeviceCallsWithoutCudaAreReportedByTheNativeLibrary()
    {
        if (Cuda.IsAvailable)
        {
            Assert.Ignore("a CUDA device is present; this checks the library without one");
        }
        var metric = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, MetricShape);
        var x = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, TokenShape);
        var output = new DeviceTensor(new IntPtr(8192), TensorDataType.Float32, new TensorShape(2, 6, 3));
        var ex = Assert.Throws<TokenKernelsException>(() => TokenMerging.Merge(metric, x, output, Options));
        Assert.That(ex!.Status, Is.AnyOf(TokenKernelsStatus.BackendUnavailable, TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Is.Not.Empty);
    }
}
