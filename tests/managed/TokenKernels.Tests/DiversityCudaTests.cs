using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Diversity selection on a CUDA device against the reference and the CPU backend on the same inputs; skipped without a device.</summary>
public class DiversityCudaTests
{
    [SetUp]
    public void RequireDevice()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
    }

    [TestCaseSource(typeof(DiversityCase), nameof(DiversityCase.All))]
    public void SelectionOnDeviceMatchesTheReference(DiversityCase c)
    {
        int seed = PruningHostTests.HashSeed(c.ToString()) + 7;
        Compare<float>(c, seed, useWorkspace: false);
        Compare<Float16>(c, seed + 1, useWorkspace: true);
        Compare<BFloat16>(c, seed + 2, useWorkspace: false);
    }

    [TestCase(2, 576, 64, 64)]
    [TestCase(3, 2880, 32, 576)]
    [TestCase(1, 1024, 128, 1024)]
    public void SelectionOnDeviceEqualsTheCpuAtModelSizes(int batch, int tokens, int channels, int k)
    {
        var random = new Random(tokens + k);
        (BFloat16[] x, _) = Elements.Random<BFloat16>(batch * tokens * channels, random);
        int[] lengths = Enumerable.Range(0, batch).Select(b => b == 0 ? tokens : random.Next(tokens / 2, tokens + 1)).ToArray();
        var xShape = new TensorShape(batch, tokens, channels);
        var outShape = new TensorShape(batch, k);
        var lengthsShape = new TensorShape(batch);
        foreach (DiversityOptions options in new[] { DiversityOptions.DivPrune(k), new DiversityOptions(k) { Distance = Distance.L2, Objective = DiversityObjective.MaxSum } })
        {
            (int[] order, int[] sorted, _) = DiversitySelection.Select(new ReadOnlyHostTensor<BFloat16>(x, xShape), options, new ReadOnlyHostTensor<int>(lengths, lengthsShape));

            using var stream = CudaStream.Create();
            using DeviceBuffer xd = Upload(x, stream);
            using DeviceBuffer ld = Upload(lengths, stream);
            using var od = DeviceBuffer.Allocate<int>(order.Length);
            using var sd = DeviceBuffer.Allocate<int>(sorted.Length);
            DiversitySelection.Select(xd.AsTensor(xShape, TensorDataType.BFloat16), od.AsTensor(outShape, TensorDataType.Int32), options,
                sd.AsTensor(outShape, TensorDataType.Int32), ld.AsTensor(lengthsShape, TensorDataType.Int32), stream: stream);
            int[] deviceOrder = Download<int>(od, order.Length, stream);
            int[] deviceSorted = Download<int>(sd, sorted.Length, stream);
            using (Assert.EnterMultipleScope())
            {
                // Float32 distances summed in another order may flip a near-tie late in a long selection; the first
                // choices and the chosen set up to such a flip must agree, and the outputs must be well formed.
                Assert.That(deviceOrder.Take(8), Is.EqualTo(order.Take(8)), options + ": first choices");
                for (int b = 0; b < batch; b++)
                {
                    int[] row = deviceOrder.Skip(b * k).Take(k).ToArray();
                    int count = Math.Min(k, lengths[b]);
                    Assert.That(row.Take(count).Distinct().Count(), Is.EqualTo(count), options + ": item " + b + " never repeats");
                    Assert.That(row.Take(count).All(i => i >= 0 && i < lengths[b]), options + ": item " + b + " within its length");
                    Assert.That(row.Skip(count), Is.All.EqualTo(-1), options + ": item " + b + " padding");
                    Assert.That(deviceSorted.Skip(b * k).Take(count), Is.EqualTo(row.Take(count).OrderBy(i => i)), options + ": item " + b + " sorted");
                }
            }
        }
    }

    [Test]
    public void SelectionOnDeviceClampsLengthsItemKAndFirstIndex()
    {
        (float[] x, _) = Elements.Random<float>(2 * 12 * 4, new Random(61));
        var xShape = new TensorShape(2, 12, 4);
        var outShape = new TensorShape(2, 5);
        var items = new TensorShape(2);
        var options = DiversityOptions.DivPrune(5) with { First = FirstCenter.Index };
        (int[] expected, _, _) = DiversitySelection.Select(new ReadOnlyHostTensor<float>(x, xShape), options,
            new ReadOnlyHostTensor<int>(new[] { 12, 0 }, items), new ReadOnlyHostTensor<int>(new[] { 5, 0 }, items), new ReadOnlyHostTensor<int>(new[] { 11, 0 }, items));

        using var stream = CudaStream.Create();
        using DeviceBuffer xd = Upload(x, stream);
        using DeviceBuffer ld = Upload(new[] { 40, -3 }, stream);
        using DeviceBuffer kd = Upload(new[] { 9, -1 }, stream);
        using DeviceBuffer fd = Upload(new[] { 30, 4 }, stream);
        using var od = DeviceBuffer.Allocate<int>(10);
        DiversitySelection.Select(xd.AsTensor(xShape, TensorDataType.Float32), od.AsTensor(outShape, TensorDataType.Int32), options,
            lengths: ld.AsTensor(items, TensorDataType.Int32), itemK: kd.AsTensor(items, TensorDataType.Int32), firstIndex: fd.AsTensor(items, TensorDataType.Int32), stream: stream);
        Assert.That(Download<int>(od, 10, stream), Is.EqualTo(expected));
    }

    private static void Compare<T>(DiversityCase c, int seed, bool useWorkspace)
        where T : unmanaged
    {
        DiversityShape s = c.Shape;
        DiversityInputs<T> inputs = c.Draw<T>(seed);
        var xShape = new TensorShape(s.Batch, s.Tokens, s.Channels);
        var outShape = new TensorShape(s.Batch, s.K);
        var items = new TensorShape(s.Batch);
        TensorDataType dataType = TensorDataTypeExtensions.Of<T>();
        int outputs = Math.Max(1, s.Batch * s.K);

        using var stream = CudaStream.Create();
        using DeviceBuffer xd = Upload(inputs.X, stream);
        using DeviceBuffer ld = Upload(inputs.Lengths ?? new int[1], stream);
        using DeviceBuffer kd = Upload(inputs.ItemK ?? new int[1], stream);
        using DeviceBuffer fid = Upload(inputs.FirstIndex ?? new int[1], stream);
        using DeviceBuffer fsd = Upload(inputs.FirstScore ?? new T[1], stream);
        using var od = DeviceBuffer.Allocate<int>(outputs);
        using var sd = DeviceBuffer.Allocate<int>(outputs);
        DeviceTensor xt = xd.AsTensor(xShape, dataType);
        long bytes = useWorkspace ? DiversitySelection.GetWorkspaceSize(xt, c.Options) : 0;
        using var workspace = new DeviceBuffer(Math.Max(1, bytes));
        DiversitySelection.Select(
            xt, od.AsTensor(outShape, TensorDataType.Int32), c.Options, sd.AsTensor(outShape, TensorDataType.Int32),
            inputs.Lengths == null ? null : ld.AsTensor(items, TensorDataType.Int32),
            inputs.ItemK == null ? null : kd.AsTensor(items, TensorDataType.Int32),
            inputs.FirstIndex == null ? null : fid.AsTensor(items, TensorDataType.Int32),
            inputs.FirstScore == null ? null : fsd.AsTensor(new TensorShape(s.Batch, s.Tokens), dataType),
            stream, useWorkspace ? workspace.Pointer : IntPtr.Zero, bytes);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Download<int>(od, s.Batch * s.K, stream), Is.EqualTo(inputs.Expected.Order), typeof(T).Name + ": order");
            Assert.That(Download<int>(sd, s.Batch * s.K, stream), Is.EqualTo(inputs.Expected.Sorted), typeof(T).Name + ": sorted");
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
