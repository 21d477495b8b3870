using System;
using System.Linq;
using NUnit.Framework;

namespace TokenKernels.Tests;

/// <summary>Query relevance, the conditional DPP and the CDPruner recipe on host memory against <see cref="RelevanceReference"/>.</summary>
public class RelevanceHostTests
{
    private static double[] Normal(Random random, int count)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        }
        return values;
    }

    private static float[] AsFloat(double[] values) => values.Select(v => (float)v).ToArray();

    private static double[] AsDouble(float[] values) => values.Select(v => (double)v).ToArray();

    [Test]
    public void RelevanceMatchesTheReference([Values(false, true)] bool negate)
    {
        var random = new Random(23 + (negate ? 1 : 0));
        const int batch = 2, tokens = 37, textTokens = 6, channels = 19;
        float[] visual = AsFloat(Normal(random, batch * tokens * channels));
        float[] text = AsFloat(Normal(random, batch * textTokens * channels));
        (float[] relevance, TensorShape shape) = QueryRelevance.Compute(
            new ReadOnlyHostTensor<float>(visual, new TensorShape(batch, tokens, channels)),
            new ReadOnlyHostTensor<float>(text, new TensorShape(batch, textTokens, channels)), negate);
        double[] want = RelevanceReference.Relevance(AsDouble(visual), AsDouble(text), batch, tokens, textTokens, channels, negate);
        Assert.That(shape, Is.EqualTo(new TensorShape(batch, tokens)));
        Assert.That(AsDouble(relevance), Is.EqualTo(want).Within(2e-4));
    }

    [Test]
    public void SelectionMatchesTheReference([Values(DppWeighting.Relevance, DppWeighting.Exponential)] DppWeighting weighting)
    {
        var random = new Random(7 + (int)weighting);
        const int batch = 3, tokens = 41, channels = 53, k = 9;
        for (int attempt = 0; attempt < 20; attempt++)
        {
            float[] x = AsFloat(Normal(random, batch * tokens * channels));
            float[] relevance = Enumerable.Range(0, batch * tokens).Select(_ => (float)(0.01 + random.NextDouble())).ToArray();
            (int[] want, double margin) = RelevanceReference.Select(AsDouble(x), AsDouble(relevance), batch, tokens, channels, k, weighting, 0.5);
            if (margin < 1e-4) continue;
            (int[] order, int[] sorted, TensorShape shape) = ConditionalDpp.Select(
                new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)),
                new ReadOnlyHostTensor<float>(relevance, new TensorShape(batch, tokens)), k, weighting, 0.5f);
            Assert.That(shape, Is.EqualTo(new TensorShape(batch, k)));
            Assert.That(order, Is.EqualTo(want));
            int[] wantSorted = Enumerable.Range(0, batch).SelectMany(b => want.Skip(b * k).Take(k).OrderBy(i => i)).ToArray();
            Assert.That(sorted, Is.EqualTo(wantSorted));
            return;
        }
        Assert.Fail("no draw without a near-tie in 20 attempts");
    }

    [Test]
    public void WithoutRelevanceTheFirstOfEqualResidualsIsTokenZero()
    {
        var random = new Random(5);
        float[] x = AsFloat(Normal(random, 12 * 8));
        (int[] order, _, _) = ConditionalDpp.Select(new ReadOnlyHostTensor<float>(x, new TensorShape(1, 12, 8)), default, 3);
        Assert.That(order[0], Is.EqualTo(0));
    }

    [Test]
    public void IntoBufferFormWithWorkspaceAndSortedMatchesAllocatingForm()
    {
        var random = new Random(11);
        const int tokens = 60, channels = 24, k = 10;
        float[] x = AsFloat(Normal(random, tokens * channels));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(1, tokens, channels));
        long bytes = ConditionalDpp.GetWorkspaceSize(xt, k);
        Assert.That(bytes, Is.GreaterThan(0));
        var workspace = new byte[bytes];
        var order = new int[k];
        var sorted = new int[k];
        ConditionalDpp.Select(xt, default, new HostTensor<int>(order, new TensorShape(1, k)), k,
                              sorted: new HostTensor<int>(sorted, new TensorShape(1, k)), workspace: workspace);
        (int[] wantOrder, int[] wantSorted, _) = ConditionalDpp.Select(xt, default, k);
        Assert.That(order, Is.EqualTo(wantOrder));
        Assert.That(sorted, Is.EqualTo(wantSorted));
    }

    [Test]
    public void CDPrunerRecipeIsRelevanceThenDppThenGather()
    {
        var random = new Random(3);
        const int batch = 1, tokens = 48, channels = 40, embed = 16, textTokens = 5, k = 8;
        float[] features = AsFloat(Normal(random, batch * tokens * channels));
        float[] embeds = AsFloat(Normal(random, batch * tokens * embed));
        float[] text = AsFloat(Normal(random, batch * textTokens * embed));
        var f = new ReadOnlyHostTensor<float>(features, new TensorShape(batch, tokens, channels));
        (float[] kept, int[] positions, int[] order, TensorShape keptShape) = CDPruner.Prune(
            f, new ReadOnlyHostTensor<float>(embeds, new TensorShape(batch, tokens, embed)),
            new ReadOnlyHostTensor<float>(text, new TensorShape(batch, textTokens, embed)), k);
        double[] relevance = RelevanceReference.Relevance(AsDouble(embeds), AsDouble(text), batch, tokens, textTokens, embed, true);
        (int[] want, double margin) = RelevanceReference.Select(AsDouble(features), relevance, batch, tokens, channels, k, DppWeighting.Relevance, 0);
        Assert.That(keptShape, Is.EqualTo(new TensorShape(batch, k, channels)));
        Assume.That(margin, Is.GreaterThan(1e-4), "a near-tie at this seed");
        Assert.That(order, Is.EqualTo(want));
        Assert.That(positions, Is.EqualTo(want.OrderBy(i => i).ToArray()));
        for (int i = 0; i < k; i++)
        {
            Assert.That(kept.Skip(i * channels).Take(channels), Is.EqualTo(features.Skip(positions[i] * channels).Take(channels)));
        }
    }

    [Test]
    public void BadArgumentsAreNamed()
    {
        var x = new float[2 * 5 * 3];
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => ConditionalDpp.Select(new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 3)), default, 6),
                Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => ConditionalDpp.Select(new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 3)), default, 2, DppWeighting.Exponential, 1.0f),
                Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("theta"));
            Assert.That(() => QueryRelevance.Compute(new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 3)), new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 2))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("text"));
            Assert.That(() => ConditionalDpp.Select(new ReadOnlyHostTensor<float>(x, new TensorShape(2, 5, 3)), default, new HostTensor<int>(new int[4], new TensorShape(2, 2)), 2,
                                                    itemK: new ReadOnlyHostTensor<int>(new[] { 3, 1 }, new TensorShape(2))),
                Throws.InstanceOf<TokenKernelsException>().With.Property("NativeMessage").Contains("item_k[0]"));
        }
        Assert.That(xt.Shape.Rank, Is.EqualTo(3));
    }
}
