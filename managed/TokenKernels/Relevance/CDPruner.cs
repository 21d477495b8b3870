using System;

namespace TokenKernels;

/// <summary>
/// CDPruner in one call (Zhang et al., "Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning
/// in MLLMs", 2025): the <c>encode_images</c> step of github.com/Theia-4869/CDPruner's llava_arch.py. Relevance of each
/// visual token to the prompt (<see cref="QueryRelevance"/>: negated mean cosine of CLIP's image and text embeddings,
/// min-max normalised), then the greedy MAP inference of the DPP whose kernel weighs the cosine similarity of the visual
/// features by that relevance (<see cref="ConditionalDpp"/>), then the kept features gathered in position order.
/// </summary>
/// <remarks>
/// <para>CDPruner's LLaVA code computes the relevance from CLIP's embeddings (its 768-wide projection) and the kernel from
/// the projected features the LLM reads (4096 wide for LLaVA-1.5-7B); pass the same tensor as both when one space serves.
/// Its released code weighs by the relevance itself (theta null here); the paper's exp(theta r / (2 (1 - theta))) is
/// theta in [0, 1) (0.5 its default). The result equals its selection: the same tokens, and the same order of selection.</para>
/// <para>The into-buffer form allocates only the float32 <c>[B, N]</c> relevance; the other form returns new arrays.</para>
/// </remarks>
public static class CDPruner
{
    /// <summary>CDPruner's kept tokens into the caller's tensors.</summary>
    /// <param name="features">Visual features <c>[B, N, C]</c> whose cosine similarity forms the kernel, and which are kept.</param>
    /// <param name="visualEmbeds">Visual tokens <c>[B, N, E]</c> in the text's space (CLIP's image embeddings).</param>
    /// <param name="textEmbeds">Text tokens <c>[B, T, E]</c> (CLIP's text embeddings), of visualEmbeds' element type.</param>
    /// <param name="k">Tokens kept per item (CDPruner's <c>visual_token_num</c>), in [0, N].</param>
    /// <param name="kept">Receives <c>[B, k, C]</c>: the kept features in position order.</param>
    /// <param name="positions">Receives int32 <c>[B, k]</c>: their positions, ascending.</param>
    /// <param name="order">Receives int32 <c>[B, k]</c>: the positions in the order the DPP chose them.</param>
    /// <param name="theta">Null: weights r, as the released code; else the paper's exp weighting with this theta in [0, 1).</param>
    /// <param name="negate">Negate the mean cosine (CLIP-style towers, as CDPruner's LLaVA code); true by default.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or shape, k outside [0, N], or theta outside [0, 1).</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Prune<T, TEmbed>(
        ReadOnlyHostTensor<T> features,
        ReadOnlyHostTensor<TEmbed> visualEmbeds,
        ReadOnlyHostTensor<TEmbed> textEmbeds,
        int k,
        HostTensor<T> kept,
        HostTensor<int> positions,
        HostTensor<int> order,
        float? theta = null,
        bool negate = true)
        where T : unmanaged
        where TEmbed : unmanaged
    {
        if (features.Shape.Rank != 3 || visualEmbeds.Shape.Rank != 3 || visualEmbeds.Shape[0] != features.Shape[0] || visualEmbeds.Shape[1] != features.Shape[1])
        {
            throw new ArgumentException(
                "features " + features.Shape + " and visualEmbeds " + visualEmbeds.Shape + " must be [B, N, C] and [B, N, E] with the same B and N.",
                nameof(visualEmbeds));
        }
        var relevanceShape = new TensorShape(features.Shape[0], features.Shape[1]);
        var relevance = new float[relevanceShape.ElementCount];
        QueryRelevance.Compute(visualEmbeds, textEmbeds, new HostTensor<float>(relevance, relevanceShape), negate);
        ConditionalDpp.Select(features, new ReadOnlyHostTensor<float>(relevance, relevanceShape), order, k,
                              theta is null ? DppWeighting.Relevance : DppWeighting.Exponential, theta ?? 0.5f, positions);
        TokenPruning.Gather(features, positions, kept);
    }

    /// <summary>CDPruner's kept tokens into new arrays.</summary>
    /// <param name="features">Visual features <c>[B, N, C]</c>.</param>
    /// <param name="visualEmbeds">Visual tokens <c>[B, N, E]</c> in the text's space.</param>
    /// <param name="textEmbeds">Text tokens <c>[B, T, E]</c>.</param>
    /// <param name="k">Tokens kept per item, in [0, N].</param>
    /// <param name="theta">Null: weights r, as the released code; else the paper's exp weighting with this theta.</param>
    /// <param name="negate">Negate the mean cosine (CLIP-style towers); true by default.</param>
    /// <returns>The kept features <c>[B, k, C]</c>, their positions ascending and the order of selection (both <c>[B, k]</c>).</returns>
    /// <inheritdoc cref="Prune{T, TEmbed}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{TEmbed}, ReadOnlyHostTensor{TEmbed}, int, HostTensor{T}, HostTensor{int}, HostTensor{int}, float?, bool)" path="/exception"/>
    public static (T[] Kept, int[] Positions, int[] Order, TensorShape KeptShape) Prune<T, TEmbed>(
        ReadOnlyHostTensor<T> features,
        ReadOnlyHostTensor<TEmbed> visualEmbeds,
        ReadOnlyHostTensor<TEmbed> textEmbeds,
        int k,
        float? theta = null,
        bool negate = true)
        where T : unmanaged
        where TEmbed : unmanaged
    {
        if (features.Shape.Rank != 3)
        {
            throw new ArgumentException("features must be [B, N, C], got " + features.Shape + ".", nameof(features));
        }
        long batch = features.Shape[0];
        var keptShape = new TensorShape(batch, k, features.Shape[2]);
        var indexShape = new TensorShape(batch, k);
        var kept = new T[keptShape.ElementCount];
        var positions = new int[indexShape.ElementCount];
        var order = new int[indexShape.ElementCount];
        Prune(features, visualEmbeds, textEmbeds, k, new HostTensor<T>(kept, keptShape), new HostTensor<int>(positions, indexShape),
              new HostTensor<int>(order, indexShape), theta, negate);
        return (kept, positions, order, keptShape);
    }
}
