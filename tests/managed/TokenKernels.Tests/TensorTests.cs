using System;
using System.Numerics.Tensors;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Shapes, strides, host tensor views and the System.Numerics.Tensors bridges.</summary>
public class TensorTests
{
    [Test]
    public void ShapeIsAValueWithTextAndEquality()
    {
        var shape = new TensorShape(1, 64, 27, 27, 1152);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(shape.Rank, Is.EqualTo(5));
            Assert.That(shape[3], Is.EqualTo(27));
            Assert.That(shape.ElementCount, Is.EqualTo(64L * 27 * 27 * 1152));
            Assert.That(shape.ToString(), Is.EqualTo("[1, 64, 27, 27, 1152]"));
            Assert.That(shape, Is.EqualTo(new TensorShape(new long[] { 1, 64, 27, 27, 1152 })));
            Assert.That(shape == new TensorShape(1, 64, 27, 27, 1152) && shape != new TensorShape(1, 64, 27, 27), Is.True);
            Assert.That(shape.ToArray(), Is.EqualTo(new long[] { 1, 64, 27, 27, 1152 }));
            Assert.That(shape.ContiguousStrides().ToArray(), Is.EqualTo(new long[] { 64L * 27 * 27 * 1152, 27 * 27 * 1152, 27 * 1152, 1152, 1 }));
            Assert.That(() => shape[5], Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(default(TensorShape).Rank, Is.Zero);
        }
    }

    [Test]
    public void EveryConstructorGivesTheSameShape()
    {
        // The fixed-rank and array constructors serve C# 9 and 12, which cannot list values into a params span.
        var sizes = new long[] { 2, 3, 5, 7, 11, 13, 17, 19 };
        var shapes = new[]
        {
            new TensorShape(2),
            new TensorShape(2, 3),
            new TensorShape(2, 3, 5),
            new TensorShape(2, 3, 5, 7),
            new TensorShape(2, 3, 5, 7, 11),
            new TensorShape(2, 3, 5, 7, 11, 13),
            new TensorShape(2, 3, 5, 7, 11, 13, 17),
            new TensorShape(2, 3, 5, 7, 11, 13, 17, 19),
        };
        using (Assert.EnterMultipleScope())
        {
            for (int rank = 1; rank <= TensorShape.MaxRank; rank++)
            {
                TensorShape fixedRank = shapes[rank - 1];
                var fromSpan = new TensorShape(new ReadOnlySpan<long>(sizes, 0, rank));
                var fromArray = new TensorShape(sizes.AsSpan(0, rank).ToArray());
                Assert.That(fixedRank, Is.EqualTo(fromSpan), "rank " + rank);
                Assert.That(fromArray, Is.EqualTo(fromSpan), "rank " + rank);
                Assert.That(fixedRank.Rank, Is.EqualTo(rank));
                Assert.That(fixedRank.ToArray(), Is.EqualTo(sizes.AsSpan(0, rank).ToArray()));
                Assert.That(fixedRank.ElementCount, Is.EqualTo(fromSpan.ElementCount));
                Assert.That(fixedRank.GetHashCode(), Is.EqualTo(fromSpan.GetHashCode()));
            }
            Assert.That(new TensorShape(0, 4).ElementCount, Is.Zero);
        }
    }

    [Test]
    public void FixedRankConstructorsAllocateNothing()
    {
        long sum = 0;
        void BuildOnce()
        {
            sum += new TensorShape(1, 64, 27, 27, 1152).ElementCount + new TensorShape(2).Rank + new TensorShape(1, 2, 3, 4, 5, 6, 7, 8).Rank;
            sum += new TensorStrides(46656, 1728, 64, 1).Rank + new TensorStrides(8, 7, 6, 5, 4, 3, 2, 1).Rank;
            sum += ImportanceOptions.FastV(35, 611, 700).WithCausal(true).WithScale(0.5f).KeyCount;
        }
        BuildOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            BuildOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
        Assert.That(sum, Is.Positive);
    }

    [Test]
    public void ArrayConstructorsCopyTheArray()
    {
        var sizes = new long[] { 4, 5 };
        var strides = new long[] { 10, 1 };
        var shape = new TensorShape(sizes);
        var stride = new TensorStrides(strides);
        sizes[0] = 9;
        strides[0] = 9;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(shape, Is.EqualTo(new TensorShape(4, 5)));
            Assert.That(stride, Is.EqualTo(new TensorStrides(10, 1)));
        }
    }

    [Test]
    public void EveryConstructorGivesTheSameStrides()
    {
        var values = new long[] { 8, 7, 6, 5, 4, 3, 2, 1 };
        var strides = new[]
        {
            new TensorStrides(1),
            new TensorStrides(2, 1),
            new TensorStrides(3, 2, 1),
            new TensorStrides(4, 3, 2, 1),
            new TensorStrides(5, 4, 3, 2, 1),
            new TensorStrides(6, 5, 4, 3, 2, 1),
            new TensorStrides(7, 6, 5, 4, 3, 2, 1),
            new TensorStrides(8, 7, 6, 5, 4, 3, 2, 1),
        };
        using (Assert.EnterMultipleScope())
        {
            for (int rank = 1; rank <= TensorShape.MaxRank; rank++)
            {
                var fromSpan = new TensorStrides(new ReadOnlySpan<long>(values, TensorShape.MaxRank - rank, rank));
                var fromArray = new TensorStrides(values.AsSpan(TensorShape.MaxRank - rank).ToArray());
                Assert.That(strides[rank - 1], Is.EqualTo(fromSpan), "rank " + rank);
                Assert.That(fromArray, Is.EqualTo(fromSpan), "rank " + rank);
                Assert.That(strides[rank - 1].Rank, Is.EqualTo(rank));
            }
            // Fixed-rank strides describe views like any others.
            var view = new ReadOnlyHostTensor<float>(new float[40], new TensorShape(2, 3, 4), new TensorStrides(20, 5, 1));
            Assert.That(view.Strides, Is.EqualTo(new TensorStrides(new long[] { 20, 5, 1 })));
        }
    }

    [Test]
    public void HostTensorDefaultsToContiguousStrides()
    {
        var tensor = new HostTensor<float>(new float[24], new TensorShape(2, 3, 4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(tensor.Strides, Is.EqualTo(new TensorStrides(12, 4, 1)));
            Assert.That(tensor.DataType, Is.EqualTo(TensorDataType.Float32));
            Assert.That(tensor.ToString(), Is.EqualTo("HostTensor<Single> [2, 3, 4]"));
            Assert.That(tensor.AsReadOnly().Shape, Is.EqualTo(tensor.Shape));
        }
    }

    [Test]
    public void ElementTypesMapToDataTypes()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TensorDataTypeExtensions.Of<float>(), Is.EqualTo(TensorDataType.Float32));
            Assert.That(TensorDataTypeExtensions.Of<Float16>(), Is.EqualTo(TensorDataType.Float16));
            Assert.That(TensorDataTypeExtensions.Of<Half>(), Is.EqualTo(TensorDataType.Float16));
            Assert.That(TensorDataTypeExtensions.Of<BFloat16>(), Is.EqualTo(TensorDataType.BFloat16));
            Assert.That(TensorDataTypeExtensions.Of<int>(), Is.EqualTo(TensorDataType.Int32));
            Assert.That(TensorDataTypeExtensions.Of<long>(), Is.EqualTo(TensorDataType.Int64));
            Assert.That(() => TensorDataTypeExtensions.Of<double>(), Throws.TypeOf<NotSupportedException>());
        }
    }

    [Test]
    public void StridedViewNeedsOnlyTheElementsItReaches()
    {
        // Every other row of 4 rows of 3 channels: the last row it reaches is row 2, so 2 * 6 + 3 = 9 elements suffice.
        var tensor = new ReadOnlyHostTensor<float>(new float[9], new TensorShape(2, 3), new TensorStrides(6, 1));
        Assert.That(tensor.Shape, Is.EqualTo(new TensorShape(2, 3)));
        Assert.That(() => new ReadOnlyHostTensor<float>(new float[8], new TensorShape(2, 3), new TensorStrides(6, 1)),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("data"));
    }

    [Test]
    public void MemoryAndSpanOverloadsViewTheSameElements()
    {
        var data = new float[40];
        var fromMemory = new HostTensor<float>(data.AsMemory(8), new TensorShape(2, 16));
        var fromSpan = new HostTensor<float>(data.AsSpan(8), new TensorShape(2, 16));
        var readOnly = new ReadOnlyHostTensor<float>(new ReadOnlyMemory<float>(data, 8, 32), new TensorShape(2, 16));
        fromMemory.Data[0] = 5;
        Assert.That(fromSpan.Data[0] + readOnly.Data[0], Is.EqualTo(10));
    }

    [Test]
    public void TensorSpanBecomesAHostTensorWithTheSameLayout()
    {
        var random = new Random(2);
        (float[] values, _) = Elements.Random<float>(2 * 4 * 6 * 6 * 3, random);
        var tensorSpan = new TensorSpan<float>(values, new nint[] { 2, 4, 6, 6, 3 });

        HostTensor<float> host = tensorSpan.AsHostTensor();
        (float[] viaBridge, _) = Pooling.WindowAvg(host.AsReadOnly(), (2, 2, 3));
        (float[] direct, _) = Pooling.WindowAvg(new ReadOnlyHostTensor<float>(values, new TensorShape(2, 4, 6, 6, 3)), (2, 2, 3));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(host.Shape, Is.EqualTo(new TensorShape(2, 4, 6, 6, 3)));
            Assert.That(host.Strides, Is.EqualTo(new TensorShape(2, 4, 6, 6, 3).ContiguousStrides()));
            Assert.That(viaBridge, Is.EqualTo(direct));
        }
    }

    [Test]
    public void StridedReadOnlyTensorSpanKeepsItsStrides()
    {
        var values = new float[100];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = i;
        }
        // Rows of 10 elements, 2 channels taken from each: shape [4, 2], strides [10, 1].
        var tensorSpan = new ReadOnlyTensorSpan<float>(values, new nint[] { 4, 2 }, new nint[] { 10, 1 });

        ReadOnlyHostTensor<float> host = tensorSpan.AsHostTensor();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(host.Strides, Is.EqualTo(new TensorStrides(10, 1)));
            Assert.That(host.Data.Length, Is.EqualTo(32));
            Assert.That(host.Data[30], Is.EqualTo(30));
        }
    }

    [Test]
    public void HostTensorBecomesATensorSpanWithTheSameLayout()
    {
        var values = new float[64];
        var host = new HostTensor<float>(values, new TensorShape(3, 2, 4), new TensorStrides(20, 8, 1));

        TensorSpan<float> tensorSpan = host.AsTensorSpan();
        tensorSpan[2, 1, 3] = 42;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(tensorSpan.Lengths.ToArray(), Is.EqualTo(new nint[] { 3, 2, 4 }));
            Assert.That(tensorSpan.Strides.ToArray(), Is.EqualTo(new nint[] { 20, 8, 1 }));
            Assert.That(values[2 * 20 + 8 + 3], Is.EqualTo(42));
            Assert.That(host.AsReadOnly().AsTensorSpan()[2, 1, 3], Is.EqualTo(42));
        }
    }

    [Test]
    public void BroadcastTensorSpanIsRejected()
    {
        var values = new float[3];
        var broadcast = new ReadOnlyTensorSpan<float>(values, new nint[] { 4, 3 }, new nint[] { 0, 1 });
        try
        {
            broadcast.AsHostTensor();
            Assert.Fail("a broadcast dimension was accepted");
        }
        catch (ArgumentException e)
        {
            Assert.That(e.ParamName, Is.EqualTo("tensor"));
        }
    }
}
