using System;
using System.Collections.Generic;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// The token features the demo's methods compress: <c>[1, N, C]</c> float32, one row per patch of a
/// <see cref="PatchGrid"/> (row-major), computed from the photograph or given by the user.
/// </summary>
internal sealed class PatchFeatures
{
    /// <summary>CLIP's per-channel mean of R, G, B in [0, 1] (OpenAI CLIP, also LLaVA's image processor).</summary>
    public static readonly double[] ClipMean = [0.48145466, 0.4578275, 0.40821073];

    /// <summary>CLIP's per-channel standard deviation of R, G, B in [0, 1].</summary>
    public static readonly double[] ClipStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>The width of <see cref="Projection"/>'s features, CLIP ViT-L's hidden size.</summary>
    public const int DefaultProjectionWidth = 1024;

    /// <summary>The seed of <see cref="Projection"/>'s matrix unless another is given.</summary>
    public const ulong DefaultProjectionSeed = 0x546F6B656E4B726EUL;

    private PatchFeatures(float[] values, int tokens, int channels)
    {
        Values = values;
        Shape = new TensorShape(1, tokens, channels);
    }

    /// <summary>The features, <see cref="Shape"/> row-major.</summary>
    public float[] Values { get; }

    /// <summary><c>[1, N, C]</c>.</summary>
    public TensorShape Shape { get; }

    /// <summary>N, the number of tokens (patches).</summary>
    public int TokenCount => (int)Shape[1];

    /// <summary>C, the features per token.</summary>
    public int Channels => (int)Shape[2];

    /// <summary>
    /// Each patch's pixels, CLIP-normalised ((v / 255 - mean) / std per channel) and flattened channel-major
    /// (<c>[3, patch, patch]</c>, the layout of a ViT's patch-embedding convolution weight): C = 3 * patch * patch.
    /// </summary>
    public static PatchFeatures Pixels(PatchImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int side = image.Grid.PatchSize;
        int channels = 3 * side * side;
        int tokens = image.Grid.PatchCount;
        float[] values = new float[tokens * channels];
        for (int patch = 0; patch < tokens; patch++)
        {
            byte[] pixels = image.GetPatchPixels(patch);
            Span<float> row = values.AsSpan(patch * channels, channels);
            for (int channel = 0; channel < 3; channel++)
            {
                for (int pixel = 0; pixel < side * side; pixel++)
                {
                    row[channel * side * side + pixel] = (float)((pixels[pixel * 3 + channel] / 255.0 - ClipMean[channel]) / ClipStd[channel]);
                }
            }
        }
        return new PatchFeatures(values, tokens, channels);
    }

    /// <summary>
    /// <see cref="Pixels"/> times a fixed random matrix <c>[3 * patch * patch, width]</c> whose entries are
    /// standard normal numbers of <see cref="SplitMix64Gaussian"/>(<paramref name="seed"/>), filled row by row, divided
    /// by sqrt(3 * patch * patch); a stand-in for a patch embedding that keeps distances (Johnson-Lindenstrauss),
    /// the same on every run and machine. Sums run in double, in input order, rounded to float at the end.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="width"/> is below 1.</exception>
    public static PatchFeatures Projection(PatchImage image, int width = DefaultProjectionWidth, ulong seed = DefaultProjectionSeed)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (width < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "The projection's width is at least 1.");
        }
        PatchFeatures pixels = Pixels(image);
        int inputWidth = pixels.Channels;
        double[] matrix = ProjectionMatrix(inputWidth, width, seed);
        int tokens = pixels.TokenCount;
        float[] values = new float[tokens * width];
        double[] sums = new double[width];
        for (int token = 0; token < tokens; token++)
        {
            Array.Clear(sums);
            ReadOnlySpan<float> input = pixels.Values.AsSpan(token * inputWidth, inputWidth);
            for (int i = 0; i < inputWidth; i++)
            {
                double x = input[i];
                ReadOnlySpan<double> matrixRow = matrix.AsSpan(i * width, width);
                for (int j = 0; j < width; j++)
                {
                    sums[j] += x * matrixRow[j];
                }
            }
            Span<float> output = values.AsSpan(token * width, width);
            for (int j = 0; j < width; j++)
            {
                output[j] = (float)sums[j];
            }
        }
        return new PatchFeatures(values, tokens, width);
    }

    /// <summary>The matrix of <see cref="Projection"/>, <c>[inputWidth, outputWidth]</c> row-major, already scaled.</summary>
    public static double[] ProjectionMatrix(int inputWidth, int outputWidth, ulong seed)
    {
        var gaussian = new SplitMix64Gaussian(seed);
        double scale = 1.0 / Math.Sqrt(inputWidth);
        double[] matrix = new double[inputWidth * outputWidth];
        for (int i = 0; i < matrix.Length; i++)
        {
            matrix[i] = gaussian.NextGaussian() * scale;
        }
        return matrix;
    }

    /// <summary>
    /// Features the user supplies: <paramref name="values"/> of shape <c>[1, N, C]</c> or <c>[N, C]</c>, row-major,
    /// with N the grid's patch count.
    /// </summary>
    /// <param name="values">The features; copied.</param>
    /// <param name="shape">Their shape.</param>
    /// <param name="grid">The grid the tokens belong to.</param>
    /// <param name="source">What the features came from (a file name) for the error messages.</param>
    /// <exception cref="ArgumentException">The shape is not <c>[1, N, C]</c> or <c>[N, C]</c>, disagrees with the values' length, or N is not the grid's patch count.</exception>
    public static PatchFeatures FromValues(ReadOnlySpan<float> values, IReadOnlyList<long> shape, PatchGrid grid, string source = "the features")
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(grid);
        string shapeText = "[" + string.Join(", ", shape) + "]";
        long tokens, channels;
        if (shape.Count == 3 && shape[0] == 1)
        {
            (tokens, channels) = (shape[1], shape[2]);
        }
        else if (shape.Count == 2)
        {
            (tokens, channels) = (shape[0], shape[1]);
        }
        else
        {
            throw new ArgumentException($"The shape of {source} is {shapeText}; expected [1, N, C] or [N, C].", nameof(shape));
        }
        if (tokens < 1 || channels < 1)
        {
            throw new ArgumentException($"The shape of {source} is {shapeText}; N and C must be at least 1.", nameof(shape));
        }
        if (tokens != grid.PatchCount)
        {
            throw new ArgumentException(
                $"{source} hold {tokens} tokens but the grid has {grid.PatchCount} patches ({grid}); expected N = {grid.PatchCount}.",
                nameof(shape));
        }
        if (channels > int.MaxValue / tokens || values.Length != tokens * channels)
        {
            throw new ArgumentException($"{source} hold {values.Length} values but the shape {shapeText} needs {tokens * channels}.", nameof(values));
        }
        return new PatchFeatures(values.ToArray(), (int)tokens, (int)channels);
    }
}
