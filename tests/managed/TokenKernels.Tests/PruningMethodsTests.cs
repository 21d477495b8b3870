using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// The method recipes of <see cref="PruningMethods"/> against float64 references of FastV, VisionZip and DivPrune written
/// as the published code computes them (keep_indexs, all_indices, the sorted selection), on fresh random inputs.
/// </summary>
public class PruningMethodsTests
{
    // ---- Kept counts ----

    [Test]
    public void KeptCountsRoundHalfToEvenAsPythonDoes()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(PruningMethods.FastVKeptImageTokens(576), Is.EqualTo(288));
            Assert.That(PruningMethods.FastVKeptImageTokens(576, 0.75), Is.EqualTo(144));
            Assert.That(PruningMethods.FastVKeptImageTokens(5, 0.5), Is.EqualTo(2));    // round(2.5) = 2
            Assert.That(PruningMethods.FastVKeptImageTokens(7, 0.5), Is.EqualTo(4));    // round(3.5) = 4
            Assert.That(PruningMethods.FastVKeptImageTokens(9, 1), Is.EqualTo(0));
            Assert.That(PruningMethods.DivPruneKeptTokens(576, 0.098), Is.EqualTo(56));
            Assert.That(PruningMethods.DivPruneKeptTokens(5, 0.5), Is.EqualTo(2));
            Assert.That(() => PruningMethods.FastVKeptImageTokens(10, 1.5), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("r"));
            Assert.That(() => PruningMethods.FastVKeptImageTokens(10, double.NaN), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("r"));
            Assert.That(() => PruningMethods.DivPruneKeptTokens(-1, 0.1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
        }
    }

    // ---- FastV ----

    [TestCase(1, 2, 9, 2, 7, 0.5)]
    [TestCase(2, 3, 37, 5, 30, 0.75)]
    [TestCase(3, 4, 41, 0, 41, 0.5)]
    [TestCase(2, 1, 23, 11, 11, 0.5)]
    [TestCase(1, 5, 31, 4, 29, 0)]
    [TestCase(2, 2, 17, 3, 15, 1)]
    public void FastVMatchesTheMethod(int batch, int heads, int tokens, int imageStart, int imageEnd, double r)
    {
        CheckFastV<float>(batch, heads, tokens, 19, imageStart, imageEnd, r);
        CheckFastV<BFloat16>(batch, heads, tokens, 21, imageStart, imageEnd, r);
    }

    [Test]
    public void FastVFromScoresEqualsFastVFromAttention()
    {
        const int batch = 2, heads = 3, tokens = 29, channels = 13, imageStart = 4, imageEnd = 25;
        var random = new Random(7);
        (float[] attention, _) = PruningReference.Probabilities<float>(batch * heads * tokens, tokens, random);
        (float[] hidden, _) = Elements.Random<float>(batch * tokens * channels, random);
        var attentionTensor = new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, tokens, tokens));
        var hiddenTensor = new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels));
        PruningResult<float> expected = PruningMethods.FastV(attentionTensor, hiddenTensor, imageStart, imageEnd);

        (float[] scores, TensorShape scoresShape) = TokenPruning.AttentionImportance(attentionTensor, ImportanceOptions.FastV(imageStart, imageEnd, tokens));
        var output = new float[expected.Tokens.Length];
        var positions = new int[expected.Positions.Length];
        PruningMethods.FastVFromScores(new ReadOnlyHostTensor<float>(scores, scoresShape), hiddenTensor, imageStart, PruningMethods.FastVDefaultR,
            new HostTensor<float>(output, expected.TokensShape), new HostTensor<int>(positions, expected.PositionsShape));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(positions, Is.EqualTo(expected.Positions));
            Assert.That(output, Is.EqualTo(expected.Tokens));
        }
    }

    [Test]
    public void FastVWritesStridedPositionIdsAndRepeatsWithoutAllocating()
    {
        const int batch = 2, heads = 2, tokens = 15, channels = 5, imageStart = 3, imageEnd = 12;
        var random = new Random(3);
        (float[] attention, _) = PruningReference.Probabilities<float>(batch * heads * tokens, tokens, random);
        (float[] hidden, _) = Elements.Random<float>(batch * tokens * channels, random);
        PruningResult<float> expected = PruningMethods.FastV(
            new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, tokens, tokens)),
            new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)), imageStart, imageEnd);
        int length = (int)expected.PositionsShape[1];
        var output = new float[expected.Tokens.Length];
        var positions = new int[batch * (length + 3)];                                          // rows padded by 3
        void Run() => PruningMethods.FastV(
            new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, tokens, tokens)),
            new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)), imageStart, imageEnd, 0.5,
            new HostTensor<float>(output, expected.TokensShape), new HostTensor<int>(positions, expected.PositionsShape, new TensorStrides(length + 3, 1)));
        Run();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(allocated, Is.Zero);
            Assert.That(output, Is.EqualTo(expected.Tokens));
            for (int b = 0; b < batch; b++)
            {
                Assert.That(positions.Skip(b * (length + 3)).Take(length), Is.EqualTo(expected.Positions.Skip(b * length).Take(length)));
                Assert.That(positions.Skip(b * (length + 3) + length).Take(3), Is.All.Zero);
            }
        }
    }

    [Test]
    public void FastVRejectsBadInputByNameAndWritesNothing()
    {
        const int batch = 2, heads = 2, tokens = 11, channels = 3;
        var attention = new float[batch * heads * tokens * tokens];
        var hidden = new float[batch * tokens * channels];
        var output = Enumerable.Repeat(-7f, batch * tokens * channels).ToArray();
        var positions = Enumerable.Repeat(-7, batch * tokens).ToArray();
        void Call(long imageStart, long imageEnd, double r, int outputTokens, int positionTokens, int attentionKeys = tokens) => PruningMethods.FastV(
            new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, tokens, attentionKeys)),
            new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)), imageStart, imageEnd, r,
            new HostTensor<float>(output, new TensorShape(batch, outputTokens, channels)), new HostTensor<int>(positions, new TensorShape(batch, positionTokens)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Call(2, 12, 0.5, 6, 6), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageEnd"));
            Assert.That(() => Call(5, 4, 0.5, 11, 11), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageEnd"));
            Assert.That(() => Call(-1, 4, 0.5, 9, 9), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageStart"));
            Assert.That(() => Call(2, 10, 1.5, 7, 7), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("r"));
            // 8 image tokens at R = 0.5 keep 4: 7 tokens out. More rows would keep more image tokens than R allows.
            Assert.That(() => Call(2, 10, 0.5, 8, 8), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Call(2, 10, 0.5, 7, 8), Throws.ArgumentException.With.Property("ParamName").EqualTo("positionIds"));
            Assert.That(() => Call(2, 10, 0.5, 7, 7, attentionKeys: 10), Throws.ArgumentException.With.Property("ParamName").EqualTo("attention"));
            Assert.That(() => PruningMethods.FastVFromScores(
                new ReadOnlyHostTensor<float>(new float[batch * 9], new TensorShape(batch, 9)), new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)),
                3, 0.5, new HostTensor<float>(output, new TensorShape(batch, 7, channels))), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageStart"));
            Assert.That(output, Is.All.EqualTo(-7f));
            Assert.That(positions, Is.All.EqualTo(-7));
        }
    }

    // ---- VisionZip ----

    [TestCase(1, 2, 17, 5, 3, 6)]
    [TestCase(2, 3, 37, 9, 4, 11)]
    [TestCase(3, 1, 21, 1, 7, 5)]
    [TestCase(2, 4, 29, 12, 0, 13)]
    [TestCase(1, 2, 9, 3, 6, 3)]
    public void VisionZipMatchesTheMethod(int batch, int heads, int tokens, int dominant, int contextual, int metricChannels)
    {
        CheckVisionZip<float>(batch, heads, tokens, metricChannels, 23, dominant, contextual);
        CheckVisionZip<BFloat16>(batch, heads, tokens, metricChannels, 19, dominant, contextual);
    }

    [Test]
    public void VisionZipRejectsBadInputByNameAndWritesNothing()
    {
        const int batch = 2, heads = 2, tokens = 13, channels = 3;
        var attention = new float[batch * heads * tokens * tokens];
        var metric = new float[batch * tokens * 4];
        var hidden = new float[batch * tokens * channels];
        var output = Enumerable.Repeat(-7f, batch * tokens * channels).ToArray();
        var kept = Enumerable.Repeat(-7, batch * tokens).ToArray();
        void Call(int dominant, int contextual, int outputRows, int keptColumns, int metricTokens = tokens, int queries = tokens) => PruningMethods.VisionZip(
            new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, queries, tokens)),
            new ReadOnlyHostTensor<float>(metric, new TensorShape(batch, metricTokens, 4)),
            new ReadOnlyHostTensor<float>(hidden, new TensorShape(batch, tokens, channels)), dominant, contextual,
            new HostTensor<float>(output, new TensorShape(batch, outputRows, channels)), new HostTensor<int>(kept, new TensorShape(batch, keptColumns)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Call(0, 2, 2, 0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("dominant"));
            Assert.That(() => Call(14, 0, 13, 13), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("dominant"));
            Assert.That(() => Call(5, 9, 13, 5), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("contextual"));
            Assert.That(() => Call(5, 3, 9, 5), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Call(5, 3, 8, 6), Throws.ArgumentException.With.Property("ParamName").EqualTo("keptIndices"));
            Assert.That(() => Call(5, 3, 8, 5, metricTokens: 12), Throws.ArgumentException.With.Property("ParamName").EqualTo("metric"));
            Assert.That(() => Call(5, 3, 8, 5, queries: 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("attention"));
            Assert.That(output, Is.All.EqualTo(-7f));
            Assert.That(kept, Is.All.EqualTo(-7));
        }
    }

    // ---- DivPrune ----

    [TestCase(1, 9, 5, 3)]
    [TestCase(2, 37, 13, 9)]
    [TestCase(3, 41, 19, 41)]
    [TestCase(2, 23, 7, 0)]
    [TestCase(1, 1, 3, 1)]
    public void DivPruneMatchesTheMethod(int batch, int tokens, int channels, int k)
    {
        CheckDivPrune<float>(batch, tokens, channels, k);
        CheckDivPrune<BFloat16>(batch, tokens, channels, k);
    }

    [Test]
    public void DivPruneRejectsBadInputByNameAndWritesNothing()
    {
        const int batch = 2, tokens = 7, channels = 3;
        var x = new float[batch * tokens * channels];
        var output = Enumerable.Repeat(-7f, batch * (tokens + 1) * channels).ToArray();
        var kept = Enumerable.Repeat(-7, batch * (tokens + 1)).ToArray();
        void Call(int k, int keptColumns, int outputChannels = channels) => PruningMethods.DivPrune(
            new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)),
            new HostTensor<float>(output, new TensorShape(batch, k, outputChannels)), new HostTensor<int>(kept, new TensorShape(batch, keptColumns)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Call(tokens + 1, tokens + 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Call(3, 3, outputChannels: 2), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => Call(3, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("keptIndices"));
            Assert.That(() => PruningMethods.DivPrune(new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)), -1),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(output, Is.All.EqualTo(-7f));
            Assert.That(kept, Is.All.EqualTo(-7));
        }
    }

    // ---- Device ----

    [Test]
    public void DeviceRecipesEqualTheHostOnes()
    {
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
        const int batch = 2, heads = 3, tokens = 37, channels = 13, metricChannels = 6;
        var random = new Random(11);
        (float[] attention, _) = PruningReference.Probabilities<float>(batch * heads * tokens, tokens, random);
        (BFloat16[] hidden, _) = Elements.Random<BFloat16>(batch * tokens * channels, random);
        (float[] metric, _) = Elements.Random<float>(batch * tokens * metricChannels, random);
        var attentionShape = new TensorShape(batch, heads, tokens, tokens);
        var hiddenShape = new TensorShape(batch, tokens, channels);
        var metricShape = new TensorShape(batch, tokens, metricChannels);
        PruningResult<BFloat16> fastV = PruningMethods.FastV(new ReadOnlyHostTensor<float>(attention, attentionShape), new ReadOnlyHostTensor<BFloat16>(hidden, hiddenShape), 4, 33, 0.75);
        PruningResult<BFloat16> visionZip = PruningMethods.VisionZip(new ReadOnlyHostTensor<float>(attention, attentionShape),
            new ReadOnlyHostTensor<float>(metric, metricShape), new ReadOnlyHostTensor<BFloat16>(hidden, hiddenShape), 9, 5);
        PruningResult<BFloat16> divPrune = PruningMethods.DivPrune(new ReadOnlyHostTensor<BFloat16>(hidden, hiddenShape), 11);

        using var stream = CudaStream.Create();
        using DeviceBuffer a = Upload(attention, stream);
        using DeviceBuffer h = Upload(hidden, stream);
        using DeviceBuffer m = Upload(metric, stream);
        using var scores = DeviceBuffer.Allocate<float>(batch * tokens);
        using var tokensOut = DeviceBuffer.Allocate<BFloat16>(batch * tokens * channels);
        using var positionsOut = DeviceBuffer.Allocate<int>(batch * tokens);
        using var orderOut = DeviceBuffer.Allocate<int>(batch * tokens);
        DeviceTensor attentionTensor = a.AsTensor(attentionShape, TensorDataType.Float32);
        DeviceTensor hiddenTensor = h.AsTensor(hiddenShape, TensorDataType.BFloat16);
        DeviceTensor scoresTensor = scores.AsTensor(new TensorShape(batch, tokens), TensorDataType.Float32);
        using (Assert.EnterMultipleScope())
        {
            PruningMethods.FastV(attentionTensor, hiddenTensor, 4, 33, 0.75, tokensOut.AsTensor(fastV.TokensShape, TensorDataType.BFloat16),
                positionsOut.AsTensor(fastV.PositionsShape, TensorDataType.Int32), scoresTensor, stream);
            Assert.That(Download<int>(positionsOut, fastV.Positions.Length, stream), Is.EqualTo(fastV.Positions), "FastV positions");
            Assert.That(Download<BFloat16>(tokensOut, fastV.Tokens.Length, stream), Is.EqualTo(fastV.Tokens), "FastV tokens");

            PruningMethods.VisionZip(attentionTensor, m.AsTensor(metricShape, TensorDataType.Float32), hiddenTensor, 9, 5,
                tokensOut.AsTensor(visionZip.TokensShape, TensorDataType.BFloat16), positionsOut.AsTensor(visionZip.PositionsShape, TensorDataType.Int32), scoresTensor, stream);
            Assert.That(Download<int>(positionsOut, visionZip.Positions.Length, stream), Is.EqualTo(visionZip.Positions), "VisionZip positions");
            Assert.That(Download<BFloat16>(tokensOut, visionZip.Tokens.Length, stream), Is.EqualTo(visionZip.Tokens), "VisionZip tokens");

            PruningMethods.DivPrune(hiddenTensor, tokensOut.AsTensor(divPrune.TokensShape, TensorDataType.BFloat16),
                positionsOut.AsTensor(divPrune.PositionsShape, TensorDataType.Int32), orderOut.AsTensor(divPrune.PositionsShape, TensorDataType.Int32), stream);
            Assert.That(Download<int>(positionsOut, divPrune.Positions.Length, stream), Is.EqualTo(divPrune.Positions), "DivPrune positions");
            Assert.That(Download<BFloat16>(tokensOut, divPrune.Tokens.Length, stream), Is.EqualTo(divPrune.Tokens), "DivPrune tokens");
        }
    }

    // ---- The methods in float64 ----

    // ---- DyCoke's KV-cache pruning ----

    [Test]
    public void DyCokeKeptImageTokensTruncateAsItsCodeDoes()
    {
        using (Assert.EnterMultipleScope())
        {
            // int(576 * (1 - 0.7)) = int(172.80000000000001) = 172; FastV's round would give 173.
            Assert.That(PruningMethods.DyCokeKeptImageTokens(576), Is.EqualTo(172));
            Assert.That(PruningMethods.DyCokeKeptImageTokens(10, 0.25), Is.EqualTo(7));
            Assert.That(PruningMethods.DyCokeKeptImageTokens(10, 1), Is.EqualTo(0));
            Assert.That(() => PruningMethods.DyCokeKeptImageTokens(10, -0.1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("p"));
        }
    }

    [TestCase(1, 4, 3, 29, 5, 25, 0.7)]
    [TestCase(2, 2, 1, 17, 0, 17, 0.5)]
    [TestCase(3, 3, 6, 23, 9, 14, 0.0)]
    [TestCase(2, 1, 2, 11, 2, 9, 1.0)]
    public void DyCokeKvPositionsAndCacheMatchTheMethod(int batch, int heads, int queries, int tokens, int imageStart, int imageEnd, double p)
    {
        var random = new Random(tokens * 7 + queries + (int)(p * 10));
        (float[] attention, double[] attentionExact) = PruningReference.Probabilities<float>(batch * heads * queries, tokens, random);

        // update_cache: the last query row averaged over heads, topk(int(L * (1 - p))) of the image span + start, text around it.
        int imageTokens = imageEnd - imageStart;
        int kept = (int)(imageTokens * (1 - p));
        double[] scores = PruningReference.AttentionImportance(attentionExact, batch, heads, queries, tokens, ImportanceOptions.FastV(imageStart, imageEnd, queries));
        (int[] top, _) = PruningReference.TopK(scores, batch, imageTokens, kept, null, null);
        int length = tokens - imageTokens + kept;
        int[] keepIndexes = Enumerable.Range(0, batch).SelectMany(b => Enumerable.Range(0, imageStart)
            .Concat(top.Skip(b * kept).Take(kept).Select(i => i + imageStart))
            .Concat(Enumerable.Range(imageEnd, tokens - imageEnd))
            .OrderBy(i => i)).ToArray();

        var positions = new int[batch * length];
        PruningMethods.DyCokeKvPositions(new ReadOnlyHostTensor<float>(attention, new TensorShape(batch, heads, queries, tokens)), imageStart, imageEnd, p,
            new HostTensor<int>(positions, new TensorShape(batch, length)));
        Assert.That(positions, Is.EqualTo(keepIndexes), "kept cache positions");

        // A key cache [B, Hk, N, d] with padded rows: every head keeps the same positions.
        const int keyHeads = 3, headDim = 5, rowStride = 7;
        long[] cacheStrides = { keyHeads * tokens * rowStride, tokens * rowStride, rowStride, 1 };
        var cache = new float[batch * keyHeads * tokens * rowStride];
        for (int i = 0; i < cache.Length; i++)
        {
            cache[i] = i * 0.5f;
        }
        var gathered = new float[batch * keyHeads * length * headDim];
        PruningMethods.GatherKvCache(
            new ReadOnlyHostTensor<float>(cache, new TensorShape(batch, keyHeads, tokens, headDim), new TensorStrides(cacheStrides)),
            new ReadOnlyHostTensor<int>(positions, new TensorShape(batch, length)),
            new HostTensor<float>(gathered, new TensorShape(batch, keyHeads, length, headDim)));
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < keyHeads; h++)
            {
                for (int i = 0; i < length; i++)
                {
                    for (int c = 0; c < headDim; c++)
                    {
                        float want = cache[b * cacheStrides[0] + h * cacheStrides[1] + keepIndexes[b * length + i] * cacheStrides[2] + c];
                        Assert.That(gathered[((b * keyHeads + h) * length + i) * headDim + c], Is.EqualTo(want), $"item {b} head {h} row {i}");
                    }
                }
            }
        }
    }

    [Test]
    public void DyCokeKvBadArgumentsAreNamed()
    {
        var attention = new float[1 * 2 * 3 * 10];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Assert.Throws<ArgumentException>(() =>
                PruningMethods.DyCokeKvPositions(new ReadOnlyHostTensor<float>(attention, new TensorShape(1, 2, 3, 10)), 2, 8, 0.5,
                    new HostTensor<int>(new int[9], new TensorShape(1, 9))))!.ParamName, Is.EqualTo("keptPositions"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() =>
                PruningMethods.DyCokeKvPositions(new ReadOnlyHostTensor<float>(attention, new TensorShape(1, 2, 3, 10)), 2, 11, 0.5,
                    new HostTensor<int>(new int[7], new TensorShape(1, 7))))!.ParamName, Is.EqualTo("imageEnd"));
            Assert.That(Assert.Throws<ArgumentException>(() =>
                PruningMethods.GatherKvCache(new ReadOnlyHostTensor<float>(new float[2 * 10 * 4], new TensorShape(1, 2, 10, 4)),
                    new ReadOnlyHostTensor<int>(new int[3], new TensorShape(1, 3)), new HostTensor<float>(new float[2 * 4 * 4], new TensorShape(1, 2, 4, 4))))!.ParamName,
                Is.EqualTo("output"));
        }
    }

    private static void CheckFastV<T>(int batch, int heads, int tokens, int channels, int imageStart, int imageEnd, double r)
        where T : unmanaged
    {
        var random = new Random(tokens * 31 + imageStart + (int)(r * 8));
        (T[] attention, double[] attentionExact) = PruningReference.Probabilities<T>(batch * heads * tokens, tokens, random);
        (T[] hidden, _) = Elements.Random<T>(batch * tokens * channels, random);

        // FastV: mean over heads of the last query row, the image span, topk(round(L * (1 - R))) + start, text kept around it.
        int imageTokens = imageEnd - imageStart;
        int kept = (int)Math.Round(imageTokens * (1 - r), MidpointRounding.ToEven);
        double[] scores = PruningReference.AttentionImportance(attentionExact, batch, heads, tokens, tokens, ImportanceOptions.FastV(imageStart, imageEnd, tokens));
        (int[] top, _) = PruningReference.TopK(scores, batch, imageTokens, kept, null, null);
        int length = tokens - imageTokens + kept;
        int[] keepIndexes = Enumerable.Range(0, batch).SelectMany(b => Enumerable.Range(0, imageStart)
            .Concat(top.Skip(b * kept).Take(kept).Select(i => i + imageStart))
            .Concat(Enumerable.Range(imageEnd, tokens - imageEnd))
            .OrderBy(i => i)).ToArray();
        T[] expectedTokens = PruningReference.Gather(hidden, batch, tokens, channels, keepIndexes.Select(i => (long)i).ToArray(), length);

        var attentionTensor = new ReadOnlyHostTensor<T>(attention, new TensorShape(batch, heads, tokens, tokens));
        var hiddenTensor = new ReadOnlyHostTensor<T>(hidden, new TensorShape(batch, tokens, channels));
        var output = new T[batch * length * channels];
        var positionIds = new int[batch * length];
        PruningMethods.FastV(attentionTensor, hiddenTensor, imageStart, imageEnd, r,
            new HostTensor<T>(output, new TensorShape(batch, length, channels)), new HostTensor<int>(positionIds, new TensorShape(batch, length)));
        PruningResult<T> allocated = PruningMethods.FastV(attentionTensor, hiddenTensor, imageStart, imageEnd, r);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(positionIds, Is.EqualTo(keepIndexes), typeof(T).Name + " position ids");
            Assert.That(output, Is.EqualTo(expectedTokens), typeof(T).Name + " tokens");
            Assert.That(allocated.TokensShape, Is.EqualTo(new TensorShape(batch, length, channels)));
            Assert.That(allocated.PositionsShape, Is.EqualTo(new TensorShape(batch, length)));
            Assert.That(allocated.Tokens, Is.EqualTo(output));
            Assert.That(allocated.Positions, Is.EqualTo(positionIds));
        }
    }

    private static void CheckVisionZip<T>(int batch, int heads, int tokens, int metricChannels, int channels, int dominant, int contextual)
        where T : unmanaged
    {
        var random = new Random(tokens * 17 + dominant * 3 + contextual);
        (T[] attention, double[] attentionExact) = PruningReference.Probabilities<T>(batch * heads * tokens, tokens, random);
        (T[] metric, double[] metricExact) = Elements.Random<T>(batch * tokens * metricChannels, random);
        (T[] hidden, double[] hiddenExact) = Elements.Random<T>(batch * tokens * channels, random);

        // VisionZip: CLS row summed over heads over keys 1..N-1, topk(dominant - 1) + 1 after CLS, the dominant tokens in
        // original order, then the contextual tokens of the rest.
        double[] scores = PruningReference.AttentionImportance(attentionExact, batch, heads, tokens, tokens, ImportanceOptions.VisionZip(tokens));
        (int[] top, _) = PruningReference.TopK(scores, batch, tokens - 1, dominant - 1, null, null);
        long[] allIndices = Enumerable.Range(0, batch)
            .SelectMany(b => new[] { 0L }.Concat(top.Skip(b * (dominant - 1)).Take(dominant - 1).Select(i => (long)i + 1)).OrderBy(i => i)).ToArray();
        T[] dominantTokens = PruningReference.Gather(hidden, batch, tokens, channels, allIndices, dominant);
        double[] contextualTokens = PruningReference.Contextual(metricExact, metricChannels, hiddenExact, channels, batch, tokens, allIndices, dominant, contextual);

        var attentionTensor = new ReadOnlyHostTensor<T>(attention, new TensorShape(batch, heads, tokens, tokens));
        var metricTensor = new ReadOnlyHostTensor<T>(metric, new TensorShape(batch, tokens, metricChannels));
        var hiddenTensor = new ReadOnlyHostTensor<T>(hidden, new TensorShape(batch, tokens, channels));
        int rows = dominant + contextual;
        var output = new T[batch * rows * channels];
        var kept = new int[batch * dominant];
        PruningMethods.VisionZip(attentionTensor, metricTensor, hiddenTensor, dominant, contextual,
            new HostTensor<T>(output, new TensorShape(batch, rows, channels)), new HostTensor<int>(kept, new TensorShape(batch, dominant)));
        PruningResult<T> allocated = PruningMethods.VisionZip(attentionTensor, metricTensor, hiddenTensor, dominant, contextual);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(kept, Is.EqualTo(allIndices.Select(i => (int)i)), typeof(T).Name + " dominant positions");
            for (int b = 0; b < batch; b++)
            {
                Assert.That(output.Skip(b * rows * channels).Take(dominant * channels), Is.EqualTo(dominantTokens.Skip(b * dominant * channels).Take(dominant * channels)),
                    typeof(T).Name + " dominant tokens of item " + b);
                for (int i = 0; i < contextual * channels; i++)
                {
                    double expected = contextualTokens[b * contextual * channels + i];
                    Assert.That(Elements.ToDouble(output[(b * rows + dominant) * channels + i]), Is.EqualTo(expected).Within(Elements.Tolerance<T>(expected)),
                        typeof(T).Name + " contextual value " + i + " of item " + b);
                }
            }
            Assert.That(allocated.TokensShape, Is.EqualTo(new TensorShape(batch, rows, channels)));
            Assert.That(allocated.Tokens, Is.EqualTo(output));
            Assert.That(allocated.Positions, Is.EqualTo(kept));
        }
    }

    private static void CheckDivPrune<T>(int batch, int tokens, int channels, int k)
        where T : unmanaged
    {
        var random = new Random(tokens * 13 + channels + k);
        (T[] x, double[] xExact) = Elements.Random<T>(batch * tokens * channels, random);

        // DivPrune: the greedy max-min selection on the full cosine distance matrix, sorted before indexing the features.
        int[] sorted = DiversityReference.Select(xExact, batch, tokens, channels, DiversityOptions.DivPrune(k)).Sorted;
        T[] expectedTokens = PruningReference.Gather(x, batch, tokens, channels, sorted.Select(i => (long)i).ToArray(), k);

        var xTensor = new ReadOnlyHostTensor<T>(x, new TensorShape(batch, tokens, channels));
        var output = new T[batch * k * channels];
        var kept = new int[batch * k];
        PruningMethods.DivPrune(xTensor, new HostTensor<T>(output, new TensorShape(batch, k, channels)), new HostTensor<int>(kept, new TensorShape(batch, k)));
        PruningResult<T> allocated = PruningMethods.DivPrune(xTensor, k);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(kept, Is.EqualTo(sorted), typeof(T).Name + " kept positions");
            Assert.That(output, Is.EqualTo(expectedTokens), typeof(T).Name + " kept tokens");
            Assert.That(allocated.TokensShape, Is.EqualTo(new TensorShape(batch, k, channels)));
            Assert.That(allocated.Tokens, Is.EqualTo(output));
            Assert.That(allocated.Positions, Is.EqualTo(kept));
        }
    }

    private static DeviceBuffer Upload<T>(T[] values, CudaStream stream)
        where T : unmanaged
    {
        var buffer = DeviceBuffer.Allocate<T>(Math.Max(1, values.Length));
        buffer.CopyFrom<T>(values, 0, stream);
        return buffer;
    }

    private static T[] Download<T>(DeviceBuffer buffer, int count, CudaStream stream)
        where T : unmanaged
    {
        var values = new T[count];
        buffer.CopyTo<T>(values, 0, stream);
        return values;
    }
}
