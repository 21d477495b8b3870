using System;

namespace TokenKernels;

/// <summary>What the allocating <see cref="TokenMerging"/> overloads return: the merged tokens and their bookkeeping.</summary>
/// <typeparam name="T">The element type of the tokens.</typeparam>
public sealed class MergeResult<T>
    where T : unmanaged
{
    internal MergeResult(T[] x, TensorShape shape, float[] sizes, int[] sourceMap, int[] mergeCounts, long effectiveR, bool useThreshold)
    {
        X = x;
        Shape = shape;
        Sizes = sizes;
        SourceMap = sourceMap;
        MergeCounts = mergeCounts;
        EffectiveR = effectiveR;
        UseThreshold = useThreshold;
    }

    /// <summary>
    /// The merged tokens <c>[B, N', C]</c>, contiguous: N' = N - r in fixed mode; N in threshold mode, where rows past
    /// N - <see cref="MergeCounts"/>[b] are zero.
    /// </summary>
    public T[] X { get; }

    /// <summary>The shape of <see cref="X"/>, <c>[B, N', C]</c>.</summary>
    public TensorShape Shape { get; }

    /// <summary>
    /// <c>[B, N']</c>: how many original tokens each output row stands for (size_d + sum size_a), for ToMe's
    /// proportional attention (add log(size) to the next layer's logits) and the next merge; zero in padding rows.
    /// </summary>
    public float[] Sizes { get; }

    /// <summary><c>[B, N]</c>: the output row every input token ended up in, for <see cref="TokenMerging.Unmerge{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int})"/>.</summary>
    public int[] SourceMap { get; }

    /// <summary><c>[B]</c>: the merges of each item, all <see cref="EffectiveR"/> in fixed mode, each item's count in threshold mode.</summary>
    public int[] MergeCounts { get; }

    /// <summary>Fixed mode: the merges per item after the clamp. Threshold mode: the cap on the per-item count.</summary>
    public long EffectiveR { get; }

    /// <summary>True for threshold mode, where <see cref="MergeCounts"/> varies per item.</summary>
    public bool UseThreshold { get; }

    /// <summary>The number of valid rows of item <paramref name="item"/>: N' in fixed mode, N - count in threshold mode.</summary>
    /// <param name="item">0 to B - 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="item"/> is outside the batch.</exception>
    public long ValidRows(int item)
    {
        if ((uint)item >= (uint)MergeCounts.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(item), item, "Item must be in [0, " + MergeCounts.Length + ").");
        }
        return UseThreshold ? Shape[1] - MergeCounts[item] : Shape[1];
    }

    /// <summary>"MergeResult&lt;Single&gt; [2, 180, 768], r 16".</summary>
    public override string ToString()
        => "MergeResult<" + typeof(T).Name + "> " + Shape + (UseThreshold ? ", counts [" + string.Join(", ", MergeCounts) + "]" : ", r " + EffectiveR);
}
