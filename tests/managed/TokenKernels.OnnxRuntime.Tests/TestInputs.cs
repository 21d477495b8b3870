using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>Random inputs of a model's shapes and element types, in the ranges each op takes.</summary>
internal static class TestInputs
{
    /// <summary>Every input of <paramref name="spec"/>, drawn from a generator seeded with <paramref name="seed"/>.</summary>
    public static Dictionary<string, TestTensor> For(ModelSpec spec, int seed)
    {
        var random = new Random(seed);
        var inputs = new Dictionary<string, TestTensor>();
        foreach ((string name, string type, long[] shape) in spec.Inputs)
        {
            inputs[name] = (spec.Op, name) switch
            {
                // Attention probabilities, and sizes (token counts), are positive.
                (_, "attention") => TestTensor.Uniform(type, shape, random, 0f, 1f),
                (_, "size") => TestTensor.Uniform(type, shape, random, 1f, 4f),
                // The output row of every token, in [0, N') of y.
                ("ToMeUnmerge", "source_map") => Positions(shape, random, 0, (int)spec.Shape("y")[1]),
                // Any position of x, or -1 (top-k's padding, which gives a zero row), the first of each item.
                ("Gather", "indices") => Padded(Positions(shape, random, 0, (int)spec.Shape("x")[1])),
                // Coarse scores, so that ties (to the lower position) occur in every element type.
                ("TopK", "scores") => TestTensor.FromFloats(type, shape, Enumerable.Range(0, (int)TestTensor.Count(shape)).Select(_ => random.Next(8) / 4f).ToArray()),
                ("FrameFusion", "x") => TestTensor.FromFloats(type, shape, PanningVideo(shape, random)),
                _ => TestTensor.Uniform(type, shape, random),
            };
        }
        return inputs;
    }

    private static TestTensor Padded(TestTensor positions)
    {
        long[] values = positions.As<long>();
        for (long b = 0; b < positions.Shape[0]; b++)
        {
            values[b * positions.Shape[1]] = -1;
        }
        return positions;
    }

    private static TestTensor Positions(long[] shape, Random random, int low, int high) =>
        TestTensor.Int64(shape, Enumerable.Range(0, (int)TestTensor.Count(shape)).Select(_ => (long)random.Next(low, high)).ToArray());

    /// <summary>
    /// A video [B, T, H, W, C] whose frames repeat the previous one plus noise at two positions of three and hold new
    /// content at the others, so that FrameFusion merges some tokens (cosine at least 0.6) and keeps others.
    /// </summary>
    private static float[] PanningVideo(long[] shape, Random random)
    {
        long batch = shape[0], frames = shape[1], positions = shape[2] * shape[3], channels = shape[4];
        var values = new float[TestTensor.Count(shape)];
        for (long b = 0; b < batch; b++)
        {
            for (long t = 0; t < frames; t++)
            {
                for (long p = 0; p < positions; p++)
                {
                    bool repeat = t > 0 && random.Next(3) != 0;
                    for (long c = 0; c < channels; c++)
                    {
                        long i = ((b * frames + t) * positions + p) * channels + c;
                        values[i] = repeat ? values[i - positions * channels] + 0.2f * ((float)random.NextDouble() - 0.5f) : (float)random.NextDouble() * 2 - 1;
                    }
                }
            }
        }
        return values;
    }
}
