using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// The method recipes, one node each, run by ONNX Runtime's CPU provider against the same methods of the TokenKernels API
/// on the same random inputs (PruningMethods, CDPruner, ClusterRecipes, KMeans, VideoPruning): every output equal bit for
/// bit, in float32, float16 and bfloat16.
/// </summary>
/// <typeparam name="T">The element type of the features.</typeparam>
[TestFixture(typeof(float))]
[TestFixture(typeof(Float16))]
[TestFixture(typeof(BFloat16))]
public sealed class RecipeOpTests<T>
    where T : unmanaged
{
    private readonly string _type = Expect.TypeName<T>();

    private string Model(string stem) => stem + "_" + _type;

    [Test]
    public void VisionZipEqualsPruningMethods()
    {
        ModelSpec spec = TestModels.Get(Model("visionzip"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 21);
        TestTensor attention = inputs["attention"], metric = inputs["metric"], hidden = inputs["hidden_states"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        PruningResult<T> expected = PruningMethods.VisionZip(
            attention.Host<float>(), metric.Host<T>(), hidden.Host<T>(), spec.Int("dominant", 54), spec.Int("contextual", 10));
        Expect.Same(actual["tokens"], Expect.Features(_type, expected.TokensShape, expected.Tokens), "tokens");
        Expect.Same(actual["kept_positions"], Expect.Int64(expected.PositionsShape, expected.Positions), "kept_positions");
    }

    [Test]
    public void FastVEqualsPruningMethods()
    {
        ModelSpec spec = TestModels.Get(Model("fastv"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 22);
        TestTensor attention = inputs["attention"], hidden = inputs["hidden_states"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        int start = spec.Int("image_token_start_index", 35), length = spec.Int("image_token_length", 576);
        PruningResult<T> expected = PruningMethods.FastV(attention.Host<T>(), hidden.Host<T>(), start, start + length, spec.Float("fastv_r", 0.5f));
        Assert.That(expected.TokensShape[1], Is.EqualTo(hidden.Shape[1] - length + 14), "29 image tokens at R = 0.5 keep 14 (half to even)");
        Expect.Same(actual["tokens"], Expect.Features(_type, expected.TokensShape, expected.Tokens), "tokens");
        Expect.Same(actual["position_ids"], Expect.Int64(expected.PositionsShape, expected.Positions), "position_ids");
    }

    [Test]
    public void DivPruneEqualsPruningMethods()
    {
        ModelSpec spec = TestModels.Get(Model("divprune"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 23);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        int k = PruningMethods.DivPruneKeptTokens((int)x.Shape[1], spec.Float("threshold_ratio", 0.098f));
        PruningResult<T> expected = PruningMethods.DivPrune(x.Host<T>(), k);
        (int[] order, _, TensorShape orderShape) = DiversitySelection.Select(x.Host<T>(), DiversityOptions.DivPrune(k));
        Expect.Same(actual["tokens"], Expect.Features(_type, expected.TokensShape, expected.Tokens), "tokens");
        Expect.Same(actual["kept_positions"], Expect.Int64(expected.PositionsShape, expected.Positions), "kept_positions");
        Expect.Same(actual["order"], Expect.Int64(orderShape, order), "order");
    }

    [TestCase("cdpruner")]
    [TestCase("cdpruner_theta")]
    public void CDPrunerEqualsCDPruner(string stem)
    {
        ModelSpec spec = TestModels.Get(Model(stem));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 24);
        TestTensor features = inputs["features"], visual = inputs["visual_embeds"], text = inputs["text_embeds"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        (T[] kept, int[] positions, int[] order, TensorShape keptShape) = CDPruner.Prune(
            features.Host<T>(), visual.Host<float>(), text.Host<float>(), spec.Int("visual_token_num", 64),
            spec.Has("theta") ? spec.Float("theta", 0f) : null, spec.Int("negate", 1) == 1);
        long[] indexShape = { keptShape[0], keptShape[1] };
        Expect.Same(actual["tokens"], Expect.Features(_type, keptShape, kept), "tokens");
        Expect.Same(actual["kept_positions"], Expect.Int64(indexShape, positions), "kept_positions");
        Expect.Same(actual["order"], Expect.Int64(indexShape, order), "order");
    }

    [Test]
    public void DpcKnnAggregateEqualsClusterAndAggregate()
    {
        ModelSpec spec = TestModels.Get(Model("dpcknn"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 25);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        ClusterAggregateResult<T> expected = ClusterRecipes.ClusterAndAggregate(x.Host<T>(), spec.Int("clusters"), spec.Int("neighbours", 5));
        long[] clusterShape = { expected.MergedShape[0], expected.MergedShape[1] };
        Expect.Same(actual["tokens"], Expect.Features(_type, expected.MergedShape, expected.Merged), "tokens");
        Expect.Same(actual["sizes"], Expect.Floats(clusterShape, expected.Sizes), "sizes");
        Expect.Same(actual["centres"], Expect.Int64(clusterShape, expected.Centres), "centres");
        Expect.Same(actual["assignment"], Expect.Int64(spec.Shape("x")[..2], expected.SourceMap), "assignment");
    }

    [Test]
    public void DpcKnnAggregateBlendEqualsClusterAggregation()
    {
        ModelSpec spec = TestModels.Get(Model("dpcknn_blend"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 26);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        int clusters = spec.Int("clusters");
        long[] clusterShape = { x.Shape[0], clusters };
        (int[] centres, int[] assignment) = DensityPeaksClustering.Cluster(x.Host<T>(), clusters, spec.Int("neighbours", 5));
        (T[] merged, float[] sizes) = ClusterAggregation.Merge(
            x.Host<T>(), new ReadOnlyHostTensor<int>(assignment, new TensorShape(x.Shape[0], x.Shape[1])), clusters,
            ClusterMergeMode.CentreCountBlend, spec.Float("beta", 0.6f), centres: new ReadOnlyHostTensor<int>(centres, new TensorShape(clusterShape)));
        Expect.Same(actual["tokens"], Expect.Features(_type, new TensorShape(x.Shape[0], clusters, x.Shape[2]), merged), "tokens");
        Expect.Same(actual["sizes"], Expect.Floats(clusterShape, sizes), "sizes");
        Expect.Same(actual["centres"], Expect.Int64(clusterShape, centres), "centres");
        Expect.Same(actual["assignment"], Expect.Int64(x.Shape[..2], assignment), "assignment");
    }

    /// <summary>
    /// Mode centre_blend with neighbours above clusters: the tokens of HoliTom's merge (k = min(neighbours, clusters)), whose
    /// clusters are in centre position order where the node's are in DPC-kNN's score order; the node's outputs put in
    /// position order by its centres equal HoliTomMerge's.
    /// </summary>
    [Test]
    public void DpcKnnAggregateCentreBlendEqualsHoliTomMergeInCentreOrder()
    {
        ModelSpec spec = TestModels.Get(Model("dpcknn_holitom"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 30);
        TestTensor x = inputs["x"];
        int batch = (int)x.Shape[0], tokens = (int)x.Shape[1], channels = (int)x.Shape[2], clusters = spec.Int("clusters");
        Assert.That(spec.Int("neighbours"), Is.GreaterThan(clusters), "HoliTom's k = min(neighbours, clusters) is clusters");

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        ClusterAggregateResult<T> expected = ClusterRecipes.HoliTomMerge(x.Host<T>(), (double)clusters / tokens, spec.Float("beta", 0.6f), spec.Int("neighbours"));
        Assert.That(expected.MergedShape[1], Is.EqualTo(clusters));
        long[] centres = actual["centres"].As<long>(), assignment = actual["assignment"].As<long>();
        T[] merged = actual["tokens"].As<T>();
        float[] sizes = actual["sizes"].As<float>();
        var byPosition = new int[batch * clusters];
        var positionMerged = new T[merged.Length];
        var positionSizes = new float[sizes.Length];
        var positionAssignment = new int[assignment.Length];
        for (int b = 0; b < batch; b++)
        {
            int[] order = Enumerable.Range(0, clusters).OrderBy(j => centres[b * clusters + j]).ToArray();
            var rank = new int[clusters];
            for (int r = 0; r < clusters; r++)
            {
                rank[order[r]] = r;
                byPosition[b * clusters + r] = (int)centres[b * clusters + order[r]];
                positionSizes[b * clusters + r] = sizes[b * clusters + order[r]];
                Array.Copy(merged, ((long)b * clusters + order[r]) * channels, positionMerged, ((long)b * clusters + r) * channels, channels);
            }
            for (int i = 0; i < tokens; i++)
            {
                positionAssignment[b * tokens + i] = rank[assignment[b * tokens + i]];
            }
        }
        long[] clusterShape = { batch, clusters };
        Expect.Same(Expect.Int64(clusterShape, byPosition), Expect.Int64(clusterShape, expected.Centres), "centres in position order");
        Expect.Same(new TestTensor(_type, actual["tokens"].Shape, positionMerged), Expect.Features(_type, expected.MergedShape, expected.Merged), "tokens");
        Expect.Same(Expect.Floats(clusterShape, positionSizes), Expect.Floats(clusterShape, expected.Sizes), "sizes");
        Expect.Same(Expect.Int64(x.Shape[..2], positionAssignment), Expect.Int64(x.Shape[..2], expected.SourceMap), "assignment");
    }

    [Test]
    public void KMeansEqualsKMeans()
    {
        ModelSpec spec = TestModels.Get(Model("kmeans"));
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 27);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        // ONNX float attributes are float32: the op widens tol to double, and so does this call.
        var options = new KMeansOptions(spec.Int("n_clusters"))
        {
            MaxIterations = spec.Int("max_iter", 300),
            Tolerance = spec.Float("tol", 1e-4f),
            Seed = (ulong)spec.Int("random_state", 0),
        };
        (float[] centres, int[] assignment, float[] sizes, int[] iterations) = KMeans.Cluster(x.Host<T>(), options);
        long batch = x.Shape[0];
        Expect.Same(actual["centres"], Expect.Floats(new[] { batch, options.Clusters, x.Shape[2] }, centres), "centres");
        Expect.Same(actual["assignment"], Expect.Int64(x.Shape[..2], assignment), "assignment");
        Expect.Same(actual["sizes"], Expect.Floats(new[] { batch, options.Clusters }, sizes), "sizes");
        Expect.Same(actual["iterations"], Expect.Int32(new[] { batch }, iterations), "iterations");
    }

    [TestCase("evs")]
    [TestCase("dycoke")]
    [TestCase("vidcom2")]
    public void VideoSelectionEqualsVideoPruning(string stem)
    {
        ModelSpec spec = TestModels.Get(Model(stem));
        long[] shape = spec.Shape("x");
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 28);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        long batch = shape[0], frames = shape[1], channels = shape[4];
        int height = (int)shape[2], width = (int)shape[3];
        var video = new ReadOnlyHostTensor<T>(x.As<T>(), new TensorShape(batch, frames, height * width, channels));
        long kept = stem switch
        {
            "evs" => VideoPruning.EvsRetainedTokens(frames, height, width, spec.Float("video_pruning_rate", 0.75f)),
            "dycoke" => VideoPruning.DyCokeRetainedTokens(frames, height, width, spec.Float("merging_ratio", 0.7f)),
            _ => VideoPruning.VidCom2RetainedTokens(frames, height, width, spec.Float("retention_ratio", 0.25f)),
        };
        var tokens = new T[batch * kept * channels];
        var indices = new int[batch * kept];
        var positions = new int[batch * kept * 3];
        var mask = new int[batch * frames * height * width];
        var tokensTensor = new HostTensor<T>(tokens, new TensorShape(batch, kept, channels));
        var indicesTensor = new HostTensor<int>(indices, new TensorShape(batch, kept));
        var positionsTensor = new HostTensor<int>(positions, new TensorShape(batch, kept, 3));
        var maskTensor = new HostTensor<int>(mask, new TensorShape(batch, frames * height * width));
        switch (stem)
        {
            case "evs":
                VideoPruning.Evs(video, height, width, spec.Float("video_pruning_rate", 0.75f), tokensTensor, indicesTensor, positionsTensor, maskTensor);
                break;
            case "dycoke":
                VideoPruning.DyCoke(video, height, width, spec.Float("merging_ratio", 0.7f), tokensTensor, indicesTensor, positionsTensor, maskTensor);
                break;
            default:
                VideoPruning.VidCom2(video, height, width, spec.Float("retention_ratio", 0.25f), tokensTensor, indicesTensor, positionsTensor, maskTensor,
                    spec.Float("channel_ratio", 0.5f), spec.Float("temperature", 0.01f));
                break;
        }
        Expect.Same(actual["tokens"], new TestTensor(_type, new[] { batch, kept, channels }, tokens), "tokens");
        Expect.Same(actual["kept_positions"], Expect.Int64(new[] { batch, kept }, indices), "kept_positions");
        Expect.Same(actual["grid_positions"], Expect.Int64(new[] { batch, kept, 3 }, positions), "grid_positions");
        Expect.Same(actual["mask"], Expect.Int32(new[] { batch, frames * height * width }, mask), "mask");
    }

    [Test]
    public void FrameFusionEqualsVideoPruning()
    {
        ModelSpec spec = TestModels.Get(Model("framefusion"));
        long[] shape = spec.Shape("x");
        long batch = shape[0], frames = shape[1], positions = shape[2] * shape[3], channels = shape[4];
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 29);
        TestTensor x = inputs["x"];

        Dictionary<string, TestTensor> actual = OrtRunner.Run(spec.Name, inputs);

        var video = new ReadOnlyHostTensor<T>(x.As<T>(), new TensorShape(batch, frames, positions, channels));
        MergeResult<T> expected = VideoPruning.FrameFusion(video, spec.Float("similarity_lower_bound", 0.6f), spec.Int("max_merges", -1));
        Assert.That(expected.MergeCounts, Has.All.GreaterThan(0).And.All.LessThan(frames * positions), "some tokens merge, others do not");
        long rows = frames * positions;
        Expect.Same(actual["tokens"], Expect.Features(_type, expected.Shape, expected.X), "tokens");
        Expect.Same(actual["sizes"], Expect.Floats(new[] { batch, rows }, expected.Sizes), "sizes");
        Expect.Same(actual["source_map"], Expect.Int64(new[] { batch, rows }, expected.SourceMap), "source_map");
        Expect.Same(actual["merge_count"], Expect.Int32(new[] { batch }, expected.MergeCounts), "merge_count");
    }
}
