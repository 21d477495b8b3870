using System;
using System.IO;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// A photograph as a ViT sees it: scaled so that it covers the grid's input (for a square input, its shortest side
/// to the input's side, as CLIP's and LLaVA's preprocessing resize) and centre-cropped to exactly
/// <see cref="PatchGrid.InputWidth"/> x <see cref="PatchGrid.InputHeight"/> RGB pixels.
/// </summary>
internal sealed class PatchImage
{
    private readonly byte[] _rgb;

    private PatchImage(PatchGrid grid, byte[] rgb)
    {
        Grid = grid;
        _rgb = rgb;
    }

    /// <summary>The grid the image is cut into.</summary>
    public PatchGrid Grid { get; }

    /// <summary>The cropped image's width in pixels (the grid's input width).</summary>
    public int Width => Grid.InputWidth;

    /// <summary>The cropped image's height in pixels (the grid's input height).</summary>
    public int Height => Grid.InputHeight;

    /// <summary>The cropped image: <see cref="Height"/> rows of <see cref="Width"/> pixels of R, G, B bytes.</summary>
    public ReadOnlySpan<byte> Rgb => _rgb;

    /// <summary>Reads a PNG or JPEG file and prepares it for <paramref name="grid"/>.</summary>
    /// <exception cref="ImageFileException">The file is missing, unreadable or not an image Skia can decode.</exception>
    public static PatchImage Load(string path, PatchGrid grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        using SKBitmap decoded = Read(path);
        return FromBitmap(decoded, grid);
    }

    /// <summary>Reads and decodes a whole PNG or JPEG file.</summary>
    /// <exception cref="ImageFileException">The file is missing, unreadable or not an image Skia can decode.</exception>
    public static SKBitmap Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new ImageFileException(path, $"The image '{path}' is a directory, not an image file.");
        }
        if (!File.Exists(path))
        {
            throw new ImageFileException(path, $"The image file '{path}' does not exist.");
        }
        byte[] encoded;
        try
        {
            encoded = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageFileException(path, $"The image file '{path}' could not be read: {e.Message}", e);
        }
        return Decode(encoded, path);
    }

    /// <summary>Decodes a whole PNG or JPEG file (a truncated one is an error, not a partly grey picture).</summary>
    private static SKBitmap Decode(byte[] encoded, string path)
    {
        using SKData data = SKData.CreateCopy(encoded);
        using SKCodec? codec = SKCodec.Create(data);
        if (codec is null || codec.Info.Width < 1 || codec.Info.Height < 1)
        {
            throw new ImageFileException(path, $"The file '{path}' is not an image this program can read (expected a PNG or JPEG file).");
        }
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(info);
        SKCodecResult result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new ImageFileException(path, $"The image '{path}' could not be decoded ({result}); the file may be damaged or truncated.");
        }
        return bitmap;
    }

    /// <summary>Prepares a bitmap for <paramref name="grid"/>; transparent pixels are flattened onto white.</summary>
    /// <exception cref="ArgumentException">The bitmap is empty.</exception>
    public static PatchImage FromBitmap(SKBitmap bitmap, PatchGrid grid)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        ArgumentNullException.ThrowIfNull(grid);
        if (bitmap.Width < 1 || bitmap.Height < 1)
        {
            throw new ArgumentException("The bitmap has no pixels.", nameof(bitmap));
        }
        (int scaledWidth, int scaledHeight) = CoverSize(bitmap.Width, bitmap.Height, grid.InputWidth, grid.InputHeight);
        // Integer halving like Hugging Face's center_crop: the extra pixel of an odd margin goes to the right / bottom.
        int left = (scaledWidth - grid.InputWidth) / 2;
        int top = (scaledHeight - grid.InputHeight) / 2;

        // Bicubic (Catmull-Rom, PIL's kernel) when enlarging as CLIP does; trilinear mipmaps when shrinking, since a
        // plain cubic kernel aliases below half size.
        SKSamplingOptions sampling = scaledWidth >= bitmap.Width
            ? new SKSamplingOptions(SKCubicResampler.CatmullRom)
            : new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear);
        var info = new SKImageInfo(grid.InputWidth, grid.InputHeight, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var cropped = new SKBitmap(info);
        using (var canvas = new SKCanvas(cropped))
        using (SKImage source = SKImage.FromBitmap(bitmap))
        {
            canvas.Clear(SKColors.White);
            // Scaling and cropping in one draw: the scaled image placed so that the crop window lands on the canvas.
            canvas.DrawImage(source, new SKRect(-left, -top, scaledWidth - left, scaledHeight - top), sampling);
        }
        return new PatchImage(grid, ToRgb(cropped));
    }

    /// <summary>The window of <paramref name="grid"/>'s size whose top-left pixel is (<paramref name="left"/>, <paramref name="top"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The window does not lie inside this image.</exception>
    public PatchImage Crop(int left, int top, PatchGrid grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (left < 0 || top < 0 || left + grid.InputWidth > Width || top + grid.InputHeight > Height)
        {
            throw new ArgumentOutOfRangeException(nameof(left), $"A {grid.InputWidth} x {grid.InputHeight} window at ({left}, {top}) does not fit a {Width} x {Height} image.");
        }
        var rgb = new byte[grid.InputWidth * grid.InputHeight * 3];
        for (int y = 0; y < grid.InputHeight; y++)
        {
            _rgb.AsSpan(((top + y) * Width + left) * 3, grid.InputWidth * 3).CopyTo(rgb.AsSpan(y * grid.InputWidth * 3));
        }
        return new PatchImage(grid, rgb);
    }

    /// <summary>
    /// The size the image is scaled to before the centre crop: the smallest that covers the target, the covering
    /// side exact and the other truncated (Hugging Face's <c>int(size * long / short)</c>).
    /// </summary>
    public static (int Width, int Height) CoverSize(int width, int height, int targetWidth, int targetHeight)
    {
        // Compare targetWidth / width with targetHeight / height without rounding.
        if ((long)targetWidth * height >= (long)targetHeight * width)
        {
            return (targetWidth, (int)Math.Max(targetHeight, (long)height * targetWidth / width));
        }
        return ((int)Math.Max(targetWidth, (long)width * targetHeight / height), targetHeight);
    }

    /// <summary>The top-left pixel of patch <paramref name="patch"/> (row-major).</summary>
    public (int X, int Y) PatchOrigin(int patch)
    {
        RequirePatch(patch);
        return (patch % Grid.Columns * Grid.PatchSize, patch / Grid.Columns * Grid.PatchSize);
    }

    /// <summary>The pixel (<paramref name="x"/>, <paramref name="y"/>) of the cropped image.</summary>
    public (byte R, byte G, byte B) GetPixel(int x, int y)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
        {
            throw new ArgumentOutOfRangeException(nameof(x), $"({x}, {y}) is outside the {Width} x {Height} image.");
        }
        int offset = (y * Width + x) * 3;
        return (_rgb[offset], _rgb[offset + 1], _rgb[offset + 2]);
    }

    /// <summary>The pixels of patch <paramref name="patch"/>: <c>[patch, patch, 3]</c> R, G, B bytes, row-major.</summary>
    public byte[] GetPatchPixels(int patch)
    {
        (int x0, int y0) = PatchOrigin(patch);
        int side = Grid.PatchSize;
        byte[] pixels = new byte[side * side * 3];
        for (int y = 0; y < side; y++)
        {
            _rgb.AsSpan(((y0 + y) * Width + x0) * 3, side * 3).CopyTo(pixels.AsSpan(y * side * 3));
        }
        return pixels;
    }

    /// <summary>The patch's mean colour, each channel averaged over its pixels (unrounded).</summary>
    public (double R, double G, double B) PatchMeanColor(int patch)
    {
        byte[] pixels = GetPatchPixels(patch);
        long r = 0, g = 0, b = 0;
        for (int i = 0; i < pixels.Length; i += 3)
        {
            r += pixels[i];
            g += pixels[i + 1];
            b += pixels[i + 2];
        }
        double count = pixels.Length / 3;
        return (r / count, g / count, b / count);
    }

    /// <summary>The cropped image as a new opaque bitmap.</summary>
    public SKBitmap ToBitmap() => RgbBitmap.Create(_rgb, Width, Height);

    private void RequirePatch(int patch)
    {
        if ((uint)patch >= (uint)Grid.PatchCount)
        {
            throw new ArgumentOutOfRangeException(nameof(patch), patch, $"A patch index is 0 to {Grid.PatchCount - 1} for {Grid}.");
        }
    }

    private static byte[] ToRgb(SKBitmap opaque)
    {
        ReadOnlySpan<byte> rgba = opaque.GetPixelSpan();
        int width = opaque.Width, height = opaque.Height, rowBytes = opaque.RowBytes;
        byte[] rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int source = y * rowBytes + x * 4, target = (y * width + x) * 3;
                rgb[target] = rgba[source];
                rgb[target + 1] = rgba[source + 1];
                rgb[target + 2] = rgba[source + 2];
            }
        }
        return rgb;
    }
}
