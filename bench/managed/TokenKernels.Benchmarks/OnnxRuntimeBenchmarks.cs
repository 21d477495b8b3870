using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.ML.OnnxRuntime;
using TokenKernels.OnnxRuntime;

namespace TokenKernels.Benchmarks;

/// <summary>
/// A method inside an ONNX Runtime graph (ORT 1.32, CPU provider), three ways, at LLaVA shapes in float32. Every graph
/// starts with the same upstream node (x + bias, standing for the layer that produced the tokens; bench/onnx/make_models.py
/// writes the graphs):
/// <list type="bullet">
/// <item><b>TokenKernelsNode</b> (the baseline): the upstream node, then the ai.tokenkernels node of the method.</item>
/// <item><b>CopyOutThenDirectCall</b>: the upstream graph alone, its output copied out of the OrtValue into an array, then the
/// method called directly through the C# API: what a user without the custom-op library does today.</item>
/// <item><b>ViewThenDirectCall</b>: the upstream graph, its output viewed through <see cref="OrtValueBridge"/> without a copy, then
/// the direct call.</item>
/// <item><b>StandardOperators</b>: the upstream node, then the method written with ONNX's own operators (FastV: Slice,
/// ReduceMean, TopK, Concat, Gather; average pooling: Transpose, AveragePool, Transpose). DivPrune's greedy selection has no
/// such form, so its case has no row.</item>
/// </list>
/// Outputs go into preallocated OrtValues and arrays in every row. The setup checks that the rows compute the same tokens.
/// <see cref="OrtThreadsSpin"/> runs every row with ONNX Runtime's intra-op threads spinning after their work (its default)
/// and without: spinning threads hold the cores that the TokenKernels node's and the direct calls' own threads then need.
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class OnnxRuntimeBenchmarks
{
    /// <summary>FastV at LLaVA-1.5 7B's layer 2: attention [1, 32, 651, 651], hidden states [1, 651, 4096], R = 50%.</summary>
    private const string FastVCase = "FastV";
    /// <summary>LLaVA-Video's 2x2 average pooling of 16 SigLIP frames: [1, 16, 27, 27, 1152] to [1, 16, 13, 13, 1152].</summary>
    private const string AvgPoolCase = "AvgPool";
    /// <summary>DivPrune on LLaVA-1.5's CLIP-L/336 tokens: [1, 576, 1024] to 56 tokens.</summary>
    private const string DivPruneCase = "DivPrune";

    private const int Heads = 32, FastVTokens = 651, HiddenChannels = 4096, ImageStart = 35, ImageTokens = 576, FastVKept = 651 - 288;
    private const int Frames = 16, Side = 27, Pooled = 13, VisionChannels = 1152;
    private const int ClipTokens = 576, ClipChannels = 1024, DivPruneKept = 56;

    private readonly List<IDisposable> _disposables = new List<IDisposable>();
    private Graph _fastVNode = null!, _fastVUpstream = null!, _fastVStandard = null!;
    private Graph _poolNode = null!, _poolUpstream = null!, _poolStandard = null!;
    private Graph _divPruneNode = null!, _divPruneUpstream = null!;
    private float[] _attention = null!, _hiddenCopy = null!, _fastVTokens = null!, _videoCopy = null!, _pooled = null!, _clipCopy = null!, _divPruneTokens = null!;
    private int[] _fastVPositions = null!, _divPrunePositions = null!;

    /// <summary>ONNX Runtime's <c>session.intra_op.allow_spinning</c>: true (its default) or false.</summary>
    [Params(true, false)]
    public bool OrtThreadsSpin { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string models = MakeModels();
        var random = new Random(20261206);
        using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", OrtThreadsSpin ? "1" : "0");
        options.RegisterTokenKernels();

        _attention = Fill(random, (long)Heads * FastVTokens * FastVTokens);
        OrtValue attention = Keep(OrtValueBridge.CreateTensorValue(_attention, new TensorShape(1, Heads, FastVTokens, FastVTokens)));
        OrtValue hidden = Keep(OrtValueBridge.CreateTensorValue(Fill(random, (long)FastVTokens * HiddenChannels), new TensorShape(1, FastVTokens, HiddenChannels)));
        var fastVOut = new TensorShape(1, FastVKept, HiddenChannels);
        _fastVNode = Open(models, "fastv.tokenkernels", options, new[] { attention, hidden }, Output<float>(fastVOut), Output<long>(new TensorShape(1, FastVKept)));
        _fastVUpstream = Open(models, "fastv.upstream", options, new[] { attention, hidden }, Output<float>(new TensorShape(1, FastVTokens, HiddenChannels)));
        _fastVStandard = Open(models, "fastv.standard", options, new[] { attention, hidden }, Output<float>(fastVOut), Output<long>(new TensorShape(1, FastVKept)));
        _hiddenCopy = new float[FastVTokens * HiddenChannels];
        _fastVTokens = new float[FastVKept * HiddenChannels];
        _fastVPositions = new int[FastVKept];

        var videoShape = new TensorShape(1, Frames, Side, Side, VisionChannels);
        OrtValue video = Keep(OrtValueBridge.CreateTensorValue(Fill(random, videoShape.ElementCount), videoShape));
        var pooledShape = new TensorShape(1, Frames, Pooled, Pooled, VisionChannels);
        _poolNode = Open(models, "avgpool.tokenkernels", options, new[] { video }, Output<float>(pooledShape));
        _poolUpstream = Open(models, "avgpool.upstream", options, new[] { video }, Output<float>(videoShape));
        _poolStandard = Open(models, "avgpool.standard", options, new[] { video }, Output<float>(pooledShape));
        _videoCopy = new float[videoShape.ElementCount];
        _pooled = new float[pooledShape.ElementCount];

        var clipShape = new TensorShape(1, ClipTokens, ClipChannels);
        OrtValue clip = Keep(OrtValueBridge.CreateTensorValue(Fill(random, clipShape.ElementCount), clipShape));
        _divPruneNode = Open(models, "divprune.tokenkernels", options, new[] { clip },
                             Output<float>(new TensorShape(1, DivPruneKept, ClipChannels)), Output<long>(new TensorShape(1, DivPruneKept)));
        _divPruneUpstream = Open(models, "divprune.upstream", options, new[] { clip }, Output<float>(clipShape));
        _clipCopy = new float[clipShape.ElementCount];
        _divPruneTokens = new float[DivPruneKept * ClipChannels];
        _divPrunePositions = new int[DivPruneKept];

        CheckRowsAgree();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        for (int i = _disposables.Count - 1; i >= 0; i--)
        {
            _disposables[i].Dispose();
        }
        _disposables.Clear();
    }

    [Benchmark(Baseline = true), BenchmarkCategory(FastVCase)]
    public void FastVTokenKernelsNode() => _fastVNode.Run();

    [Benchmark, BenchmarkCategory(FastVCase)]
    public void FastVCopyOutThenDirectCall()
    {
        _fastVUpstream.Run();
        _fastVUpstream.Outputs[0].GetTensorDataAsSpan<float>().CopyTo(_hiddenCopy);
        FastVDirect(new ReadOnlyHostTensor<float>(_hiddenCopy, new TensorShape(1, FastVTokens, HiddenChannels)));
    }

    [Benchmark, BenchmarkCategory(FastVCase)]
    public void FastVViewThenDirectCall()
    {
        _fastVUpstream.Run();
        FastVDirect(_fastVUpstream.Outputs[0].AsReadOnlyHostTensor<float>());
    }

    [Benchmark, BenchmarkCategory(FastVCase)]
    public void FastVStandardOperators() => _fastVStandard.Run();

    [Benchmark(Baseline = true), BenchmarkCategory(AvgPoolCase)]
    public void AvgPoolTokenKernelsNode() => _poolNode.Run();

    [Benchmark, BenchmarkCategory(AvgPoolCase)]
    public void AvgPoolCopyOutThenDirectCall()
    {
        _poolUpstream.Run();
        _poolUpstream.Outputs[0].GetTensorDataAsSpan<float>().CopyTo(_videoCopy);
        PoolDirect(new ReadOnlyHostTensor<float>(_videoCopy, new TensorShape(1, Frames, Side, Side, VisionChannels)));
    }

    [Benchmark, BenchmarkCategory(AvgPoolCase)]
    public void AvgPoolViewThenDirectCall()
    {
        _poolUpstream.Run();
        PoolDirect(_poolUpstream.Outputs[0].AsReadOnlyHostTensor<float>());
    }

    [Benchmark, BenchmarkCategory(AvgPoolCase)]
    public void AvgPoolStandardOperators() => _poolStandard.Run();

    [Benchmark(Baseline = true), BenchmarkCategory(DivPruneCase)]
    public void DivPruneTokenKernelsNode() => _divPruneNode.Run();

    [Benchmark, BenchmarkCategory(DivPruneCase)]
    public void DivPruneCopyOutThenDirectCall()
    {
        _divPruneUpstream.Run();
        _divPruneUpstream.Outputs[0].GetTensorDataAsSpan<float>().CopyTo(_clipCopy);
        DivPruneDirect(new ReadOnlyHostTensor<float>(_clipCopy, new TensorShape(1, ClipTokens, ClipChannels)));
    }

    [Benchmark, BenchmarkCategory(DivPruneCase)]
    public void DivPruneViewThenDirectCall()
    {
        _divPruneUpstream.Run();
        DivPruneDirect(_divPruneUpstream.Outputs[0].AsReadOnlyHostTensor<float>());
    }

    private void FastVDirect(ReadOnlyHostTensor<float> hiddenStates)
        => PruningMethods.FastV(new ReadOnlyHostTensor<float>(_attention, new TensorShape(1, Heads, FastVTokens, FastVTokens)), hiddenStates,
                                ImageStart, ImageStart + ImageTokens, 0.5,
                                new HostTensor<float>(_fastVTokens, new TensorShape(1, FastVKept, HiddenChannels)),
                                new HostTensor<int>(_fastVPositions, new TensorShape(1, FastVKept)));

    private void PoolDirect(ReadOnlyHostTensor<float> video)
        => Pooling.WindowAvg(video, new HostTensor<float>(_pooled, new TensorShape(1, Frames, Pooled, Pooled, VisionChannels)), (1, 2, 2));

    private void DivPruneDirect(ReadOnlyHostTensor<float> tokens)
        => PruningMethods.DivPrune(tokens, new HostTensor<float>(_divPruneTokens, new TensorShape(1, DivPruneKept, ClipChannels)),
                                   new HostTensor<int>(_divPrunePositions, new TensorShape(1, DivPruneKept)));

    /// <summary>A timing of a row that computed something else would compare nothing: every row of a case must give the same tokens.</summary>
    private void CheckRowsAgree()
    {
        FastVCopyOutThenDirectCall();
        _fastVNode.Run();
        _fastVStandard.Run();
        Require(FastVCase + " node vs direct call", _fastVNode.Outputs[0].GetTensorDataAsSpan<float>(), _fastVTokens, 0f);
        Require(FastVCase + " standard operators vs node", _fastVStandard.Outputs[0].GetTensorDataAsSpan<float>(), _fastVNode.Outputs[0].GetTensorDataAsSpan<float>(), 0f);

        AvgPoolCopyOutThenDirectCall();
        _poolNode.Run();
        _poolStandard.Run();
        Require(AvgPoolCase + " node vs direct call", _poolNode.Outputs[0].GetTensorDataAsSpan<float>(), _pooled, 0f);
        Require(AvgPoolCase + " standard operators vs node", _poolStandard.Outputs[0].GetTensorDataAsSpan<float>(), _pooled, 1e-5f);

        DivPruneCopyOutThenDirectCall();
        _divPruneNode.Run();
        Require(DivPruneCase + " node vs direct call", _divPruneNode.Outputs[0].GetTensorDataAsSpan<float>(), _divPruneTokens, 0f);
    }

    private static void Require(string what, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, float tolerance)
    {
        if (actual.Length != expected.Length)
        {
            throw new InvalidOperationException(what + ": " + actual.Length + " elements against " + expected.Length);
        }
        for (int i = 0; i < actual.Length; i++)
        {
            if (!(Math.Abs(actual[i] - expected[i]) <= tolerance * Math.Max(1f, Math.Abs(expected[i]))))
            {
                throw new InvalidOperationException(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    /// <summary>Writes the graphs with bench/onnx/make_models.py (Debian's python3-onnx) into a fresh temporary folder.</summary>
    private static string MakeModels()
    {
        string script = Path.Combine(RepositoryRoot(), "bench", "onnx", "make_models.py");
        string directory = Path.Combine(Path.GetTempPath(), "tokenkernels-bench-models-" + Environment.ProcessId);
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(directory);
        using Process python = Process.Start(start) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
        string errors = python.StandardError.ReadToEnd();
        python.WaitForExit();
        if (python.ExitCode != 0)
        {
            throw new InvalidOperationException(script + " failed (exit " + python.ExitCode + "; it needs Debian's python3-onnx): " + errors);
        }
        return directory;
    }

    /// <summary>The repository holding this source file's project: BenchmarkDotNet runs each benchmark from a copy elsewhere.</summary>
    private static string RepositoryRoot([System.Runtime.CompilerServices.CallerFilePath] string sourceFile = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(sourceFile)!, "..", "..", ".."));

    private static float[] Fill(Random random, long count)
    {
        var data = new float[count];
        for (long i = 0; i < count; i++)
        {
            data[i] = (float)random.NextDouble();
        }
        return data;
    }

    private OrtValue Keep(OrtValue value)
    {
        _disposables.Add(value);
        return value;
    }

    private OrtValue Output<T>(TensorShape shape)
        where T : unmanaged
        => Keep(OrtValueBridge.CreateTensorValue(new T[shape.ElementCount], shape));

    private Graph Open(string models, string name, SessionOptions options, OrtValue[] inputs, params OrtValue[] outputs)
    {
        var graph = new Graph(new InferenceSession(Path.Combine(models, name + ".onnx"), options), inputs, outputs);
        _disposables.Add(graph);
        return graph;
    }

    /// <summary>A session with its inputs and preallocated outputs bound by name, run as one call.</summary>
    private sealed class Graph : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly RunOptions _runOptions = new RunOptions();
        private readonly string[] _inputNames, _outputNames;
        private readonly OrtValue[] _inputs;

        public Graph(InferenceSession session, OrtValue[] inputs, OrtValue[] outputs)
        {
            _session = session;
            _inputNames = new string[inputs.Length];
            for (int i = 0; i < inputs.Length; i++)
            {
                _inputNames[i] = session.InputNames[i];
            }
            _outputNames = new string[outputs.Length];
            for (int i = 0; i < outputs.Length; i++)
            {
                _outputNames[i] = session.OutputNames[i];
            }
            _inputs = inputs;
            Outputs = outputs;
        }

        public OrtValue[] Outputs { get; }

        public void Run() => _session.Run(_runOptions, _inputNames, _inputs, _outputNames, Outputs);

        public void Dispose()
        {
            _runOptions.Dispose();
            _session.Dispose();
        }
    }
}
