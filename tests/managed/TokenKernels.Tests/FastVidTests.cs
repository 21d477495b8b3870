using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>FastVID's DySeg and DTM recipe and the cluster assignment op on host memory, against <see cref="FastVidReference"/>.</summary>
public class FastVidTests
{
    private static float[] Uniform(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

    private static int[] RandomSegments(Random random, int frames)
    {
        var sizes = new System.Collections.Generic.List<int>();
        for (int left = frames; left > 0;)
        {
            int size = Math.Min(left, 1 + random.Next(9));
            sizes.Add(size);
            left -= size;
        }
        return sizes.ToArray();
    }

    [TestCase(13, 11, 7, 5, 0.4, 4, false)]
    [TestCase(9, 17, 1, 8, 0.5, 2, false)]
    [TestCase(20, 15, 33, 6, 0.4, 4, true)]
    [TestCase(7, 9, 5, 9, 1.0, 3, true)]
    [TestCase(5, 6, 4, 1, 0.4, 1, false)]
    public void DensityTokenMergeMatchesTheOfficialCode(int frames, int tokens, int channels, int retained, double d, int p, bool withSalient)
    {
        var random = new Random(PruningHostTests.HashSeed($"dtm {frames} {tokens} {channels} {retained} {d} {p} {withSalient}"));
        for (int attempt = 0; ; attempt++)
        {
            Assert.That(attempt, Is.LessThan(40), "no draw without a near-tie");
            float[] x = Uniform(random, frames * tokens * channels);
            int[] segments = RandomSegments(random, frames);
            bool[]? salient = withSalient ? Enumerable.Range(0, frames * tokens).Select(_ => random.Next(4) == 0).ToArray() : null;
            FastVidReference.DtmResult reference = FastVidReference.Dtm(x.Select(v => (double)v).ToArray(), frames, tokens, channels, segments,
                                                                        retained, d, p, 0.6, 4, salient, 1e-4);
            if (reference.NearTie) continue;
            FastVidDtmResult<float> ours = FastVid.DensityTokenMerge(
                new ReadOnlyHostTensor<float>(x, new TensorShape(frames, tokens, channels)), segments, retained, d, p, 0.6f, 4, salient);
            Assert.That(ours.Positions, Is.EqualTo(reference.Positions), "anchor positions");
            Assert.That(ours.ContextualShape, Is.EqualTo(new TensorShape(reference.Positions.Length, channels)));
            for (int i = 0; i < reference.Contextual.Length; i++)
                Assert.That(ours.Contextual[i], Is.EqualTo(reference.Contextual[i]).Within(1e-5 * (1 + Math.Abs(reference.Contextual[i]))), "value " + i);
            // Each token's source row is one of its segment's contextual tokens, -1 only for salient ones.
            for (int g = 0; g < frames * tokens; g++)
            {
                if (salient != null && salient[g]) Assert.That(ours.SourceMap[g], Is.EqualTo(-1));
                else if (ours.SourceMap[g] >= 0) Assert.That(ours.Positions[ours.SourceMap[g]] / tokens, Is.GreaterThanOrEqualTo(g / tokens));
            }
            return;
        }
    }

    [Test]
    public void AnchorFramesCountFromTheSegmentsEnd()
    {
        // int(5 x 6 x 0.4) = 12 over anchor frames 5 and 1 (p = 4), the remainder first to the last frame: int(5 x 7 x 0.4) = 14.
        Assert.That(FastVid.ContextualTokensPerFrame(6, 5, 0.4, 4), Is.EqualTo(new[] { 0, 6, 0, 0, 0, 6 }));
        Assert.That(FastVid.ContextualTokensPerFrame(7, 5, 0.4, 4), Is.EqualTo(new[] { 0, 0, 7, 0, 0, 0, 7 }));
        Assert.That(FastVid.ContextualTokensPerFrame(9, 1, 0.5, 4), Is.EqualTo(new[] { 1, 0, 0, 0, 1, 0, 0, 0, 2 }));
        Assert.That(FastVid.ContextualTokensPerFrame(1, 10, 0.4, 4), Is.EqualTo(new[] { 4 }));
    }

    [Test]
    public void SourceMapUnmergesEveryTokenToItsContextualToken()
    {
        var random = new Random(PruningHostTests.HashSeed("dtm unmerge"));
        const int frames = 10, tokens = 12, channels = 6;
        float[] x = Uniform(random, frames * tokens * channels);
        var xTensor = new ReadOnlyHostTensor<float>(x, new TensorShape(frames, tokens, channels));
        FastVidDtmResult<float> result = FastVid.DensityTokenMerge(xTensor, new[] { 6, 4 }, 5);
        Assert.That(result.SourceMap, Has.All.GreaterThanOrEqualTo(0));
        (float[] unmerged, _) = TokenMerging.Unmerge(
            new ReadOnlyHostTensor<float>(result.Contextual, new TensorShape(1, result.Positions.Length, channels)),
            new ReadOnlyHostTensor<int>(result.SourceMap, new TensorShape(1, frames * tokens)));
        for (int g = 0; g < frames * tokens; g++)
            Assert.That(unmerged.Skip(g * channels).Take(channels), Is.EqualTo(result.Contextual.Skip(result.SourceMap[g] * channels).Take(channels)));
        // An anchor maps to its own contextual token.
        for (int row = 0; row < result.Positions.Length; row++) Assert.That(result.SourceMap[result.Positions[row]], Is.EqualTo(row));
    }

    [Test]
    public void Float16TokensGiveTheFloat32ResultRounded()
    {
        var random = new Random(PruningHostTests.HashSeed("dtm f16"));
        const int frames = 6, tokens = 9, channels = 5;
        var half = Uniform(random, frames * tokens * channels).Select(v => (Float16)v).ToArray();
        float[] widened = half.Select(v => (float)v).ToArray();
        FastVidDtmResult<Float16> ours = FastVid.DensityTokenMerge(new ReadOnlyHostTensor<Float16>(half, new TensorShape(frames, tokens, channels)), new[] { 6 }, 4);
        FastVidDtmResult<float> wide = FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(widened, new TensorShape(frames, tokens, channels)), new[] { 6 }, 4);
        Assert.That(ours.Positions, Is.EqualTo(wide.Positions));
        Assert.That(ours.Contextual.Select(v => (float)v), Is.EqualTo(wide.Contextual.Select(v => (float)(Float16)v)));
    }

    [TestCase(17, 9, 8, 0.9)]
    [TestCase(30, 4, 3, 0.5)]
    [TestCase(5, 3, 8, 0.95)]
    [TestCase(2, 1, 1, -1.0)]
    public void DySegMatchesTheOfficialCode(int frames, int channels, int c, double tau)
    {
        var random = new Random(PruningHostTests.HashSeed($"dyseg {frames} {channels} {c} {tau}"));
        // A slowly drifting feature with a few jumps, so transitions differ clearly.
        var features = new float[frames * channels];
        var current = Uniform(random, channels);
        for (int f = 0; f < frames; f++)
        {
            if (random.Next(4) == 0) current = Uniform(random, channels);
            for (int k = 0; k < channels; k++) features[f * channels + k] = current[k] + (float)(0.05 * (random.NextDouble() - 0.5));
        }
        int[] ours = FastVid.DySeg(new ReadOnlyHostTensor<float>(features, new TensorShape(frames, channels)), c, tau);
        int[] reference = FastVidReference.DySeg(features.Select(v => (double)v).ToArray(), frames, channels, Math.Min(c, frames), tau);
        Assert.That(ours, Is.EqualTo(reference));
        Assert.That(ours.Sum(), Is.EqualTo(frames));
    }

    [Test]
    public void DySegOfOneFrameIsOneSegment()
    {
        Assert.That(FastVid.DySeg(new ReadOnlyHostTensor<float>(new float[] { 1, 2 }, new TensorShape(1, 2))), Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public void ArgumentErrorsNameTheArgument()
    {
        float[] data = new float[24];
        void Expect(string name, Action call) => Assert.That(() => call(), Throws.InstanceOf<ArgumentException>().With.Property("ParamName").EqualTo(name));
        Expect("segmentLengths", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 3 }, 2));
        Expect("segmentLengths", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4, 0 }, 2));
        Expect("retainedPerFrame", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 4));
        Expect("stpruneD", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 2, stpruneD: 1.5));
        Expect("dtmP", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 2, dtmP: 0));
        Expect("dtmBeta", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 2, dtmBeta: float.NaN));
        Expect("neighbours", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 2, neighbours: 0));
        Expect("salient", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new[] { 4 }, 2, salient: new bool[5]));
        Expect("x", () => FastVid.DensityTokenMerge(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 6)), new[] { 4 }, 2));
        Expect("dysegC", () => FastVid.DySeg(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 6)), 0));
        Expect("dysegTau", () => FastVid.DySeg(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 6)), 8, double.NaN));
        Expect("centres", () => ClusterAssignment.Assign(new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)),
                                                          new ReadOnlyHostTensor<int>(new int[3], new TensorShape(3, 1))));
        var error = Assert.Throws<TokenKernelsException>(() => ClusterAssignment.Assign(
            new ReadOnlyHostTensor<float>(data, new TensorShape(4, 3, 2)), new ReadOnlyHostTensor<int>(new[] { 0, 1, 2, 3 }, new TensorShape(4, 1))));
        Assert.That(error!.Message, Does.Contain("centres[3, 0]"));
    }

    [TestCase(3, 37, 1, 5)]
    [TestCase(2, 50, 19, 7)]
    [TestCase(4, 64, 48, 1)]
    public void ClusterAssignmentJoinsTheMostCosineSimilarCentre(int batch, int tokens, int channels, int clusters)
    {
        var random = new Random(PruningHostTests.HashSeed($"assign {batch} {tokens} {channels} {clusters}"));
        float[] x = Uniform(random, batch * tokens * channels);
        var centres = new int[batch * clusters];
        for (int b = 0; b < batch; b++)
        {
            int[] order = Enumerable.Range(0, tokens).OrderBy(_ => random.Next()).ToArray();
            for (int j = 0; j < clusters; j++) centres[b * clusters + j] = random.Next(5) == 0 ? -1 : order[j];
        }
        int[] ours = ClusterAssignment.Assign(new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)),
                                              new ReadOnlyHostTensor<int>(centres, new TensorShape(batch, clusters)));
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < tokens; i++)
            {
                double Cosine(int j)
                {
                    double dot = 0, a = 0, z = 0;
                    for (int k = 0; k < channels; k++)
                    {
                        double u = x[(b * tokens + i) * channels + k], v = x[(b * tokens + j) * channels + k];
                        dot += u * v;
                        a += u * u;
                        z += v * v;
                    }
                    return dot / Math.Sqrt(a * z);
                }
                var valid = Enumerable.Range(0, clusters).Where(j => centres[b * clusters + j] >= 0).ToArray();
                int own = valid.FirstOrDefault(j => centres[b * clusters + j] == i, -1);
                int expected = valid.Length == 0 ? -1 : own >= 0 ? own
                    : valid.OrderByDescending(j => Cosine(centres[b * clusters + j])).ThenBy(j => j).First();
                if (own < 0 && valid.Length > 1)
                {
                    var best = valid.Select(j => Cosine(centres[b * clusters + j])).OrderByDescending(v => v).Take(2).ToArray();
                    if (best[0] - best[1] < 1e-5) continue;  // a near-tie float32 may decide either way
                }
                Assert.That(ours[b * tokens + i], Is.EqualTo(expected), $"item {b} token {i}");
            }
    }
}
