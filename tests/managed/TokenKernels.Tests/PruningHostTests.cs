using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Attention-based pruning on host memory against <see cref="PruningReference"/> and against worked examples.</summary>
public class PruningHostTests
{
    public static IEnumerable<ImportanceCase> ImportanceCases()
    {
        yield return new ImportanceCase("one row", 1, 1, 1, 5, 0, 1, 0, 5, ReduceMode.Mean, ReduceMode.Mean);
        yield return new ImportanceCase("query sum", 2, 3, 7, 11, 2, 6, 3, 9, ReduceMode.Mean, ReduceMode.Sum);
        yield return new ImportanceCase("head sum", 2, 4, 5, 9, 0, 5, 0, 9, ReduceMode.Sum, ReduceMode.Mean);
        yield return new ImportanceCase("empty keys", 3, 2, 6, 8, 5, 6, 4, 4, ReduceMode.Sum, ReduceMode.Sum);
        yield return new ImportanceCase("last key", 2, 2, 4, 6, 1, 3, 5, 6, ReduceMode.Mean, ReduceMode.Mean);
        yield return new ImportanceCase("image span", 1, 16, 40, 300, 10, 40, 35, 291, ReduceMode.Mean, ReduceMode.Mean);
    }

    public static IEnumerable<QkCase> QkCases()
    {
        yield return new QkCase("single", new QkShape(1, 1, 1, 1, 4, 3), 0, 1, 0, 4, false);
        yield return new QkCase("all queries", new QkShape(2, 2, 2, 5, 9, 8), 0, 5, 0, 9, false);
        yield return new QkCase("gqa 4:1", new QkShape(2, 8, 2, 6, 13, 16), 1, 5, 2, 11, false);
        yield return new QkCase("causal square", new QkShape(1, 2, 1, 9, 9, 4), 0, 9, 0, 9, true);
        yield return new QkCase("causal prefix cache", new QkShape(2, 4, 2, 5, 12, 8), 0, 5, 3, 12, true);
        yield return new QkCase("causal more queries than keys", new QkShape(1, 2, 2, 7, 4, 4), 0, 7, 0, 4, true);
        yield return new QkCase("fastv last row", new QkShape(1, 4, 4, 20, 20, 16), 19, 20, 3, 15, true);
        yield return new QkCase("long keys", new QkShape(1, 2, 1, 3, 300, 32), 0, 3, 0, 300, false);
    }

    // ---- Options ----

    [Test]
    public void OptionsHaveTheSpecDefaultsAndTheMethodsConventions()
    {
        var options = new ImportanceOptions(2, 5, 1, 7);
        ImportanceOptions fastV = ImportanceOptions.FastV(35, 611, 700);
        ImportanceOptions visionZip = ImportanceOptions.VisionZip(577);
        using (Assert.EnterMultipleScope())
        {
            Assert.That((options.QueryBegin, options.QueryEnd, options.KeyBegin, options.KeyEnd), Is.EqualTo((2L, 5L, 1L, 7L)));
            Assert.That((options.QueryCount, options.KeyCount), Is.EqualTo((3L, 6L)));
            Assert.That((options.HeadReduce, options.QueryReduce), Is.EqualTo((ReduceMode.Mean, ReduceMode.Mean)));
            Assert.That(options.Scale, Is.Null);
            Assert.That(options.Causal, Is.False);
            Assert.That((fastV.QueryBegin, fastV.QueryEnd, fastV.KeyBegin, fastV.KeyEnd, fastV.HeadReduce), Is.EqualTo((699L, 700L, 35L, 611L, ReduceMode.Mean)));
            Assert.That((visionZip.QueryBegin, visionZip.QueryEnd, visionZip.KeyBegin, visionZip.KeyEnd, visionZip.HeadReduce), Is.EqualTo((0L, 1L, 1L, 577L, ReduceMode.Sum)));
            Assert.That(ImportanceOptions.SdpaScale(64), Is.EqualTo(0.125f));
            Assert.That(ImportanceOptions.SdpaScale(80), Is.EqualTo((float)(1 / Math.Sqrt(80))));
            Assert.That(options with { Scale = 0.5f }, Is.Not.EqualTo(options));
            Assert.That(options with { Scale = 0.5f, Causal = true }, Is.EqualTo(new ImportanceOptions(2, 5, 1, 7) { Causal = true, Scale = 0.5f }));
            Assert.That((options with { Scale = 0.5f }).Scale, Is.EqualTo(0.5f));
            Assert.That(options.ToString(), Is.EqualTo("queries [2, 5) Mean, keys [1, 7), heads Mean"));
            Assert.That((visionZip with { Scale = 0.125f, Causal = true }).ToString(), Is.EqualTo("queries [0, 1) Mean, keys [1, 577), heads Sum, scale 0.125, causal"));
        }
    }

    [Test]
    public void WithMethodsAdjustACopyAsWithDoes()
    {
        // The C# 9 (Unity) spelling of `options with { ... }`, for adjusting a preset.
        ImportanceOptions fastV = ImportanceOptions.FastV(35, 611, 700);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(fastV.WithHeadReduce(ReduceMode.Sum), Is.EqualTo(fastV with { HeadReduce = ReduceMode.Sum }));
            Assert.That(fastV.WithQueryReduce(ReduceMode.Sum), Is.EqualTo(fastV with { QueryReduce = ReduceMode.Sum }));
            Assert.That(fastV.WithScale(0.125f), Is.EqualTo(fastV with { Scale = 0.125f }));
            Assert.That(fastV.WithScale(0.125f).WithScale(null), Is.EqualTo(fastV));
            Assert.That(fastV.WithCausal(true), Is.EqualTo(fastV with { Causal = true }));
            Assert.That(fastV.WithCausal(true).WithScale(0.5f).ToString(), Is.EqualTo("queries [699, 700) Mean, keys [35, 611), heads Mean, scale 0.5, causal"));
            Assert.That(ImportanceOptions.VisionZip(577).WithHeadReduce(ReduceMode.Mean), Is.EqualTo(new ImportanceOptions(0, 1, 1, 577)));
            Assert.That(fastV, Is.EqualTo(ImportanceOptions.FastV(35, 611, 700)), "the original is unchanged");
        }
    }

    // ---- Importance from attention probabilities ----

    [TestCaseSource(nameof(ImportanceCases))]
    public void AttentionImportanceMatchesTheReference(ImportanceCase c)
    {
        CheckAttentionImportance<float>(c, strided: false);
        CheckAttentionImportance<float>(c, strided: true);
        CheckAttentionImportance<Float16>(c, strided: true);
        CheckAttentionImportance<BFloat16>(c, strided: false);
    }

    [Test]
    public void AttentionImportanceAllocatingOverloadEqualsCallerOutput()
    {
        (float[] attn, _) = PruningReference.Probabilities<float>(2 * 3 * 4, 10, new Random(3));
        var view = new ReadOnlyHostTensor<float>(attn, new TensorShape(2, 3, 4, 10));
        var options = new ImportanceOptions(1, 4, 2, 9) { QueryReduce = ReduceMode.Sum };
        (float[] scores, TensorShape shape) = TokenPruning.AttentionImportance(view, options);
        var output = new float[14];
        TokenPruning.AttentionImportance(view, new HostTensor<float>(output, new TensorShape(2, 7)), options);
        Assert.That(shape, Is.EqualTo(new TensorShape(2, 7)));
        Assert.That(output, Is.EqualTo(scores));
    }

    [Test]
    public void AttentionImportanceIgnoresScaleAndCausal()
    {
        (float[] attn, _) = PruningReference.Probabilities<float>(2 * 2 * 5, 6, new Random(5));
        var view = new ReadOnlyHostTensor<float>(attn, new TensorShape(2, 2, 5, 6));
        var options = new ImportanceOptions(0, 5, 0, 6);
        (float[] plain, _) = TokenPruning.AttentionImportance(view, options);
        (float[] withQkSettings, _) = TokenPruning.AttentionImportance(view, options with { Scale = 3f, Causal = true });
        Assert.That(withQkSettings, Is.EqualTo(plain));
    }

    // ---- Importance from Q and K ----

    [TestCaseSource(nameof(QkCases))]
    public void QkImportanceMatchesTheReference(QkCase c)
    {
        foreach (ReduceMode heads in new[] { ReduceMode.Mean, ReduceMode.Sum })
        {
            ImportanceOptions options = c.Options with { HeadReduce = heads, QueryReduce = heads == ReduceMode.Mean ? ReduceMode.Sum : ReduceMode.Mean };
            CheckQkImportance<float>(c.Shape, options, withLse: false, strided: false);
            CheckQkImportance<float>(c.Shape, options, withLse: true, strided: true);
            CheckQkImportance<Float16>(c.Shape, options, withLse: false, strided: true);
            CheckQkImportance<BFloat16>(c.Shape, options with { Scale = 0.3f }, withLse: true, strided: false);
        }
    }

    [TestCaseSource(nameof(QkCases))]
    public void QkImportanceEqualsAttentionImportanceOfTheDenseSoftmax(QkCase c)
    {
        QkShape s = c.Shape;
        var random = new Random(HashSeed(c.Name) + 1);
        (float[] q, double[] qExact) = Elements.Random<float>(s.QueryElements, random);
        (float[] k, double[] kExact) = Elements.Random<float>(s.KeyElements, random);
        float[] dense = PruningReference.DenseProbabilities(qExact, kExact, s, ImportanceOptions.SdpaScale(s.HeadDim), c.Options.Causal)
            .Select(p => (float)p).ToArray();
        (float[] fromDense, _) = TokenPruning.AttentionImportance(new ReadOnlyHostTensor<float>(dense, new TensorShape(s.Batch, s.Heads, s.Queries, s.Keys)), c.Options);
        (float[] fromQk, _) = TokenPruning.QkImportance(
            new ReadOnlyHostTensor<float>(q, new TensorShape(s.Batch, s.Heads, s.Queries, s.HeadDim)),
            new ReadOnlyHostTensor<float>(k, new TensorShape(s.Batch, s.KeyHeads, s.Keys, s.HeadDim)), c.Options);
        Assert.That(fromQk.Length, Is.EqualTo(fromDense.Length));
        for (int i = 0; i < fromQk.Length; i++)
        {
            Assert.That(fromQk[i], Is.EqualTo(fromDense[i]).Within(QkTolerance(fromDense[i])), "column " + i);
        }
    }

    [Test]
    public void QkImportanceUsesTheGivenLogSumExp()
    {
        var s = new QkShape(2, 4, 2, 6, 10, 8);
        var random = new Random(17);
        (float[] q, double[] qExact) = Elements.Random<float>(s.QueryElements, random);
        (float[] k, double[] kExact) = Elements.Random<float>(s.KeyElements, random);
        var options = new ImportanceOptions(0, 6, 0, 10) { Causal = true };
        double[] lse = PruningReference.LogSumExp(qExact, kExact, s, ImportanceOptions.SdpaScale(s.HeadDim), causal: true);
        float[] shifted = lse.Select(v => (float)(v + Math.Log(2))).ToArray();
        var qv = new ReadOnlyHostTensor<float>(q, new TensorShape(2, 4, 6, 8));
        var kv = new ReadOnlyHostTensor<float>(k, new TensorShape(2, 2, 10, 8));
        (float[] exact, _) = TokenPruning.QkImportance(qv, kv, options);
        (float[] halved, _) = TokenPruning.QkImportance(qv, kv, options, new ReadOnlyHostTensor<float>(shifted, new TensorShape(2, 4, 6)));
        for (int i = 0; i < exact.Length; i++)
        {
            Assert.That(halved[i], Is.EqualTo(exact[i] / 2).Within(QkTolerance(exact[i])), "column " + i);
        }
    }

    [Test]
    public void QkImportanceIsDeterministic()
    {
        var s = new QkShape(2, 8, 2, 33, 130, 24);
        var random = new Random(23);
        (float[] q, _) = Elements.Random<float>(s.QueryElements, random);
        (float[] k, _) = Elements.Random<float>(s.KeyElements, random);
        var qv = new ReadOnlyHostTensor<float>(q, new TensorShape(2, 8, 33, 24));
        var kv = new ReadOnlyHostTensor<float>(k, new TensorShape(2, 2, 130, 24));
        var options = new ImportanceOptions(0, 33, 0, 130) { Causal = true };
        (float[] first, _) = TokenPruning.QkImportance(qv, kv, options);
        for (int run = 0; run < 3; run++)
        {
            Assert.That(TokenPruning.QkImportance(qv, kv, options).Scores, Is.EqualTo(first));
        }
    }

    // ---- Top-k ----

    [Test]
    public void TopKFollowsTheTieAndNaNRules()
    {
        float[] scores = { 3, 1, float.NaN, 3, float.NegativeInfinity, 2, float.NaN, float.PositiveInfinity };
        var view = new ReadOnlyHostTensor<float>(scores, new TensorShape(1, 8));
        using (Assert.EnterMultipleScope())
        {
            CheckRanked(TokenPruning.TopKRanked(view, 4), new[] { 0, 3, 5, 7 }, new[] { 7, 0, 3, 5 });
            CheckRanked(TokenPruning.TopKRanked(view, 8), Enumerable.Range(0, 8).ToArray(), new[] { 7, 0, 3, 5, 1, 4, 2, 6 });
            Assert.That(TokenPruning.TopK(view, 7).Indices, Is.EqualTo(new[] { 0, 1, 2, 3, 4, 5, 7 }), "of two NaNs the lower index is kept");
            Assert.That(TokenPruning.TopK(view, 0).Indices, Is.Empty);
            Assert.That(TokenPruning.TopK(view, 0).Shape, Is.EqualTo(new TensorShape(1, 0)));
            Assert.That(TokenPruning.TopK(view, 2, lengths: new ReadOnlyHostTensor<int>(new[] { 5 }, new TensorShape(1))).Indices, Is.EqualTo(new[] { 0, 3 }));
            CheckRanked(TokenPruning.TopKRanked(view, 4, lengths: new ReadOnlyHostTensor<int>(new[] { 3 }, new TensorShape(1))), new[] { 0, 1, 2, -1 }, new[] { 0, 1, 2, -1 });
            CheckRanked(TokenPruning.TopKRanked(view, 4, itemK: new ReadOnlyHostTensor<int>(new[] { 2 }, new TensorShape(1))), new[] { 0, 7, -1, -1 }, new[] { 7, 0, -1, -1 });
        }
    }

    [TestCase(1, 1, 1, false, false)]
    [TestCase(3, 17, 5, false, false)]
    [TestCase(3, 17, 0, true, true)]
    [TestCase(4, 17, 17, true, false)]
    [TestCase(4, 33, 9, false, true)]
    [TestCase(5, 64, 20, true, true)]
    [TestCase(2, 600, 64, true, true)]
    public void TopKMatchesTheReference(int batch, int tokens, int k, bool withLengths, bool withItemK)
    {
        var random = new Random(batch * 1000 + tokens * 10 + k);
        var exact = new double[batch * tokens];
        for (int i = 0; i < exact.Length; i++)
        {
            int draw = random.Next(20);
            exact[i] = draw switch
            {
                0 => double.NaN,
                1 => double.NegativeInfinity,
                2 => double.PositiveInfinity,
                _ => random.Next(6) - 2.5,
            };
        }
        int[]? lengths = withLengths ? Enumerable.Range(0, batch).Select(b => b == 0 ? tokens : b == 1 ? 0 : random.Next(tokens + 1)).ToArray() : null;
        int[]? itemK = withItemK ? Enumerable.Range(0, batch).Select(b => b == 0 ? k : b == 1 ? 0 : random.Next(k + 1)).ToArray() : null;
        (int[] expectedIndices, int[] expectedRanked) = PruningReference.TopK(exact, batch, tokens, k, lengths, itemK);

        CheckTopK<float>(exact, batch, tokens, k, lengths, itemK, expectedIndices, expectedRanked, strided: false);
        CheckTopK<float>(exact, batch, tokens, k, lengths, itemK, expectedIndices, expectedRanked, strided: true);
        CheckTopK<Float16>(exact, batch, tokens, k, lengths, itemK, expectedIndices, expectedRanked, strided: true);
        CheckTopK<BFloat16>(exact, batch, tokens, k, lengths, itemK, expectedIndices, expectedRanked, strided: false);
    }

    [Test]
    public void TopKOfDistinctScoresIsTheSortedPrefix()
    {
        (float[] scores, double[] exact) = Elements.Random<float>(3 * 50, new Random(8));
        (int[] indices, int[] ranked, _) = TokenPruning.TopKRanked(new ReadOnlyHostTensor<float>(scores, new TensorShape(3, 50)), 12);
        for (int b = 0; b < 3; b++)
        {
            int[] byScore = Enumerable.Range(0, 50).OrderByDescending(n => exact[b * 50 + n]).Take(12).ToArray();
            Assert.That(ranked.Skip(b * 12).Take(12), Is.EqualTo(byScore));
            Assert.That(indices.Skip(b * 12).Take(12), Is.EqualTo(byScore.OrderBy(n => n)));
        }
    }

    // ---- Gather ----

    [Test]
    public void GatherCopiesRowsAndZeroesPadding()
    {
        (float[] x, _) = Elements.Random<float>(2 * 7 * 5, new Random(9));
        long[] indices = { 6, 0, 3, -1, 2, 2, -1, -1 };
        float[] expected = PruningReference.Gather(x, 2, 7, 5, indices, 4);
        var xv = new ReadOnlyHostTensor<float>(x, new TensorShape(2, 7, 5));
        var shape = new TensorShape(2, 4);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TokenPruning.Gather(xv, new ReadOnlyHostTensor<long>(indices, shape)).Data, Is.EqualTo(expected));
            Assert.That(TokenPruning.Gather(xv, new ReadOnlyHostTensor<long>(indices, shape)).Shape, Is.EqualTo(new TensorShape(2, 4, 5)));
            Assert.That(TokenPruning.Gather(xv, new ReadOnlyHostTensor<int>(indices.Select(i => (int)i).ToArray(), shape)).Data, Is.EqualTo(expected));
            Assert.That(expected.Skip(15).Take(5), Is.All.Zero, "the reference pads with zero rows");
        }
    }

    [Test]
    public void GatherTakesAnyElementTypeAndStridedViews()
    {
        var random = new Random(10);
        int[] ints = Enumerable.Range(0, 3 * 9 * 4).Select(_ => random.Next()).ToArray();
        long[] indices = Enumerable.Range(0, 3 * 5).Select(i => (long)random.Next(-1, 9)).ToArray();
        CheckGather(ints, indices, 3, 9, 4, 5, -7);
        Float16[] halves = Elements.Random<Float16>(3 * 9 * 4, random).Values;
        CheckGather(halves, indices, 3, 9, 4, 5, (Float16)float.NaN);
        BFloat16[] bf = Elements.Random<BFloat16>(3 * 9 * 4, random).Values;
        CheckGather(bf, indices, 3, 9, 4, 5, (BFloat16)float.NaN);
        long[] longs = ints.Select(v => (long)v << 3).ToArray();
        CheckGather(longs, indices, 3, 9, 4, 5, -7L);
    }

    // ---- VisionZip contextual tokens ----

    [TestCase(1, 6, 2, 1)]
    [TestCase(2, 20, 5, 3)]
    [TestCase(2, 20, 5, 15)]
    [TestCase(3, 20, 0, 4)]
    [TestCase(2, 20, 5, 0)]
    [TestCase(2, 64, 10, 7)]
    public void ContextualMatchesTheReference(int batch, int tokens, int kept, int contextual)
    {
        var random = new Random(batch * 100 + tokens * 7 + kept * 3 + contextual);
        long[] keptIndices = new long[batch * kept];
        for (int b = 0; b < batch; b++)
        {
            long[] chosen = Enumerable.Range(0, tokens).OrderBy(_ => random.Next()).Take(kept).Select(n => (long)n).ToArray();
            chosen.CopyTo(keptIndices, b * kept);
        }
        CheckContextual<float, float>(batch, tokens, kept, contextual, keptIndices, random, strided: false, sameTensor: false);
        CheckContextual<float, float>(batch, tokens, kept, contextual, keptIndices, random, strided: true, sameTensor: false);
        CheckContextual<BFloat16, Float16>(batch, tokens, kept, contextual, keptIndices, random, strided: true, sameTensor: false);
        CheckContextual<Float16, Float16>(batch, tokens, kept, contextual, keptIndices, random, strided: false, sameTensor: true);
    }

    [Test]
    public void ContextualWorkedExample()
    {
        // N = 6, token 1 kept: remaining 0, 2, 3, 4, 5 (M = 5); m = 2 gives step 2, targets 0 and 3.
        float[] metric = { 1, 0, 9, 9, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f, 1, 0.2f };
        float[] x = { 1, 2, 3, 4, 5, 6 };
        (float[] data, TensorShape shape) = TokenPruning.VisionZipContextual(
            new ReadOnlyHostTensor<float>(metric, new TensorShape(1, 6, 2)), new ReadOnlyHostTensor<float>(x, new TensorShape(1, 6, 1)),
            new ReadOnlyHostTensor<int>(new[] { 1 }, new TensorShape(1, 1)), 2);
        // Token 2 (0.9, 0.1) and token 5 (1, 0.2) join target 0; token 4 (0.1, 0.9) joins target 3.
        Assert.That(shape, Is.EqualTo(new TensorShape(1, 2, 1)));
        Assert.That(data, Is.EqualTo(new[] { 1 + (3 + 6) / 2f, 4 + 5f }));
    }

    // ---- Pipelines ----

    [Test]
    public void FastVKeepsTheTopImageTokensOfTheLastQuery()
    {
        const int batch = 2, heads = 4, sequence = 30, imageStart = 5, imageEnd = 21, channels = 6, keep = 8;
        (float[] attn, double[] attnExact) = PruningReference.Probabilities<float>(batch * heads * sequence, sequence, new Random(31));
        ImportanceOptions options = ImportanceOptions.FastV(imageStart, imageEnd, sequence);
        (float[] importance, TensorShape shape) = TokenPruning.AttentionImportance(new ReadOnlyHostTensor<float>(attn, new TensorShape(batch, heads, sequence, sequence)), options);
        double[] expectedImportance = PruningReference.AttentionImportance(attnExact, batch, heads, sequence, sequence, options);
        (int[] kept, _) = TokenPruning.TopK(new ReadOnlyHostTensor<float>(importance, shape), keep);
        (int[] expectedKept, _) = PruningReference.TopK(expectedImportance, batch, imageEnd - imageStart, keep, null, null);

        // Gather from the image span of the hidden states, a strided view of [B, sequence, C].
        (float[] hidden, _) = Elements.Random<float>(batch * sequence * channels, new Random(32));
        var span = new ReadOnlyHostTensor<float>(hidden.AsSpan(imageStart * channels), new TensorShape(batch, imageEnd - imageStart, channels),
            new TensorStrides(sequence * channels, channels, 1));
        (float[] gathered, _) = TokenPruning.Gather(span, new ReadOnlyHostTensor<int>(kept, new TensorShape(batch, keep)));
        long[] positions = expectedKept.Select(i => (long)(i + imageStart)).ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(kept, Is.EqualTo(expectedKept));
            Assert.That(gathered, Is.EqualTo(PruningReference.Gather(hidden, batch, sequence, channels, positions, keep)));
        }
    }

    [Test]
    public void VisionZipKeepsClsAndDominantTokensAndFoldsTheRest()
    {
        const int batch = 2, heads = 3, tokens = 26, channels = 5, dominant = 6, contextual = 4;
        (float[] attn, double[] attnExact) = PruningReference.Probabilities<float>(batch * heads * tokens, tokens, new Random(41));
        ImportanceOptions options = ImportanceOptions.VisionZip(tokens);
        (float[] importance, TensorShape shape) = TokenPruning.AttentionImportance(new ReadOnlyHostTensor<float>(attn, new TensorShape(batch, heads, tokens, tokens)), options);
        double[] expectedImportance = PruningReference.AttentionImportance(attnExact, batch, heads, tokens, tokens, options);
        (int[] top, _) = TokenPruning.TopK(new ReadOnlyHostTensor<float>(importance, shape), dominant);
        (int[] expectedTop, _) = PruningReference.TopK(expectedImportance, batch, tokens - 1, dominant, null, null);

        // VisionZip keeps the CLS token and the dominant ones (shifted past CLS), and folds the rest into contextual tokens.
        long[] kept = new long[batch * (dominant + 1)];
        for (int b = 0; b < batch; b++)
        {
            kept[b * (dominant + 1)] = 0;
            for (int i = 0; i < dominant; i++)
            {
                kept[b * (dominant + 1) + 1 + i] = top[b * dominant + i] + 1;
            }
        }
        (float[] keys, double[] keysExact) = Elements.Random<float>(batch * tokens * channels, new Random(42));
        (float[] hidden, double[] hiddenExact) = Elements.Random<float>(batch * tokens * channels, new Random(43));
        var output = new float[batch * contextual * channels];
        TokenPruning.VisionZipContextual(
            new ReadOnlyHostTensor<float>(keys, new TensorShape(batch, tokens, channels)), new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)),
            new ReadOnlyHostTensor<long>(kept, new TensorShape(batch, dominant + 1)), new HostTensor<float>(output, new TensorShape(batch, contextual, channels)));
        double[] expected = PruningReference.Contextual(keysExact, channels, hiddenExact, channels, batch, tokens, kept, dominant + 1, contextual);
        Assert.That(top, Is.EqualTo(expectedTop));
        for (int i = 0; i < output.Length; i++)
        {
            Assert.That(output[i], Is.EqualTo(expected[i]).Within(Elements.Tolerance<float>(expected[i])), "element " + i);
        }
    }

    // ---- Allocation ----

    [Test]
    public void NonAllocatingCallsAllocateNothing()
    {
        var attn = new Float16[2 * 4 * 6 * 12];
        var q = new float[2 * 4 * 6 * 8];
        var k = new float[2 * 2 * 12 * 8];
        var lse = new float[2 * 4 * 6];
        var importance = new float[2 * 10];
        var indices = new int[2 * 4];
        var ranked = new int[2 * 4];
        var lengths = new[] { 10, 7 };
        var itemK = new[] { 4, 2 };
        var tokens = new BFloat16[2 * 10 * 3];
        var gathered = new BFloat16[2 * 4 * 3];
        var kept = new long[] { 1, 5, 2, 9 };
        var contextual = new BFloat16[2 * 3 * 3];
        for (int i = 0; i < q.Length; i++)
        {
            q[i] = (i * 7919 % 13 - 6) / 8f;
        }
        for (int i = 0; i < k.Length; i++)
        {
            k[i] = (i * 104729 % 11 - 5) / 8f;
        }
        attn.AsSpan().Fill((Float16)(1f / 12));
        tokens.AsSpan().Fill((BFloat16)0.5f);
        var options = new ImportanceOptions(1, 6, 2, 12) { HeadReduce = ReduceMode.Sum };
        void PruneOnce()
        {
            var importanceView = new HostTensor<float>(importance, new TensorShape(2, 10));
            TokenPruning.AttentionImportance(new ReadOnlyHostTensor<Float16>(attn, new TensorShape(2, 4, 6, 12)), importanceView, options);
            var qv = new ReadOnlyHostTensor<float>(q, new TensorShape(2, 4, 6, 8));
            var kv = new ReadOnlyHostTensor<float>(k, new TensorShape(2, 2, 12, 8));
            TokenPruning.QkImportance(qv, kv, importanceView, options);
            TokenPruning.QkImportance(qv, kv, importanceView, options, new ReadOnlyHostTensor<float>(lse, new TensorShape(2, 4, 6)));
            TokenPruning.TopK(importanceView.AsReadOnly(), new HostTensor<int>(indices, new TensorShape(2, 4)),
                new ReadOnlyHostTensor<int>(lengths, new TensorShape(2)), new ReadOnlyHostTensor<int>(itemK, new TensorShape(2)), new HostTensor<int>(ranked, new TensorShape(2, 4)));
            var tokenView = new ReadOnlyHostTensor<BFloat16>(tokens, new TensorShape(2, 10, 3));
            TokenPruning.Gather(tokenView, new ReadOnlyHostTensor<int>(indices, new TensorShape(2, 4)), new HostTensor<BFloat16>(gathered, new TensorShape(2, 4, 3)));
            TokenPruning.VisionZipContextual(tokenView, tokenView, new ReadOnlyHostTensor<long>(kept, new TensorShape(2, 2)), new HostTensor<BFloat16>(contextual, new TensorShape(2, 3, 3)));
        }
        PruneOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            PruneOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
    }

    // ---- Helpers ----

    private static void CheckRanked((int[] Indices, int[] Ranked, TensorShape Shape) result, int[] indices, int[] ranked)
    {
        Assert.That(result.Indices, Is.EqualTo(indices), "indices");
        Assert.That(result.Ranked, Is.EqualTo(ranked), "ranked");
        Assert.That(result.Shape, Is.EqualTo(new TensorShape(1, indices.Length)), "shape");
    }

    internal static int HashSeed(string name)
    {
        int seed = 17;
        foreach (char ch in name)
        {
            seed = seed * 31 + ch;
        }
        return seed;
    }

    /// <summary>Float32 exp and sums over at most a few hundred terms of order 1: relative 1e-4 and a small absolute floor.</summary>
    internal static double QkTolerance(double expected) => 1e-4 * Math.Abs(expected) + 1e-6;

    private static void CheckAttentionImportance<T>(ImportanceCase c, bool strided)
        where T : unmanaged
    {
        var random = new Random(HashSeed(c.Name) + (strided ? 1 : 0) + typeof(T).Name.Length);
        (T[] attn, double[] exact) = PruningReference.Probabilities<T>(c.Batch * c.Heads * c.Queries, c.Keys, random);
        ImportanceOptions options = c.Options;
        double[] expected = PruningReference.AttentionImportance(exact, c.Batch, c.Heads, c.Queries, c.Keys, options);
        var input = new PaddedTensor<T>(new long[] { c.Batch, c.Heads, c.Queries, c.Keys }, strided ? 3 : 0, strided ? 2 : 0, Elements.FromDouble<T>(double.NaN));
        input.Write(attn);
        var output = new PaddedTensor<float>(new long[] { c.Batch, options.KeyCount }, strided ? 2 : 0, strided ? 1 : 0, -5f);
        TokenPruning.AttentionImportance(input.ReadOnly, output.Tensor, options);
        float[] actual = output.Read();
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.That(actual[i], Is.EqualTo(expected[i]).Within(1e-5 * Math.Abs(expected[i]) + 1e-7), typeof(T).Name + " column " + i);
            }
            Assert.That(output.CountChangedOutside(-5f), Is.Zero, "writes outside the output view");
        }
    }

    private static void CheckQkImportance<T>(QkShape s, ImportanceOptions options, bool withLse, bool strided)
        where T : unmanaged
    {
        var random = new Random(s.GetHashCode() + typeof(T).Name.Length);
        (T[] q, double[] qExact) = Elements.Random<T>(s.QueryElements, random);
        (T[] k, double[] kExact) = Elements.Random<T>(s.KeyElements, random);
        double scale = options.Scale ?? ImportanceOptions.SdpaScale(s.HeadDim);
        double[]? lse = withLse ? PruningReference.LogSumExp(qExact, kExact, s, scale, options.Causal).Select(v => (double)(float)v).ToArray() : null;
        double[] expected = PruningReference.QkImportance(qExact, kExact, s, options, scale, lse);

        T nan = Elements.FromDouble<T>(double.NaN);
        var qView = new PaddedTensor<T>(new long[] { s.Batch, s.Heads, s.Queries, s.HeadDim }, strided ? 5 : 0, strided ? 3 : 0, nan);
        var kView = new PaddedTensor<T>(new long[] { s.Batch, s.KeyHeads, s.Keys, s.HeadDim }, strided ? 2 : 0, strided ? 1 : 0, nan);
        qView.Write(q);
        kView.Write(k);
        var output = new PaddedTensor<float>(new long[] { s.Batch, options.KeyCount }, strided ? 2 : 0, 0, -5f);
        ReadOnlyHostTensor<float> lseView = default;
        PaddedTensor<float>? lseTensor = null;
        if (lse != null)
        {
            lseTensor = new PaddedTensor<float>(new long[] { s.Batch, s.Heads, s.Queries }, strided ? 1 : 0, 0, float.NaN);
            lseTensor.Write(lse.Select(v => (float)v).ToArray());
            lseView = lseTensor.ReadOnly;
        }
        TokenPruning.QkImportance(qView.ReadOnly, kView.ReadOnly, output.Tensor, options, lseView);
        float[] actual = output.Read();
        string what = typeof(T).Name + (withLse ? " with lse" : string.Empty) + (strided ? " strided" : string.Empty) + ", " + options;
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.That(actual[i], Is.EqualTo(expected[i]).Within(QkTolerance(expected[i])), what + ", column " + i);
            }
            Assert.That(output.CountChangedOutside(-5f), Is.Zero, "writes outside the output view");
        }
    }

    private static void CheckTopK<T>(double[] exact, int batch, int tokens, int k, int[]? lengths, int[]? itemK, int[] expectedIndices, int[] expectedRanked, bool strided)
        where T : unmanaged
    {
        var scores = new PaddedTensor<T>(new long[] { batch, tokens }, strided ? 3 : 0, strided ? 1 : 0, Elements.FromDouble<T>(1e4));
        scores.Write(exact.Select(Elements.FromDouble<T>).ToArray());
        var indices = new PaddedTensor<int>(new long[] { batch, k }, strided ? 2 : 0, 0, 77);
        var ranked = new PaddedTensor<int>(new long[] { batch, k }, strided ? 1 : 0, strided ? 2 : 0, 77);
        TokenPruning.TopK(
            scores.ReadOnly, indices.Tensor,
            lengths == null ? default : new ReadOnlyHostTensor<int>(lengths, new TensorShape(batch)),
            itemK == null ? default : new ReadOnlyHostTensor<int>(itemK, new TensorShape(batch)),
            ranked.Tensor);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(indices.Read(), Is.EqualTo(expectedIndices), typeof(T).Name + " indices");
            Assert.That(ranked.Read(), Is.EqualTo(expectedRanked), typeof(T).Name + " ranked");
            Assert.That(indices.CountChangedOutside(77) + ranked.CountChangedOutside(77), Is.Zero, "writes outside the output views");
        }
        (int[] allocated, _) = TokenPruning.TopK(scores.ReadOnly, k,
            lengths == null ? default : new ReadOnlyHostTensor<int>(lengths, new TensorShape(batch)),
            itemK == null ? default : new ReadOnlyHostTensor<int>(itemK, new TensorShape(batch)));
        Assert.That(allocated, Is.EqualTo(expectedIndices), "allocating overload");
    }

    private static void CheckGather<T>(T[] x, long[] indices, int batch, int tokens, int channels, int k, T fill)
        where T : unmanaged
    {
        T[] expected = PruningReference.Gather(x, batch, tokens, channels, indices, k);
        var xView = new PaddedTensor<T>(new long[] { batch, tokens, channels }, 3, 2, fill);
        xView.Write(x);
        var output32 = new PaddedTensor<T>(new long[] { batch, k, channels }, 2, 1, fill);
        var output64 = new PaddedTensor<T>(new long[] { batch, k, channels }, 0, 0, fill);
        var indices32 = new PaddedTensor<int>(new long[] { batch, k }, 4, 1, 99);
        indices32.Write(indices.Select(i => (int)i).ToArray());
        TokenPruning.Gather(xView.ReadOnly, indices32.ReadOnly, output32.Tensor);
        TokenPruning.Gather(xView.ReadOnly, new ReadOnlyHostTensor<long>(indices, new TensorShape(batch, k)), output64.Tensor);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(output32.Read(), Is.EqualTo(expected), typeof(T).Name + " int32 indices");
            Assert.That(output64.Read(), Is.EqualTo(expected), typeof(T).Name + " int64 indices");
            Assert.That(output32.CountChangedOutside(fill), Is.Zero, "writes outside the output view");
        }
    }

    private static void CheckContextual<TMetric, T>(int batch, int tokens, int kept, int contextual, long[] keptIndices, Random random, bool strided, bool sameTensor)
        where TMetric : unmanaged
        where T : unmanaged
    {
        const int metricChannels = 6;
        const int channels = 4;
        (TMetric[] metric, double[] metricExact) = Elements.Random<TMetric>(batch * tokens * metricChannels, random);
        (T[] x, double[] xExact) = Elements.Random<T>(batch * tokens * channels, random);
        T nan = Elements.FromDouble<T>(double.NaN);
        var metricView = new PaddedTensor<TMetric>(new long[] { batch, tokens, metricChannels }, strided ? 2 : 0, strided ? 1 : 0, Elements.FromDouble<TMetric>(double.NaN));
        var xView = new PaddedTensor<T>(new long[] { batch, tokens, channels }, strided ? 3 : 0, strided ? 2 : 0, nan);
        metricView.Write(metric);
        xView.Write(x);
        var output = new PaddedTensor<T>(new long[] { batch, contextual, channels }, strided ? 1 : 0, 0, Elements.FromDouble<T>(-9));
        double[] expected;
        string what = typeof(TMetric).Name + " metric, " + typeof(T).Name + " x" + (strided ? " strided" : string.Empty) + (sameTensor ? " same tensor" : string.Empty);
        if (sameTensor)
        {
            expected = PruningReference.Contextual(xExact, channels, xExact, channels, batch, tokens, keptIndices, kept, contextual);
            TokenPruning.VisionZipContextual(xView.ReadOnly, xView.ReadOnly, new ReadOnlyHostTensor<long>(keptIndices, new TensorShape(batch, kept)), output.Tensor);
        }
        else
        {
            expected = PruningReference.Contextual(metricExact, metricChannels, xExact, channels, batch, tokens, keptIndices, kept, contextual);
            int[] kept32 = keptIndices.Select(i => (int)i).ToArray();
            TokenPruning.VisionZipContextual(metricView.ReadOnly, xView.ReadOnly, new ReadOnlyHostTensor<int>(kept32, new TensorShape(batch, kept)), output.Tensor);
        }
        T[] actual = output.Read();
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.That(Elements.ToDouble(actual[i]), Is.EqualTo(expected[i]).Within(Elements.Tolerance<T>(expected[i])), what + ", element " + i);
            }
            Assert.That(output.CountChangedOutside(Elements.FromDouble<T>(-9)), Is.Zero, "writes outside the output view");
        }
    }
}

/// <summary>An importance case: <c>attn [B, H, Nq, Nk]</c>, the ranges and the reductions.</summary>
public sealed record ImportanceCase(
    string Name, int Batch, int Heads, int Queries, int Keys, int QueryBegin, int QueryEnd, int KeyBegin, int KeyEnd, ReduceMode HeadReduce, ReduceMode QueryReduce)
{
    public ImportanceOptions Options => new ImportanceOptions(QueryBegin, QueryEnd, KeyBegin, KeyEnd) { HeadReduce = HeadReduce, QueryReduce = QueryReduce };

    public override string ToString() => Name;
}

/// <summary>A Q K importance case: the shapes, the ranges and the causal flag.</summary>
public sealed record QkCase(string Name, QkShape Shape, int QueryBegin, int QueryEnd, int KeyBegin, int KeyEnd, bool Causal)
{
    public ImportanceOptions Options => new ImportanceOptions(QueryBegin, QueryEnd, KeyBegin, KeyEnd) { Causal = Causal };

    public override string ToString() => Name;
}
