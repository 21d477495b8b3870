using System;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>
/// What a method made of <c>[B, N, C]</c> tokens: the output tokens and, per item, where each came from. Every method fills the
/// source map, so that a picture of what it kept (the demo) and a file of where tokens went (compress) read one thing.
/// </summary>
/// <typeparam name="T">The tokens' element type.</typeparam>
internal sealed class MethodOutcome<T>
    where T : unmanaged
{
    /// <summary>Checks the shapes against each other.</summary>
    public MethodOutcome(T[] tokens, TensorShape tokensShape, int[] sourceMap, TensorShape sourceMapShape,
                         int[]? positions = null, float[]? sizes = null, int[]? tokensPerItem = null, TokenGrid? outputGrid = null)
    {
        if (tokensShape.Rank != 3 || tokens.Length != tokensShape.ElementCount)
        {
            throw new ArgumentException($"The output tokens must be [B, M, C]; got {tokens.Length} elements as {tokensShape}.", nameof(tokens));
        }
        long batch = tokensShape[0], rows = tokensShape[1];
        if (sourceMapShape.Rank != 2 || sourceMapShape[0] != batch || sourceMap.Length != sourceMapShape.ElementCount)
        {
            throw new ArgumentException($"The source map must be [B, N] with B = {batch}; got {sourceMap.Length} elements as {sourceMapShape}.", nameof(sourceMap));
        }
        if ((positions != null && positions.Length != batch * rows) || (sizes != null && sizes.Length != batch * rows)
            || (tokensPerItem != null && tokensPerItem.Length != batch))
        {
            throw new ArgumentException($"Positions and sizes must be [B, M] = [{batch}, {rows}] and the counts [B].");
        }
        Tokens = tokens;
        TokensShape = tokensShape;
        SourceMap = sourceMap;
        SourceMapShape = sourceMapShape;
        Positions = positions;
        Sizes = sizes;
        TokensPerItem = tokensPerItem;
        OutputGrid = outputGrid;
    }

    /// <summary>The output tokens <c>[B, M, C]</c>.</summary>
    public T[] Tokens { get; }

    /// <summary><c>[B, M, C]</c>.</summary>
    public TensorShape TokensShape { get; }

    /// <summary><c>[B, N]</c>: the output row (0 to M - 1) that holds each input token, -1 where it was dropped.</summary>
    public int[] SourceMap { get; }

    /// <summary><c>[B, N]</c>.</summary>
    public TensorShape SourceMapShape { get; }

    /// <summary><c>[B, M]</c>: the input position each output token was kept from, -1 for a token made from several (merged, pooled,
    /// contextual); null where every output token is made from several.</summary>
    public int[]? Positions { get; }

    /// <summary><c>[B, M]</c>: how many input tokens each output token stands for (ToMe's sizes), where the method tracks them.</summary>
    public float[]? Sizes { get; }

    /// <summary><c>[B]</c>: the valid rows of each item where they differ per item (threshold merging; rows past it are zero), else null.</summary>
    public int[]? TokensPerItem { get; }

    /// <summary>The output's own grid, for pooling; null otherwise.</summary>
    public TokenGrid? OutputGrid { get; }

    /// <summary>B.</summary>
    public int Batch => checked((int)TokensShape[0]);

    /// <summary>The valid output rows of item <paramref name="item"/>.</summary>
    public int ValidTokens(int item) => TokensPerItem?[item] ?? checked((int)TokensShape[1]);
}
