using System;
using System.Collections.Generic;
using System.Linq;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// Attention-based pruning (docs/SPEC.md, section 3 and the comments of tokenkernels.h) in float64, written from the contract
/// alone: plain loops over contiguous arrays, no tiling, no shortcuts.
/// </summary>
internal static class PruningReference
{
    /// <summary>Importance of keys [KeyBegin, KeyEnd) from probabilities <c>attn [B, H, Nq, Nk]</c>: sum over heads and the query range, then the divisions.</summary>
    public static double[] AttentionImportance(double[] attn, int batch, int heads, int queries, int keys, ImportanceOptions options)
    {
        int columns = (int)options.KeyCount;
        var result = new double[batch * columns];
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < columns; j++)
            {
                double sum = 0;
                for (int h = 0; h < heads; h++)
                {
                    for (long i = options.QueryBegin; i < options.QueryEnd; i++)
                    {
                        sum += attn[((b * heads + h) * queries + i) * keys + options.KeyBegin + j];
                    }
                }
                result[b * columns + j] = sum / Divisor(options, heads);
            }
        }
        return result;
    }

    /// <summary>The keys query i sees: all Nk, or with the causal mask (queries right-aligned to the keys) j &lt;= i + Nk - Nq.</summary>
    public static int VisibleKeys(int i, int queries, int keys, bool causal)
        => causal ? Math.Clamp(i + keys - queries + 1, 0, keys) : keys;

    /// <summary>The natural-log log-sum-exp <c>[B, H, Nq]</c> of each row of scale Q K^T over the keys it sees (-inf for a row that sees none).</summary>
    public static double[] LogSumExp(double[] q, double[] k, QkShape s, double scale, bool causal)
    {
        var lse = new double[s.Batch * s.Heads * s.Queries];
        for (int b = 0; b < s.Batch; b++)
        {
            for (int h = 0; h < s.Heads; h++)
            {
                for (int i = 0; i < s.Queries; i++)
                {
                    double[] logits = Logits(q, k, s, scale, b, h, i, VisibleKeys(i, s.Queries, s.Keys, causal));
                    double max = logits.Length == 0 ? double.NegativeInfinity : logits.Max();
                    lse[(b * s.Heads + h) * s.Queries + i] = logits.Length == 0 ? double.NegativeInfinity : max + Math.Log(logits.Sum(v => Math.Exp(v - max)));
                }
            }
        }
        return lse;
    }

    /// <summary>
    /// Importance from <c>q [B, H, Nq, d]</c> and <c>k [B, Hk, Nk, d]</c>: P = exp(scale q.k - lse) over the visible keys
    /// (0 elsewhere), lse the given one or the exact one, reduced as <see cref="AttentionImportance"/>.
    /// </summary>
    public static double[] QkImportance(double[] q, double[] k, QkShape s, ImportanceOptions options, double scale, double[]? lse)
    {
        lse ??= LogSumExp(q, k, s, scale, options.Causal);
        int columns = (int)options.KeyCount;
        var result = new double[s.Batch * columns];
        for (int b = 0; b < s.Batch; b++)
        {
            for (int h = 0; h < s.Heads; h++)
            {
                for (int i = (int)options.QueryBegin; i < options.QueryEnd; i++)
                {
                    int visible = VisibleKeys(i, s.Queries, s.Keys, options.Causal);
                    double[] logits = Logits(q, k, s, scale, b, h, i, visible);
                    double rowLse = lse[(b * s.Heads + h) * s.Queries + i];
                    for (int j = 0; j < columns; j++)
                    {
                        int key = (int)options.KeyBegin + j;
                        if (key < visible)
                        {
                            result[b * columns + j] += Math.Exp(logits[key] - rowLse);
                        }
                    }
                }
            }
        }
        double divisor = Divisor(options, s.Heads);
        for (int i = 0; i < result.Length; i++)
        {
            result[i] /= divisor;
        }
        return result;
    }

    /// <summary>The dense probabilities <c>[B, H, Nq, Nk]</c> softmax(scale Q K^T) over the visible keys of each row, 0 for the others.</summary>
    public static double[] DenseProbabilities(double[] q, double[] k, QkShape s, double scale, bool causal)
    {
        var p = new double[s.Batch * s.Heads * s.Queries * s.Keys];
        double[] lse = LogSumExp(q, k, s, scale, causal);
        for (int b = 0; b < s.Batch; b++)
        {
            for (int h = 0; h < s.Heads; h++)
            {
                for (int i = 0; i < s.Queries; i++)
                {
                    int row = (b * s.Heads + h) * s.Queries + i;
                    double[] logits = Logits(q, k, s, scale, b, h, i, VisibleKeys(i, s.Queries, s.Keys, causal));
                    for (int j = 0; j < logits.Length; j++)
                    {
                        p[row * s.Keys + j] = Math.Exp(logits[j] - lse[row]);
                    }
                }
            }
        }
        return p;
    }

    /// <summary>
    /// Top-k of <c>scores [B, N]</c>: item b ranks positions [0, lengths[b] or N) by descending score, ties to the lower
    /// index, NaN after every number (lower index first among NaNs), keeps min(itemK[b] or k, length) of them, and
    /// returns them in increasing position and in rank order, each padded to k with -1.
    /// </summary>
    public static (int[] Indices, int[] Ranked) TopK(double[] scores, int batch, int tokens, int k, int[]? lengths, int[]? itemK)
    {
        var indices = new int[batch * k];
        var ranked = new int[batch * k];
        indices.AsSpan().Fill(-1);
        ranked.AsSpan().Fill(-1);
        for (int b = 0; b < batch; b++)
        {
            int length = lengths?[b] ?? tokens;
            int count = Math.Min(itemK?[b] ?? k, length);
            int row = b;
            List<int> order = Enumerable.Range(0, length).ToList();
            order.Sort((x, y) => RankBefore(scores[row * tokens + x], x, scores[row * tokens + y], y));
            List<int> chosen = order.Take(count).ToList();
            for (int i = 0; i < count; i++)
            {
                ranked[b * k + i] = chosen[i];
            }
            chosen.Sort();
            for (int i = 0; i < count; i++)
            {
                indices[b * k + i] = chosen[i];
            }
        }
        return (indices, ranked);
    }

    /// <summary><c>out[b, i] = x[b, indices[b, i]]</c> over <c>x [B, N, C]</c>, a zero row for -1.</summary>
    public static T[] Gather<T>(T[] x, int batch, int tokens, int channels, long[] indices, int k)
        where T : unmanaged
    {
        var result = new T[batch * k * channels];
        for (int b = 0; b < batch; b++)
        {
            for (int i = 0; i < k; i++)
            {
                long index = indices[b * k + i];
                if (index >= 0)
                {
                    Array.Copy(x, (b * tokens + index) * channels, result, (b * k + i) * channels, channels);
                }
            }
        }
        return result;
    }

    /// <summary>
    /// VisionZip's contextual tokens: the tokens not kept, in increasing position; targets at remaining ranks 0, step,
    /// 2 step, ... (step = max(1, M / m)); every other remaining token joins the target of highest cosine similarity of
    /// its metric row (norms clamped to 1e-12, ties to the lower target); out = x[target] + mean of the joined rows.
    /// </summary>
    public static double[] Contextual(double[] metric, int metricChannels, double[] x, int channels, int batch, int tokens, long[] kept, int keptCount, int contextual)
    {
        var result = new double[batch * contextual * channels];
        for (int b = 0; b < batch; b++)
        {
            var keptSet = new HashSet<long>(kept.Skip(b * keptCount).Take(keptCount));
            int[] remaining = Enumerable.Range(0, tokens).Where(n => !keptSet.Contains(n)).ToArray();
            if (contextual == 0)
            {
                continue;
            }
            int step = Math.Max(1, remaining.Length / contextual);
            int[] targets = Enumerable.Range(0, contextual).Select(t => remaining[t * step]).ToArray();
            var sums = new double[contextual, channels];
            var counts = new int[contextual];
            foreach (int token in remaining.Where(n => !targets.Contains(n)))
            {
                int best = 0;
                double bestSimilarity = Cosine(metric, metricChannels, b * tokens + token, b * tokens + targets[0]);
                for (int t = 1; t < contextual; t++)
                {
                    double similarity = Cosine(metric, metricChannels, b * tokens + token, b * tokens + targets[t]);
                    if (similarity > bestSimilarity || (double.IsNaN(bestSimilarity) && !double.IsNaN(similarity)))
                    {
                        best = t;
                        bestSimilarity = similarity;
                    }
                }
                counts[best]++;
                for (int c = 0; c < channels; c++)
                {
                    sums[best, c] += x[(b * tokens + token) * channels + c];
                }
            }
            for (int t = 0; t < contextual; t++)
            {
                for (int c = 0; c < channels; c++)
                {
                    double mean = counts[t] == 0 ? 0 : sums[t, c] / counts[t];
                    result[(b * contextual + t) * channels + c] = x[(b * tokens + targets[t]) * channels + c] + mean;
                }
            }
        }
        return result;
    }

    /// <summary>Rows of a softmax: random positive values in [0.05, 1) divided by their row sum, as T, and the rounded values as doubles.</summary>
    public static (T[] Values, double[] Exact) Probabilities<T>(int rows, int columns, Random random)
        where T : unmanaged
    {
        var values = new T[rows * columns];
        var exact = new double[values.Length];
        for (int r = 0; r < rows; r++)
        {
            var row = new double[columns];
            for (int c = 0; c < columns; c++)
            {
                row[c] = 0.05 + 0.95 * random.NextDouble();
            }
            double sum = row.Sum();
            for (int c = 0; c < columns; c++)
            {
                values[r * columns + c] = Elements.FromDouble<T>(row[c] / sum);
                exact[r * columns + c] = Elements.ToDouble(values[r * columns + c]);
            }
        }
        return (values, exact);
    }

    private static int RankBefore(double a, int indexA, double b, int indexB)
    {
        bool nanA = double.IsNaN(a);
        bool nanB = double.IsNaN(b);
        if (nanA != nanB)
        {
            return nanA ? 1 : -1;
        }
        if (!nanA && a != b)
        {
            return a > b ? -1 : 1;
        }
        return indexA.CompareTo(indexB);
    }

    private static double Divisor(ImportanceOptions options, int heads)
        => (options.HeadReduce == ReduceMode.Mean ? heads : 1) * (options.QueryReduce == ReduceMode.Mean ? options.QueryCount : 1);

    private static double[] Logits(double[] q, double[] k, QkShape s, double scale, int b, int h, int i, int visible)
    {
        int keyHead = h / (s.Heads / s.KeyHeads);
        var logits = new double[visible];
        for (int j = 0; j < visible; j++)
        {
            double dot = 0;
            for (int c = 0; c < s.HeadDim; c++)
            {
                dot += q[((b * s.Heads + h) * s.Queries + i) * s.HeadDim + c] * k[((b * s.KeyHeads + keyHead) * s.Keys + j) * s.HeadDim + c];
            }
            logits[j] = scale * dot;
        }
        return logits;
    }

    private static double Cosine(double[] metric, int channels, int rowA, int rowB)
    {
        double dot = 0;
        double normA = 0;
        double normB = 0;
        for (int c = 0; c < channels; c++)
        {
            double a = metric[rowA * channels + c];
            double b = metric[rowB * channels + c];
            dot += a * b;
            normA += a * a;
            normB += b * b;
        }
        return dot / (Math.Max(Math.Sqrt(normA), 1e-12) * Math.Max(Math.Sqrt(normB), 1e-12));
    }
}

/// <summary>The sizes of a Q K importance case: <c>q [B, H, Nq, d]</c>, <c>k [B, Hk, Nk, d]</c>.</summary>
public readonly record struct QkShape(int Batch, int Heads, int KeyHeads, int Queries, int Keys, int HeadDim)
{
    public int QueryElements => Batch * Heads * Queries * HeadDim;

    public int KeyElements => Batch * KeyHeads * Keys * HeadDim;
}

/// <summary>
/// A tensor inside a larger buffer: every row of the last dimension padded by <c>pad</c> elements and element 0 at
/// <c>offset</c>, the rest of the buffer holding <c>fill</c>, so a test sees both strided reads and stray writes.
/// </summary>
internal sealed class PaddedTensor<T>
    where T : unmanaged
{
    public PaddedTensor(long[] shape, int pad, int offset, T fill)
    {
        Shape = shape;
        long[] padded = (long[])shape.Clone();
        padded[^1] += pad;
        Strides = new long[shape.Length];
        long stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            Strides[d] = stride;
            stride *= Math.Max(1, padded[d]);  // an empty dimension still needs positive strides outside it
        }
        Offset = offset;
        Buffer = new T[offset + stride];
        Buffer.AsSpan().Fill(fill);
    }

    public T[] Buffer { get; }

    public int Offset { get; }

    public long[] Shape { get; }

    public long[] Strides { get; }

    public HostTensor<T> Tensor => new HostTensor<T>(Buffer.AsSpan(Offset), new TensorShape(Shape), new TensorStrides(Strides));

    public ReadOnlyHostTensor<T> ReadOnly => Tensor;

    public void Write(T[] values)
    {
        long i = 0;
        foreach (long offset in Offsets())
        {
            Buffer[offset] = values[i++];
        }
    }

    public T[] Read() => Offsets().Select(offset => Buffer[offset]).ToArray();

    /// <summary>How many elements outside the view differ from <paramref name="fill"/> (bitwise, so NaN fills work).</summary>
    public int CountChangedOutside(T fill)
    {
        var inside = new HashSet<long>(Offsets());
        int changed = 0;
        for (long i = 0; i < Buffer.Length; i++)
        {
            if (!inside.Contains(i) && !EqualityComparer<T>.Default.Equals(Buffer[i], fill))
            {
                changed++;
            }
        }
        return changed;
    }

    private IEnumerable<long> Offsets()
    {
        var index = new long[Shape.Length];
        long count = Shape.Aggregate(1L, (a, b) => a * b);
        for (long n = 0; n < count; n++)
        {
            long offset = Offset;
            for (int d = 0; d < Shape.Length; d++)
            {
                offset += index[d] * Strides[d];
            }
            yield return offset;
            for (int d = Shape.Length - 1; d >= 0; d--)
            {
                if (++index[d] < Shape[d])
                {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}
