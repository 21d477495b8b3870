using System;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// Draws what a compression method did to a photograph, the way the papers show it: patches kept alone as they are
/// under a faint grid, dropped patches dimmed and desaturated (VisionZip's and DivPrune's kept-token maps), and each
/// merged group filled with the mean colour of its patches and outlined along its borders (ToMe's merged-patch
/// pictures); a title bar above names the method and the token counts.
/// </summary>
internal sealed class OutcomeRenderer
{
    /// <summary>The title bar's colour.</summary>
    public static readonly SKColor TitleBarColor = new(0x1E, 0x1E, 0x1E);

    /// <summary>The titles' colour.</summary>
    public static readonly SKColor TitleTextColor = new(0xF2, 0xF2, 0xF2);

    /// <summary>The outline of merged groups.</summary>
    public static readonly SKColor GroupBorderColor = new(0xFF, 0xFF, 0xFF);

    /// <summary>The outline of the groups of contextual tokens (see <see cref="PatchFates.IsContextual"/>).</summary>
    public static readonly SKColor ContextualBorderColor = new(0xFF, 0xA6, 0x1A);

    /// <summary>The thin grid around patches kept alone: white, mostly transparent.</summary>
    public static readonly SKColor GridColor = new(0xFF, 0xFF, 0xFF, 0x50);

    private readonly TextPainter _text;

    /// <summary>A renderer drawing every photo pixel as <paramref name="scale"/> x <paramref name="scale"/> screen pixels.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="scale"/> is not 1 to 8.</exception>
    public OutcomeRenderer(int scale = 2, TextPainter? text = null)
    {
        if (scale is < 1 or > 8)
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale is 1 to 8 screen pixels per photo pixel.");
        }
        Scale = scale;
        _text = text ?? TextPainter.Default;
    }

    /// <summary>Screen pixels per photo pixel, each way.</summary>
    public int Scale { get; }

    /// <summary>The height of the title bar above the photo.</summary>
    public int TitleBarHeight => Math.Max(24, 16 * Scale);

    /// <summary>The thickness of group borders.</summary>
    public int BorderWidth => Math.Max(2, Scale);

    /// <summary>The size of a rendered picture of <paramref name="image"/>: the scaled photo and the title bar.</summary>
    public (int Width, int Height) PictureSize(PatchImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return (image.Width * Scale, TitleBarHeight + image.Height * Scale);
    }

    /// <summary>The photograph as the model gets it, with its patch grid, titled "<paramref name="label"/>" and the patch count.</summary>
    public SKBitmap RenderOriginal(PatchImage image, string label)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        int patches = image.Grid.PatchCount;
        var everyPatchKept = new int[patches];
        for (int patch = 0; patch < patches; patch++)
        {
            everyPatchKept[patch] = patch;
        }
        return Render(image, new PatchFates(everyPatchKept, patches), label, $"{patches} tokens ({image.Grid.Rows} x {image.Grid.Columns})");
    }

    /// <summary>One method's outcome on <paramref name="image"/>, titled "<paramref name="label"/>" and "N -&gt; M tokens".</summary>
    /// <exception cref="ArgumentException">The fates are for a different number of patches than the image's grid has.</exception>
    public SKBitmap Render(PatchImage image, PatchFates fates, string label)
    {
        ArgumentNullException.ThrowIfNull(fates);
        return Render(image, fates, label, $"{fates.PatchCount} -> {fates.OutputTokenCount} tokens");
    }

    private SKBitmap Render(PatchImage image, PatchFates fates, string label, string counts)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        if (fates.PatchCount != image.Grid.PatchCount)
        {
            throw new ArgumentException(
                $"The outcome covers {fates.PatchCount} patches but the image has {image.Grid.PatchCount} ({image.Grid}).", nameof(fates));
        }
        (int width, int height) = PictureSize(image);
        var picture = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(picture);
        canvas.Clear(TitleBarColor);

        using (SKBitmap painted = RgbBitmap.Create(PaintPatches(image, fates), image.Width, image.Height))
        using (SKImage paintedImage = SKImage.FromBitmap(painted))
        {
            // Nearest neighbour at an integer scale: every photo pixel becomes a block of identical screen pixels.
            canvas.DrawImage(paintedImage, SKRect.Create(0, TitleBarHeight, width, height - TitleBarHeight), new SKSamplingOptions(SKFilterMode.Nearest));
        }
        DrawBoundaries(canvas, image.Grid, fates);
        DrawTitle(canvas, width, label, counts);
        return picture;
    }

    /// <summary>The photo's pixels as the outcome paints them: kept as they are, dropped dimmed, groups in their mean colour.</summary>
    private static byte[] PaintPatches(PatchImage image, PatchFates fates)
    {
        PatchGrid grid = image.Grid;
        byte[] painted = image.Rgb.ToArray();
        byte[][] groupColors = GroupMeanColors(image, fates);
        for (int patch = 0; patch < grid.PatchCount; patch++)
        {
            int token = fates.OutputTokenOf(patch);
            bool painter = token >= 0 && (fates.GroupSize(token) > 1 || fates.IsContextual(token));
            if (token >= 0 && !painter)
            {
                continue;
            }
            (int x0, int y0) = image.PatchOrigin(patch);
            for (int y = y0; y < y0 + grid.PatchSize; y++)
            {
                for (int x = x0; x < x0 + grid.PatchSize; x++)
                {
                    Span<byte> pixel = painted.AsSpan((y * image.Width + x) * 3, 3);
                    if (painter)
                    {
                        groupColors[token].CopyTo(pixel);
                    }
                    else
                    {
                        Dim(pixel);
                    }
                }
            }
        }
        return painted;
    }

    /// <summary>
    /// A dropped pixel: mostly grey (a quarter of its colour left, three quarters its luma, BT.601 weights) at 40% of
    /// its brightness, so the photo stays recognisable but clearly switched off.
    /// </summary>
    internal static void Dim(Span<byte> rgb)
    {
        double luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        for (int channel = 0; channel < 3; channel++)
        {
            double desaturated = 0.25 * rgb[channel] + 0.75 * luma;
            rgb[channel] = (byte)Math.Round(0.4 * desaturated);
        }
    }

    /// <summary>For every output token, the mean colour of all pixels of its patches (rounded), or null when it holds none.</summary>
    private static byte[][] GroupMeanColors(PatchImage image, PatchFates fates)
    {
        var sums = new double[fates.OutputTokenCount, 3];
        for (int patch = 0; patch < fates.PatchCount; patch++)
        {
            int token = fates.OutputTokenOf(patch);
            if (token < 0)
            {
                continue;
            }
            // Patches have equal areas, so the mean of the patch means is the mean over the group's pixels.
            (double r, double g, double b) = image.PatchMeanColor(patch);
            sums[token, 0] += r;
            sums[token, 1] += g;
            sums[token, 2] += b;
        }
        var colors = new byte[fates.OutputTokenCount][];
        for (int token = 0; token < colors.Length; token++)
        {
            int size = fates.GroupSize(token);
            colors[token] = size == 0
                ? []
                : [(byte)Math.Round(sums[token, 0] / size), (byte)Math.Round(sums[token, 1] / size), (byte)Math.Round(sums[token, 2] / size)];
        }
        return colors;
    }

    /// <summary>
    /// Lines between neighbouring patches: a solid border where a group meets anything else, a faint grid line where a
    /// patch kept alone meets another patch, nothing inside a group or between dropped patches.
    /// </summary>
    private void DrawBoundaries(SKCanvas canvas, PatchGrid grid, PatchFates fates)
    {
        using var gridPaint = new SKPaint { Color = GridColor, IsAntialias = false, BlendMode = SKBlendMode.SrcOver };
        using var borderPaint = new SKPaint { Color = GroupBorderColor, IsAntialias = false };
        using var contextualPaint = new SKPaint { Color = ContextualBorderColor, IsAntialias = false };
        int side = grid.PatchSize * Scale;
        int half = BorderWidth / 2;
        for (int row = 0; row < grid.Rows; row++)
        {
            for (int column = 0; column < grid.Columns; column++)
            {
                int patch = row * grid.Columns + column;
                float left = column * side, top = TitleBarHeight + row * side;
                if (column + 1 < grid.Columns)
                {
                    SKPaint? paint = BoundaryPaint(fates, patch, patch + 1, gridPaint, borderPaint, contextualPaint);
                    if (ReferenceEquals(paint, gridPaint))
                    {
                        canvas.DrawRect(SKRect.Create(left + side, top, 1, side), paint);
                    }
                    else if (paint is not null)
                    {
                        // Reaching half a border past each end closes the corners where borders meet.
                        canvas.DrawRect(SKRect.Create(left + side - half, top - half, BorderWidth, side + BorderWidth), paint);
                    }
                }
                if (row + 1 < grid.Rows)
                {
                    SKPaint? paint = BoundaryPaint(fates, patch, patch + grid.Columns, gridPaint, borderPaint, contextualPaint);
                    if (ReferenceEquals(paint, gridPaint))
                    {
                        canvas.DrawRect(SKRect.Create(left, top + side, side, 1), paint);
                    }
                    else if (paint is not null)
                    {
                        canvas.DrawRect(SKRect.Create(left - half, top + side - half, side + BorderWidth, BorderWidth), paint);
                    }
                }
            }
        }
    }

    private static SKPaint? BoundaryPaint(PatchFates fates, int first, int second, SKPaint grid, SKPaint border, SKPaint contextual)
    {
        int firstToken = fates.OutputTokenOf(first), secondToken = fates.OutputTokenOf(second);
        if (firstToken == secondToken)
        {
            return null;
        }
        foreach (int token in new[] { firstToken, secondToken })
        {
            if (token >= 0 && fates.IsContextual(token))
            {
                return contextual;
            }
        }
        foreach (int token in new[] { firstToken, secondToken })
        {
            if (token >= 0 && fates.GroupSize(token) > 1)
            {
                return border;
            }
        }
        // Two patches kept alone, or one kept alone beside a dropped one.
        return grid;
    }

    private void DrawTitle(SKCanvas canvas, int width, string label, string counts)
    {
        float textHeight = TitleBarHeight * 0.62f;
        float margin = TitleBarHeight * 0.3f;
        float countsWidth = _text.MeasureWidth(counts, textHeight);
        float labelWidth = _text.MeasureWidth(label, textHeight);
        float room = width - 3 * margin;
        if (labelWidth + countsWidth > room && room > 0)
        {
            // Too long for the bar: smaller text (widths scale with the height), down to 8 pixels.
            textHeight = Math.Max(8, textHeight * room / (labelWidth + countsWidth));
            countsWidth = _text.MeasureWidth(counts, textHeight);
            labelWidth = _text.MeasureWidth(label, textHeight);
        }
        float top = (TitleBarHeight - textHeight) / 2;
        canvas.Save();
        canvas.ClipRect(SKRect.Create(0, 0, width, TitleBarHeight));
        if (margin + labelWidth + margin + countsWidth + margin <= width)
        {
            _text.Draw(canvas, label, margin, top, textHeight, TitleTextColor);
            _text.Draw(canvas, counts, width - margin - countsWidth, top, textHeight, TitleTextColor);
        }
        else
        {
            // Too narrow even then: one line, cut at the right edge.
            _text.Draw(canvas, label + "  " + counts, margin, top, textHeight, TitleTextColor);
        }
        canvas.Restore();
    }
}
