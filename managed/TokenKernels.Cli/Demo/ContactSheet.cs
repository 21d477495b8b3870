using System;
using System.Collections.Generic;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>Lays rendered pictures out side by side, the original photograph first, wrapping into rows.</summary>
internal static class ContactSheet
{
    /// <summary>The sheet's background.</summary>
    public static readonly SKColor BackgroundColor = new(0x30, 0x30, 0x30);

    /// <summary>Pixels around and between the pictures.</summary>
    public const int Gap = 12;

    /// <summary>
    /// The sheet: <paramref name="original"/> then <paramref name="outcomes"/>, <paramref name="perRow"/> to a row, in cells
    /// as large as the largest picture (each picture at its cell's top-left), <see cref="Gap"/> pixels apart and around.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="perRow"/> is below 1.</exception>
    public static SKBitmap Compose(SKBitmap original, IReadOnlyList<SKBitmap> outcomes, int perRow = 4)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(outcomes);
        var pictures = new List<SKBitmap>(outcomes.Count + 1) { original };
        pictures.AddRange(outcomes);
        (int width, int height, int cellWidth, int cellHeight) = Layout(pictures, perRow);
        var sheet = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(BackgroundColor);
        for (int index = 0; index < pictures.Count; index++)
        {
            int left = Gap + index % perRow * (cellWidth + Gap);
            int top = Gap + index / perRow * (cellHeight + Gap);
            using SKImage picture = SKImage.FromBitmap(pictures[index]);
            canvas.DrawImage(picture, left, top, new SKSamplingOptions(SKFilterMode.Nearest));
        }
        return sheet;
    }

    /// <summary>The sheet's size for <paramref name="pictures"/> and the size of one cell.</summary>
    public static (int Width, int Height, int CellWidth, int CellHeight) Layout(IReadOnlyList<SKBitmap> pictures, int perRow)
    {
        ArgumentNullException.ThrowIfNull(pictures);
        if (perRow < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(perRow), perRow, "A sheet has at least one picture per row.");
        }
        int cellWidth = 0, cellHeight = 0;
        foreach (SKBitmap picture in pictures)
        {
            cellWidth = Math.Max(cellWidth, picture.Width);
            cellHeight = Math.Max(cellHeight, picture.Height);
        }
        int columns = Math.Min(perRow, pictures.Count);
        int rows = (pictures.Count + perRow - 1) / perRow;
        return (columns * cellWidth + (columns + 1) * Gap, rows * cellHeight + (rows + 1) * Gap, cellWidth, cellHeight);
    }
}
