using System;
using System.IO;
using System.Linq;
using NUnit.Framework;
using SkiaSharp;
using TokenKernels.Cli.Commands;
using TokenKernels.Cli.Demo;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Tests;

/// <summary><c>tokenkernels demo</c>: the pictures it writes, checked pixel by pixel where the method's outcome is known.</summary>
public sealed class DemoCommandTests
{
    private static string Photograph => Path.Combine(AppContext.BaseDirectory, "Assets", "chelsea.png");

    private static SKBitmap Decode(string path)
    {
        Assert.That(File.Exists(path), Is.True, path + " was not written");
        return SKBitmap.Decode(path) ?? throw new AssertionException(path + " does not decode as an image");
    }

    [Test]
    public void TheDefaultDemoDrawsEveryMethodAndDivPruneKeepsItsBudget()
    {
        using var directory = new TemporaryDirectory();
        string output = directory.File("pictures");
        CliRun run = CliProcess.Run("demo", "--out", output);
        CliAssert.Succeeded(run);

        string[] expected = new[] { "original", "sheet", "video-sheet" }.Concat(DemoCommand.DefaultMethods.Select(m => m.Name)).Select(n => n + ".png").Order().ToArray();
        Assert.That(CliAssert.FilesIn(output), Is.EqualTo(expected));
        PatchImage photo = PatchImage.Load(Photograph, PatchGrid.ClipVitL14At336);
        var renderer = new OutcomeRenderer();
        (int width, int height) = renderer.PictureSize(photo);
        (int stripWidth, int stripHeight) = StripSize(width, height, DemoCommand.DefaultFrames);
        foreach (string name in expected.Where(n => n is not ("sheet.png" or "video-sheet.png")))
        {
            using SKBitmap picture = Decode(Path.Combine(output, name));
            bool video = MethodCatalog.Find(Path.GetFileNameWithoutExtension(name)) is { IsVideo: true };
            Assert.That((picture.Width, picture.Height), Is.EqualTo(video ? (stripWidth, stripHeight) : (width, height)), name);
        }
        using (SKBitmap sheet = Decode(Path.Combine(output, "sheet.png")))
        {
            Assert.That(sheet.Width, Is.GreaterThan(width), "the sheet sets the pictures side by side");
        }

        // divprune.png against original.png, patch by patch: kept patches are the original's pixels, dropped ones darker.
        using SKBitmap original = Decode(Path.Combine(output, "original.png"));
        using SKBitmap divprune = Decode(Path.Combine(output, "divprune.png"));
        PatchGrid grid = photo.Grid;
        int side = grid.PatchSize * renderer.Scale;
        var kept = new bool[grid.PatchCount];
        for (int patch = 0; patch < grid.PatchCount; patch++)
        {
            (int x0, int y0) = photo.PatchOrigin(patch);
            bool same = true, darker = true;
            double originalLuma = 0, drawnLuma = 0;
            for (int y = renderer.TitleBarHeight + y0 * renderer.Scale; y < renderer.TitleBarHeight + y0 * renderer.Scale + side; y++)
            {
                for (int x = x0 * renderer.Scale; x < x0 * renderer.Scale + side; x++)
                {
                    SKColor a = original.GetPixel(x, y), b = divprune.GetPixel(x, y);
                    same &= a == b;
                    // One unit of slack for the dimming's rounding.
                    darker &= Luma(b) <= Luma(a) + 1;
                    originalLuma += Luma(a);
                    drawnLuma += Luma(b);
                }
            }
            kept[patch] = same;
            if (!same)
            {
                Assert.That(darker && drawnLuma < originalLuma, Is.True, $"dropped patch {patch} is not darker than the original's");
            }
        }
        Assert.That(kept.Count(k => k), Is.EqualTo(64), "the patches divprune.png shows kept (--keep 64)");

        // The kept patches are the ones DivPrune keeps in process on the demo's inputs.
        Assert.That(NativeLibrary.TryLoad(out string? error), Is.True, error);
        TokenMethod method = MethodCatalog.Find("divprune")!;
        MethodInputs<float> inputs = DemoInputs.For(method, PatchFeatures.Pixels(photo), grid);
        MethodOutcome<float> outcome = method.Run(inputs, DemoBudget.For(method, grid.PatchCount, 64));
        Assert.That(Enumerable.Range(0, grid.PatchCount).Where(p => kept[p]), Is.EquivalentTo(outcome.Positions!));
    }

    private static double Luma(SKColor color) => 0.299 * color.Red + 0.587 * color.Green + 0.114 * color.Blue;

    // A row of frames: ContactSheet's layout of that many pictures, all in one row.
    private static (int Width, int Height) StripSize(int width, int height, int frames)
    {
        var pictures = Enumerable.Range(0, frames).Select(_ => new SKBitmap(width, height)).ToList();
        try
        {
            (int stripWidth, int stripHeight, _, _) = ContactSheet.Layout(pictures, frames);
            return (stripWidth, stripHeight);
        }
        finally
        {
            pictures.ForEach(p => p.Dispose());
        }
    }

    [Test]
    public void AVideoMethodDrawsEachFrameOfThePanWithWhatItAdds()
    {
        const int frames = 4;
        using var directory = new TemporaryDirectory();
        CliRun run = CliProcess.Run("demo", "--out", directory.Path, "--methods", "evs,framefusion", "--frames", frames.ToString(System.Globalization.CultureInfo.InvariantCulture));
        CliAssert.Succeeded(run);
        Assert.That(CliAssert.FilesIn(directory.Path), Is.EqualTo(new[] { "evs.png", "framefusion.png", "original.png", "video-sheet.png" }));

        // The same pan and the same method in process: each frame's kept patches are the frame's own pixels in the strip.
        Assert.That(NativeLibrary.TryLoad(out string? error), Is.True, error);
        PatchGrid grid = PatchGrid.ClipVitL14At336;
        using SKBitmap photo = PatchImage.Read(Photograph);
        var clip = PanClip.Create(photo, grid, frames);
        var renderer = new OutcomeRenderer();
        (int width, int height) = renderer.PictureSize(clip[0]);
        foreach (string name in new[] { "evs", "framefusion" })
        {
            TokenMethod method = MethodCatalog.Find(name)!;
            MethodOutcome<float> outcome = method.Run(DemoInputs.ForVideo(clip.Select(PatchFeatures.Pixels).ToList(), grid), MethodSettings.Defaults);
            using SKBitmap strip = Decode(directory.File(name + ".png"));
            Assert.That((strip.Width, strip.Height), Is.EqualTo(StripSize(width, height, frames)), name);
            for (int t = 0; t < frames; t++)
            {
                PatchFates fates = VideoFates.OfFrame(outcome.SourceMap, grid.PatchCount, t);
                int left = ContactSheet.Gap + t * (width + ContactSheet.Gap), top = ContactSheet.Gap + renderer.TitleBarHeight;
                int keptInPicture = 0;
                for (int patch = 0; patch < grid.PatchCount; patch++)
                {
                    (int x0, int y0) = clip[t].PatchOrigin(patch);
                    bool same = true;
                    for (int y = 1; y < grid.PatchSize - 1 && same; y++)
                    {
                        for (int x = 1; x < grid.PatchSize - 1 && same; x++)
                        {
                            (byte r, byte g, byte b) = clip[t].GetPixel(x0 + x, y0 + y);
                            SKColor drawn = strip.GetPixel(left + (x0 + x) * renderer.Scale, top + (y0 + y) * renderer.Scale);
                            same = drawn.Red == r && drawn.Green == g && drawn.Blue == b;
                        }
                    }
                    if (fates.FateOf(patch) == PatchFate.Kept)
                    {
                        Assert.That(same, Is.True, $"{name}: frame {t}, patch {patch} is kept but not drawn as the frame's pixels");
                    }
                    keptInPicture += same ? 1 : 0;
                }
                Assert.That(keptInPicture, Is.EqualTo(fates.CountOf(PatchFate.Kept)), $"{name}: frame {t}'s patches drawn as kept");
                if (t == 0 && name == "evs")
                {
                    Assert.That(keptInPicture, Is.EqualTo(grid.PatchCount), "EVS keeps frame 0 whole");
                }
            }
        }
    }

    [Test]
    public void VideoFatesShowWhatEachFrameAdds()
    {
        // Two patches per frame; token 0 spans frames 0 and 1, token 2 frames 1 and 2, token 1 is frame 0's alone, the last patch dropped.
        int[] map = { 0, 1, 0, 2, -1, 2 };
        Assert.That(Enumerable.Range(0, 2).Select(p => VideoFates.OfFrame(map, 2, 0).OutputTokenOf(p)), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(Enumerable.Range(0, 2).Select(p => VideoFates.OfFrame(map, 2, 1).OutputTokenOf(p)), Is.EqualTo(new[] { -1, 0 }));
        Assert.That(Enumerable.Range(0, 2).Select(p => VideoFates.OfFrame(map, 2, 2).OutputTokenOf(p)), Is.EqualTo(new[] { -1, -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => VideoFates.OfFrame(map, 2, 3));
    }

    [Test]
    public void ChosenMethodsOnAnotherGridWriteOnlyTheirPictures()
    {
        using var directory = new TemporaryDirectory();
        CliRun run = CliProcess.Run("demo", "--out", directory.Path, "--methods", "tome,avgpool", "--grid", "vit224", "--keep", "49");
        CliAssert.Succeeded(run);
        Assert.That(CliAssert.FilesIn(directory.Path), Is.EqualTo(new[] { "avgpool.png", "original.png", "sheet.png", "tome.png" }));
        PatchImage photo = PatchImage.Load(Photograph, PatchGrid.VitB16At224);
        using SKBitmap tome = Decode(directory.File("tome.png"));
        Assert.That((tome.Width, tome.Height), Is.EqualTo(new OutcomeRenderer().PictureSize(photo)));
    }

    [Test]
    public void ProjectedFeaturesWork()
    {
        using var directory = new TemporaryDirectory();
        CliRun run = CliProcess.Run("demo", "--out", directory.Path, "--methods", "divprune", "--features", "projection");
        CliAssert.Succeeded(run);
        using SKBitmap picture = Decode(directory.File("divprune.png"));
    }

    [Test]
    public void FeaturesFromANumpyFile()
    {
        Python.Require("numpy", "python3-numpy");
        using var directory = new TemporaryDirectory();
        Python.RunChecked("""
            import numpy as np
            rng = np.random.default_rng(7)
            np.save('features.npy', rng.standard_normal((576, 20)).astype(np.float32))
            np.save('short.npy', rng.standard_normal((575, 20)).astype(np.float32))
            """, directory.Path);
        string pictures = directory.File("pictures");
        CliRun run = CliProcess.RunIn(directory.Path, "demo", "--out", pictures, "--methods", "divprune,kmeans", "--features", "features.npy");
        CliAssert.Succeeded(run);
        Assert.That(run.StandardOutput, Does.Contain("features.npy"), run.ToString());
        Assert.That(CliAssert.FilesIn(pictures), Is.EqualTo(new[] { "divprune.png", "kmeans.png", "original.png", "sheet.png" }));

        CliRun wrong = CliProcess.RunIn(directory.Path, "demo", "--out", directory.File("wrong"), "--methods", "divprune", "--features", "short.npy");
        CliAssert.Failed(wrong, 3, "--features", "short.npy", "575", "576");
        Assert.That(Directory.Exists(directory.File("wrong")), Is.False, "a rejected demo wrote pictures");
    }

    [Test]
    public void AMissingImageIsAnInputError()
    {
        using var directory = new TemporaryDirectory();
        string image = directory.File("missing.png");
        CliAssert.Failed(CliProcess.Run("demo", "--out", directory.File("out"), "--image", image), 3, "--image", image, "does not exist");
        Assert.That(Directory.Exists(directory.File("out")), Is.False);
    }

    [Test]
    public void ATextFileIsNotAnImage()
    {
        using var directory = new TemporaryDirectory();
        string image = directory.Write("notes.txt", "not a picture\n"u8.ToArray());
        CliAssert.Failed(CliProcess.Run("demo", "--out", directory.File("out"), "--image", image), 3, "--image", image, "PNG or JPEG");
        Assert.That(Directory.Exists(directory.File("out")), Is.False);
    }

    [Test]
    public void AVideoMethodWithoutFramesIsAUsageError()
    {
        CliAssert.Failed(CliProcess.Run("demo", "--methods", "evs", "--frames", "0"), 2, "--methods", "evs", "--frames 0");
        CliAssert.Failed(CliProcess.Run("demo", "--frames", "1"), 2, "--frames", "2 to 64");
        CliAssert.Failed(CliProcess.Run("demo", "--methods", "cdpruner"), 2, "--methods", "cdpruner", "text");
    }

    [Test]
    public void KeepingOneTokenIsAUsageError()
        => CliAssert.Failed(CliProcess.Run("demo", "--keep", "1"), 2, "--keep", "2 to 575", "1");
}
