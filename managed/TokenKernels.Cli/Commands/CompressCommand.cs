using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using TokenKernels;
using TokenKernels.Cli.Methods;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Commands;

/// <summary>
/// <c>tokenkernels compress</c>: tokens from a .npy or .safetensors file through one method, the compressed tokens and where
/// each came from written to a file of the same kind.
/// </summary>
internal static class CompressCommand
{
    /// <summary>Names a .safetensors file's tokens may have when <c>--tensor</c> is not given and it holds several tensors.</summary>
    public static readonly string[] TokenTensorNames = { "tokens", "hidden_states", "image_features", "video_embeds", "x" };

    public static Command Create()
    {
        Option<string> method = new Option<string>("--method") { Description = "the method: " + MethodCatalog.Names, Required = true };
        Option<string> input = new("--input", "-i") { Description = "tokens: a .npy file, or a .safetensors file ([N, C], [B, N, C], [B, T, P, C] or [B, T, H, W, C]; f32, f16 or bf16)", Required = true };
        Option<string> output = new("--output", "-o") { Description = "where the result goes: .safetensors (tensors tokens, source_map, positions, sizes, tokens_per_item) or .npy (the tokens; the others beside it as NAME.source_map.npy, ...)", Required = true };
        Option<string?> tensor = new("--tensor") { Description = "the tokens' name in a .safetensors input (default: its only tensor, or one named " + string.Join(", ", TokenTensorNames) + ")" };
        Option<string?> grid = new("--grid") { Description = "the patch grid, HxW or TxHxW (default: from a rank-4 or rank-5 input, else a square image)" };
        Option<int?> prefix = new("--prefix") { Description = "tokens before the grid: a class token (1), or the text before the image (FastV); default: what the method takes (visionzip 1, others 0)" };
        Option<string> device = CommonOptions.Device(allowAll: false);
        device.Description += "; on CUDA: " + MethodCatalog.CudaNames;
        Option<int?> threads = CommonOptions.Threads();
        var auxiliary = new Dictionary<AuxiliaryRole, Option<string?>>();
        foreach (AuxiliaryRole role in Enum.GetValues<AuxiliaryRole>())
        {
            string name = AuxiliaryNames.Of(role);
            auxiliary[role] = new Option<string?>(OptionName(role))
            {
                Description = $"{AuxiliaryNames.Describe(role)}: a .npy file, or a .safetensors file with one tensor or one named '{name}' (default: the '{name}' tensor of a .safetensors input)",
            };
        }
        var parameters = new Dictionary<string, Option<string?>>(StringComparer.Ordinal);
        foreach (IGrouping<string, (TokenMethod Method, MethodParameter Parameter)> named in MethodCatalog.All
                     .SelectMany(m => m.Parameters.Select(p => (Method: m, Parameter: p)))
                     .GroupBy(pair => pair.Parameter.Name))
        {
            string help = string.Join("; ", named.Select(pair => $"{pair.Method.Name}: {pair.Parameter.Description}" +
                (pair.Parameter.Default is double d ? $" (default {MethodParameter.Format(d)})" : "")));
            parameters[named.Key] = new Option<string?>("--" + named.Key) { Description = help, HelpName = "value" };
        }

        var command = new Command("compress", "Compress a token file with one method: the compressed tokens, and where each input token went (source map, kept positions, sizes), written in the input's format.")
        {
            method, input, output, tensor, grid, prefix, device, threads,
        };
        foreach (Option<string?> option in auxiliary.Values.Concat(parameters.Values))
        {
            command.Add(option);
        }
        command.SetAction(parsed =>
        {
            var given = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach ((string name, Option<string?> option) in parameters)
            {
                if (parsed.GetValue(option) is string value)
                {
                    given[name] = value;
                }
            }
            var auxiliaryFiles = new Dictionary<AuxiliaryRole, string>();
            foreach ((AuxiliaryRole role, Option<string?> option) in auxiliary)
            {
                if (parsed.GetValue(option) is string file)
                {
                    auxiliaryFiles[role] = file;
                }
            }
            return Run(new CompressSettings(parsed.GetValue(method)!, parsed.GetValue(input)!, parsed.GetValue(output)!, parsed.GetValue(tensor),
                parsed.GetValue(grid), parsed.GetValue(prefix), parsed.GetValue(device)!, parsed.GetValue(threads), given, auxiliaryFiles));
        });
        return command;
    }

    /// <summary>What one compress run does.</summary>
    internal sealed record CompressSettings(
        string Method, string Input, string Output, string? Tensor, string? Grid, int? Prefix, string Device, int? Threads,
        IReadOnlyDictionary<string, string> Parameters, IReadOnlyDictionary<AuxiliaryRole, string> AuxiliaryFiles);

    /// <summary>A problem with the command line, an input file or the method's input; the message and the exit code.</summary>
    private sealed class CompressError(int exitCode, string message) : Exception(message)
    {
        public int ExitCode { get; } = exitCode;
    }

    /// <summary>Runs compress; the exit code.</summary>
    public static int Run(CompressSettings settings)
    {
        try
        {
            return RunChecked(settings);
        }
        catch (CompressError e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return e.ExitCode;
        }
        catch (TensorFileException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return ExitCodes.InputFile;
        }
    }

    private static int RunChecked(CompressSettings settings)
    {
        TokenMethod method = MethodCatalog.Find(settings.Method)
            ?? throw new CompressError(ExitCodes.Usage, $"--method: unknown method '{settings.Method}'; the methods are {MethodCatalog.Names}.");
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach ((string name, string text) in settings.Parameters)
        {
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
            {
                throw new CompressError(ExitCodes.Usage, $"--{name} must be a number, got '{text}'.");
            }
            values[name] = value;
        }
        if (method.CheckSettings(values) is string settingsProblem)
        {
            throw new CompressError(ExitCodes.Usage, settingsProblem);
        }
        if (settings.Prefix is < 0)
        {
            throw new CompressError(ExitCodes.Usage, $"--prefix must be 0 or more, got {settings.Prefix}.");
        }
        bool outputIsNpy = string.Equals(Path.GetExtension(settings.Output), ".npy", StringComparison.OrdinalIgnoreCase);
        if (!outputIsNpy && !string.Equals(Path.GetExtension(settings.Output), ".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            throw new CompressError(ExitCodes.Usage, $"--output {settings.Output}: the output is a .npy or .safetensors file.");
        }
        string outputDirectory = Path.GetDirectoryName(Path.GetFullPath(settings.Output))!;
        if (!Directory.Exists(outputDirectory))
        {
            throw new CompressError(ExitCodes.OutputFile, $"{settings.Output}: cannot be written: the directory {outputDirectory} does not exist.");
        }
        bool onCuda = settings.Device == "cuda";
        if (onCuda && !method.RunsOnCuda)
        {
            throw new CompressError(ExitCodes.Usage, $"--device cuda: {method.Name} runs on the CPU only in the CLI; on CUDA: {MethodCatalog.CudaNames}.");
        }

        // Read everything before running anything.
        IReadOnlyList<StoredTensor> inputTensors = TensorFile.Read(settings.Input);
        StoredTensor tokens = TokensOf(settings, inputTensors);
        TensorDataType dataType = tokens.DataType switch
        {
            StoredDataType.Float32 => TensorDataType.Float32,
            StoredDataType.Float16 => TensorDataType.Float16,
            StoredDataType.BFloat16 => TensorDataType.BFloat16,
            _ => throw new TensorFileException(settings.Input, $"the tokens '{tokens.Name}' are {tokens.DataType.LongName()}; tokens are float32, float16 or bfloat16"),
        };
        if (dataType == TensorDataType.BFloat16 && outputIsNpy)
        {
            throw new CompressError(ExitCodes.Usage, $"--output {settings.Output}: the tokens are bfloat16, which .npy cannot hold (numpy has no bfloat16); write .safetensors.");
        }
        (TensorShape shape, TokenGrid grid) = Layout(settings, method, tokens);
        Dictionary<AuxiliaryRole, AuxiliaryTensor> auxiliary = Auxiliary(settings, method, inputTensors);
        if (method.CheckInputs(shape, grid, auxiliary.Keys) is string inputProblem)
        {
            // Where a needed input is missing, say both ways of giving it.
            string hint = string.Concat(method.Requires.Where(role => !auxiliary.ContainsKey(role))
                .Select(role => $" Give {OptionName(role)} FILE, or a tensor named '{AuxiliaryNames.Of(role)}' in a .safetensors input."));
            throw new CompressError(ExitCodes.InputFile, $"{settings.Input}: {inputProblem}{hint}");
        }
        if (!CommonOptions.LoadLibrary(settings.Threads))
        {
            return ExitCodes.Failure;
        }
        if (onCuda && !Cuda.IsAvailable)
        {
            throw new CompressError(ExitCodes.Failure, "--device cuda: no CUDA device: " + Cuda.UnavailableReason + ".");
        }

        var methodSettings = new MethodSettings(values);
        var run = new CompressRun(method, methodSettings, tokens, shape, grid, auxiliary, onCuda);
        long start = Stopwatch.GetTimestamp();
        List<StoredTensor> outputs;
        try
        {
            outputs = ElementTypes.Dispatch(dataType, run);
        }
        catch (Exception e) when (e is ArgumentException or TokenKernelsException)
        {
            // Name every file the method read: the offending one may be an auxiliary input. The parameter name .NET appends
            // to an ArgumentException's message means nothing on the command line. The settings were checked before the run,
            // so an ArgumentException is about the inputs' shapes or counts: a bad input file (3); anything else failed (1).
            string files = string.Join(" and ", settings.AuxiliaryFiles.Select(pair => $"{OptionName(pair.Key)} {pair.Value}").Prepend(settings.Input));
            string reason = e is ArgumentException { ParamName: string parameter } ? e.Message.Replace($" (Parameter '{parameter}')", "") : e.Message;
            throw new CompressError(e is ArgumentException ? ExitCodes.InputFile : ExitCodes.Failure, $"{method.Name} cannot take {files}: {reason}");
        }
        double milliseconds = Stopwatch.GetElapsedTime(start).TotalMilliseconds;

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["method"] = method.Name,
            ["parameters"] = string.Join(",", method.Parameters.Where(p => methodSettings.Get(p) is not null).Select(p => $"{p.Name}={MethodParameter.Format(methodSettings.Real(p))}")),
            ["input"] = Path.GetFileName(settings.Input),
            ["grid"] = grid.ToString(),
            ["library"] = "TokenKernels " + TokenKernelsLibrary.VersionString,
        };
        var written = new List<string>();
        try
        {
            if (outputIsNpy)
            {
                written.AddRange(WriteNpySet(settings.Output, outputs));
            }
            else
            {
                TensorFile.Write(settings.Output, outputs, metadata);
                written.Add(settings.Output);
            }
        }
        catch (TensorFileException e)
        {
            throw new CompressError(ExitCodes.OutputFile, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CompressError(ExitCodes.OutputFile, $"{settings.Output}: cannot be written: {e.Message}");
        }
        StoredTensor outputTokens = outputs[0];
        string kept = run.FewestTokens == run.MostTokens ? $"{run.FewestTokens}" : $"{run.FewestTokens} to {run.MostTokens}";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{method.Name} ({settings.Device}): {tokens} -> {outputTokens} ({shape[1]} -> {kept} tokens per item, grid {grid}) in {milliseconds:F2} ms"));
        Console.WriteLine($"wrote {string.Join(", ", written)} ({string.Join(", ", outputs.Select(o => o.Name))})");
        return ExitCodes.Success;
    }

    /// <summary>The tensors besides the tokens that compress writes, where the method gives them.</summary>
    public static readonly string[] SideTensorNames = { "source_map", "positions", "sizes", "tokens_per_item" };

    // A .npy output: the tokens at the path, the others beside it as STEM.NAME.npy. All are written under temporary names first
    // and renamed once every one is written, so a failure leaves none of the new files; side files an earlier run left there
    // that this run does not write (another method's sizes) are removed, so that what lies beside the tokens belongs to them.
    private static List<string> WriteNpySet(string output, List<StoredTensor> outputs)
    {
        string directory = Path.GetDirectoryName(output) ?? "";
        string stem = Path.Combine(directory, Path.GetFileNameWithoutExtension(output));
        var staged = new List<(string Temporary, string Path)>();
        try
        {
            foreach (StoredTensor result in outputs)
            {
                string path = result.Name == "tokens" ? output : $"{stem}.{result.Name}.npy";
                string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.npy");
                staged.Add((temporary, path));
                TensorFile.Write(temporary, new[] { result });
            }
            foreach ((string temporary, string path) in staged)
            {
                File.Move(temporary, path, overwrite: true);
            }
        }
        catch
        {
            foreach ((string temporary, _) in staged)
            {
                File.Delete(temporary);
            }
            throw;
        }
        foreach (string name in SideTensorNames.Except(outputs.Select(o => o.Name)))
        {
            File.Delete($"{stem}.{name}.npy");
        }
        return staged.Select(s => s.Path).ToList();
    }

    // The tokens: the input's only tensor, the one --tensor names, or one with a usual name.
    private static StoredTensor TokensOf(CompressSettings settings, IReadOnlyList<StoredTensor> tensors)
    {
        if (settings.Tensor is string name)
        {
            return tensors.FirstOrDefault(t => t.Name == name)
                ?? throw new CompressError(ExitCodes.InputFile, $"{settings.Input}: no tensor named '{name}' (it holds {string.Join(", ", tensors.Select(t => t.Name))}).");
        }
        if (tensors.Count == 1)
        {
            return tensors[0];
        }
        return TokenTensorNames.Select(n => tensors.FirstOrDefault(t => t.Name == n)).FirstOrDefault(t => t is not null)
            ?? throw new CompressError(ExitCodes.InputFile,
                $"{settings.Input}: which tensor holds the tokens? It holds {string.Join(", ", tensors.Select(t => $"{t.Name} {t}"))}; name one with --tensor.");
    }

    // [B, N, C] and the grid, from the input's rank, --grid and --prefix.
    private static (TensorShape Shape, TokenGrid Grid) Layout(CompressSettings settings, TokenMethod method, StoredTensor tokens)
    {
        long[] s = tokens.Shape;
        int prefix = settings.Prefix ?? method.Prefix ?? 0;
        (long batch, long length, long channels) = s.Length switch
        {
            2 => (1L, s[0], s[1]),
            3 => (s[0], s[1], s[2]),
            4 => (s[0], s[1] * s[2], s[3]),
            5 => (s[0], s[1] * s[2] * s[3], s[4]),
            _ => throw new CompressError(ExitCodes.InputFile, $"{settings.Input}: the tokens '{tokens.Name}' are {tokens}; expected [N, C], [B, N, C], [B, T, P, C] or [B, T, H, W, C]."),
        };
        if (batch < 1 || length < 1 || channels < 1 || length > int.MaxValue || batch > int.MaxValue)
        {
            throw new CompressError(ExitCodes.InputFile, $"{settings.Input}: the tokens '{tokens.Name}' are {tokens}; B, N and C must be at least 1.");
        }
        TokenGrid? grid;
        if (settings.Grid is string text)
        {
            grid = TokenGrid.Parse(text, prefix) ?? throw new CompressError(ExitCodes.Usage, $"--grid must be HxW or TxHxW with positive sizes, at most 2^31 - 1 tokens in all, got '{text}'.");
        }
        else if (s.Length == 5 && prefix == 0)
        {
            grid = new TokenGrid((int)s[1], (int)s[2], (int)s[3]);
        }
        else if (s.Length == 4 && prefix == 0)
        {
            grid = TokenGrid.SquareImage(s[2], 0) is TokenGrid frame ? frame with { Frames = (int)s[1] } : null;
        }
        else
        {
            grid = TokenGrid.SquareImage(length, prefix);
        }
        if (grid is null)
        {
            throw new CompressError(ExitCodes.InputFile,
                $"{settings.Input}: the tokens '{tokens.Name}' are {tokens}, which is not a square grid after {prefix} prefix token(s); give --grid HxW or TxHxW (and --prefix).");
        }
        return (new TensorShape(batch, length, channels), grid.Value);
    }

    // Each auxiliary input the method reads: its own option's file, else a tensor of that name in a .safetensors input.
    private static Dictionary<AuxiliaryRole, AuxiliaryTensor> Auxiliary(CompressSettings settings, TokenMethod method, IReadOnlyList<StoredTensor> inputTensors)
    {
        var auxiliary = new Dictionary<AuxiliaryRole, AuxiliaryTensor>();
        foreach ((AuxiliaryRole role, string path) in settings.AuxiliaryFiles)
        {
            if (!method.Accepts.Contains(role))
            {
                throw new CompressError(ExitCodes.Usage, $"{OptionName(role)}: {method.Name} does not read {AuxiliaryNames.Describe(role)}.");
            }
            IReadOnlyList<StoredTensor> tensors = TensorFile.Read(path);
            StoredTensor tensor = tensors.Count == 1 ? tensors[0]
                : tensors.FirstOrDefault(t => t.Name == AuxiliaryNames.Of(role))
                  ?? throw new CompressError(ExitCodes.InputFile, $"{path}: holds {tensors.Count} tensors and none named '{AuxiliaryNames.Of(role)}'.");
            auxiliary[role] = ToAuxiliary(path, tensor);
        }
        foreach (AuxiliaryRole role in method.Accepts)
        {
            if (!auxiliary.ContainsKey(role) && inputTensors.FirstOrDefault(t => t.Name == AuxiliaryNames.Of(role)) is StoredTensor tensor)
            {
                auxiliary[role] = ToAuxiliary(settings.Input, tensor);
            }
        }
        return auxiliary;
    }

    /// <summary>The option that gives an auxiliary input: "--attention", "--text-embeds", ...</summary>
    private static string OptionName(AuxiliaryRole role) => "--" + AuxiliaryNames.Of(role).Replace('_', '-');

    private static AuxiliaryTensor ToAuxiliary(string path, StoredTensor tensor)
    {
        if (tensor.DataType is not (StoredDataType.Float32 or StoredDataType.Float16 or StoredDataType.BFloat16))
        {
            throw new TensorFileException(path, $"'{tensor.Name}' is {tensor.DataType.LongName()}; it must be float32, float16 or bfloat16");
        }
        return new AuxiliaryTensor(tensor.ToFloat32(), new TensorShape(tensor.Shape));
    }

    /// <summary>The method on the tokens in their element type, and the results as tensors to write.</summary>
    private sealed class CompressRun(TokenMethod method, MethodSettings settings, StoredTensor tokens, TensorShape shape, TokenGrid grid,
                                     Dictionary<AuxiliaryRole, AuxiliaryTensor> auxiliary, bool onCuda) : IElementTypeAction<List<StoredTensor>>
    {
        /// <summary>The fewest valid output tokens of an item, once run.</summary>
        public int FewestTokens { get; private set; }

        /// <summary>The most valid output tokens of an item, once run.</summary>
        public int MostTokens { get; private set; }

        public List<StoredTensor> Invoke<T>()
            where T : unmanaged
        {
            var inputs = new MethodInputs<T>(tokens.ToArray<T>(), shape, grid, auxiliary);
            MethodOutcome<T> outcome;
            if (onCuda)
            {
                using var session = new CudaSession<T>(method, inputs);
                outcome = session.Download(session.Enqueue(settings));
            }
            else
            {
                outcome = method.Run(inputs, settings);
            }
            FewestTokens = Enumerable.Range(0, outcome.Batch).Min(outcome.ValidTokens);
            MostTokens = Enumerable.Range(0, outcome.Batch).Max(outcome.ValidTokens);
            long batch = outcome.Batch, rows = outcome.TokensShape[1];
            var results = new List<StoredTensor>
            {
                StoredTensor.FromArray("tokens", outcome.Tokens, batch, rows, outcome.TokensShape[2]),
                StoredTensor.FromArray("source_map", outcome.SourceMap, outcome.SourceMapShape[0], outcome.SourceMapShape[1]),
            };
            if (outcome.Positions is int[] positions)
            {
                results.Add(StoredTensor.FromArray("positions", positions, batch, rows));
            }
            if (outcome.Sizes is float[] sizes)
            {
                results.Add(StoredTensor.FromArray("sizes", sizes, batch, rows));
            }
            if (outcome.TokensPerItem is int[] counts)
            {
                results.Add(StoredTensor.FromArray("tokens_per_item", counts, batch));
            }
            return results;
        }
    }
}
