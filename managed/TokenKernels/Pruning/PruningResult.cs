namespace TokenKernels;

/// <summary>
/// What the allocating method calls of <see cref="PruningMethods"/> return: the tokens the method outputs and the
/// original positions of the tokens it kept.
/// </summary>
/// <typeparam name="T">The element type of the tokens.</typeparam>
public sealed class PruningResult<T>
{
    internal PruningResult(T[] tokens, TensorShape tokensShape, int[] positions, TensorShape positionsShape)
    {
        Tokens = tokens;
        TokensShape = tokensShape;
        Positions = positions;
        PositionsShape = positionsShape;
    }

    /// <summary>The output tokens, contiguous <see cref="TokensShape"/>.</summary>
    public T[] Tokens { get; }

    /// <summary>
    /// The original positions of the kept tokens, increasing, contiguous <see cref="PositionsShape"/>: FastV's position
    /// ids (every kept token of the sequence), VisionZip's dominant tokens (CLS first), DivPrune's kept tokens.
    /// </summary>
    public int[] Positions { get; }

    /// <summary><c>[B, K, C]</c>.</summary>
    public TensorShape TokensShape { get; }

    /// <summary><c>[B, K]</c> (VisionZip: <c>[B, dominant]</c>).</summary>
    public TensorShape PositionsShape { get; }
}
