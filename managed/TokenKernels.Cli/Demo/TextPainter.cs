using System;
using SkiaSharp;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// Draws the pictures' titles: with a sans-serif system typeface when Skia finds one that has every character of
/// the text (Windows and macOS always; Linux when fonts are installed, which SkiaSharp's NoDependencies build looks
/// up without fontconfig), otherwise with <see cref="BitmapFont"/>, so a title is never left out.
/// </summary>
internal sealed class TextPainter
{
    private static readonly string[] PreferredFamilies = ["DejaVu Sans", "Segoe UI", "Helvetica", "Arial", "Liberation Sans", "Noto Sans"];

    private readonly SKTypeface? _typeface;

    private TextPainter(SKTypeface? typeface)
    {
        _typeface = typeface;
    }

    /// <summary>The system typeface where there is one, the bitmap font where not.</summary>
    public static TextPainter Default { get; } = new(FindSystemTypeface());

    /// <summary>Always the bitmap font (for tests and identical pictures on every machine).</summary>
    public static TextPainter BitmapOnly { get; } = new(null);

    /// <summary>The system typeface's family, or null when text is drawn with the bitmap font.</summary>
    public string? TypefaceFamily => _typeface?.FamilyName;

    /// <summary>
    /// Draws <paramref name="text"/> about <paramref name="height"/> pixels high (cap height plus descenders), left
    /// edge at <paramref name="left"/> and vertically centred in the band from <paramref name="top"/> of
    /// <paramref name="height"/> pixels.
    /// </summary>
    public void Draw(SKCanvas canvas, string text, float left, float top, float height, SKColor color)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        ArgumentNullException.ThrowIfNull(text);
        if (UsesTypefaceFor(text))
        {
            using SKFont font = CreateFont(height);
            using var paint = new SKPaint { Color = color, IsAntialias = true };
            SKFontMetrics metrics = font.Metrics;
            // Centre the ascent-to-descent box in the band.
            float baseline = top + (height - (metrics.Descent - metrics.Ascent)) / 2 - metrics.Ascent;
            canvas.DrawText(text, left, baseline, SKTextAlign.Left, font, paint);
            return;
        }
        int scale = BitmapScale(height);
        BitmapFont.Draw(canvas, text, left, top + (height - BitmapFont.GlyphHeight * scale) / 2, scale, color);
    }

    /// <summary>The width <see cref="Draw"/> gives <paramref name="text"/> at <paramref name="height"/>.</summary>
    public float MeasureWidth(string text, float height)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (UsesTypefaceFor(text))
        {
            using SKFont font = CreateFont(height);
            return font.MeasureText(text);
        }
        return BitmapFont.MeasureWidth(text, BitmapScale(height));
    }

    private bool UsesTypefaceFor(string text) => _typeface is not null && Covers(_typeface, text);

    private static bool Covers(SKTypeface typeface, string text)
    {
        using var font = new SKFont(typeface);
        return font.ContainsGlyphs(text);
    }

    private SKFont CreateFont(float height) =>
        // A band of height h fits the ascent and descent of a font of about 0.8 h.
        new(_typeface, height * 0.8f) { Subpixel = true, Edging = SKFontEdging.Antialias };

    private static int BitmapScale(float height) => Math.Max(1, (int)(height / BitmapFont.GlyphHeight));

    private static SKTypeface? FindSystemTypeface()
    {
        SKFontManager manager = SKFontManager.Default;
        foreach (string family in PreferredFamilies)
        {
            SKTypeface? typeface = manager.MatchFamily(family);
            if (typeface is not null && typeface.GlyphCount > 0 && Covers(typeface, "Ag0->"))
            {
                return typeface;
            }
            typeface?.Dispose();
        }
        SKTypeface fallback = SKTypeface.Default;
        return fallback.GlyphCount > 0 && Covers(fallback, "Ag0->") ? fallback : null;
    }
}
