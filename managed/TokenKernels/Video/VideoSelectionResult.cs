namespace TokenKernels;

/// <summary>
/// What the allocating video method calls return (<see cref="VideoPruning.Evs{T}(ReadOnlyHostTensor{T}, int, int, double)"/>,
/// <see cref="VideoPruning.DyCoke{T}(ReadOnlyHostTensor{T}, int, int, double)"/>,
/// <see cref="VideoPruning.VidCom2{T}(ReadOnlyHostTensor{T}, int, int, double, double, double)"/>): the kept tokens, their original
/// positions and their grid coordinates, each item keeping exactly <see cref="Retained"/> tokens.
/// </summary>
/// <typeparam name="T">The element type of the tokens.</typeparam>
public sealed class VideoSelectionResult<T>
{
    internal VideoSelectionResult(T[] tokens, int[] indices, int[] positions, long batch, long retained, long channels)
    {
        Tokens = tokens;
        Indices = indices;
        Positions = positions;
        Retained = retained;
        TokensShape = new TensorShape(batch, retained, channels);
        IndicesShape = new TensorShape(batch, retained);
        PositionsShape = new TensorShape(batch, retained, 3);
    }

    /// <summary>The kept tokens in original order, contiguous <c>[B, K, C]</c>.</summary>
    public T[] Tokens { get; }

    /// <summary>Their flat positions t * P + p, increasing, <c>[B, K]</c>.</summary>
    public int[] Indices { get; }

    /// <summary>Their grid coordinates (t, h, w), <c>[B, K, 3]</c>: what an mRoPE model's position ids are built from.</summary>
    public int[] Positions { get; }

    /// <summary>K, the tokens each item keeps (<see cref="VideoPruning.EvsRetainedTokens"/>, <see cref="VideoPruning.DyCokeRetainedTokens"/>,
    /// <see cref="VideoPruning.VidCom2RetainedTokens"/>).</summary>
    public long Retained { get; }

    /// <summary><c>[B, K, C]</c>.</summary>
    public TensorShape TokensShape { get; }

    /// <summary><c>[B, K]</c>.</summary>
    public TensorShape IndicesShape { get; }

    /// <summary><c>[B, K, 3]</c>.</summary>
    public TensorShape PositionsShape { get; }
}
