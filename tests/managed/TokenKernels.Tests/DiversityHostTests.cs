using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Diversity selection on host memory against <see cref="DiversityReference"/> and against worked examples.</summary>
public class DiversityHostTests
{
    // ---- Options ----

    [Test]
    public void OptionsHaveTheSpecDefaults()
    {
        var options = new DiversityOptions(64);
        DiversityOptions fromScore = DiversityOptions.KCenterFromScore(16);
        using (Assert.EnterMultipleScope())
        {
            Assert.That((options.K, options.Distance, options.First, options.Objective), Is.EqualTo((64, Distance.Cosine, FirstCenter.MostIsolated, DiversityObjective.MaxMin)));
            Assert.That(DiversityOptions.DivPrune(64), Is.EqualTo(options));
            Assert.That((fromScore.K, fromScore.Distance, fromScore.First, fromScore.Objective), Is.EqualTo((16, Distance.Cosine, FirstCenter.Score, DiversityObjective.MaxMin)));
            Assert.That(default(DiversityOptions), Is.EqualTo(new DiversityOptions(0)));
            Assert.That(options with { Objective = DiversityObjective.MaxSum }, Is.Not.EqualTo(options));
            Assert.That(options with { Distance = Distance.L2 } == (new DiversityOptions(64) { Distance = Distance.L2 }), Is.True);
            Assert.That(options.ToString(), Is.EqualTo("k 64, Cosine, first MostIsolated, MaxMin"));
            Assert.That((fromScore with { Distance = Distance.L2, Objective = DiversityObjective.MaxSum }).ToString(), Is.EqualTo("k 16, L2, first Score, MaxSum"));
        }
    }

    [Test]
    public void WithMethodsAdjustACopyAsWithDoes()
    {
        // The C# 9 (Unity) spelling of `options with { ... }`, for adjusting a preset.
        DiversityOptions divPrune = DiversityOptions.DivPrune(64);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(divPrune.WithK(32), Is.EqualTo(divPrune with { K = 32 }));
            Assert.That(divPrune.WithDistance(Distance.L2), Is.EqualTo(divPrune with { Distance = Distance.L2 }));
            Assert.That(divPrune.WithFirst(FirstCenter.Index), Is.EqualTo(divPrune with { First = FirstCenter.Index }));
            Assert.That(divPrune.WithObjective(DiversityObjective.MaxSum), Is.EqualTo(divPrune with { Objective = DiversityObjective.MaxSum }));
            Assert.That(DiversityOptions.KCenterFromScore(16).WithDistance(Distance.L2).WithObjective(DiversityObjective.MaxSum).ToString(),
                Is.EqualTo("k 16, L2, first Score, MaxSum"));
            Assert.That(divPrune.WithFirst(FirstCenter.Score), Is.EqualTo(DiversityOptions.KCenterFromScore(64)));
            Assert.That(divPrune, Is.EqualTo(new DiversityOptions(64)), "the original is unchanged");
        }
    }

    // ---- Against the reference ----

    [TestCaseSource(typeof(DiversityCase), nameof(DiversityCase.All))]
    public void SelectionMatchesTheReference(DiversityCase c)
    {
        int seed = PruningHostTests.HashSeed(c.ToString());
        CheckSelection<float, float>(c, seed, strided: false);
        CheckSelection<float, float>(c, seed + 1, strided: true);
        CheckSelection<Float16, Float16>(c, seed + 2, strided: true);
        CheckSelection<BFloat16, float>(c, seed + 3, strided: false);
        CheckSelection<float, float>(c, seed + 4, strided: true, withWorkspace: true);
    }

    [Test]
    public void AllocatingOverloadsEqualCallerOutputs()
    {
        var c = new DiversityCase(new DiversityShape("alloc", 3, 20, 5, 7, true, true), new DiversityOptions(7) { Objective = DiversityObjective.MaxSum });
        DiversityInputs<float> inputs = c.Draw<float>(11);
        var shape = new TensorShape(3, 20, 5);
        var x = new ReadOnlyHostTensor<float>(inputs.X, shape);
        var lengths = new ReadOnlyHostTensor<int>(inputs.Lengths!, new TensorShape(3));
        var itemK = new ReadOnlyHostTensor<int>(inputs.ItemK!, new TensorShape(3));
        (int[] order, int[] sorted, TensorShape outShape) = DiversitySelection.Select(x, c.Options, lengths, itemK);
        var callerOrder = new int[21];
        DiversitySelection.Select(x, new HostTensor<int>(callerOrder, new TensorShape(3, 7)), c.Options, lengths: lengths, itemK: itemK);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(outShape, Is.EqualTo(new TensorShape(3, 7)));
            Assert.That(order, Is.EqualTo(inputs.Expected.Order));
            Assert.That(sorted, Is.EqualTo(inputs.Expected.Sorted));
            Assert.That(callerOrder, Is.EqualTo(order), "without sorted");
        }

        DiversityOptions fromScore = DiversityOptions.KCenterFromScore(4);
        (BFloat16[] scores, double[] scoresExact) = Elements.Random<BFloat16>(60, new Random(5));
        var scoreView = new ReadOnlyHostTensor<BFloat16>(scores, new TensorShape(3, 20));
        (int[] scoreOrder, int[] scoreSorted, _) = DiversitySelection.Select(x, scoreView, fromScore);
        var callerScoreOrder = new int[12];
        var callerScoreSorted = new int[12];
        DiversitySelection.Select(x, scoreView, new HostTensor<int>(callerScoreOrder, new TensorShape(3, 4)), fromScore, new HostTensor<int>(callerScoreSorted, new TensorShape(3, 4)));
        DiversityResult expected = DiversityReference.Select(inputs.X.Select(v => (double)v).ToArray(), 3, 20, 5, fromScore, firstScore: scoresExact);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(scoreOrder, Is.EqualTo(expected.Order), "first from bfloat16 scores");
            Assert.That(scoreSorted, Is.EqualTo(expected.Sorted));
            Assert.That(callerScoreOrder, Is.EqualTo(scoreOrder));
            Assert.That(callerScoreSorted, Is.EqualTo(scoreSorted));
        }
    }

    // ---- Worked examples ----

    [Test]
    public void DuplicatesAreNeverChosenTwiceAndTieToTheLowerIndex()
    {
        // L2 on three points a = (0, 0), b = (3, 0), c = (0, 4), each repeated: d(a, b) = 9, d(a, c) = 16, d(b, c) = 25,
        // 0 between copies. Every token has a copy, so all are equally isolated and token 0 comes first; then c (the
        // farther of b and c, lower copy), then b; after that every score is 0 and the lower indices follow.
        float[] points = { 0, 0, 0, 0, 3, 0, 3, 0, 0, 4, 0, 4, 0, 0 };
        var x = new ReadOnlyHostTensor<float>(points, new TensorShape(1, 7, 2));
        var maxMin = new DiversityOptions(7) { Distance = Distance.L2 };
        var maxSum = maxMin with { Objective = DiversityObjective.MaxSum };
        double[] exact = points.Select(v => (double)v).ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(DiversitySelection.Select(x, maxMin).Order, Is.EqualTo(new[] { 0, 4, 2, 1, 3, 5, 6 }));
            Assert.That(DiversitySelection.Select(x, maxMin with { K = 3 }).Order, Is.EqualTo(new[] { 0, 4, 2 }));
            // Max-sum: sums after {0}: b 9, c 16 -> 4; after {0, 4}: b 34, c's copy 16 -> 2; then 5 (41), 3 (59), 1 (50), 6.
            Assert.That(DiversitySelection.Select(x, maxSum).Order, Is.EqualTo(new[] { 0, 4, 2, 5, 3, 1, 6 }));
            Assert.That(DiversitySelection.Select(x, maxSum).Order, Is.EqualTo(DiversityReference.Select(exact, 1, 7, 2, maxSum).Order));
            Assert.That(DiversitySelection.Select(x, maxSum).Sorted, Is.EqualTo(Enumerable.Range(0, 7).ToArray()));
        }

        // Cosine on directions whose normalisation is exact: copies at distance 0, orthogonal ones at 1, opposite at 2.
        float[] directions = { 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0.5f, -1, 0, 0 };
        var cosine = new ReadOnlyHostTensor<float>(directions, new TensorShape(1, 7, 3));
        double[] cosineExact = directions.Select(v => (double)v).ToArray();
        foreach (DiversityObjective objective in new[] { DiversityObjective.MaxMin, DiversityObjective.MaxSum })
        {
            var options = new DiversityOptions(7) { Objective = objective };
            (int[] order, int[] sorted, _) = DiversitySelection.Select(cosine, options);
            Assert.That(order.Distinct().Count(), Is.EqualTo(7), objective + ": every token once");
            Assert.That(sorted, Is.EqualTo(Enumerable.Range(0, 7).ToArray()), objective.ToString());
            Assert.That(order, Is.EqualTo(DiversityReference.Select(cosineExact, 1, 7, 3, options).Order), objective.ToString());
        }
    }

    [Test]
    public void FirstCenterPoliciesFollowTheTieAndNaNRules()
    {
        // Points 0, 1, 5, 6 on a line, squared distances: every token is at 1 from its nearest, so token 0 is first; then
        // token 3 (36 away); then tokens 1 and 2 are both at 1 from a center and the lower index wins. From token 2:
        // token 0 (25), then tokens 1 and 3 both at 1.
        float[] line = { 0, 1, 5, 6 };
        var x = new ReadOnlyHostTensor<float>(line, new TensorShape(1, 4, 1));
        var l2 = new DiversityOptions(4) { Distance = Distance.L2 };
        float[] scores = { float.NaN, float.NegativeInfinity, 2, 2 };
        var scoreView = new ReadOnlyHostTensor<float>(scores, new TensorShape(1, 4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(DiversitySelection.Select(x, l2).Order, Is.EqualTo(new[] { 0, 3, 1, 2 }));
            Assert.That(DiversitySelection.Select(x, l2 with { First = FirstCenter.Index }, firstIndex: new ReadOnlyHostTensor<int>(new[] { 2 }, new TensorShape(1))).Order,
                Is.EqualTo(new[] { 2, 0, 1, 3 }));
            Assert.That(DiversitySelection.Select(x, scoreView, l2 with { First = FirstCenter.Score }).Order, Is.EqualTo(new[] { 2, 0, 1, 3 }), "ties to the lower index, NaN below -inf");
            Assert.That(DiversitySelection.Select(x, new ReadOnlyHostTensor<float>(new[] { float.NaN, float.NaN, float.NegativeInfinity, float.NaN }, new TensorShape(1, 4)),
                l2 with { First = FirstCenter.Score, K = 1 }).Order, Is.EqualTo(new[] { 2 }), "-inf above NaN");
            Assert.That(DiversitySelection.Select(x, new ReadOnlyHostTensor<float>(new[] { float.NaN, float.NaN, float.NaN, float.NaN }, new TensorShape(1, 4)),
                l2 with { First = FirstCenter.Score, K = 1 }).Order, Is.EqualTo(new[] { 0 }), "all NaN: the lowest index");
        }
    }

    [Test]
    public void ATokenWithNaNIsNobodysNearestNeighbour()
    {
        var random = new Random(41);
        (float[] values, double[] exact) = Elements.Random<float>(2 * 12 * 4, random);
        values[5 * 4 + 2] = float.NaN;
        exact[5 * 4 + 2] = double.NaN;
        values[(12 + 9) * 4] = float.NaN;
        exact[(12 + 9) * 4] = double.NaN;
        var x = new ReadOnlyHostTensor<float>(values, new TensorShape(2, 12, 4));
        foreach (DiversityOptions options in DiversityCase.AllOptions().Where(o => o.First != FirstCenter.Score))
        {
            DiversityOptions withK = options with { K = 8 };
            int[] first = { 3, 0 };
            DiversityResult expected = DiversityReference.Select(exact, 2, 12, 4, withK, firstIndex: options.First == FirstCenter.Index ? first : null);
            (int[] order, int[] sorted, _) = options.First == FirstCenter.Index
                ? DiversitySelection.Select(x, withK, firstIndex: new ReadOnlyHostTensor<int>(first, new TensorShape(2)))
                : DiversitySelection.Select(x, withK);
            Assert.That(expected.Margin, Is.GreaterThan(DiversityCase.Margin), withK + ": well-separated decisions");
            Assert.That(order, Is.EqualTo(expected.Order), withK.ToString());
            Assert.That(sorted, Is.EqualTo(expected.Sorted), withK.ToString());
        }
    }

    [Test]
    public void EmptyBatchAndZeroKWriteNothingAndSucceed()
    {
        var order = new int[0];
        DiversitySelection.Select(new ReadOnlyHostTensor<float>(new float[0], new TensorShape(0, 5, 3)), new HostTensor<int>(order, new TensorShape(0, 2)), new DiversityOptions(2));
        (int[] none, int[] noneSorted, TensorShape shape) = DiversitySelection.Select(new ReadOnlyHostTensor<float>(new float[30], new TensorShape(2, 5, 3)), new DiversityOptions(0));
        Assert.That((none.Length, noneSorted.Length, shape), Is.EqualTo((0, 0, new TensorShape(2, 0))));
    }

    // DivPrune's most-isolated search keeps a score tile for each thread in the workspace, so the size queried with one
    // thread is the least a call accepts; a call on more threads than the query's runs that search on fewer.
    [Test]
    public void AWorkspaceShorterThanItsOneThreadSizeIsRejectedWithoutWriting()
    {
        float[] values = Elements.Random<float>(2 * 9 * 6, new Random(5)).Item1;
        var shape = new TensorShape(2, 9, 6);
        var x = new ReadOnlyHostTensor<float>(values, shape);
        var options = DiversityOptions.DivPrune(4);
        int before = TokenKernelsLibrary.NumThreads;
        long bytes;
        try
        {
            TokenKernelsLibrary.NumThreads = 1;
            bytes = DiversitySelection.GetWorkspaceSize(x, options);
        }
        finally
        {
            TokenKernelsLibrary.NumThreads = before;
        }
        var order = Enumerable.Repeat(77, 8).ToArray();
        var workspace = new byte[bytes];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(bytes, Is.GreaterThanOrEqualTo(9 * 16 * sizeof(float)), "one item's packed rows at least");
            Assert.That(() => DiversitySelection.Select(new ReadOnlyHostTensor<float>(values, shape), new HostTensor<int>(order, new TensorShape(2, 4)), options, workspace: workspace.AsSpan(1)),
                Throws.TypeOf<TokenKernelsException>().With.Message.Contains("workspace_bytes"));
            Assert.That(order, Is.All.EqualTo(77));
        }
        DiversitySelection.Select(x, new HostTensor<int>(order, new TensorShape(2, 4)), options, workspace: workspace);
        Assert.That(order, Is.EqualTo(DiversitySelection.Select(x, options).Order));
    }

    // ---- Allocation ----

    [Test]
    public void NonAllocatingCallsAllocateNothing()
    {
        (Float16[] x, _) = Elements.Random<Float16>(2 * 16 * 8, new Random(3));
        (float[] scores, _) = Elements.Random<float>(2 * 16, new Random(4));
        var order = new int[2 * 5];
        var sorted = new int[2 * 5];
        var lengths = new[] { 16, 9 };
        var itemK = new[] { 5, 3 };
        var firstIndex = new[] { 4, 8 };
        var maxMin = DiversityOptions.DivPrune(5);
        var byIndex = maxMin with { First = FirstCenter.Index, Distance = Distance.L2 };
        var byScore = DiversityOptions.KCenterFromScore(5) with { Objective = DiversityObjective.MaxSum };
        var workspace = new byte[DiversitySelection.GetWorkspaceSize(new ReadOnlyHostTensor<Float16>(x, new TensorShape(2, 16, 8)), maxMin)];
        void SelectOnce()
        {
            var xv = new ReadOnlyHostTensor<Float16>(x, new TensorShape(2, 16, 8));
            var ov = new HostTensor<int>(order, new TensorShape(2, 5));
            var sv = new HostTensor<int>(sorted, new TensorShape(2, 5));
            var lv = new ReadOnlyHostTensor<int>(lengths, new TensorShape(2));
            var kv = new ReadOnlyHostTensor<int>(itemK, new TensorShape(2));
            DiversitySelection.Select(xv, ov, maxMin, sv, lv, kv);
            DiversitySelection.Select(xv, ov, maxMin, sv, lv, kv, workspace: workspace);
            DiversitySelection.Select(xv, ov, byIndex, sv, lv, kv, new ReadOnlyHostTensor<int>(firstIndex, new TensorShape(2)));
            DiversitySelection.Select(xv, new ReadOnlyHostTensor<float>(scores, new TensorShape(2, 16)), ov, byScore, sv, lv, kv);
        }
        SelectOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            SelectOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
    }

    // ---- Helpers ----

    private static void CheckSelection<T, TScore>(DiversityCase c, int seed, bool strided, bool withWorkspace = false)
        where T : unmanaged
        where TScore : unmanaged
    {
        DiversityShape s = c.Shape;
        DiversityInputs<T> inputs = c.Draw<T>(seed);
        string what = typeof(T).Name + (strided ? ", strided" : string.Empty) + (withWorkspace ? ", workspace" : string.Empty);
        var xShape = new long[] { s.Batch, s.Tokens, s.Channels };
        var outShape = new long[] { s.Batch, s.K };
        var x = new PaddedTensor<T>(xShape, strided ? 3 : 0, strided ? 5 : 0, Elements.FromDouble<T>(double.NaN));
        x.Write(inputs.X);
        var order = new PaddedTensor<int>(outShape, strided ? 2 : 0, strided ? 1 : 0, 99);
        var sorted = new PaddedTensor<int>(outShape, strided ? 1 : 0, strided ? 3 : 0, 99);
        ReadOnlyHostTensor<int> lengths = inputs.Lengths == null ? default : new ReadOnlyHostTensor<int>(inputs.Lengths, new TensorShape(s.Batch));
        ReadOnlyHostTensor<int> itemK = inputs.ItemK == null ? default : new ReadOnlyHostTensor<int>(inputs.ItemK, new TensorShape(s.Batch));
        byte[] workspace = withWorkspace ? new byte[DiversitySelection.GetWorkspaceSize(x.ReadOnly, c.Options)] : [];
        if (c.Options.First == FirstCenter.Score)
        {
            TScore[] score = inputs.FirstScore!.Select(v => Elements.FromDouble<TScore>(Elements.ToDouble(v))).ToArray();
            DiversitySelection.Select(x.ReadOnly, new ReadOnlyHostTensor<TScore>(score, new TensorShape(s.Batch, s.Tokens)), order.Tensor, c.Options, sorted.Tensor, lengths, itemK, workspace);
        }
        else
        {
            ReadOnlyHostTensor<int> firstIndex = inputs.FirstIndex == null ? default : new ReadOnlyHostTensor<int>(inputs.FirstIndex, new TensorShape(s.Batch));
            DiversitySelection.Select(x.ReadOnly, order.Tensor, c.Options, sorted.Tensor, lengths, itemK, firstIndex, workspace);
        }
        using (Assert.EnterMultipleScope())
        {
            Assert.That(order.Read(), Is.EqualTo(inputs.Expected.Order), what + ": order");
            Assert.That(sorted.Read(), Is.EqualTo(inputs.Expected.Sorted), what + ": sorted");
            Assert.That(order.CountChangedOutside(99) + sorted.CountChangedOutside(99), Is.Zero, what + ": nothing written outside the outputs");
        }
    }
}
