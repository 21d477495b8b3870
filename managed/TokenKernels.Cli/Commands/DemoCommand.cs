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
    /// <summary>
    /// The methods the demo runs when none are named: every method it can feed (CDPruner needs a text encoder), the video ones on a
    /// pan across the photograph.
    /// </summary>
    public static IReadOnlyList<TokenMethod> DefaultMethods => MethodCatalog.All.Where(DemoBudget.Supports).ToList();

    /// <summary>Frames of the pan the video methods run on, by default.</summary>
    public const int DefaultFrames = 8;

    /// <summary>Where the pictures go by default, under the current directory.</summary>
    public const string DefaultOutputDirectory = "tokenkernels-demo";

    public static Command Create()
    {
        Option<string?> image = new("--image") { Description = "a PNG or JPEG photograph (default: the CC0 photograph shipped with the CLI, Assets/chelsea.png)" };
        Option<string[]> methods = CommonOptions.Methods("methods to draw (default: every method but cdpruner, which needs text; the video methods on the pan of --frames frames)");
        Option<string> output = new("--out", "-o") { Description = $"directory for the pictures (default: ./{DefaultOutputDirectory})", DefaultValueFactory = _ => DefaultOutputDirectory };
        Option<string> features = new("--features") { Description = "the tokens: 'pixels' (each patch's normalised RGB pixels), 'projection' (those times a fixed random 588 x 1024 matrix), or a .npy/.safetensors file of [1, N, C] or [N, C] features of the grid's patches", DefaultValueFactory = _ => DefaultFeatures };
        Option<string> grid = new Option<string>("--grid") { Description = "the ViT's patch grid: clip336 (LLaVA-1.5's CLIP ViT-L/14-336, 24x24), siglip384 (SigLIP so400m/14-384, 27x27) or vit224 (ViT-B/16-224, 14x14)", DefaultValueFactory = _ => DefaultGrid }
            .AcceptOnlyFromAmong("clip336", "siglip384", "vit224");
        Option<int> keep = new("--keep") { Description = $"tokens each image method keeps, as the papers compare them (default {DefaultKeep})", DefaultValueFactory = _ => DefaultKeep };
        Option<int> frames = new("--frames") { Description = $"frames of the camera pan across the photograph that the video methods run on, 2 to 64 (default {DefaultFrames}); 0 leaves the video methods out", DefaultValueFactory = _ => DefaultFrames };
        Option<int> scale = new("--scale") { Description = $"screen pixels per photo pixel in the pictures, 1 to 8 (default {DefaultScale})", DefaultValueFactory = _ => DefaultScale };
        Option<int?> threads = CommonOptions.Threads();
        var command = new Command("demo", "Cut a photograph into a ViT's patches, run each method on them at one token budget, and draw what it kept (dropped patches dimmed, merged groups filled with their mean colour and outlined): one PNG per method and a side-by-side sheet.")
        {
            image, methods, output, features, grid, keep, frames, scale, threads,
        };
        command.SetAction(parsed => Run(new DemoSettings(
            parsed.GetValue(image), parsed.GetValue(methods) ?? Array.Empty<string>(), parsed.GetValue(output)!, parsed.GetValue(features)!,
            parsed.GetValue(grid)!, parsed.GetValue(keep), parsed.GetValue(frames), parsed.GetValue(scale), parsed.GetValue(threads))));
        return command;
    }

    /// <summary>What one demo run does.</summary>
    internal sealed record DemoSettings(string? Image, string[] Methods, string OutputDirectory, string Features, string Grid, int Keep, int Frames, int Scale, int? Threads)
    {
        /// <summary>The demo with every option at its default: what the CLI runs with no command.</summary>
        public static DemoSettings Defaults { get; } = new(null, [], DefaultOutputDirectory, DefaultFeatures, DefaultGrid, DefaultKeep, DefaultFrames, DefaultScale, null);
    }

    /// <summary>The options' defaults.</summary>
    public const string DefaultFeatures = "pixels", DefaultGrid = "clip336";

    /// <summary>The options' defaults: the token budget (64 of 576, as the papers compare methods) and the pictures' scale.</summary>
    public const int DefaultKeep = 64, DefaultScale = 2;

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
            Console.Error.WriteLine($"error: --methods: the demo draws methods that need no text; {unsupported.Name} needs text embeddings." +
                                    $" The demo's methods: {string.Join(", ", DefaultMethods.Select(m => m.Name))}.");
            return ExitCodes.Usage;
        }
        if (settings.Frames != 0 && settings.Frames is < 2 or > 64)
        {
            Console.Error.WriteLine($"error: --frames must be 2 to 64, or 0 to leave the video methods out, got {settings.Frames}.");
            return ExitCodes.Usage;
        }
        bool featuresFromFile = settings.Features is not (DefaultFeatures or "projection");
        if (chosen.FirstOrDefault(m => m.IsVideo) is TokenMethod video && (settings.Frames == 0 || featuresFromFile))
        {
            Console.Error.WriteLine($"error: --methods: {video.Name} runs on the frames of a pan across the photograph, " +
                                    (settings.Frames == 0 ? "and --frames 0 leaves it out." : "which --features FILE (one image's features) does not give."));
            return ExitCodes.Usage;
        }
        if (chosen.Count == 0)
        {
            // The video methods need the pan's frames: with features from a file, or --frames 0, the image methods alone.
            chosen.AddRange(DefaultMethods.Where(m => !m.IsVideo || (settings.Frames >= 2 && !featuresFromFile)));
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
        IReadOnlyList<PatchImage> clip = Array.Empty<PatchImage>();
        IReadOnlyList<PatchFeatures> clipFeatures = Array.Empty<PatchFeatures>();
        try
        {
            using SKBitmap decoded = PatchImage.Read(imagePath);
            photo = PatchImage.FromBitmap(decoded, grid);
            features = settings.Features switch
            {
                DefaultFeatures => PatchFeatures.Pixels(photo),
                "projection" => PatchFeatures.Projection(photo),
                string path => FeaturesFromFile(path, grid),
            };
            if (chosen.Any(m => m.IsVideo))
            {
                clip = PanClip.Create(decoded, grid, settings.Frames);
                clipFeatures = clip.Select(frame => settings.Features == "projection" ? PatchFeatures.Projection(frame) : PatchFeatures.Pixels(frame)).ToList();
            }
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
        var strips = new List<SKBitmap>();
        var rows = new List<(string Method, string Tokens, string Milliseconds, string File)>();
        try
        {
            using SKBitmap original = renderer.RenderOriginal(photo, Path.GetFileName(imagePath));
            PngFile.Write(original, Path.Combine(directory, "original.png"));
            foreach (TokenMethod method in chosen.Where(m => m.IsVideo))
            {
                MethodInputs<float> inputs = DemoInputs.ForVideo(clipFeatures, grid);
                long start = Stopwatch.GetTimestamp();
                MethodOutcome<float> outcome = method.Run(inputs, MethodSettings.Defaults);
                double milliseconds = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                SKBitmap strip = Strip(renderer, clip, outcome, Label(method, MethodSettings.Defaults));
                strips.Add(strip);
                string file = Path.Combine(directory, method.Name + ".png");
                PngFile.Write(strip, file);
                rows.Add((method.Name, $"{inputs.Length} -> {outcome.ValidTokens(0)}", milliseconds.ToString("F2", CultureInfo.InvariantCulture), Path.GetFileName(file)));
            }
            if (strips.Count > 0)
            {
                using SKBitmap videoSheet = ContactSheet.Compose(strips[0], strips.Skip(1).ToList(), perRow: 1);
                PngFile.Write(videoSheet, Path.Combine(directory, "video-sheet.png"));
            }
            foreach (TokenMethod method in chosen.Where(m => !m.IsVideo))
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
            if (pictures.Count > 0)
            {
                using SKBitmap sheet = ContactSheet.Compose(original, pictures);
                PngFile.Write(sheet, Path.Combine(directory, "sheet.png"));
            }
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
            foreach (SKBitmap picture in pictures.Concat(strips))
            {
                picture.Dispose();
            }
        }

        string featureText = featuresFromFile ? Path.GetFileName(settings.Features) : settings.Features;
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
        if (strips.Count > 0)
        {
            AnsiConsole.MarkupLine(Markup.Escape($"The video methods ran on a {settings.Frames}-frame pan across the photograph ([1, {settings.Frames} x {grid.PatchCount}, {features.Channels}]) at their papers' defaults; each frame shows what it adds (patches merged into an earlier frame's token are dimmed)."));
        }
        AnsiConsole.MarkupLine(Markup.Escape($"Pictures in {directory}: " +
            string.Join(", ", new[] { pictures.Count > 0 ? "sheet.png (the image methods side by side)" : null, strips.Count > 0 ? "video-sheet.png (the video methods, a row of frames each)" : null }.Where(s => s != null)) +
            ", original.png and one per method."));
        return ExitCodes.Success;
    }

    // A row of frames, each drawn with what it adds to the sequence.
    private static SKBitmap Strip(OutcomeRenderer renderer, IReadOnlyList<PatchImage> clip, MethodOutcome<float> outcome, string label)
    {
        int patches = clip[0].Grid.PatchCount;
        var frames = new List<SKBitmap>(clip.Count);
        try
        {
            for (int t = 0; t < clip.Count; t++)
            {
                PatchFates fates = VideoFates.OfFrame(outcome.SourceMap.AsSpan(0, clip.Count * patches), patches, t);
                frames.Add(renderer.Render(clip[t], fates, $"{label}, frame {t}"));
            }
            return ContactSheet.Compose(frames[0], frames.Skip(1).ToList(), perRow: clip.Count);
        }
        finally
        {
            foreach (SKBitmap frame in frames)
            {
                frame.Dispose();
            }
        }
    }

    /// <summary>Each patch's output token, from the outcome's source map (the class token, when there is one, left out).</summary>
    public static PatchFates Fates(MethodOutcome<float> outcome, TokenGrid grid)
    {
        var ofPatch = new int[grid.PatchTokens];
        Array.Copy(outcome.SourceMap, grid.Prefix, ofPatch, 0, grid.PatchTokens);
        return new PatchFates(ofPatch, outcome.ValidTokens(0));
    }

    // "visionzip: dominant 54, contextual 10": the parameters the demo set, or the defaults where it set none.
    private static string Label(TokenMethod method, MethodSettings settings)
    {
        bool anyGiven = settings.GivenNames.Any();
        IEnumerable<string> shown = method.Parameters.Where(p => anyGiven ? settings.GivenNames.Contains(p.Name) : p.Default is not null)
            .Select(p => $"{p.Name} {MethodParameter.Format(Math.Round(settings.Real(p), 3))}");
        return method.Name + ": " + string.Join(", ", shown);
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
