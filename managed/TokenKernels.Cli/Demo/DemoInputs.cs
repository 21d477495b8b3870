using System;
using System.Collections.Generic;
using System.Linq;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// What the demo gives each method: the patch features, and for the attention methods a class token and attention probabilities
/// made from the features themselves (there is no model): one head of softmax(x xᵀ / sqrt(C)), the class token being the mean patch.
/// </summary>
internal static class DemoInputs
{
    /// <summary>The inputs <paramref name="method"/> runs on, from <paramref name="features"/> <c>[1, N, C]</c> on <paramref name="grid"/>.</summary>
    public static MethodInputs<float> For(TokenMethod method, PatchFeatures features, PatchGrid grid)
    {
        int patches = features.TokenCount, channels = features.Channels;
        if (method.Prefix == 1)
        {
            // A class token before the patches: their mean.
            var tokens = new float[(long)(patches + 1) * channels];
            for (int n = 0; n < patches; n++)
            {
                for (int c = 0; c < channels; c++)
                {
                    tokens[c] += features.Values[(long)n * channels + c] / patches;
                }
            }
            features.Values.CopyTo(tokens, channels);
            var shape = new TensorShape(1, patches + 1, channels);
            return new MethodInputs<float>(tokens, shape, new TokenGrid(1, grid.Rows, grid.Columns, Prefix: 1), AttentionFor(method, tokens, patches + 1, channels));
        }
        return new MethodInputs<float>(features.Values, features.Shape, new TokenGrid(1, grid.Rows, grid.Columns), AttentionFor(method, features.Values, patches, channels));
    }

    /// <summary>A video method's tokens: each frame's features, one frame after another, <c>[1, T x N, C]</c> on a T x rows x columns grid.</summary>
    public static MethodInputs<float> ForVideo(IReadOnlyList<PatchFeatures> frames, PatchGrid grid)
    {
        int patches = frames[0].TokenCount, channels = frames[0].Channels;
        var tokens = new float[(long)frames.Count * patches * channels];
        for (int t = 0; t < frames.Count; t++)
        {
            frames[t].Values.CopyTo(tokens, (long)t * patches * channels);
        }
        return new MethodInputs<float>(tokens, new TensorShape(1, (long)frames.Count * patches, channels), new TokenGrid(frames.Count, grid.Rows, grid.Columns));
    }

    private static Dictionary<AuxiliaryRole, AuxiliaryTensor>? AttentionFor(TokenMethod method, float[] tokens, int length, int channels)
    {
        if (!method.Requires.Contains(AuxiliaryRole.Attention))
        {
            return null;
        }
        return new Dictionary<AuxiliaryRole, AuxiliaryTensor>
        {
            [AuxiliaryRole.Attention] = new AuxiliaryTensor(SelfAttention(tokens, length, channels), new TensorShape(1, 1, length, length)),
        };
    }

    /// <summary>softmax over keys of x_i · x_j / sqrt(C), in double, for <paramref name="length"/> tokens of <paramref name="channels"/>.</summary>
    public static float[] SelfAttention(float[] tokens, int length, int channels)
    {
        var attention = new float[(long)length * length];
        var logits = new double[length];
        double scale = 1 / Math.Sqrt(channels);
        for (int i = 0; i < length; i++)
        {
            double largest = double.NegativeInfinity;
            for (int j = 0; j < length; j++)
            {
                double dot = 0;
                for (int c = 0; c < channels; c++)
                {
                    dot += (double)tokens[(long)i * channels + c] * tokens[(long)j * channels + c];
                }
                logits[j] = dot * scale;
                largest = Math.Max(largest, logits[j]);
            }
            double sum = 0;
            for (int j = 0; j < length; j++)
            {
                logits[j] = Math.Exp(logits[j] - largest);
                sum += logits[j];
            }
            for (int j = 0; j < length; j++)
            {
                attention[(long)i * length + j] = (float)(logits[j] / sum);
            }
        }
        return attention;
    }
}
