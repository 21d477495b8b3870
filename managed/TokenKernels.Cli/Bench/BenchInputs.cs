using System;
using System.Collections.Generic;
using TokenKernels;
using TokenKernels.Cli.Demo;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Bench;

/// <summary>
/// Random inputs of a case's shapes, the same on every machine (SplitMix64 normals): tokens N(0, 1), each frame after the first
/// correlated with the previous one (so that the video methods find the redundancy they remove), attention rows that are softmax
/// distributions.
/// </summary>
internal static class BenchInputs
{
    /// <summary>The correlation of a token with the same position of the previous frame: the cosine consecutive frames have.</summary>
    public const double FrameCorrelation = 0.9;

    /// <summary>The tokens and auxiliary inputs of <paramref name="benchCase"/>, from <paramref name="seed"/>.</summary>
    public static MethodInputs<T> Create<T>(BenchCase benchCase, int seed)
        where T : unmanaged
    {
        var random = new SplitMix64Gaussian((ulong)seed);
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

    private static float[] Gaussian(SplitMix64Gaussian random, long count)
    {
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = (float)random.NextGaussian();
        }
        return values;
    }

    // Each row along the last dimension a probability distribution, as attention probabilities are: softmax of N(0, 2) logits.
    private static float[] SoftmaxRows(SplitMix64Gaussian random, TensorShape shape)
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
