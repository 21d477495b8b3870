using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using NUnit.Framework;
using TokenKernels.Cli.Methods;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Tests;

/// <summary>
/// <c>tokenkernels compress</c> on every method of the catalog, run as a user runs it on files numpy (and PyTorch, for bfloat16)
/// wrote: the files it writes hold exactly what the method gives in process on the same input, and say consistently where every
/// token went. Awkward sizes throughout: batch 2, 48 channels, a 6 x 7 grid, 5 frames of 3 x 4.
/// </summary>
[NonParallelizable]
public sealed class CompressCommandTests
{
    private const int Batch = 2, Channels = 48;

    private static readonly TokenGrid Image = new(1, 6, 7), Video = new(5, 3, 4);

    /// <summary>How an element type's case stores its files.</summary>
    /// <param name="DataType">f32, f16 or bf16: the tokens' type.</param>
    /// <param name="InputFile">The tokens' file; a .safetensors input also holds the auxiliary inputs when <paramref name="AuxiliaryInside"/>.</param>
    /// <param name="AuxiliaryInside">Whether the auxiliary inputs are named tensors of the input; else .npy files given by option.</param>
    /// <param name="OutputFile">The output's file name.</param>
    private sealed record Storage(string DataType, string InputFile, bool AuxiliaryInside, string OutputFile);

    private static readonly Storage[] Storages =
    {
        new("f32", "in.npy", AuxiliaryInside: false, "out.npy"),
        new("f16", "in.safetensors", AuxiliaryInside: true, "out.safetensors"),
        new("bf16", "in.safetensors", AuxiliaryInside: false, "out.safetensors"),
    };

    // Settings that make each method's output smaller than its awkward input and differ from the defaults; a method not
    // named here runs with its defaults.
    private static readonly Dictionary<string, string[]> Settings = new()
    {
        ["avgpool"] = ["--stride", "3"],
        ["bilinear"] = ["--stride", "2"],
        ["adaptive-avg"] = ["--out-frames", "1", "--out-height", "4", "--out-width", "5"],
        ["tome"] = ["--r", "10"],
        ["visionzip"] = ["--dominant", "9", "--contextual", "3"],
        ["fastv"] = ["--r", "0.6"],
        ["divprune"] = ["--ratio", "0.3"],
        ["cdpruner"] = ["--k", "9"],
        ["dpc-knn"] = ["--clusters", "7", "--neighbours", "3"],
        ["kmeans"] = ["--clusters", "5", "--max-iter", "50", "--seed", "3"],
        ["evs"] = ["--q", "0.5"],
        ["vidcom2"] = ["--retention", "0.4"],
        ["framefusion"] = ["--threshold", "0.5"],
    };

    /// <summary>Where a method's tokens sit in its input: the prefix, the grid, the text after it.</summary>
    private sealed record Layout(TokenGrid Grid, int Trailing)
    {
        public int Length => Grid.Prefix + Grid.PatchTokens + Trailing;
    }

    // Video methods get a rank-5 video [B, T, H, W, C] (the grid read from the shape); image methods [B, N, C] with --grid 6x7,
    // a class token where the method takes one (ToMe protects it when told --prefix 1), and for FastV 3 text tokens before
    // the image and 4 after it.
    private static Layout LayoutOf(TokenMethod method)
    {
        if (method.IsVideo)
        {
            return new Layout(Video, 0);
        }
        int prefix = method.Prefix ?? (method.AllowsTrailingTokens ? 3 : 1);
        return new Layout(Image with { Prefix = prefix }, method.AllowsTrailingTokens ? 4 : 0);
    }

    private static long[] FileShape(TokenMethod method)
    {
        Layout layout = LayoutOf(method);
        return method.IsVideo
            ? [Batch, layout.Grid.Frames, layout.Grid.Height, layout.Grid.Width, Channels]
            : [Batch, layout.Length, Channels];
    }

    // An auxiliary input's shape: attention as a vision layer's [B, H, N, N], or an LLM layer's [B, H, Nq, N] for a method
    // whose sequence holds text (FastV); the embeddings as wide as the tokens (CDPruner compares text with the tokens
    // themselves when no visual embeddings are given).
    private static long[] AuxiliaryShape(TokenMethod method, AuxiliaryRole role)
    {
        long length = LayoutOf(method).Length;
        return role switch
        {
            AuxiliaryRole.Attention => method.AllowsTrailingTokens ? [Batch, 3, 5, length] : [Batch, 2, length, length],
            AuxiliaryRole.Metric => [Batch, length, 16],
            AuxiliaryRole.TextEmbeddings => [Batch, 6, Channels],
            AuxiliaryRole.VisualEmbeddings => [Batch, length, Channels],
            _ => throw new ArgumentOutOfRangeException(nameof(role)),
        };
    }

    // The f16 case gives every auxiliary input the method reads; the others only the ones it needs.
    private static IEnumerable<AuxiliaryRole> AuxiliaryOf(TokenMethod method, Storage storage)
        => storage.DataType == "f16" ? method.Accepts : method.Requires;

    private static string CaseDirectory(string root, TokenMethod method, Storage storage) => Path.Combine(root, $"{method.Name}-{storage.DataType}");

    private TemporaryDirectory? _files;

    /// <summary>One Python run writes every case's input files (numpy; bfloat16 bits by PyTorch).</summary>
    [OneTimeSetUp]
    public void WriteInputs()
    {
        Python.Require("numpy", "python3-numpy");
        Python.Require("torch", "python3-torch");
        Assert.That(NativeLibrary.TryLoad(out string? error), Is.True, error);
        _files = new TemporaryDirectory();
        var files = new List<object>();
        int seed = 1;
        foreach (TokenMethod method in MethodCatalog.All)
        {
            foreach (Storage storage in Storages)
            {
                string directory = CaseDirectory(_files.Path, method, storage);
                Directory.CreateDirectory(directory);
                var tokens = new { name = "tokens", kind = method.IsVideo ? "video" : "normal", dtype = storage.DataType, shape = FileShape(method), seed = seed++ };
                var auxiliary = AuxiliaryOf(method, storage).Select(role => new
                {
                    name = AuxiliaryNames.Of(role),
                    kind = role == AuxiliaryRole.Attention ? "softmax" : "normal",
                    dtype = "f32",
                    shape = AuxiliaryShape(method, role),
                    seed = seed++,
                }).ToList();
                if (storage.AuxiliaryInside)
                {
                    files.Add(new { path = Path.Combine(directory, storage.InputFile), tensors = new object[] { tokens }.Concat(auxiliary).ToArray() });
                }
                else
                {
                    files.Add(new { path = Path.Combine(directory, storage.InputFile), tensors = new object[] { tokens } });
                    files.AddRange(auxiliary.Select(a => new { path = Path.Combine(directory, a.name + ".npy"), tensors = new object[] { a } }));
                }
            }
        }
        File.WriteAllText(_files.File("inputs.json"), JsonSerializer.Serialize(files));
        Python.RunChecked(WriteInputsScript, _files.Path);
    }

    [OneTimeTearDown]
    public void RemoveFiles() => _files?.Dispose();

    // Tokens from a normal distribution; video frames share a base with noise of a different strength per token, so that
    // the video methods find both static and moving tokens; attention rows are softmax probabilities.
    private const string WriteInputsScript = """
        import json, struct
        import numpy as np
        import torch
        def values(spec):
            rng = np.random.default_rng(spec['seed'])
            shape = tuple(spec['shape'])
            if spec['kind'] == 'softmax':
                logits = rng.standard_normal(shape) * 2
                e = np.exp(logits - logits.max(axis=-1, keepdims=True))
                return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
            if spec['kind'] == 'video':
                base = rng.standard_normal((shape[0], 1) + shape[2:])
                strength = rng.uniform(0.05, 2.0, size=shape[:-1] + (1,))
                return (base + strength * rng.standard_normal(shape)).astype(np.float32)
            return rng.standard_normal(shape).astype(np.float32)
        def encoded(dtype, a):
            if dtype == 'bf16':
                return 'BF16', torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().astype('<i2').tobytes()
            if dtype == 'f16':
                return 'F16', a.astype('<f2').tobytes()
            return 'F32', a.astype('<f4').tobytes()
        for f in json.load(open('inputs.json')):
            if f['path'].endswith('.npy'):
                (spec,) = f['tensors']
                assert spec['dtype'] in ('f32', 'f16'), spec
                np.save(f['path'], values(spec).astype(np.float32 if spec['dtype'] == 'f32' else np.float16))
                continue
            header, blobs, offset = {}, [], 0
            for spec in f['tensors']:
                code, data = encoded(spec['dtype'], values(spec))
                header[spec['name']] = {'dtype': code, 'shape': spec['shape'], 'data_offsets': [offset, offset + len(data)]}
                blobs.append(data)
                offset += len(data)
            text = json.dumps(header).encode()
            text += b' ' * (-len(text) % 8)
            with open(f['path'], 'wb') as out:
                out.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
        """;

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (TokenMethod method in MethodCatalog.All)
        {
            foreach (Storage storage in Storages)
            {
                yield return new TestCaseData(method.Name, storage.DataType).SetName($"Compress_{method.Name}_{storage.DataType}");
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void CompressWritesWhatTheMethodGives(string methodName, string dataType)
    {
        TokenMethod method = MethodCatalog.Find(methodName)!;
        Storage storage = Storages.Single(s => s.DataType == dataType);
        Layout layout = LayoutOf(method);
        string directory = CaseDirectory(_files!.Path, method, storage);
        string[] before = CliAssert.FilesIn(directory);

        var arguments = new List<string> { "compress", "--method", method.Name, "--input", storage.InputFile, "--output", storage.OutputFile };
        if (!method.IsVideo)
        {
            arguments.AddRange(["--grid", $"{layout.Grid.Height}x{layout.Grid.Width}"]);
        }
        if (method.Prefix is null)
        {
            arguments.AddRange(["--prefix", layout.Grid.Prefix.ToString(CultureInfo.InvariantCulture)]);
        }
        if (!storage.AuxiliaryInside)
        {
            foreach (AuxiliaryRole role in AuxiliaryOf(method, storage))
            {
                arguments.AddRange(["--" + AuxiliaryNames.Of(role).Replace('_', '-'), AuxiliaryNames.Of(role) + ".npy"]);
            }
        }
        string[] given = Settings.GetValueOrDefault(method.Name, []);
        arguments.AddRange(given);

        CliRun run = CliProcess.RunIn(directory, arguments.ToArray());
        CliAssert.Succeeded(run);

        // In process: the same method on the same file's tokens and auxiliary inputs, with the same settings.
        IReadOnlyList<StoredTensor> input = TensorFile.Read(Path.Combine(directory, storage.InputFile));
        StoredTensor tokens = input.Single(t => t.Name is "tokens" or "in");
        var auxiliary = new Dictionary<AuxiliaryRole, AuxiliaryTensor>();
        foreach (AuxiliaryRole role in AuxiliaryOf(method, storage))
        {
            StoredTensor tensor = storage.AuxiliaryInside
                ? input.Single(t => t.Name == AuxiliaryNames.Of(role))
                : TensorFile.Read(Path.Combine(directory, AuxiliaryNames.Of(role) + ".npy")).Single();
            auxiliary[role] = new AuxiliaryTensor(tensor.ToFloat32(), new TensorShape(tensor.Shape));
        }
        var values = new Dictionary<string, double>();
        for (int i = 0; i < given.Length; i += 2)
        {
            values[given[i][2..]] = double.Parse(given[i + 1], CultureInfo.InvariantCulture);
        }
        var shape = new TensorShape(Batch, layout.Length, Channels);
        Expected expected = tokens.DataType switch
        {
            StoredDataType.Float32 => Expected.Of(method, tokens.ToArray<float>(), shape, layout.Grid, auxiliary, values),
            StoredDataType.Float16 => Expected.Of(method, tokens.ToArray<Float16>(), shape, layout.Grid, auxiliary, values),
            StoredDataType.BFloat16 => Expected.Of(method, tokens.ToArray<BFloat16>(), shape, layout.Grid, auxiliary, values),
            _ => throw new AssertionException($"the input's tokens are {tokens.DataType}"),
        };
        Assert.That(tokens.DataType.ShortName(), Is.EqualTo(dataType), "the input file's element type");

        // The files written, and nothing else (no temporary file left).
        Dictionary<string, StoredTensor> output = ReadOutput(directory, storage, expected, before);
        Assert.That(output.Keys, Is.EquivalentTo(expected.Tensors.Select(t => t.Name)));
        foreach (StoredTensor want in expected.Tensors)
        {
            StoredTensor got = output[want.Name];
            Assert.That(got.DataType, Is.EqualTo(want.DataType), want.Name);
            Assert.That(got.Shape, Is.EqualTo(want.Shape), want.Name);
            Assert.That(got.Data.SequenceEqual(want.Data), Is.True, $"{want.Name}: the CLI's bytes differ from the method's in process");
        }
        CheckConsistency(tokens, output, layout.Length);

        if (storage.DataType == "f32")
        {
            CheckWithNumpy(directory, output.ContainsKey("positions"));
        }
    }

    /// <summary>What the method gives in process, as the tensors the CLI writes.</summary>
    private sealed record Expected(List<StoredTensor> Tensors)
    {
        public static Expected Of<T>(TokenMethod method, T[] tokens, TensorShape shape, TokenGrid grid,
                                     Dictionary<AuxiliaryRole, AuxiliaryTensor> auxiliary, Dictionary<string, double> values)
            where T : unmanaged
        {
            MethodOutcome<T> outcome = method.Run(new MethodInputs<T>(tokens, shape, grid, auxiliary), new MethodSettings(values));
            long batch = outcome.Batch, rows = outcome.TokensShape[1];
            var tensors = new List<StoredTensor>
            {
                StoredTensor.FromArray("tokens", outcome.Tokens, outcome.TokensShape[0], rows, outcome.TokensShape[2]),
                StoredTensor.FromArray("source_map", outcome.SourceMap, outcome.SourceMapShape[0], outcome.SourceMapShape[1]),
            };
            if (outcome.Positions is int[] positions)
            {
                tensors.Add(StoredTensor.FromArray("positions", positions, batch, rows));
            }
            if (outcome.Sizes is float[] sizes)
            {
                tensors.Add(StoredTensor.FromArray("sizes", sizes, batch, rows));
            }
            if (outcome.TokensPerItem is int[] counts)
            {
                tensors.Add(StoredTensor.FromArray("tokens_per_item", counts, batch));
            }
            return new Expected(tensors);
        }
    }

    // The output's tensors by name: a .safetensors file's, or out.npy and its side files out.NAME.npy. Fails on any other new file.
    private static Dictionary<string, StoredTensor> ReadOutput(string directory, Storage storage, Expected expected, string[] before)
    {
        string[] written = CliAssert.FilesIn(directory).Except(before).ToArray();
        string stem = Path.GetFileNameWithoutExtension(storage.OutputFile);
        if (storage.OutputFile.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            Assert.That(written, Is.EqualTo(new[] { storage.OutputFile }), "the files written");
            return TensorFile.Read(Path.Combine(directory, storage.OutputFile)).ToDictionary(t => t.Name);
        }
        string[] names = expected.Tensors.Select(t => t.Name == "tokens" ? storage.OutputFile : $"{stem}.{t.Name}.npy").ToArray();
        Assert.That(written, Is.EquivalentTo(names), "the files written");
        return expected.Tensors.ToDictionary(t => t.Name, t => TensorFile.Read(Path.Combine(directory, t.Name == "tokens" ? storage.OutputFile : $"{stem}.{t.Name}.npy")).Single());
    }

    // Every output row kept from one input token holds that token's bytes, and the source map sends the token to that row;
    // every source map entry is -1 or a valid row of its item.
    private static void CheckConsistency(StoredTensor input, Dictionary<string, StoredTensor> output, int length)
    {
        StoredTensor tokens = output["tokens"];
        int rows = checked((int)tokens.Shape[1]);
        int rowBytes = Channels * input.DataType.ElementSize();
        int[] sourceMap = output["source_map"].ToArray<int>();
        int mapLength = checked((int)output["source_map"].Shape[1]);
        int[]? counts = output.TryGetValue("tokens_per_item", out StoredTensor? c) ? c.ToArray<int>() : null;
        int[]? positions = output.TryGetValue("positions", out StoredTensor? p) ? p.ToArray<int>() : null;
        Assert.That(mapLength, Is.LessThanOrEqualTo(length));
        for (int b = 0; b < Batch; b++)
        {
            int valid = counts?[b] ?? rows;
            for (int n = 0; n < mapLength; n++)
            {
                int row = sourceMap[b * mapLength + n];
                Assert.That(row == -1 || (row >= 0 && row < valid), Is.True, $"source_map[{b}, {n}] = {row}, valid rows {valid}");
            }
            if (positions is null)
            {
                continue;
            }
            int kept = 0;
            for (int i = 0; i < rows; i++)
            {
                int position = positions[b * rows + i];
                if (position < 0)
                {
                    continue;
                }
                kept++;
                Assert.That(position, Is.LessThan(length), $"positions[{b}, {i}]");
                Assert.That(tokens.Data.AsSpan((b * rows + i) * rowBytes, rowBytes).SequenceEqual(input.Data.AsSpan((b * length + position) * rowBytes, rowBytes)),
                    Is.True, $"tokens[{b}, {i}] is not input[{b}, {position}]");
                Assert.That(sourceMap[b * mapLength + position], Is.EqualTo(i), $"source_map[{b}, positions[{b}, {i}] = {position}]");
            }
            if (!output.ContainsKey("sizes"))
            {
                // A selection (no merged rows): the check above ran on some rows at least.
                Assert.That(kept, Is.GreaterThan(0), $"item {b}: no output row is kept from one input token");
            }
        }
    }

    // numpy loads what the CLI wrote (numpy -> CLI -> numpy): shapes, types, and the kept rows gathered from numpy's own input.
    private static void CheckWithNumpy(string directory, bool hasPositions)
    {
        string script = $$"""
            import numpy as np
            x = np.load('in.npy')
            x = x.reshape(x.shape[0], -1, x.shape[-1])
            out = np.load('out.npy')
            source_map = np.load('out.source_map.npy')
            assert out.dtype == np.float32 and out.ndim == 3 and out.shape[0] == x.shape[0] and out.shape[2] == x.shape[2], (out.dtype, out.shape)
            assert source_map.dtype == np.int32 and source_map.shape[0] == x.shape[0], (source_map.dtype, source_map.shape)
            if {{(hasPositions ? "True" : "False")}}:
                positions = np.load('out.positions.npy')
                assert positions.dtype == np.int32 and positions.shape == out.shape[:2], (positions.dtype, positions.shape)
                kept = positions >= 0
                gathered = np.take_along_axis(x, np.where(kept, positions, 0)[:, :, None], axis=1)
                assert np.array_equal(gathered[kept], out[kept]), 'gathered rows differ'
                b, i = np.nonzero(kept)
                assert np.array_equal(source_map[b, positions[b, i]], i), 'source map'
            print('ok')
            """;
        Assert.That(Python.RunChecked(script, directory).Trim(), Is.EqualTo("ok"));
    }
}
