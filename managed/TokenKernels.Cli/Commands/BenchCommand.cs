using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using Spectre.Console;
using TokenKernels;
using TokenKernels.Cli.Bench;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Commands;

/// <summary><c>tokenkernels bench</c>: every method at its real shapes, with progress, a table and optional JSON.</summary>
internal static class BenchCommand
{
    /// <summary>Timed calls per case by default, and under <c>--quick</c>.</summary>
    public const int DefaultRuns = 10, QuickRuns = 3;

    public static Command Create()
    {
        Option<string[]> methods = CommonOptions.Methods("methods to time (default: all)");
        Option<string> dtype = CommonOptions.DataType("element type of the tokens (default f32)");
        Option<string> device = CommonOptions.Device(allowAll: true);
        Option<int?> runCount = new("--runs") { Description = $"timed calls per case after one warm-up (default {DefaultRuns}, {QuickRuns} with --quick)" };
        Option<bool> quick = new("--quick") { Description = "fewer calls, and no long-video cases" };
        Option<string?> json = new("--json") { Description = "also write the results as JSON to this file ('-': to standard output, instead of the table)" };
        Option<int?> threads = CommonOptions.Threads();
        var command = new Command("bench", "Time every method at the shapes of the models it serves (LLaVA-1.5, LLaVA-OneVision, LLaVA-Video 64 frames, long video), on the CPU and on CUDA device 0 for the methods the CLI runs there: tokens in and out, median and spread, bandwidth for the memory-bound ones.")
        {
            methods, dtype, device, runCount, quick, json, threads,
        };
        runCount.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 1)
            {
                result.AddError("--runs must be 1 or more.");
            }
        });
        command.SetAction(parsed => Run(new BenchSettings(
            parsed.GetValue(methods) ?? Array.Empty<string>(),
            CommonOptions.ParseDataType(parsed.GetValue(dtype)!),
            parsed.GetValue(device)!,
            parsed.GetValue(runCount) ?? (parsed.GetValue(quick) ? QuickRuns : DefaultRuns),
            parsed.GetValue(quick),
            parsed.GetValue(json),
            parsed.GetValue(threads))));
        return command;
    }

    /// <summary>What one bench run does.</summary>
    internal sealed record BenchSettings(string[] Methods, TensorDataType DataType, string Device, int Runs, bool Quick, string? Json, int? Threads);

    /// <summary>Runs the bench; the exit code.</summary>
    public static int Run(BenchSettings settings)
    {
        if (!MethodCatalog.TryResolve(settings.Methods, out List<TokenMethod> chosen, out string? unknown))
        {
            Console.Error.WriteLine($"error: --methods: unknown method '{unknown}'; the methods are {MethodCatalog.Names}.");
            return ExitCodes.Usage;
        }
        if (chosen.Count == 0)
        {
            chosen.AddRange(MethodCatalog.All);
        }
        if (!CommonOptions.LoadLibrary(settings.Threads))
        {
            return ExitCodes.Failure;
        }
        if (settings.Device == "cuda" && !Cuda.IsAvailable)
        {
            Console.Error.WriteLine("error: --device cuda: no CUDA device: " + Cuda.UnavailableReason + ".");
            return ExitCodes.Failure;
        }
        // (case, on CUDA): the CPU's cases, then CUDA's for the methods that run there.
        var runs = new List<(BenchCase Case, bool OnCuda)>();
        List<BenchCase> cases = chosen.SelectMany(BenchCases.For).Where(c => !(settings.Quick && c.IsLong)).ToList();
        if (settings.Device != "cuda")
        {
            runs.AddRange(cases.Select(c => (c, false)));
        }
        if (settings.Device == "cuda" || (settings.Device == "all" && Cuda.IsAvailable))
        {
            runs.AddRange(cases.Where(c => c.Method.RunsOnCuda).Select(c => (c, true)));
            string[] hostOnly = chosen.Where(m => !m.RunsOnCuda).Select(m => m.Name).ToArray();
            if (hostOnly.Length > 0)
            {
                Console.Error.WriteLine($"note: {string.Join(", ", hostOnly)} run on the CPU only in the CLI; no CUDA times for them.");
            }
        }
        bool jsonToStandardOutput = settings.Json == "-";
        var results = new List<BenchResult>();
        try
        {
            if (jsonToStandardOutput)
            {
                foreach ((BenchCase benchCase, bool onCuda) in runs)
                {
                    results.Add(BenchRunner.Run(benchCase, settings.DataType, settings.Runs, onCuda, () => { }));
                }
            }
            else
            {
                if (Console.IsOutputRedirected)
                {
                    // A file or pipe has no width; the table's rows stay on one line each.
                    AnsiConsole.Profile.Width = 160;
                }
                string where = (settings.Device != "cuda" ? $"CPU ({TokenKernelsLibrary.CpuIsa}, {TokenKernelsLibrary.NumThreads} threads)" : "")
                    + (runs.Any(r => r.OnCuda) ? (settings.Device == "cuda" ? "" : " and ") + $"CUDA device 0 ({Cuda.GetDeviceName(0)})" : "");
                AnsiConsole.MarkupLine($"[bold]TokenKernels {TokenKernelsLibrary.VersionString}[/]: {runs.Count} cases, {ElementTypes.ShortName(settings.DataType)}, {Markup.Escape(where)}, 1 warm-up + {settings.Runs} timed calls each");
                AnsiConsole.Progress()
                    .AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                    .Start(context =>
                    {
                        ProgressTask overall = context.AddTask("all cases", maxValue: runs.Count * (settings.Runs + 1.0));
                        foreach ((BenchCase benchCase, bool onCuda) in runs)
                        {
                            overall.Description = Markup.Escape($"{benchCase.Method.Name} ({(onCuda ? "cuda" : "cpu")}): {benchCase.Workload}");
                            results.Add(BenchRunner.Run(benchCase, settings.DataType, settings.Runs, onCuda, () => overall.Increment(1)));
                        }
                        overall.Description = "done";
                    });
                AnsiConsole.Write(Table(results));
            }
        }
        catch (Exception e) when (e is ArgumentException or TokenKernelsException or OutOfMemoryException)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return ExitCodes.Failure;
        }
        if (settings.Json is string path)
        {
            string text = JsonSerializer.Serialize(Report(results), new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
            if (jsonToStandardOutput)
            {
                Console.WriteLine(text);
            }
            else
            {
                try
                {
                    AtomicFile.WriteAllText(path, text + Environment.NewLine);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"error: --json {path}: {e.Message}");
                    return ExitCodes.OutputFile;
                }
                AnsiConsole.MarkupLine($"JSON: [link]{Markup.Escape(Path.GetFullPath(path))}[/]");
            }
        }
        return ExitCodes.Success;
    }

    private static object Report(List<BenchResult> results) => new
    {
        Library = "TokenKernels " + TokenKernelsLibrary.VersionString,
        LibraryPath = TokenKernelsLibrary.LoadedFrom,
        CpuIsa = TokenKernelsLibrary.CpuIsa,
        CudaDevice = Cuda.IsAvailable ? Cuda.GetDeviceName(0) : null,
        Threads = TokenKernelsLibrary.NumThreads,
        Date = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        Results = results,
    };

    private static Table Table(List<BenchResult> results)
    {
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("method");
        table.AddColumn("device");
        table.AddColumn("shapes");
        table.AddColumn("input [[B, N, C]]");
        table.AddColumn(new TableColumn("tokens in -> out").RightAligned());
        table.AddColumn(new TableColumn("median ms").RightAligned());
        table.AddColumn(new TableColumn("min - max ms").RightAligned());
        table.AddColumn(new TableColumn("GB/s").RightAligned());
        foreach (BenchResult r in results)
        {
            table.AddRow(
                Markup.Escape(r.Method), r.Device, Markup.Escape(r.Workload), Markup.Escape($"{r.Shape} {r.DataType}, grid {r.Grid}"),
                $"{r.TokensIn} -> {r.TokensOut}",
                Format(r.MedianMilliseconds), $"{Format(r.MinMilliseconds)} - {Format(r.MaxMilliseconds)}",
                r.GigabytesPerSecond is double gbs ? gbs.ToString("F1", CultureInfo.InvariantCulture) : "");
        }
        return table;
    }

    private static string Format(double milliseconds)
        => milliseconds.ToString(milliseconds < 10 ? "F3" : milliseconds < 100 ? "F2" : "F1", CultureInfo.InvariantCulture);
}
