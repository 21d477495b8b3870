using System;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>Turns packed R, G, B bytes into an opaque Skia bitmap.</summary>
internal static class RgbBitmap
{
    /// <summary>A new opaque RGBA bitmap holding <paramref name="rgb"/> (<paramref name="height"/> rows of <paramref name="width"/> pixels).</summary>
    public static SKBitmap Create(ReadOnlySpan<byte> rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3)
        {
            throw new ArgumentException($"{rgb.Length} bytes are not {width} x {height} RGB pixels.", nameof(rgb));
        }
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        int rowBytes = bitmap.RowBytes;
        byte[] rgba = new byte[rowBytes * height];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int source = (y * width + x) * 3, target = y * rowBytes + x * 4;
                rgba[target] = rgb[source];
                rgba[target + 1] = rgb[source + 1];
                rgba[target + 2] = rgb[source + 2];
                rgba[target + 3] = 255;
            }
        }
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }
}
