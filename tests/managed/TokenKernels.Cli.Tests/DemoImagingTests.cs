using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;
using SkiaSharp;
using TokenKernels.Cli.Demo;

namespace TokenKernels.Cli.Tests;

/// <summary>The demo's imaging: the photograph cut into patches, the features, the outcome pictures and the sheet.</summary>
public sealed class DemoImagingTests
{
    private static readonly string Chelsea = Path.Combine(AppContext.BaseDirectory, "Assets", "chelsea.png");

    private string _directory = null!;

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "tokenkernels-demo-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void PresetsMatchTheModelsInputs()
    {
        Assert.That((PatchGrid.ClipVitL14At336.InputWidth, PatchGrid.ClipVitL14At336.PatchCount), Is.EqualTo((336, 576)));
        Assert.That((PatchGrid.SigLipSo400m14At384.InputHeight, PatchGrid.SigLipSo400m14At384.PatchCount), Is.EqualTo((378, 729)));
        Assert.That((PatchGrid.VitB16At224.InputWidth, PatchGrid.VitB16At224.PatchCount), Is.EqualTo((224, 196)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PatchGrid(0, 4, 14));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PatchGrid(4, 4, 0));
    }

    [Test]
    public void TheShortestSideIsScaledToTheInputAndTheLongOneTruncated()
    {
        // Hugging Face's CLIP resize: 451 x 300 to shortest edge 336 gives int(336 * 451 / 300) = 505.
        Assert.That(PatchImage.CoverSize(451, 300, 336, 336), Is.EqualTo((505, 336)));
        Assert.That(PatchImage.CoverSize(300, 451, 336, 336), Is.EqualTo((336, 505)));
        Assert.That(PatchImage.CoverSize(100, 100, 378, 378), Is.EqualTo((378, 378)));
        Assert.That(PatchImage.CoverSize(40, 10, 8, 16), Is.EqualTo((64, 16)));
    }

    [Test]
    public void AWideImageIsCroppedAtItsCentre()
    {
        // 16 x 8 into a 2 x 2 grid of 4 px (8 x 8): no scaling, columns 4 to 11 survive.
        using SKBitmap wide = Gradient(16, 8);
        PatchImage image = PatchImage.FromBitmap(wide, new PatchGrid(2, 2, 4));
        Assert.That((image.Width, image.Height), Is.EqualTo((8, 8)));
        for (int y = 0; y < 8; y++)
        {
            for (int x = 0; x < 8; x++)
            {
                AssertClose(image.GetPixel(x, y), wide.GetPixel(x + 4, y), 1, $"pixel ({x}, {y})");
            }
        }
    }

    [Test]
    public void ATallImageIsCroppedAtItsCentre()
    {
        // 8 x 21 into 8 x 8: rows (21 - 8) / 2 = 6 to 13 survive (the odd pixel goes to the bottom margin).
        using SKBitmap tall = Gradient(8, 21);
        PatchImage image = PatchImage.FromBitmap(tall, new PatchGrid(2, 2, 4));
        for (int y = 0; y < 8; y++)
        {
            for (int x = 0; x < 8; x++)
            {
                AssertClose(image.GetPixel(x, y), tall.GetPixel(x, y + 6), 1, $"pixel ({x}, {y})");
            }
        }
    }

    [Test]
    public void AScaledImageKeepsItsCentre()
    {
        // 60 x 20, left third red, middle green, right blue, into 12 x 12: scaled to 36 x 12, cropped to columns 12 to 23,
        // which are the green third; away from the colour edges every pixel is green.
        using var bitmap = new SKBitmap(60, 20);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint())
        {
            paint.Color = SKColors.Red;
            canvas.DrawRect(SKRect.Create(0, 0, 20, 20), paint);
            paint.Color = new SKColor(0, 200, 0);
            canvas.DrawRect(SKRect.Create(20, 0, 20, 20), paint);
            paint.Color = SKColors.Blue;
            canvas.DrawRect(SKRect.Create(40, 0, 20, 20), paint);
        }
        PatchImage image = PatchImage.FromBitmap(bitmap, new PatchGrid(3, 3, 4));
        Assert.That((image.Width, image.Height), Is.EqualTo((12, 12)));
        for (int x = 2; x < 10; x++)
        {
            AssertClose(image.GetPixel(x, 6), new SKColor(0, 200, 0), 2, $"column {x}");
        }
    }

    [Test]
    public void TheRealPhotographBecomesTheModelsInput()
    {
        PatchImage image = PatchImage.Load(Chelsea, PatchGrid.ClipVitL14At336);
        Assert.That((image.Width, image.Height, image.Rgb.Length), Is.EqualTo((336, 336, 336 * 336 * 3)));
        byte[] patch = image.GetPatchPixels(25);
        Assert.That(patch, Has.Length.EqualTo(14 * 14 * 3));
        // Patch 25 is row 1, column 1: its first pixel is the image's (14, 14), its last (27, 27).
        (byte r, byte g, byte b) = image.GetPixel(14, 14);
        Assert.That(patch[..3], Is.EqualTo(new[] { r, g, b }));
        (r, g, b) = image.GetPixel(27, 27);
        Assert.That(patch[^3..], Is.EqualTo(new[] { r, g, b }));
    }

    [Test]
    public void AMissingFileIsNamed()
    {
        string missing = Path.Combine(_directory, "no-such-photo.png");
        ImageFileException error = Assert.Throws<ImageFileException>(() => PatchImage.Load(missing, PatchGrid.ClipVitL14At336))!;
        Assert.That(error.Message, Does.Contain(missing).And.Contain("does not exist"));
        Assert.That(error.FilePath, Is.EqualTo(missing));
    }

    [Test]
    public void ADirectoryIsNotAnImage()
    {
        ImageFileException error = Assert.Throws<ImageFileException>(() => PatchImage.Load(_directory, PatchGrid.ClipVitL14At336))!;
        Assert.That(error.Message, Does.Contain(_directory).And.Contain("directory"));
    }

    [TestCase("notes.png", "this is text, not a picture")]
    [TestCase("empty.jpg", "")]
    [TestCase("truncated.png", "\u0089PNG\r\n\u001a\n")]
    public void AFileThatIsNoImageIsNamed(string name, string content)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, content, System.Text.Encoding.Latin1);
        ImageFileException error = Assert.Throws<ImageFileException>(() => PatchImage.Load(path, PatchGrid.ClipVitL14At336))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("not an image"));
    }

    [Test]
    public void ATruncatedImageIsNamed()
    {
        string path = Path.Combine(_directory, "half.png");
        byte[] whole = File.ReadAllBytes(Chelsea);
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);
        ImageFileException error = Assert.Throws<ImageFileException>(() => PatchImage.Load(path, PatchGrid.ClipVitL14At336))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("truncated"));
    }

    [Test]
    public void AJpegIsReadLikeAPng()
    {
        string path = Path.Combine(_directory, "chelsea.jpg");
        using (SKBitmap photo = SKBitmap.Decode(Chelsea))
        using (SKImage image = SKImage.FromBitmap(photo))
        using (SKData jpeg = image.Encode(SKEncodedImageFormat.Jpeg, 95))
        {
            File.WriteAllBytes(path, jpeg.ToArray());
        }
        PatchImage fromPng = PatchImage.Load(Chelsea, PatchGrid.ClipVitL14At336);
        PatchImage fromJpeg = PatchImage.Load(path, PatchGrid.ClipVitL14At336);
        // JPEG at quality 95 moves a pixel by a few levels, on average by about one.
        double difference = 0;
        for (int i = 0; i < fromPng.Rgb.Length; i++)
        {
            difference += Math.Abs(fromPng.Rgb[i] - fromJpeg.Rgb[i]);
        }
        Assert.That(difference / fromPng.Rgb.Length, Is.LessThan(3));
    }

    [Test]
    public void PixelFeaturesAreClipNormalisedChannelMajor()
    {
        // 4 x 4 pixels, 2 x 2 patches of 2 px: no scaling, so the features follow from the drawn pixels.
        using SKBitmap bitmap = Gradient(4, 4);
        PatchImage image = PatchImage.FromBitmap(bitmap, new PatchGrid(2, 2, 2));
        PatchFeatures features = PatchFeatures.Pixels(image);
        Assert.That(features.Shape.ToArray(), Is.EqualTo(new long[] { 1, 4, 12 }));
        double[] mean = [0.48145466, 0.4578275, 0.40821073];
        double[] std = [0.26862954, 0.26130258, 0.27577711];
        for (int patch = 0; patch < 4; patch++)
        {
            int x0 = patch % 2 * 2, y0 = patch / 2 * 2;
            for (int channel = 0; channel < 3; channel++)
            {
                for (int dy = 0; dy < 2; dy++)
                {
                    for (int dx = 0; dx < 2; dx++)
                    {
                        SKColor pixel = bitmap.GetPixel(x0 + dx, y0 + dy);
                        byte value = channel == 0 ? pixel.Red : channel == 1 ? pixel.Green : pixel.Blue;
                        float expected = (float)((value / 255.0 - mean[channel]) / std[channel]);
                        float actual = features.Values[patch * 12 + channel * 4 + dy * 2 + dx];
                        Assert.That(actual, Is.EqualTo(expected).Within(1e-6), $"patch {patch}, channel {channel}, ({dx}, {dy})");
                    }
                }
            }
        }
    }

    [Test]
    public void TheGeneratorIsSplitMix64()
    {
        // SplitMix64's published first outputs for seed 0 (Vigna's splitmix64.c).
        var generator = new SplitMix64Gaussian(0);
        Assert.That(generator.NextUInt64(), Is.EqualTo(0xE220A8397B1DCDAFUL));
        Assert.That(generator.NextUInt64(), Is.EqualTo(0x6E789E6AA1B965F4UL));
        Assert.That(generator.NextUInt64(), Is.EqualTo(0x06C45D188009454FUL));
    }

    [Test]
    public void TheGaussiansHaveUnitVariance()
    {
        var generator = new SplitMix64Gaussian(12345);
        double sum = 0, squares = 0;
        const int Count = 200_000;
        for (int i = 0; i < Count; i++)
        {
            double value = generator.NextGaussian();
            sum += value;
            squares += value * value;
        }
        Assert.That(sum / Count, Is.EqualTo(0).Within(0.01));
        Assert.That(squares / Count, Is.EqualTo(1).Within(0.01));
    }

    [Test]
    public void TheProjectionMatchesAReference()
    {
        using SKBitmap bitmap = Gradient(4, 4);
        PatchImage image = PatchImage.FromBitmap(bitmap, new PatchGrid(2, 2, 2));
        float[] pixels = PatchFeatures.Pixels(image).Values;
        foreach ((int width, ulong seed) in new[] { (16, 7UL), (PatchFeatures.DefaultProjectionWidth, PatchFeatures.DefaultProjectionSeed) })
        {
            PatchFeatures projected = width == PatchFeatures.DefaultProjectionWidth
                ? PatchFeatures.Projection(image)
                : PatchFeatures.Projection(image, width, seed);
            Assert.That(projected.Shape.ToArray(), Is.EqualTo(new long[] { 1, 4, width }));
            double[,] matrix = ReferenceMatrix(12, width, seed);
            for (int token = 0; token < 4; token++)
            {
                for (int j = 0; j < Math.Min(width, 8); j++)
                {
                    double expected = 0;
                    for (int i = 0; i < 12; i++)
                    {
                        expected += pixels[token * 12 + i] * matrix[i, j];
                    }
                    Assert.That(projected.Values[token * width + j], Is.EqualTo(expected).Within(1e-5), $"width {width}, token {token}, feature {j}");
                }
            }
        }
        Assert.That(PatchFeatures.Projection(image).Values, Is.EqualTo(PatchFeatures.Projection(image).Values), "the same every run");
    }

    [Test]
    public void UserFeaturesMustMatchTheGrid()
    {
        var grid = new PatchGrid(2, 3, 4);
        float[] values = Enumerable.Range(0, 6 * 5).Select(i => (float)i).ToArray();
        Assert.That(PatchFeatures.FromValues(values, [1, 6, 5], grid).Shape.ToArray(), Is.EqualTo(new long[] { 1, 6, 5 }));
        PatchFeatures flat = PatchFeatures.FromValues(values, [6, 5], grid);
        Assert.That((flat.TokenCount, flat.Channels, flat.Values), Is.EqualTo((6, 5, values)));

        ArgumentException wrongN = Assert.Throws<ArgumentException>(() => PatchFeatures.FromValues(values, [5, 6], grid, "tokens.npy"))!;
        Assert.That(wrongN.Message, Does.Contain("tokens.npy").And.Contain("5 tokens").And.Contain("6 patches"));
        ArgumentException wrongLength = Assert.Throws<ArgumentException>(() => PatchFeatures.FromValues(values.AsSpan(1), [1, 6, 5], grid))!;
        Assert.That(wrongLength.Message, Does.Contain("29 values").And.Contain("30"));
        Assert.Throws<ArgumentException>(() => PatchFeatures.FromValues(values, [2, 3, 5], grid));
        Assert.Throws<ArgumentException>(() => PatchFeatures.FromValues(values, [30], grid));
        Assert.Throws<ArgumentException>(() => PatchFeatures.FromValues([], [6, 0], grid));
    }

    [Test]
    public void FatesFollowFromTheGroups()
    {
        var fates = new PatchFates([0, 1, 1, -1, 2, -1], 4, [false, false, false, true]);
        Assert.That(Enumerable.Range(0, 6).Select(fates.FateOf), Is.EqualTo(new[]
        {
            PatchFate.Kept, PatchFate.Merged, PatchFate.Merged, PatchFate.Dropped, PatchFate.Kept, PatchFate.Dropped,
        }));
        Assert.That((fates.CountOf(PatchFate.Kept), fates.CountOf(PatchFate.Merged), fates.CountOf(PatchFate.Dropped)), Is.EqualTo((2, 2, 2)));
        Assert.That((fates.GroupSize(1), fates.GroupSize(3), fates.IsContextual(3), fates.IsContextual(0)), Is.EqualTo((2, 0, true, false)));

        ArgumentException outOfRange = Assert.Throws<ArgumentException>(() => _ = new PatchFates([0, 4], 4))!;
        Assert.That(outOfRange.Message, Does.Contain("Patch 1").And.Contain("-1 (dropped) or 0 to 3"));
        Assert.Throws<ArgumentException>(() => _ = new PatchFates([0, -2], 4));
        Assert.Throws<ArgumentException>(() => _ = new PatchFates([], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PatchFates([-1], -1));
        ArgumentException flags = Assert.Throws<ArgumentException>(() => _ = new PatchFates([0, 1], 2, [true]))!;
        Assert.That(flags.Message, Does.Contain("1 contextual-token flags").And.Contain("2 output tokens"));
    }

    [Test]
    public void ThePictureShowsKeptDroppedAndMergedPatches()
    {
        PatchGrid grid = PatchGrid.ClipVitL14At336;
        PatchImage image = PatchImage.Load(Chelsea, grid);
        // Patches 0, 1, 24, 25 (the top-left 2 x 2) merged; 2 and 3 merged; row 10 dropped; the rest kept alone.
        int[] tokenOf = new int[grid.PatchCount];
        int next = 2;
        for (int patch = 0; patch < tokenOf.Length; patch++)
        {
            tokenOf[patch] = patch is 0 or 1 or 24 or 25 ? 0 : patch is 2 or 3 ? 1 : patch / 24 == 10 ? -1 : next++;
        }
        var fates = new PatchFates(tokenOf, next);
        var renderer = new OutcomeRenderer(2);
        string path = Path.Combine(_directory, "pictures", "tome.png");
        using (SKBitmap rendered = renderer.Render(image, fates, "ToMe"))
        {
            PngFile.Write(rendered, path);
        }
        using SKBitmap picture = SKBitmap.Decode(path);
        int bar = renderer.TitleBarHeight;
        Assert.That((picture.Width, picture.Height), Is.EqualTo((672, bar + 672)));
        Assert.That(Directory.GetFiles(Path.GetDirectoryName(path)!), Is.EqualTo(new[] { path }), "no temporary file left");

        // Kept alone: patch (5, 7), inside its grid lines, shows the photo's pixels.
        for (int y = 5 * 14 + 1; y < 6 * 14; y++)
        {
            for (int x = 7 * 14 + 1; x < 8 * 14; x++)
            {
                SKColor shown = picture.GetPixel(2 * x + 1, bar + 2 * y + 1);
                (byte r, byte g, byte b) = image.GetPixel(x, y);
                Assert.That((shown.Red, shown.Green, shown.Blue), Is.EqualTo((r, g, b)), $"kept pixel ({x}, {y})");
            }
        }

        // Dropped: row 10 is darker and greyer than the photo, pixel by pixel.
        for (int x = 1; x < 336; x += 7)
        {
            int y = 10 * 14 + 7;
            SKColor shown = picture.GetPixel(2 * x, bar + 2 * y);
            (byte r, byte g, byte b) = image.GetPixel(x, y);
            Assert.That(shown.Red + shown.Green + shown.Blue, Is.LessThan(Math.Max(1, r + g + b)), $"dropped pixel ({x}, {y}) is darker");
            int spread = Math.Max(r, Math.Max(g, b)) - Math.Min(r, Math.Min(g, b));
            int shownSpread = Math.Max(shown.Red, Math.Max(shown.Green, shown.Blue)) - Math.Min(shown.Red, Math.Min(shown.Green, shown.Blue));
            Assert.That(shownSpread, Is.LessThan(Math.Max(1, spread)), $"dropped pixel ({x}, {y}) is greyer");
        }

        // Merged: the 28 x 28 top-left block is one colour, the mean of its photo pixels.
        double[] sum = new double[3];
        for (int y = 0; y < 28; y++)
        {
            for (int x = 0; x < 28; x++)
            {
                (byte r, byte g, byte b) = image.GetPixel(x, y);
                sum[0] += r;
                sum[1] += g;
                sum[2] += b;
            }
        }
        var mean = new SKColor((byte)Math.Round(sum[0] / 784), (byte)Math.Round(sum[1] / 784), (byte)Math.Round(sum[2] / 784));
        foreach ((int x, int y) in new[] { (5, 5), (20, 9), (28, 28), (14, 40), (40, 14), (50, 50) })
        {
            AssertClose(picture.GetPixel(x, bar + y), mean, 1, $"merged group at ({x}, {y})");
        }

        // Borders: between group 0 and group 1 (x = 56), under group 0 (y = 56), none inside a group (x = 28 between
        // patches 0 and 1).
        Assert.That(picture.GetPixel(55, bar + 10), Is.EqualTo(OutcomeRenderer.GroupBorderColor));
        Assert.That(picture.GetPixel(56, bar + 10), Is.EqualTo(OutcomeRenderer.GroupBorderColor));
        Assert.That(picture.GetPixel(10, bar + 56), Is.EqualTo(OutcomeRenderer.GroupBorderColor));
        Assert.That(picture.GetPixel(10, bar + 55), Is.EqualTo(OutcomeRenderer.GroupBorderColor));
        AssertClose(picture.GetPixel(28, bar + 10), mean, 1, "no border inside a group");
        AssertClose(picture.GetPixel(10, bar + 28), mean, 1, "no border inside a group");

        // A faint grid between two patches kept alone: brighter than the photo there, not the solid border.
        SKColor gridPixel = picture.GetPixel(2 * 14 * 8, bar + 2 * (5 * 14 + 7));
        (byte pr, byte pg, byte pb) = image.GetPixel(14 * 8, 5 * 14 + 7);
        Assert.That(gridPixel.Red + gridPixel.Green + gridPixel.Blue, Is.GreaterThan(pr + pg + pb));
        Assert.That(gridPixel, Is.Not.EqualTo(OutcomeRenderer.GroupBorderColor));
    }

    [Test]
    public void AMergedGroupOfTwoColoursShowsTheirMean()
    {
        // Two 4 px patches, red (200, 0, 0) and blue (0, 0, 100), merged: the group shows (100, 0, 50).
        using var bitmap = new SKBitmap(8, 4);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = new SKColor(200, 0, 0) })
        {
            canvas.DrawRect(SKRect.Create(0, 0, 4, 4), paint);
            paint.Color = new SKColor(0, 0, 100);
            canvas.DrawRect(SKRect.Create(4, 0, 4, 4), paint);
        }
        PatchImage image = PatchImage.FromBitmap(bitmap, new PatchGrid(1, 2, 4));
        var renderer = new OutcomeRenderer(3, TextPainter.BitmapOnly);
        using SKBitmap picture = renderer.Render(image, new PatchFates([0, 0], 1), "two");
        Assert.That((picture.Width, picture.Height), Is.EqualTo((24, renderer.TitleBarHeight + 12)));
        for (int x = 0; x < 24; x++)
        {
            Assert.That(picture.GetPixel(x, renderer.TitleBarHeight + 6), Is.EqualTo(new SKColor(100, 0, 50)), $"column {x}");
        }
    }

    [Test]
    public void ContextualGroupsHaveTheirOwnBorder()
    {
        using SKBitmap bitmap = Gradient(12, 4);
        PatchImage image = PatchImage.FromBitmap(bitmap, new PatchGrid(1, 3, 4));
        var renderer = new OutcomeRenderer(2, TextPainter.BitmapOnly);
        using SKBitmap picture = renderer.Render(image, new PatchFates([0, 1, 1], 2, [false, true]), "VisionZip");
        Assert.That(picture.GetPixel(8, renderer.TitleBarHeight + 4), Is.EqualTo(OutcomeRenderer.ContextualBorderColor));
    }

    [Test]
    public void TheTitleIsDrawn([Values] bool bitmapFont)
    {
        PatchImage image = PatchImage.Load(Chelsea, PatchGrid.VitB16At224);
        var renderer = new OutcomeRenderer(2, bitmapFont ? TextPainter.BitmapOnly : TextPainter.Default);
        using SKBitmap picture = renderer.Render(image, new PatchFates(Enumerable.Range(0, 196).Select(p => p / 2).ToArray(), 98), "ToMe r=98");
        int light = 0;
        int leftHalf = 0;
        for (int y = 0; y < renderer.TitleBarHeight; y++)
        {
            for (int x = 0; x < picture.Width; x++)
            {
                if (picture.GetPixel(x, y).Red > 160)
                {
                    light++;
                    leftHalf += x < picture.Width / 2 ? 1 : 0;
                }
            }
        }
        // Both the label (left) and "196 -> 98 tokens" (right) leave ink.
        Assert.That(leftHalf, Is.GreaterThan(20), "label");
        Assert.That(light - leftHalf, Is.GreaterThan(40), "token counts");
    }

    [Test]
    public void TheBitmapFontHasInkForItsCharacters()
    {
        foreach (char character in "ABCXYZabcxyz0123456789->()%=")
        {
            Assert.That(BitmapFont.HasGlyph(character), character.ToString());
            bool any = Enumerable.Range(0, BitmapFont.GlyphWidth * BitmapFont.GlyphHeight)
                .Any(cell => BitmapFont.IsInk(character, cell % BitmapFont.GlyphWidth, cell / BitmapFont.GlyphWidth));
            Assert.That(any, $"'{character}' has ink");
        }
        Assert.That(BitmapFont.IsInk('~', 0, 0), "an unknown character is a box");
        Assert.That(BitmapFont.MeasureWidth("abc", 2), Is.EqualTo((3 * 6 - 1) * 2));
    }

    [Test]
    public void RenderingRejectsFatesForAnotherGrid()
    {
        PatchImage image = PatchImage.FromBitmap(Gradient(8, 8), new PatchGrid(2, 2, 4));
        ArgumentException error = Assert.Throws<ArgumentException>(() => new OutcomeRenderer().Render(image, new PatchFates([0, 1, 2], 3), "x"))!;
        Assert.That(error.Message, Does.Contain("3 patches").And.Contain("4"));
    }

    [TestCase(1, 4)]
    [TestCase(2, 4)]
    [TestCase(3, 4)]
    [TestCase(4, 4)]
    [TestCase(5, 4)]
    [TestCase(6, 4)]
    [TestCase(7, 4)]
    [TestCase(7, 3)]
    [TestCase(3, 3)]
    [TestCase(4, 3)]
    public void TheSheetWrapsIntoRows(int pictures, int perRow)
    {
        PatchImage image = PatchImage.FromBitmap(Gradient(40, 30), new PatchGrid(3, 4, 5));
        var renderer = new OutcomeRenderer(2, TextPainter.BitmapOnly);
        using SKBitmap original = renderer.RenderOriginal(image, "original");
        var outcomes = new List<SKBitmap>();
        for (int i = 1; i < pictures; i++)
        {
            outcomes.Add(renderer.Render(image, new PatchFates(Enumerable.Range(0, 12).Select(p => p < i ? -1 : p - i).ToArray(), 12 - i), $"method {i}"));
        }
        string path = Path.Combine(_directory, "sheet.png");
        using (SKBitmap composed = ContactSheet.Compose(original, outcomes, perRow))
        {
            PngFile.Write(composed, path);
        }
        using SKBitmap sheet = SKBitmap.Decode(path);
        int columns = Math.Min(pictures, perRow), rows = (pictures + perRow - 1) / perRow;
        int gap = ContactSheet.Gap;
        Assert.That((sheet.Width, sheet.Height), Is.EqualTo((columns * original.Width + (columns + 1) * gap, rows * original.Height + (rows + 1) * gap)));
        // The original comes first, at the top left; the last picture sits in its row and column.
        Assert.That(sheet.GetPixel(gap + 15, gap + renderer.TitleBarHeight + 15), Is.EqualTo(original.GetPixel(15, renderer.TitleBarHeight + 15)));
        if (outcomes.Count > 0)
        {
            int last = pictures - 1;
            int left = gap + last % perRow * (original.Width + gap), top = gap + last / perRow * (original.Height + gap);
            Assert.That(sheet.GetPixel(left + 3, top + original.Height - 3), Is.EqualTo(outcomes[^1].GetPixel(3, original.Height - 3)));
        }
        Assert.That(sheet.GetPixel(gap / 2, gap / 2), Is.EqualTo(ContactSheet.BackgroundColor));
        foreach (SKBitmap outcome in outcomes)
        {
            outcome.Dispose();
        }
    }

    [Test]
    public void WritingCreatesDirectoriesAndReplacesFiles()
    {
        string path = Path.Combine(_directory, "a", "b", "picture.png");
        using (var small = new SKBitmap(3, 2))
        {
            PngFile.Write(small, path);
        }
        using (var larger = new SKBitmap(5, 4))
        {
            PngFile.Write(larger, path);
        }
        using SKBitmap written = SKBitmap.Decode(path);
        Assert.That((written.Width, written.Height), Is.EqualTo((5, 4)));
        Assert.That(Directory.GetFiles(Path.GetDirectoryName(path)!), Has.Length.EqualTo(1));
    }

    /// <summary>A bitmap whose every pixel differs: red grows to the right, green downwards.</summary>
    private static SKBitmap Gradient(int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                bitmap.SetPixel(x, y, new SKColor((byte)(10 + x * 240 / width), (byte)(10 + y * 240 / height), 90));
            }
        }
        return bitmap;
    }

    /// <summary>The projection matrix written out again: SplitMix64, Box-Muller, 1 / sqrt(rows), filled row by row.</summary>
    private static double[,] ReferenceMatrix(int rows, int columns, ulong seed)
    {
        ulong state = seed;
        double Uniform()
        {
            unchecked
            {
                state += 0x9E3779B97F4A7C15UL;
                ulong z = state;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                z ^= z >> 31;
                return (z >> 11) / 9007199254740992.0;
            }
        }
        var values = new List<double>();
        while (values.Count < rows * columns)
        {
            double u1 = Uniform(), u2 = Uniform();
            double radius = Math.Sqrt(-2 * Math.Log(1 - u1));
            values.Add(radius * Math.Cos(2 * Math.PI * u2));
            values.Add(radius * Math.Sin(2 * Math.PI * u2));
        }
        var matrix = new double[rows, columns];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                matrix[i, j] = values[i * columns + j] / Math.Sqrt(rows);
            }
        }
        return matrix;
    }

    private static void AssertClose((byte R, byte G, byte B) actual, SKColor expected, int tolerance, string what) =>
        AssertClose(new SKColor(actual.R, actual.G, actual.B), expected, tolerance, what);

    private static void AssertClose(SKColor actual, SKColor expected, int tolerance, string what)
    {
        Assert.That(Math.Abs(actual.Red - expected.Red), Is.LessThanOrEqualTo(tolerance), $"{what}: red {actual} vs {expected}");
        Assert.That(Math.Abs(actual.Green - expected.Green), Is.LessThanOrEqualTo(tolerance), $"{what}: green {actual} vs {expected}");
        Assert.That(Math.Abs(actual.Blue - expected.Blue), Is.LessThanOrEqualTo(tolerance), $"{what}: blue {actual} vs {expected}");
    }
}
