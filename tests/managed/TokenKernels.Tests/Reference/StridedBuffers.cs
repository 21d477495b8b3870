using System;

namespace TokenKernels.Tests.Reference;

/// <summary>How a test lays a rank-5 tensor out in memory.</summary>
public enum Layout
{
    /// <summary>Dense row-major.</summary>
    Contiguous,

    /// <summary>A channel slice [2, 2 + C) of tokens that have C + 5 channels, as a slice of a wider feature buffer.</summary>
    ChannelSlice,

    /// <summary>Frames 1..T of a buffer with T + 1 frames, every other row of a frame twice as tall.</summary>
    FrameAndRowStrides,
}

/// <summary>A buffer larger than the tensor, the offset of element 0, and the strides of the view into it.</summary>
internal sealed class StridedBuffer<T>
    where T : unmanaged
{
    private StridedBuffer(T[] buffer, int offset, long[] shape, long[] strides)
    {
        Buffer = buffer;
        Offset = offset;
        Shape = shape;
        Strides = strides;
    }

    public T[] Buffer { get; }

    public int Offset { get; }

    public long[] Shape { get; }

    public long[] Strides { get; }

    public Span<T> Data => Buffer.AsSpan(Offset);

    /// <summary>A buffer for <paramref name="shape"/> laid out as <paramref name="layout"/>, every element set to <paramref name="fill"/>.</summary>
    public static StridedBuffer<T> Create(long[] shape, Layout layout, T fill)
    {
        long[] padded = (long[])shape.Clone();
        long[] stepMultiplier = { 1, 1, 1, 1, 1 };
        long offsetIndex = 0;
        switch (layout)
        {
            case Layout.ChannelSlice:
                padded[4] = shape[4] + 5;
                offsetIndex = 2;
                break;
            case Layout.FrameAndRowStrides:
                padded[1] = shape[1] + 1;
                padded[2] = shape[2] * 2;
                stepMultiplier[2] = 2;
                offsetIndex = padded[2] * padded[3] * padded[4];
                break;
        }
        long[] paddedStrides = ContiguousStrides(padded);
        var strides = new long[5];
        for (int d = 0; d < 5; d++)
        {
            strides[d] = paddedStrides[d] * stepMultiplier[d];
        }
        long total = 1;
        foreach (long size in padded)
        {
            total *= size;
        }
        var buffer = new T[total];
        buffer.AsSpan().Fill(fill);
        return new StridedBuffer<T>(buffer, (int)offsetIndex, shape, strides);
    }

    /// <summary>Writes contiguous <paramref name="values"/> into the view.</summary>
    public void Write(T[] values)
    {
        long i = 0;
        ForEach((_, offset) => Buffer[offset] = values[i++]);
    }

    /// <summary>The view's elements in row-major order.</summary>
    public T[] Read()
    {
        var values = new T[Shape[0] * Shape[1] * Shape[2] * Shape[3] * Shape[4]];
        long i = 0;
        ForEach((_, offset) => values[i++] = Buffer[offset]);
        return values;
    }

    /// <summary>How many buffer elements outside the view differ from <paramref name="fill"/> (it must be 0 after a call).</summary>
    public int CountChangedOutside(T fill)
    {
        var inside = new bool[Buffer.Length];
        ForEach((_, offset) => inside[offset] = true);
        int changed = 0;
        for (int i = 0; i < Buffer.Length; i++)
        {
            if (!inside[i] && !Buffer[i].Equals(fill))
            {
                changed++;
            }
        }
        return changed;
    }

    public TensorShape TensorShape => new TensorShape(Shape);

    public TensorStrides TensorStrides => new TensorStrides(Strides);

    private void ForEach(Action<long, long> visit)
    {
        long logical = 0;
        for (long b = 0; b < Shape[0]; b++)
        for (long t = 0; t < Shape[1]; t++)
        for (long h = 0; h < Shape[2]; h++)
        for (long w = 0; w < Shape[3]; w++)
        for (long c = 0; c < Shape[4]; c++)
        {
            visit(logical++, Offset + b * Strides[0] + t * Strides[1] + h * Strides[2] + w * Strides[3] + c * Strides[4]);
        }
    }

    private static long[] ContiguousStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return strides;
    }
}
