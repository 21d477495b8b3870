using System.Collections.Generic;
using System.Linq;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>
/// Every model on ONNX Runtime's CUDA execution provider against its CPU provider, on the same inputs: the TokenKernels
/// kernels run on ORT's compute stream with ORT's device allocator. Needs a GPU, a TokenKernels library built with CUDA,
/// and an ONNX Runtime with the CUDA provider (the Microsoft.ML.OnnxRuntime.Gpu.Linux package, not the CPU package these
/// tests reference); skipped, saying which is missing, otherwise.
/// </summary>
public sealed class CudaProviderTests
{
    private static IEnumerable<string> RunnableModels() => TestModels.Specs.Values.Where(s => s.Expect == "ok").Select(s => s.Name).OrderBy(n => n);

    [TestCaseSource(nameof(RunnableModels))]
    public void CudaProviderEqualsCpuProvider(string model)
    {
        RequireCuda();
        ModelSpec spec = TestModels.Get(model);
        Dictionary<string, TestTensor> inputs = TestInputs.For(spec, 41);

        Dictionary<string, TestTensor> cpu = OrtRunner.Run(model, inputs);
        Dictionary<string, TestTensor> cuda = OrtRunner.Run(model, inputs, CustomOpLibrary.CudaOptions());

        foreach ((string name, _) in spec.Outputs)
        {
            if (spec.Op == "QkImportance")
            {
                // QK importance sums exp() of tiles in another order on CUDA: the C ABI promises agreement within float32
                // rounding there (0.001 percent here), and the same bits everywhere else.
                Assert.That(cuda[name].Shape, Is.EqualTo(cpu[name].Shape), name);
                Assert.That(cuda[name].ToFloats(), Is.EqualTo(cpu[name].ToFloats()).Within(0.001).Percent, name);
                continue;
            }
            Expect.Same(cuda[name], cpu[name], name);
        }
    }

    private static void RequireCuda()
    {
        if (!TokenKernelsLibrary.IsCudaBuilt)
        {
            Assert.Ignore("the TokenKernels library under test is built without CUDA");
        }
        if (!Cuda.IsAvailable)
        {
            Assert.Ignore("no CUDA device: " + Cuda.UnavailableReason);
        }
        if (!OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider"))
        {
            Assert.Ignore("this ONNX Runtime has no CUDA execution provider (the tests reference the CPU package Microsoft.ML.OnnxRuntime unless built with -p:TokenKernelsOrtGpu=true; "
                          + "the CUDA provider comes with Microsoft.ML.OnnxRuntime.Gpu.Linux)");
        }
    }
}
