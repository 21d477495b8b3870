using System;

namespace TokenKernels.Tests.Reference;

/// <summary>Conversions between the element types under test and double, and their rounding error.</summary>
internal static class Elements
{
    public static T FromDouble<T>(double value)
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            return (T)(object)(float)value;
        }
        if (typeof(T) == typeof(Float16))
        {
            return (T)(object)(Float16)(float)value;
        }
        if (typeof(T) == typeof(Half))
        {
            return (T)(object)(Half)(float)value;
        }
        if (typeof(T) == typeof(BFloat16))
        {
            return (T)(object)(BFloat16)(float)value;
        }
        throw new NotSupportedException(typeof(T).Name);
    }

    public static double ToDouble<T>(T value)
        where T : unmanaged
    {
        object boxed = value;
        return boxed switch
        {
            float f => f,
            Float16 h => h,
            Half h => (double)h,
            BFloat16 b => b,
            _ => throw new NotSupportedException(typeof(T).Name),
        };
    }

    /// <summary>
    /// Allowed |actual - expected| for an output computed in float32 from inputs of type T and rounded to T: the
    /// rounding of the output (a relative half ulp of T, doubled for a float32 result that may round the other
    /// way) plus float32 accumulation and weight error, which is absolute for values of order 1.
    /// </summary>
    public static double Tolerance<T>(double expected)
        where T : unmanaged
    {
        double relative = typeof(T) == typeof(float) ? 1e-6
            : typeof(T) == typeof(BFloat16) ? Math.Pow(2, -8)
            : Math.Pow(2, -10);
        return relative * Math.Abs(expected) + 2e-6;
    }

    /// <summary>Fresh random values in [-1, 1) as T, and the same values (after rounding to T) as doubles.</summary>
    public static (T[] Values, double[] Exact) Random<T>(long count, Random random)
        where T : unmanaged
    {
        var values = new T[count];
        var exact = new double[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = FromDouble<T>(random.NextDouble() * 2 - 1);
            exact[i] = ToDouble(values[i]);
        }
        return (values, exact);
    }
}
