using System;
using System.Collections.Generic;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Bench;

/// <summary>Random inputs of a case's shapes: tokens N(0, 1), attention rows that are softmax distributions.</summary>
internal static class BenchInputs
{
    /// <summary>The correlation of a token with the same position of the previous frame: the cosine consecutive frames have.</summary>
    public const double FrameCorrelation = 0.9;

    /// <summary>The tokens and auxiliary inputs of <paramref name="benchCase"/>, from <paramref name="seed"/>.</summary>
    public static MethodInputs<T> Create<T>(BenchCase benchCase, int seed)
        where T : unmanaged
    {
        var random = new Random(seed);
        float[] tokenValues = Gaussian(random, benchCase.Shape.ElementCount);
        CorrelateFrames(tokenValues, benchCase);
        T[] tokens = ElementConversion.FromFloat32<T>(tokenValues);
        var auxiliary = new Dictionary<AuxiliaryRole, AuxiliaryTensor>();
        foreach ((AuxiliaryRole role, TensorShape shape) in benchCase.Auxiliary)
        {
            float[] values = role == AuxiliaryRole.Attention ? SoftmaxRows(random, shape) : Gaussian(random, shape.ElementCount);
            auxiliary[role] = new AuxiliaryTensor(values, shape);
        }
        return new MethodInputs<T>(tokens, benchCase.Shape, benchCase.Grid, auxiliary);
    }

    // x_t = rho x_(t-1) + sqrt(1 - rho^2) e_t keeps every token N(0, 1) with correlation rho to the previous frame's.
    private static void CorrelateFrames(float[] values, BenchCase benchCase)
    {
        TokenGrid grid = benchCase.Grid;
        long frame = (long)grid.FrameTokens * benchCase.Channels, item = (long)benchCase.Length * benchCase.Channels;
        float rho = (float)FrameCorrelation, fresh = (float)Math.Sqrt(1 - FrameCorrelation * FrameCorrelation);
        for (long b = 0; b < benchCase.Batch; b++)
        {
            long first = b * item + (long)grid.Prefix * benchCase.Channels;
            for (int t = 1; t < grid.Frames; t++)
            {
                long start = first + t * frame;
                for (long i = 0; i < frame; i++)
                {
                    values[start + i] = rho * values[start - frame + i] + fresh * values[start + i];
                }
            }
        }
    }

    private static float[] Gaussian(Random random, long count)
    {
        var values = new float[count];
        for (long i = 0; i < count; i += 2)
        {
            // Box-Muller: two normal values from two uniform ones.
            double radius = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble()));
            double angle = 2 * Math.PI * random.NextDouble();
            values[i] = (float)(radius * Math.Cos(angle));
            if (i + 1 < count)
            {
                values[i + 1] = (float)(radius * Math.Sin(angle));
            }
        }
        return values;
    }

    // Each row along the last dimension a probability distribution, as attention probabilities are: softmax of N(0, 2) logits.
    private static float[] SoftmaxRows(Random random, TensorShape shape)
    {
        float[] values = Gaussian(random, shape.ElementCount);
        int columns = checked((int)shape[shape.Rank - 1]);
        for (long start = 0; start < values.Length; start += columns)
        {
            Span<float> row = values.AsSpan((int)start, columns);
            float largest = float.NegativeInfinity;
            foreach (float value in row)
            {
                largest = Math.Max(largest, 2 * value);
            }
            double sum = 0;
            for (int j = 0; j < columns; j++)
            {
                row[j] = MathF.Exp(2 * row[j] - largest);
                sum += row[j];
            }
            for (int j = 0; j < columns; j++)
            {
                row[j] = (float)(row[j] / sum);
            }
        }
        return values;
    }
}
