using System;
using System.Globalization;
using NUnit.Framework;

namespace TokenKernels.Tests;

/// <summary>Float16 and BFloat16 against System.Half and the definition of round-to-nearest-even.</summary>
public class ElementTypeTests
{
    [Test]
    public void EveryFloat16ConvertsToFloatAsSystemHalfDoes()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            float ours = Float16.FromBits((ushort)bits);
            float reference = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
            if (float.IsNaN(reference) ? !float.IsNaN(ours) : BitConverter.SingleToInt32Bits(ours) != BitConverter.SingleToInt32Bits(reference))
            {
                Assert.Fail($"bits 0x{bits:x4}: ours {ours:R}, System.Half {reference:R}");
            }
        }
    }

    [Test]
    public void FloatsRoundToFloat16AsSystemHalfDoes()
    {
        var random = new Random(5);
        float[] special =
        {
            0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, -65520f, 1e-8f, 2.98023224e-8f, 2.98023238e-8f, 5.96046448e-8f, 8.9407e-8f,
            6.09755516e-5f, 6.10351562e-5f, 1.00048828f, 1.00146484f, 2049f, 2051f, float.MaxValue, float.Epsilon,
            float.PositiveInfinity, float.NegativeInfinity, float.NaN,
        };
        for (int i = 0; i < special.Length + 1_000_000; i++)
        {
            float value = i < special.Length ? special[i] : BitConverter.Int32BitsToSingle(random.Next() ^ (random.Next(2) << 31));
            ushort ours = ((Float16)value).Bits;
            ushort reference = BitConverter.HalfToUInt16Bits((Half)value);
            bool bothNaN = Half.IsNaN((Half)value) && Float16.IsNaN(Float16.FromBits(ours));
            if (!bothNaN && ours != reference)
            {
                Assert.Fail($"{value:R} (0x{BitConverter.SingleToInt32Bits(value):x8}): ours 0x{ours:x4}, System.Half 0x{reference:x4}");
            }
        }
    }

    [Test]
    public void NaNStaysNaNWithItsSign()
    {
        float negativeNaN = BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Float16.IsNaN((Float16)float.NaN), Is.True);
            Assert.That(Float16.IsNaN((Float16)negativeNaN) && ((Float16)negativeNaN).Bits >= 0x8000, Is.True);
            Assert.That(BFloat16.IsNaN((BFloat16)float.NaN), Is.True);
            Assert.That(BFloat16.IsNaN((BFloat16)negativeNaN) && ((BFloat16)negativeNaN).Bits >= 0x8000, Is.True);
            Assert.That(BFloat16.IsNaN((BFloat16)BitConverter.Int32BitsToSingle(0x7F800001)), Is.True, "a NaN whose payload is only in the low bits");
        }
    }

    [TestCase(1.0f, (ushort)0x3F80)]
    [TestCase(1.00390625f, (ushort)0x3F80)] // halfway between 0x3F80 and 0x3F81: to even
    [TestCase(1.01171875f, (ushort)0x3F82)] // halfway between 0x3F81 and 0x3F82: to even
    [TestCase(1.00390637f, (ushort)0x3F81)] // one float above halfway: up
    [TestCase(-2.5f, (ushort)0xC020)]
    [TestCase(3.4028235e38f, (ushort)0x7F80)] // float max rounds to infinity
    [TestCase(float.NegativeInfinity, (ushort)0xFF80)]
    [TestCase(1e-40f, (ushort)0x0001)] // subnormal
    public void FloatsRoundToBFloat16ToNearestEven(float value, ushort bits)
        => Assert.That(((BFloat16)value).Bits, Is.EqualTo(bits));

    [Test]
    public void EveryBFloat16RoundTripsThroughFloat()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            BFloat16 value = BFloat16.FromBits((ushort)bits);
            BFloat16 back = (BFloat16)(float)value;
            if (BFloat16.IsNaN(value) ? !BFloat16.IsNaN(back) : back.Bits != bits)
            {
                Assert.Fail($"bits 0x{bits:x4} came back as 0x{back.Bits:x4}");
            }
        }
    }

    [Test]
    public void EqualityFollowsFloat()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Float16.NaN == Float16.NaN, Is.False, "IEEE ==");
            Assert.That(Float16.NaN.Equals(Float16.NaN), Is.True, "Equals, as float.Equals");
            Assert.That((Float16)0f == (Float16)(-0f), Is.True);
            Assert.That(((Float16)0f).GetHashCode(), Is.EqualTo(((Float16)(-0f)).GetHashCode()));
            Assert.That(BFloat16.NaN == BFloat16.NaN, Is.False);
            Assert.That(BFloat16.NaN.Equals(BFloat16.NaN), Is.True);
            Assert.That((BFloat16)0f == (BFloat16)(-0f), Is.True);
            Assert.That(((BFloat16)0f).GetHashCode(), Is.EqualTo(((BFloat16)(-0f)).GetHashCode()));
            Assert.That((BFloat16)1f < (BFloat16)2f && (Float16)1f < (Float16)2f, Is.True);
            Assert.That(((Float16)1f).CompareTo(Float16.NaN), Is.GreaterThan(0));
        }
    }

    [Test]
    public void TextIsTheShortestThatConvertsBack()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(((Float16)0.1f).ToString(null, CultureInfo.InvariantCulture), Is.EqualTo("0.1"));
            Assert.That(((Float16)65504f).ToString(null, CultureInfo.InvariantCulture), Is.EqualTo("65500"));
            Assert.That(((BFloat16)3.14159265f).ToString(null, CultureInfo.InvariantCulture), Is.EqualTo("3.14"));
            Assert.That(((BFloat16)(-0f)).ToString(null, CultureInfo.InvariantCulture), Is.EqualTo("-0"));
            Assert.That(Float16.PositiveInfinity.ToString(null, CultureInfo.InvariantCulture), Is.EqualTo(float.PositiveInfinity.ToString(CultureInfo.InvariantCulture)));
            Assert.That(((Float16)0.1f).ToString("F3", CultureInfo.InvariantCulture), Is.EqualTo("0.100"));
        }
    }

    [Test]
    public void EveryFloat16IsWrittenAsSystemHalfWritesIt()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            string ours = Float16.FromBits((ushort)bits).ToString(null, CultureInfo.InvariantCulture);
            string reference = BitConverter.UInt16BitsToHalf((ushort)bits).ToString(CultureInfo.InvariantCulture);
            if (ours != reference)
            {
                Assert.Fail($"bits 0x{bits:x4}: ours \"{ours}\", System.Half \"{reference}\"");
            }
        }
    }

    [Test]
    public void SystemHalfConvertsWithoutChangingBits()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits += 7)
        {
            Half half = BitConverter.UInt16BitsToHalf((ushort)bits);
            Float16 ours = half;
            Half back = ours;
            Assert.That(BitConverter.HalfToUInt16Bits(back), Is.EqualTo((ushort)bits));
        }
    }

    [Test]
    public void ConversionsBetweenTheTwoRoundOnce()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(((BFloat16)(Float16)1.5f).Bits, Is.EqualTo(((BFloat16)1.5f).Bits));
            Assert.That(((Float16)(BFloat16)65536f).Bits, Is.EqualTo(Float16.PositiveInfinity.Bits));
            Assert.That((double)(Float16)0.5f, Is.EqualTo(0.5));
            Assert.That(Float16.MaxValue, Is.EqualTo((Float16)65504f));
            Assert.That((float)Float16.Epsilon, Is.EqualTo(MathF.Pow(2, -24)));
        }
    }
}
