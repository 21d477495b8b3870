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
        Option<string> device = CommonOptions.Device(allowAll: false);
        Option<int?> runs = new("--runs") { Description = $"timed calls per case after one warm-up (default {DefaultRuns}, {QuickRuns} with --quick)" };
        Option<bool> quick = new("--quick") { Description = "fewer calls, and no long-video cases" };
        Option<string?> json = new("--json") { Description = "also write the results as JSON to this file ('-': to standard output, instead of the table)" };
        Option<int?> threads = CommonOptions.Threads();
        var command = new Command("bench", "Time every method at the shapes of the models it serves (LLaVA-1.5, LLaVA-OneVision, LLaVA-Video 64 frames, long video): tokens in and out, median and spread, bandwidth for the memory-bound ones.")
        {
            methods, dtype, device, runs, quick, json, threads,
        };
        runs.Validators.Add(result =>
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
            parsed.GetValue(runs) ?? (parsed.GetValue(quick) ? QuickRuns : DefaultRuns),
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
        if (settings.Device == "cuda")
        {
            Console.Error.WriteLine(Cuda.IsAvailable
                ? "error: --device cuda: the bench times the host API only; time CUDA kernels with bench/harness/run.py or the BenchmarkDotNet project (bench/managed)."
                : "error: --device cuda: no CUDA device: " + Cuda.UnavailableReason + ".");
            return ExitCodes.Failure;
        }

        List<BenchCase> cases = chosen.SelectMany(BenchCases.For).Where(c => !(settings.Quick && c.IsLong)).ToList();
        bool jsonToStandardOutput = settings.Json == "-";
        var results = new List<BenchResult>();
        try
        {
            if (jsonToStandardOutput)
            {
                foreach (BenchCase benchCase in cases)
                {
                    results.Add(BenchRunner.Run(benchCase, settings.DataType, settings.Runs, () => { }));
                }
            }
            else
            {
                if (Console.IsOutputRedirected)
                {
                    // A file or pipe has no width; the table's rows stay on one line each.
                    AnsiConsole.Profile.Width = 160;
                }
                AnsiConsole.MarkupLine($"[bold]TokenKernels {TokenKernelsLibrary.VersionString}[/]: {cases.Count} cases, {ElementTypes.ShortName(settings.DataType)}, CPU ({TokenKernelsLibrary.CpuIsa}, {TokenKernelsLibrary.NumThreads} threads), 1 warm-up + {settings.Runs} timed calls each");
                AnsiConsole.Progress()
                    .AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                    .Start(context =>
                    {
                        ProgressTask overall = context.AddTask("all cases", maxValue: cases.Count * (settings.Runs + 1.0));
                        foreach (BenchCase benchCase in cases)
                        {
                            overall.Description = Markup.Escape($"{benchCase.Method.Name}: {benchCase.Workload}");
                            results.Add(BenchRunner.Run(benchCase, settings.DataType, settings.Runs, () => overall.Increment(1)));
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
        Threads = TokenKernelsLibrary.NumThreads,
        Date = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        Results = results,
    };

    private static Table Table(List<BenchResult> results)
    {
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("method");
        table.AddColumn("shapes");
        table.AddColumn("input [[B, N, C]]");
        table.AddColumn(new TableColumn("tokens in -> out").RightAligned());
        table.AddColumn(new TableColumn("median ms").RightAligned());
        table.AddColumn(new TableColumn("min - max ms").RightAligned());
        table.AddColumn(new TableColumn("GB/s").RightAligned());
        foreach (BenchResult r in results)
        {
            table.AddRow(
                Markup.Escape(r.Method), Markup.Escape(r.Workload), Markup.Escape($"{r.Shape} {r.DataType}, grid {r.Grid}"),
                $"{r.TokensIn} -> {r.TokensOut}",
                Format(r.MedianMilliseconds), $"{Format(r.MinMilliseconds)} - {Format(r.MaxMilliseconds)}",
                r.GigabytesPerSecond is double gbs ? gbs.ToString("F1", CultureInfo.InvariantCulture) : "");
        }
        return table;
    }

    private static string Format(double milliseconds)
        => milliseconds.ToString(milliseconds < 10 ? "F3" : milliseconds < 100 ? "F2" : "F1", CultureInfo.InvariantCulture);
}
