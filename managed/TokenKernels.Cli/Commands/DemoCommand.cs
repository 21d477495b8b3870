using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using SkiaSharp;
using Spectre.Console;
using TokenKernels;
using TokenKernels.Cli.Demo;
using TokenKernels.Cli.Methods;
using TokenKernels.Cli.TensorFiles;

namespace TokenKernels.Cli.Commands;

/// <summary><c>tokenkernels demo</c>: a photograph cut into a ViT's patches, every image method run on them, one picture each.</summary>
internal static class DemoCommand
{
    /// <summary>The methods the demo runs when none are named: every image method it can feed (CDPruner needs a text encoder).</summary>
    public static IReadOnlyList<TokenMethod> DefaultMethods => MethodCatalog.All.Where(DemoBudget.Supports).ToList();

    /// <summary>Where the pictures go by default, under the current directory.</summary>
    public const string DefaultOutputDirectory = "tokenkernels-demo";

    public static Command Create()
    {
        Option<string?> image = new("--image") { Description = "a PNG or JPEG photograph (default: the CC0 photograph shipped with the CLI, Assets/chelsea.png)" };
        Option<string[]> methods = CommonOptions.Methods("methods to draw (default: every image method but cdpruner)");
        Option<string> output = new("--out", "-o") { Description = $"directory for the pictures (default: ./{DefaultOutputDirectory})", DefaultValueFactory = _ => DefaultOutputDirectory };
        Option<string> features = new("--features") { Description = "the tokens: 'pixels' (each patch's normalised RGB pixels), 'projection' (those times a fixed random 588 x 1024 matrix), or a .npy/.safetensors file of [1, N, C] or [N, C] features of the grid's patches", DefaultValueFactory = _ => "pixels" };
        Option<string> grid = new Option<string>("--grid") { Description = "the ViT's patch grid: clip336 (LLaVA-1.5's CLIP ViT-L/14-336, 24x24), siglip384 (SigLIP so400m/14-384, 27x27) or vit224 (ViT-B/16-224, 14x14)", DefaultValueFactory = _ => "clip336" }
            .AcceptOnlyFromAmong("clip336", "siglip384", "vit224");
        Option<int> keep = new("--keep") { Description = "tokens each method keeps, as the papers compare them (default 64)", DefaultValueFactory = _ => 64 };
        Option<int> scale = new("--scale") { Description = "screen pixels per photo pixel in the pictures, 1 to 8 (default 2)", DefaultValueFactory = _ => 2 };
        Option<int?> threads = CommonOptions.Threads();
        var command = new Command("demo", "Cut a photograph into a ViT's patches, run each method on them at one token budget, and draw what it kept (dropped patches dimmed, merged groups filled with their mean colour and outlined): one PNG per method and a side-by-side sheet.")
        {
            image, methods, output, features, grid, keep, scale, threads,
        };
        command.SetAction(parsed => Run(new DemoSettings(
            parsed.GetValue(image), parsed.GetValue(methods) ?? Array.Empty<string>(), parsed.GetValue(output)!, parsed.GetValue(features)!,
            parsed.GetValue(grid)!, parsed.GetValue(keep), parsed.GetValue(scale), parsed.GetValue(threads))));
        return command;
    }

    /// <summary>What one demo run does.</summary>
    internal sealed record DemoSettings(string? Image, string[] Methods, string OutputDirectory, string Features, string Grid, int Keep, int Scale, int? Threads);

    /// <summary>Runs the demo; the exit code.</summary>
    public static int Run(DemoSettings settings)
    {
        if (!MethodCatalog.TryResolve(settings.Methods, out List<TokenMethod> chosen, out string? unknown))
        {
            Console.Error.WriteLine($"error: --methods: unknown method '{unknown}'; the methods are {MethodCatalog.Names}.");
            return ExitCodes.Usage;
        }
        if (chosen.FirstOrDefault(m => !DemoBudget.Supports(m)) is TokenMethod unsupported)
        {
            Console.Error.WriteLine($"error: --methods: the demo draws image methods that need no text; {unsupported.Name} " +
                                    (unsupported.IsVideo ? "works on video frames." : "needs text embeddings.") +
                                    $" The demo's methods: {string.Join(", ", DefaultMethods.Select(m => m.Name))}.");
            return ExitCodes.Usage;
        }
        if (chosen.Count == 0)
        {
            chosen.AddRange(DefaultMethods);
        }
        PatchGrid grid = settings.Grid switch
        {
            "siglip384" => PatchGrid.SigLipSo400m14At384,
            "vit224" => PatchGrid.VitB16At224,
            _ => PatchGrid.ClipVitL14At336,
        };
        if (settings.Keep < 2 || settings.Keep >= grid.PatchCount)
        {
            Console.Error.WriteLine($"error: --keep must be 2 to {grid.PatchCount - 1} (the {grid} has {grid.PatchCount}), got {settings.Keep}.");
            return ExitCodes.Usage;
        }
        if (settings.Scale is < 1 or > 8)
        {
            Console.Error.WriteLine($"error: --scale must be 1 to 8, got {settings.Scale}.");
            return ExitCodes.Usage;
        }
        if (!CommonOptions.LoadLibrary(settings.Threads))
        {
            return ExitCodes.Failure;
        }

        string imagePath = settings.Image ?? Path.Combine(AppContext.BaseDirectory, "Assets", "chelsea.png");
        PatchImage photo;
        PatchFeatures features;
        try
        {
            photo = PatchImage.Load(imagePath, grid);
            features = settings.Features switch
            {
                "pixels" => PatchFeatures.Pixels(photo),
                "projection" => PatchFeatures.Projection(photo),
                string path => FeaturesFromFile(path, grid),
            };
        }
        catch (ImageFileException e)
        {
            Console.Error.WriteLine("error: --image: " + e.Message);
            return ExitCodes.InputFile;
        }
        catch (TensorFileException e)
        {
            Console.Error.WriteLine("error: --features: " + e.Message);
            return ExitCodes.InputFile;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine("error: --features: " + e.Message);
            return ExitCodes.InputFile;
        }

        var renderer = new OutcomeRenderer(settings.Scale);
        string directory = Path.GetFullPath(settings.OutputDirectory);
        var pictures = new List<SKBitmap>();
        var rows = new List<(string Method, string Tokens, string Milliseconds, string File)>();
        try
        {
            using SKBitmap original = renderer.RenderOriginal(photo, Path.GetFileName(imagePath));
            PngFile.Write(original, Path.Combine(directory, "original.png"));
            foreach (TokenMethod method in chosen)
            {
                MethodInputs<float> inputs = DemoInputs.For(method, features, grid);
                MethodSettings methodSettings = DemoBudget.For(method, grid.PatchCount, settings.Keep);
                long start = Stopwatch.GetTimestamp();
                MethodOutcome<float> outcome = method.Run(inputs, methodSettings);
                double milliseconds = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                PatchFates fates = Fates(outcome, inputs.Grid);
                SKBitmap picture = renderer.Render(photo, fates, Label(method, methodSettings));
                pictures.Add(picture);
                string file = Path.Combine(directory, method.Name + ".png");
                PngFile.Write(picture, file);
                rows.Add((method.Name, $"{inputs.Length} -> {outcome.ValidTokens(0)}", milliseconds.ToString("F2", CultureInfo.InvariantCulture), Path.GetFileName(file)));
            }
            using SKBitmap sheet = ContactSheet.Compose(original, pictures);
            PngFile.Write(sheet, Path.Combine(directory, "sheet.png"));
        }
        catch (IOException e)
        {
            Console.Error.WriteLine("error: --out: " + e.Message);
            return ExitCodes.OutputFile;
        }
        catch (Exception e) when (e is ArgumentException or TokenKernelsException)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return ExitCodes.Failure;
        }
        finally
        {
            foreach (SKBitmap picture in pictures)
            {
                picture.Dispose();
            }
        }

        string featureText = settings.Features is "pixels" or "projection" ? settings.Features : Path.GetFileName(settings.Features);
        AnsiConsole.MarkupLine(Markup.Escape($"{Path.GetFileName(imagePath)} as {grid} ({grid.PatchCount} tokens, features: {featureText}, [1, {features.TokenCount}, {features.Channels}] f32), each method keeping {settings.Keep}:"));
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("method");
        table.AddColumn(new TableColumn("tokens").RightAligned());
        table.AddColumn(new TableColumn("ms").RightAligned());
        table.AddColumn("picture");
        foreach ((string method, string tokens, string ms, string file) in rows)
        {
            table.AddRow(Markup.Escape(method), tokens, ms, Markup.Escape(file));
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(Markup.Escape($"Pictures in {directory}: sheet.png (all side by side), original.png and one per method."));
        return ExitCodes.Success;
    }

    /// <summary>Each patch's output token, from the outcome's source map (the class token, when there is one, left out).</summary>
    public static PatchFates Fates(MethodOutcome<float> outcome, TokenGrid grid)
    {
        var ofPatch = new int[grid.PatchTokens];
        Array.Copy(outcome.SourceMap, grid.Prefix, ofPatch, 0, grid.PatchTokens);
        return new PatchFates(ofPatch, outcome.ValidTokens(0));
    }

    // "visionzip: dominant 54, contextual 10": the parameters the demo set.
    private static string Label(TokenMethod method, MethodSettings settings)
    {
        IEnumerable<string> set = method.Parameters.Where(p => settings.GivenNames.Contains(p.Name))
            .Select(p => $"{p.Name} {MethodParameter.Format(Math.Round(settings.Real(p), 3))}");
        return method.Name + ": " + string.Join(", ", set);
    }

    private static PatchFeatures FeaturesFromFile(string path, PatchGrid grid)
    {
        IReadOnlyList<StoredTensor> tensors = TensorFile.Read(path);
        if (tensors.Count != 1)
        {
            throw new TensorFileException(path, $"holds {tensors.Count} tensors; the features are one tensor [1, N, C] or [N, C]");
        }
        StoredTensor tensor = tensors[0];
        if (tensor.DataType is not (StoredDataType.Float32 or StoredDataType.Float16 or StoredDataType.BFloat16))
        {
            throw new TensorFileException(path, $"holds {tensor.DataType.ShortName()} values; features are float32, float16 or bfloat16");
        }
        return PatchFeatures.FromValues(tensor.ToFloat32(), tensor.Shape, grid, Path.GetFileName(path));
    }
}
