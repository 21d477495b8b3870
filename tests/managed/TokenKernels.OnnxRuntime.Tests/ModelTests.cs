using System.Collections.Generic;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>Every model ONNX Runtime accepts: its session loads, and ORT's type inference gives each output its type.</summary>
public sealed class ModelTests
{
    private static IEnumerable<string> LoadingModels() => TestModels.Specs.Values.Where(s => s.Expect != "load").Select(s => s.Name).OrderBy(n => n);

    [TestCaseSource(nameof(LoadingModels))]
    public void OutputTypesFollowTheInputs(string model)
    {
        ModelSpec spec = TestModels.Get(model);
        using SessionOptions options = CustomOpLibrary.CpuOptions();
        using var session = new InferenceSession(TestModels.PathOf(model), options);
        foreach ((string name, string type) in spec.Outputs)
        {
            Assert.That(session.OutputMetadata[name].ElementDataType, Is.EqualTo(TestTensor.ElementType(type)), name);
        }
    }

    private static IEnumerable<string> MinimalModels() => TestModels.Specs.Keys.Where(n => n.EndsWith("_minimal", System.StringComparison.Ordinal)).OrderBy(n => n);

    /// <summary>
    /// A node that leaves optional outputs out (the op keeps what it needs of them in scratch) gives the same outputs it
    /// keeps as the node with every output.
    /// </summary>
    [TestCaseSource(nameof(MinimalModels))]
    public void LeftOutOutputsChangeNoOther(string model)
    {
        string full = model[..^"_minimal".Length];
        Dictionary<string, TestTensor> inputs = TestInputs.For(TestModels.Get(full), 51);
        Dictionary<string, TestTensor> minimal = OrtRunner.Run(model, inputs);
        Dictionary<string, TestTensor> expected = OrtRunner.Run(full, inputs);
        Assert.That(minimal.Count, Is.LessThan(expected.Count), "the minimal model leaves outputs out");
        foreach ((string name, TestTensor output) in minimal)
        {
            Expect.Same(output, expected[name], name);
        }
    }

    [Test]
    public void EveryOpHasAModelInEveryFeatureType()
    {
        string[] ops =
        {
            "Pool", "ToMeMerge", "ToMeUnmerge", "AttentionImportance", "QkImportance", "TopK", "Gather", "DiversitySelect",
            "VisionZip", "FastV", "DivPrune", "CDPruner", "DpcKnnAggregate", "KMeans", "EVS", "DyCoke", "VidCom2", "FrameFusion",
        };
        foreach (string op in ops)
        {
            foreach (string type in new[] { "float32", "float16", "bfloat16" })
            {
                Assert.That(TestModels.Specs.Values.Any(s => s.Op == op && s.Expect == "ok" && s.Name.EndsWith("_" + type, System.StringComparison.Ordinal)),
                            op + " in " + type);
            }
        }
    }
}
