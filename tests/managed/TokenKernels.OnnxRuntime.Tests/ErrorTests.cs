using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// Models TokenKernels refuses: bad attributes when ONNX Runtime creates the session (the kernel names the attribute, and
/// where the C ABI checks it, carries its message), bad shapes and values when the node runs (the C ABI's message, from
/// tk_last_error, after the node's op and name).
/// </summary>
public sealed class ErrorTests
{
    private const string Invalid = "(TK_STATUS_INVALID_ARGUMENT)";

    [TestCase("bad_pool_mode", "TokenKernels Pool node 'bad_pool_mode': attribute 'mode': expected 'window_avg', 'window_max', 'adaptive_avg', 'adaptive_max' or 'bilinear', got 'median'")]
    [TestCase("bad_pool_kernel", "TokenKernels Pool node 'bad_pool_kernel': attributes refused by tk_pool_output_shape " + Invalid + ": params->kernel[1]: expected a window size of at least 1, got 0")]
    [TestCase("bad_tome_r", "TokenKernels ToMeMerge node 'bad_tome_r': attributes refused by tk_merge_output_tokens " + Invalid + ": params->r: expected a non-negative number of merges, got -3")]
    [TestCase("bad_topk_missing_k", "TokenKernels TopK node 'bad_topk_missing_k': attribute 'k': expected an integer (the attribute is required), got none")]
    [TestCase("bad_topk_float_k", "TokenKernels TopK node 'bad_topk_float_k': attribute 'k': expected an integer, got a float")]
    [TestCase("bad_evs_rate", "TokenKernels EVS node 'bad_evs_rate': attributes refused by tk_evs_retained_tokens " + Invalid + ": params->pruning_rate: expected q in [0, 1) (the fraction of tokens pruned), got 1.5")]
    [TestCase("bad_divprune_ratio", "TokenKernels DivPrune node 'bad_divprune_ratio': attribute 'threshold_ratio': expected a fraction in [0, 1], got 1.5")]
    [TestCase("bad_kmeans_max_iter", "TokenKernels KMeans node 'bad_kmeans_max_iter': attribute 'max_iter': expected an integer in [1, 2147483647], got 0")]
    [TestCase("bad_kmeans_no_clusters", "TokenKernels KMeans node 'bad_kmeans_no_clusters': attribute 'n_clusters': expected an integer in [1, 2147483647], got 0")]
    [TestCase("bad_kmeans_missing_n_clusters", "TokenKernels KMeans node 'bad_kmeans_missing_n_clusters': attribute 'n_clusters': expected an integer (the attribute is required), got none")]
    [TestCase("bad_dpcknn_no_clusters", "TokenKernels DpcKnnAggregate node 'bad_dpcknn_no_clusters': attribute 'clusters': expected an integer in [1, 2147483647], got 0")]
    [TestCase("bad_dpcknn_missing_clusters", "TokenKernels DpcKnnAggregate node 'bad_dpcknn_missing_clusters': attribute 'clusters': expected an integer (the attribute is required), got none")]
    public void BadAttributesFailTheSession(string model, string message)
    {
        Assert.That(TestModels.Get(model).Expect, Is.EqualTo("load"));
        using SessionOptions options = CustomOpLibrary.CpuOptions();
        OnnxRuntimeException? error = Assert.Throws<OnnxRuntimeException>(() => new InferenceSession(TestModels.PathOf(model), options).Dispose());
        Assert.That(error!.Message, Does.Contain(message));
    }

    [TestCase("bad_topk_k_above_n", "TokenKernels TopK node 'bad_topk_k_above_n': tk_topk_workspace_size failed " + Invalid + ": params->k: expected 0 <= k <= 37 (N of scores), got 40")]
    [TestCase("bad_pool_window_above_input", "TokenKernels Pool node 'bad_pool_window_above_input': tk_pool_output_shape failed " + Invalid + ": params->kernel[1]: expected a window no larger than the input, H = 7 (input_shape[2]), got 9")]
    [TestCase("bad_tome_tokens", "TokenKernels ToMeMerge node 'bad_tome_tokens': tk_merge failed " + Invalid + ": x.shape[1]: expected 37 (N of metric), got 35")]
    [TestCase("bad_gather_index", "TokenKernels Gather node 'bad_gather_index': tk_gather failed " + Invalid + ": indices[1, 4]: expected a token in [0, 37) (N of x), or -1 (padding), got 50")]
    [TestCase("bad_visionzip_dominant", "TokenKernels VisionZip node 'bad_visionzip_dominant': tk_topk_workspace_size failed " + Invalid + ": params->k: expected 0 <= k <= 37 (N of scores), got 40")]
    [TestCase("bad_visionzip_queries", "TokenKernels VisionZip node 'bad_visionzip_queries': input 'attention': expected [B, H, N, N], N = 37 queries of hidden_states attending to N keys, got shape [2, 3, 1, 37]")]
    [TestCase("bad_visionzip_metric", "TokenKernels VisionZip node 'bad_visionzip_metric': input 'metric': expected [B, N, Cm] with B = 2 and N = 37 of hidden_states, got shape [2, 36, 24]")]
    [TestCase("bad_attention_key_range", "TokenKernels AttentionImportance node 'bad_attention_key_range': tk_attention_importance failed " + Invalid + ": params->key_begin, key_end: expected 0 <= key_begin <= key_end <= 37 (Nk), got [30, 40)")]
    [TestCase("bad_fastv_span", "TokenKernels FastV node 'bad_fastv_span': attributes 'image_token_start_index' = 20 and 'image_token_length' = 30 place the image past the N = 41 tokens of hidden_states")]
    [TestCase("bad_diversity_rank", "TokenKernels DiversitySelect node 'bad_diversity_rank': input 'x': expected rank 3 [B, N, C], got shape [2, 37]")]
    public void BadShapesAndValuesFailTheRun(string model, string message)
    {
        ModelSpec spec = TestModels.Get(model);
        Assert.That(spec.Expect, Is.EqualTo("run"));
        var random = new Random(31);
        var inputs = new Dictionary<string, TestTensor>();
        foreach ((string name, string type, long[] shape) in spec.Inputs)
        {
            if (type == "int64")
            {
                // Valid positions, but one past N.
                long[] values = Enumerable.Range(0, (int)TestTensor.Count(shape)).Select(i => (long)(i % 37)).ToArray();
                values[1 * shape[1] + 4] = 50;
                inputs[name] = TestTensor.Int64(shape, values);
            }
            else
            {
                inputs[name] = TestTensor.Uniform(type, shape, random, 0f, 1f);
            }
        }
        OnnxRuntimeException? error = Assert.Throws<OnnxRuntimeException>(() => OrtRunner.Run(model, inputs));
        Assert.That(error!.Message, Does.Contain(message));
    }

    [Test]
    public void EveryRefusedModelIsTested()
    {
        string[] tested = typeof(ErrorTests).GetMethods()
            .SelectMany(m => m.GetCustomAttributes(typeof(TestCaseAttribute), false).Cast<TestCaseAttribute>())
            .Select(c => (string)c.Arguments[0]!)
            .ToArray();
        string[] refused = TestModels.Specs.Values.Where(s => s.Expect != "ok").Select(s => s.Name).ToArray();
        Assert.That(tested, Is.EquivalentTo(refused));
    }
}
