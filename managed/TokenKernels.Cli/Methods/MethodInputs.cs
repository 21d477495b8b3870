using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>Inputs some methods read besides the tokens, by the name a file gives them.</summary>
internal enum AuxiliaryRole
{
    /// <summary>Attention probabilities: VisionZip's vision layer <c>[B, H, N, N]</c>, FastV's LLM layer <c>[B, H, Nq, N]</c>.</summary>
    Attention,

    /// <summary>VisionZip's metric <c>[B, N, Cm]</c>: the layer's keys averaged over heads (the tokens themselves when absent).</summary>
    Metric,

    /// <summary>CDPruner's text embeddings <c>[B, T, E]</c> (CLIP's text tower).</summary>
    TextEmbeddings,

    /// <summary>CDPruner's visual tokens in the text's space <c>[B, N, E]</c> (the tokens themselves when absent).</summary>
    VisualEmbeddings,
}

/// <summary>An auxiliary input, converted to float32 when read.</summary>
/// <param name="Data">The values, C order.</param>
/// <param name="Shape">Their shape.</param>
internal sealed record AuxiliaryTensor(float[] Data, TensorShape Shape)
{
    /// <summary>A read-only view for the library's calls.</summary>
    public ReadOnlyHostTensor<float> View => new(Data, Shape);
}

/// <summary>The tokens a method compresses, their grid, and the auxiliary inputs given.</summary>
/// <typeparam name="T">float, Float16 or BFloat16: the tokens' element type, kept through the method.</typeparam>
internal sealed class MethodInputs<T>
    where T : unmanaged
{
    /// <summary>Checks that <paramref name="tokens"/> holds <paramref name="shape"/> <c>[B, N, C]</c>.</summary>
    public MethodInputs(T[] tokens, TensorShape shape, TokenGrid grid, IReadOnlyDictionary<AuxiliaryRole, AuxiliaryTensor>? auxiliary = null)
    {
        if (shape.Rank != 3 || shape.ElementCount != tokens.Length)
        {
            throw new ArgumentException($"tokens must be [B, N, C] with {shape.ElementCount} elements; got {tokens.Length} elements as {shape}.", nameof(tokens));
        }
        Tokens = tokens;
        Shape = shape;
        Grid = grid;
        Auxiliary = auxiliary ?? new Dictionary<AuxiliaryRole, AuxiliaryTensor>();
    }

    /// <summary>The tokens, <c>[B, N, C]</c>, C order.</summary>
    public T[] Tokens { get; }

    /// <summary><c>[B, N, C]</c>.</summary>
    public TensorShape Shape { get; }

    /// <summary>B.</summary>
    public int Batch => checked((int)Shape[0]);

    /// <summary>N.</summary>
    public int Length => checked((int)Shape[1]);

    /// <summary>C.</summary>
    public int Channels => checked((int)Shape[2]);

    /// <summary>Where the patches sit in each item's N tokens.</summary>
    public TokenGrid Grid { get; }

    /// <summary>The auxiliary inputs given, by role.</summary>
    public IReadOnlyDictionary<AuxiliaryRole, AuxiliaryTensor> Auxiliary { get; }

    /// <summary>The tokens as a read-only tensor <c>[B, N, C]</c>.</summary>
    public ReadOnlyHostTensor<T> View => new(Tokens, Shape);

    /// <summary>The tokens as a video <c>[B, T, H x W, C]</c> (no prefix).</summary>
    public ReadOnlyHostTensor<T> VideoView => new(Tokens, new TensorShape(Batch, Grid.Frames, Grid.FrameTokens, Channels));

    /// <summary>The auxiliary input of <paramref name="role"/>, or null.</summary>
    public AuxiliaryTensor? Find(AuxiliaryRole role) => Auxiliary.TryGetValue(role, out AuxiliaryTensor? tensor) ? tensor : null;
}
