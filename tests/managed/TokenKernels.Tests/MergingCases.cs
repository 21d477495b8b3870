using System;
using System.Collections.Generic;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>A merge test case: shape [B, N, Cm] / [B, N, C], protections and how many merge.</summary>
public sealed class MergeCase
{
    public MergeCase(string name, int batch, int tokens, int metricChannels, int channels, bool protectFirst, bool protectSecond, int r, bool threshold)
    {
        Name = name;
        Batch = batch;
        Tokens = tokens;
        MetricChannels = metricChannels;
        Channels = channels;
        ProtectFirst = protectFirst;
        ProtectSecond = protectSecond;
        R = r;
        Threshold = threshold;
    }

    public string Name { get; }

    public int Batch { get; }

    public int Tokens { get; }

    public int MetricChannels { get; }

    public int Channels { get; }

    public bool ProtectFirst { get; }

    public bool ProtectSecond { get; }

    /// <summary>Fixed r, or the cap in threshold mode.</summary>
    public int R { get; }

    /// <summary>Threshold mode, with a threshold chosen from the data so some items merge and some do not.</summary>
    public bool Threshold { get; }

    public override string ToString() => Name;

    /// <summary>Odd and even N, N = 1..3, B = 3, C not a multiple of 8, each with every protection and count kind.</summary>
    public static IEnumerable<MergeCase> All()
    {
        (int B, int N, int Cm, int C)[] shapes =
        {
            (1, 1, 4, 3), (2, 2, 5, 9), (1, 3, 6, 5), (2, 4, 3, 8), (3, 10, 7, 1), (3, 17, 13, 11), (2, 31, 64, 37),
        };
        foreach ((int b, int n, int cm, int c) in shapes)
        {
            foreach ((bool first, bool second) in new[] { (false, false), (true, false), (false, true), (true, true) })
            {
                string shape = $"B{b} N{n} Cm{cm} C{c}{(first ? " first" : "")}{(second ? " second" : "")}";
                yield return new MergeCase(shape + " r2", b, n, cm, c, first, second, 2, false);
                yield return new MergeCase(shape + " r0", b, n, cm, c, first, second, 0, false);
                yield return new MergeCase(shape + " r-clamped", b, n, cm, c, first, second, 1000, false);
                yield return new MergeCase(shape + " threshold", b, n, cm, c, first, second, int.MaxValue, true);
                yield return new MergeCase(shape + " threshold cap3", b, n, cm, c, first, second, 3, true);
            }
        }
    }

    /// <summary>A few cases for the slower combinations (other element types, device).</summary>
    public static IEnumerable<MergeCase> Some()
    {
        yield return new MergeCase("B3 N17 Cm13 C11 first r5", 3, 17, 13, 11, true, false, 5, false);
        yield return new MergeCase("B2 N31 Cm64 C37 second r12", 2, 31, 64, 37, false, true, 12, false);
        yield return new MergeCase("B3 N10 Cm7 C1 first second threshold", 3, 10, 7, 1, true, true, int.MaxValue, true);
        yield return new MergeCase("B1 N1 Cm4 C3 r1", 1, 1, 4, 3, false, false, 1, false);
        yield return new MergeCase("B2 N64 Cm72 C40 r-clamped", 2, 64, 72, 40, false, false, 1000, false);
    }

    /// <summary>The options of this case; a threshold between two bests of item 0 (half way), so no score sits on it.</summary>
    public MergeOptions Options(double[] metric, MergeMode mode, MergeOrder order)
    {
        var options = new MergeOptions(R) { ProtectFirst = ProtectFirst, ProtectSecond = ProtectSecond, Mode = mode, Order = order };
        if (!Threshold)
        {
            return options;
        }
        (_, double[] best) = MergingReference.Match(metric, Batch, Tokens, MetricChannels, options);
        var finite = new List<double>();
        for (int s = 0; s < (Tokens + 1) / 2; s++)
        {
            if (double.IsFinite(best[s]))
            {
                finite.Add(best[s]);
            }
        }
        finite.Sort();
        float threshold = finite.Count >= 2 ? (float)((finite[finite.Count / 2 - 1] + finite[finite.Count / 2]) / 2) : 0.25f;
        return options with { Threshold = threshold };
    }
}

/// <summary>A rank-3 tensor inside a larger buffer: channels padded (a slice of wider features) and/or tokens spaced out.</summary>
internal sealed class Strided3<T>
    where T : unmanaged
{
    public Strided3(long[] shape, int channelPad, int tokenStep, int offset, T fill)
    {
        Shape = shape;
        long rowLength = shape[2] + channelPad;
        Strides = new[] { shape[1] * tokenStep * rowLength, tokenStep * rowLength, 1L };
        Offset = offset;
        Buffer = new T[offset + Math.Max(1, shape[0]) * Strides[0]];
        Buffer.AsSpan().Fill(fill);
    }

    public T[] Buffer { get; }

    public int Offset { get; }

    public long[] Shape { get; }

    public long[] Strides { get; }

    public Span<T> Data => Buffer.AsSpan(Offset);

    public TensorShape TensorShape => new TensorShape(Shape);

    public TensorStrides TensorStrides => new TensorStrides(Strides);

    public HostTensor<T> Tensor => new HostTensor<T>(Data, TensorShape, TensorStrides);

    public ReadOnlyHostTensor<T> ReadOnly => new ReadOnlyHostTensor<T>(Data, TensorShape, TensorStrides);

    public void Write(T[] values)
    {
        long i = 0;
        foreach (long offset in Offsets())
        {
            Buffer[offset] = values[i++];
        }
    }

    public T[] Read()
    {
        var values = new T[Shape[0] * Shape[1] * Shape[2]];
        long i = 0;
        foreach (long offset in Offsets())
        {
            values[i++] = Buffer[offset];
        }
        return values;
    }

    public int CountChangedOutside(T fill)
    {
        var inside = new bool[Buffer.Length];
        foreach (long offset in Offsets())
        {
            inside[offset] = true;
        }
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

    private IEnumerable<long> Offsets()
    {
        for (long b = 0; b < Shape[0]; b++)
        for (long n = 0; n < Shape[1]; n++)
        for (long c = 0; c < Shape[2]; c++)
        {
            yield return Offset + b * Strides[0] + n * Strides[1] + c;
        }
    }
}
