using System;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// Section 1 of docs/SPEC.md written for clarity, in double, on contiguous [B, T, H, W, C] data: the function every backend
/// is checked against.
/// </summary>
internal static class PoolingReference
{
    public static double[] Pool(double[] x, long[] shape, PoolOptions options, out long[] outputShape) => options.Mode switch
    {
        PoolMode.WindowAvg or PoolMode.WindowMax => Window(x, shape, options.Kernel, options.Stride, options.Mode == PoolMode.WindowMax, out outputShape),
        PoolMode.AdaptiveAvg or PoolMode.AdaptiveMax => Adaptive(x, shape, options.OutputSize, options.Mode == PoolMode.AdaptiveMax, out outputShape),
        PoolMode.Bilinear => Bilinear(x, shape, options.OutputSize.Height, options.OutputSize.Width, out outputShape),
        _ => throw new ArgumentOutOfRangeException(nameof(options)),
    };

    /// <summary>avg_pool3d / max_pool3d: no padding, floor output size.</summary>
    public static double[] Window(double[] x, long[] shape, (int T, int H, int W) kernel, (int T, int H, int W) stride, bool max, out long[] outputShape)
    {
        long[] outSize =
        {
            (shape[1] - kernel.T) / stride.T + 1,
            (shape[2] - kernel.H) / stride.H + 1,
            (shape[3] - kernel.W) / stride.W + 1,
        };
        return Reduce(x, shape, outSize, max, out outputShape,
            (d, i) => d switch
            {
                0 => (i * stride.T, i * stride.T + kernel.T),
                1 => (i * stride.H, i * stride.H + kernel.H),
                _ => (i * stride.W, i * stride.W + kernel.W),
            });
    }

    /// <summary>adaptive_avg_pool3d / adaptive_max_pool3d: bin i covers [floor(i*In/Out), ceil((i+1)*In/Out)).</summary>
    public static double[] Adaptive(double[] x, long[] shape, (int T, int H, int W) outputSize, bool max, out long[] outputShape)
    {
        long[] outSize = { outputSize.T, outputSize.H, outputSize.W };
        return Reduce(x, shape, outSize, max, out outputShape,
            (d, i) =>
            {
                long input = shape[1 + d];
                long output = outSize[d];
                long start = (long)Math.Floor((double)(i * input) / output);
                long end = (long)Math.Ceiling((double)((i + 1) * input) / output);
                return (start, end);
            });
    }

    /// <summary>F.interpolate(mode='bilinear', align_corners=False) on every frame.</summary>
    public static double[] Bilinear(double[] x, long[] shape, int outH, int outW, out long[] outputShape)
    {
        long b = shape[0], t = shape[1], h = shape[2], w = shape[3], c = shape[4];
        outputShape = new[] { b, t, (long)outH, (long)outW, c };
        var y = new double[b * t * outH * outW * c];
        for (long ib = 0; ib < b; ib++)
        for (long it = 0; it < t; it++)
        for (long oh = 0; oh < outH; oh++)
        for (long ow = 0; ow < outW; ow++)
        {
            (long h0, long h1, double wh) = Taps(oh, h, outH);
            (long w0, long w1, double ww) = Taps(ow, w, outW);
            for (long ic = 0; ic < c; ic++)
            {
                double top = (1 - ww) * At(x, shape, ib, it, h0, w0, ic) + ww * At(x, shape, ib, it, h0, w1, ic);
                double bottom = (1 - ww) * At(x, shape, ib, it, h1, w0, ic) + ww * At(x, shape, ib, it, h1, w1, ic);
                y[Index(outputShape, ib, it, oh, ow, ic)] = (1 - wh) * top + wh * bottom;
            }
        }
        return y;
    }

    /// <summary>Source coordinate s = max(0, (i + 0.5) * In / Out - 0.5); taps floor(s) and the next, clamped to the edge.</summary>
    private static (long Low, long High, double HighWeight) Taps(long i, long input, long output)
    {
        double s = Math.Max(0.0, (i + 0.5) * input / output - 0.5);
        long low = (long)Math.Floor(s);
        long high = Math.Min(low + 1, input - 1);
        return (low, high, s - low);
    }

    private static double[] Reduce(double[] x, long[] shape, long[] outSize, bool max, out long[] outputShape, Func<int, long, (long Start, long End)> range)
    {
        long b = shape[0], c = shape[4];
        outputShape = new[] { b, outSize[0], outSize[1], outSize[2], c };
        var y = new double[b * outSize[0] * outSize[1] * outSize[2] * c];
        for (long ib = 0; ib < b; ib++)
        for (long ot = 0; ot < outSize[0]; ot++)
        for (long oh = 0; oh < outSize[1]; oh++)
        for (long ow = 0; ow < outSize[2]; ow++)
        {
            (long t0, long t1) = range(0, ot);
            (long h0, long h1) = range(1, oh);
            (long w0, long w1) = range(2, ow);
            for (long ic = 0; ic < c; ic++)
            {
                double sum = 0;
                double best = double.NegativeInfinity;
                bool sawNaN = false;
                for (long it = t0; it < t1; it++)
                for (long ih = h0; ih < h1; ih++)
                for (long iw = w0; iw < w1; iw++)
                {
                    double v = At(x, shape, ib, it, ih, iw, ic);
                    sum += v;
                    sawNaN |= double.IsNaN(v);
                    best = Math.Max(best, v);
                }
                long count = (t1 - t0) * (h1 - h0) * (w1 - w0);
                y[Index(outputShape, ib, ot, oh, ow, ic)] = max ? (sawNaN ? double.NaN : best) : sum / count;
            }
        }
        return y;
    }

    private static double At(double[] x, long[] shape, long b, long t, long h, long w, long c) => x[Index(shape, b, t, h, w, c)];

    public static long Index(long[] shape, long b, long t, long h, long w, long c)
        => (((b * shape[1] + t) * shape[2] + h) * shape[3] + w) * shape[4] + c;
}
