using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// The op families (Pool, ToMeMerge, ToMeUnmerge, AttentionImportance, QkImportance, TopK, Gather, DiversitySelect) run by
/// ONNX Runtime's CPU provider against the same TokenKernels calls made directly on the same random inputs: every
/// output equal bit for bit, in float32, float16 and bfloat16.
/// </summary>
/// <typeparam name="T">The element type of the features.</typeparam>
[TestFixture(typeof(float))]
[TestFixture(typeof(Float16))]
[TestFixture(typeof(BFloat16))]
public sealed class FamilyOpTests<T>
    where T : unmanaged
{
    private readonly string _type = Expect.TypeName<T>();

    private string Model(string stem) => stem + "_" + _type;

    [TestCase("window_avg")]
    [TestCase("window_max")]
    [TestCase("adaptive_avg")]
    [TestCase("adaptive_max")]
    [TestCase("bilinear")]
    public void PoolEqualsPooling(string mode)
    {
        ModelSpec spec = TestModels.Get(Model("pool_" + mode));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 11);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        (int, int, int) Three(string name, int[]? fallback)
        {
            int[] v = spec.Ints(name) ?? fallback!;
            return (v[0], v[1], v[2]);
        }
        PoolOptions options = mode switch
        {
            "window_avg" => PoolOptions.WindowAvg(Three("kernel", null), spec.Has("stride") ? Three("stride", null) : null),
            "window_max" => PoolOptions.WindowMax(Three("kernel", null), spec.Has("stride") ? Three("stride", null) : null),
            "adaptive_avg" => PoolOptions.AdaptiveAvg(Three("output_size", null)),
            "adaptive_max" => PoolOptions.AdaptiveMax(Three("output_size", null)),
            _ => PoolOptions.Bilinear(spec.Ints("output_size")![0], spec.Ints("output_size")![1]),
        };
        (T[] data, TensorShape shape) = Pooling.Pool(x.Host<T>(), options);
        Expect.Same(actual["y"], Expect.Features(_type, shape, data), "y");
    }

    [TestCase("tome_merge")]
    [TestCase("tome_merge_threshold")]
    public void ToMeMergeEqualsTokenMerging(string stem)
    {
        ModelSpec spec = TestModels.Get(Model(stem));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 12);

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        var options = new MergeOptions(spec.Int("r", 16))
        {
            Threshold = spec.Has("threshold") ? spec.Float("threshold", 0f) : null,
            ProtectFirst = spec.Int("protect_first", 0) == 1,
            ProtectSecond = spec.Int("protect_second", 0) == 1,
            Mode = spec.Text("mode", "weighted_mean") switch
            {
                "weighted_mean" => MergeMode.WeightedMean,
                "mean" => MergeMode.Mean,
                "sum" => MergeMode.Sum,
                "amax" => MergeMode.Amax,
                _ => MergeMode.Drop,
            },
            Order = spec.Text("order", "positional") == "tome" ? MergeOrder.ToMe : MergeOrder.Positional,
        };
        ReadOnlyHostTensor<float> sizes = inputs.TryGetValue("size", out TestTensor? size) ? size.Host<float>() : default;
        MergeResult<T> expected = inputs["metric"].Type == "float32"
            ? TokenMerging.Merge(inputs["metric"].Host<float>(), inputs["x"].Host<T>(), options, sizes)
            : TokenMerging.Merge(inputs["metric"].Host<T>(), inputs["x"].Host<T>(), options, sizes);

        long batch = expected.Shape[0], rows = expected.Shape[1];
        Expect.Same(actual["out"], Expect.Features(_type, expected.Shape, expected.X), "out");
        Expect.Same(actual["out_size"], Expect.Floats(new[] { batch, rows }, expected.Sizes), "out_size");
        Expect.Same(actual["source_map"], Expect.Int64(spec.Shape("metric")[..2], expected.SourceMap), "source_map");
        Expect.Same(actual["merge_count"], Expect.Int32(new[] { batch }, expected.MergeCounts), "merge_count");
        if (options.UseThreshold)
        {
            Assert.That(expected.MergeCounts, Has.Some.GreaterThan(0), "the threshold merges some tokens, so the rows past the count are checked too");
        }
    }

    [Test]
    public void ToMeUnmergeEqualsTokenMerging()
    {
        ModelSpec spec = TestModels.Get(Model("tome_unmerge"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 13);
        TestTensor y = inputs["y"], map = inputs["source_map"];
        long[] mapShape = map.Shape;

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        var shape = new TensorShape(mapShape[0], mapShape[1], spec.Shape("y")[2]);
        var expected = new T[shape.ElementCount];
        TokenMerging.Unmerge(y.Host<T>(), map.Host<long>(), new HostTensor<T>(expected, shape));
        Expect.Same(actual["out"], Expect.Features(_type, shape, expected), "out");
    }

    [Test]
    public void AttentionImportanceEqualsTokenPruning()
    {
        ModelSpec spec = TestModels.Get(Model("attention_importance"));
        long[] shape = spec.Shape("attention");
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 14);
        TestTensor attention = inputs["attention"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        ImportanceOptions options = Ranges(spec, shape[2], shape[3]);
        (float[] scores, TensorShape scoresShape) = TokenPruning.AttentionImportance(attention.Host<T>(), options);
        Expect.Same(actual["importance"], Expect.Floats(scoresShape, scores), "importance");
    }

    [Test]
    public void QkImportanceEqualsTokenPruning()
    {
        ModelSpec spec = TestModels.Get(Model("qk_importance"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 15);
        TestTensor q = inputs["q"], k = inputs["k"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        ImportanceOptions options = Ranges(spec, spec.Shape("q")[2], spec.Shape("k")[2]) with { Causal = spec.Int("causal", 0) == 1 };
        (float[] scores, TensorShape shape) = TokenPruning.QkImportance(q.Host<T>(), k.Host<T>(), options);
        Expect.Same(actual["importance"], Expect.Floats(shape, scores), "importance");
    }

    [Test]
    public void TopKEqualsTokenPruning()
    {
        ModelSpec spec = TestModels.Get(Model("topk"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 16);
        TestTensor scores = inputs["scores"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        (int[] indices, int[] ranked, TensorShape indexShape) = TokenPruning.TopKRanked(scores.Host<T>(), spec.Int("k", 0));
        Expect.Same(actual["indices"], Expect.Int64(indexShape, indices), "indices");
        Expect.Same(actual["ranked"], Expect.Int64(indexShape, ranked), "ranked");
    }

    [Test]
    public void GatherEqualsTokenPruning()
    {
        ModelSpec spec = TestModels.Get(Model("gather"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 17);
        TestTensor x = inputs["x"], indices = inputs["indices"];
        Assert.That(indices.As<long>(), Has.Some.EqualTo(-1L), "padding (-1) gives a zero row");

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        (T[] data, TensorShape shape) = TokenPruning.Gather(x.Host<T>(), indices.Host<long>());
        Expect.Same(actual["out"], Expect.Features(_type, shape, data), "out");
    }

    [Test]
    public void DiversitySelectEqualsDiversitySelection()
    {
        ModelSpec spec = TestModels.Get(Model("diversity"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 18);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        (int[] order, int[] sorted, TensorShape shape) = DiversitySelection.Select(x.Host<T>(), new DiversityOptions(spec.Int("k", 0)));
        Expect.Same(actual["order"], Expect.Int64(shape, order), "order");
        Expect.Same(actual["sorted"], Expect.Int64(shape, sorted), "sorted");
    }

    [Test]
    public void DiversitySelectFromScoresEqualsDiversitySelection()
    {
        ModelSpec spec = TestModels.Get(Model("diversity_score"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 19);
        TestTensor x = inputs["x"], score = inputs["first_score"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        var options = new DiversityOptions(spec.Int("k", 0)) { Distance = Distance.L2, First = FirstCenter.Score, Objective = DiversityObjective.MaxSum };
        (int[] order, int[] sorted, TensorShape shape) = DiversitySelection.Select(x.Host<T>(), score.Host<float>(), options);
        Expect.Same(actual["order"], Expect.Int64(shape, order), "order");
        Expect.Same(actual["sorted"], Expect.Int64(shape, sorted), "sorted");
    }

    /// <summary>The query and key ranges and reductions of an importance model's attributes (negative ends count from the end; an absent end is the dimension).</summary>
    private static ImportanceOptions Ranges(ModelSpec spec, long queries, long keys)
    {
        static long Resolve(long value, long size) => value < 0 ? value + size : value;
        long queryBegin = Resolve(spec.Int("query_begin", 0), queries);
        long queryEnd = spec.Has("query_end") ? Resolve(spec.Int("query_end", 0), queries) : queries;
        long keyBegin = Resolve(spec.Int("key_begin", 0), keys);
        long keyEnd = spec.Has("key_end") ? Resolve(spec.Int("key_end", 0), keys) : keys;
        return new ImportanceOptions(queryBegin, queryEnd, keyBegin, keyEnd)
        {
            HeadReduce = spec.Text("head_reduce", "mean") == "sum" ? ReduceMode.Sum : ReduceMode.Mean,
            QueryReduce = spec.Text("query_reduce", "mean") == "sum" ? ReduceMode.Sum : ReduceMode.Mean,
        };
    }
}
