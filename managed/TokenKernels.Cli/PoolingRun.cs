using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Tasks;

namespace TokenKernels.Cli;

/// <summary>The timing of one workload on one device.</summary>
internal sealed record Measurement(string Device, TensorShape InputShape, TensorShape OutputShape, double MedianMilliseconds, double MinMilliseconds, long BytesMoved);

/// <summary>Runs a workload on the CPU or on CUDA device 0 and times it: one warm-up run, then the median of the timed runs.</summary>
internal static class PoolingRun
{
    /// <summary>Fresh uniform values in [-1, 1), drawn in parallel (a 64-frame SigLIP input is 54M elements).</summary>
    public static T[] RandomTokens<T>(long count)
        where T : unmanaged
    {
        var values = new T[count];
        const int chunk = 1 << 20;
        Parallel.For(0, (int)((count + chunk - 1) / chunk), c =>
        {
            var random = new Random();
            long end = Math.Min(count, (long)(c + 1) * chunk);
            for (long i = (long)c * chunk; i < end; i++)
            {
                values[i] = FromFloat<T>(random.NextSingle() * 2 - 1);
            }
        });
        return values;
    }

    public static (Measurement Measurement, T[] Output) OnCpu<T>(Workload workload, T[] input, int runs)
        where T : unmanaged
    {
        TensorShape outputShape = Pooling.GetOutputShape(workload.InputShape, workload.Options);
        var output = new T[outputShape.ElementCount];
        var milliseconds = new double[runs];
        for (int run = -1; run < runs; run++)
        {
            long start = Stopwatch.GetTimestamp();
            Pooling.Pool(new ReadOnlyHostTensor<T>(input, workload.InputShape), new HostTensor<T>(output, outputShape), workload.Options);
            if (run >= 0)
            {
                milliseconds[run] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        return (Summarize("cpu", workload.InputShape, outputShape, milliseconds, Unsafe.SizeOf<T>()), output);
    }

    /// <summary>Times the kernel alone: the input is copied to the device first, and each run is the launch plus a stream synchronize.</summary>
    public static (Measurement Measurement, T[] Output) OnCuda<T>(Workload workload, T[] input, int runs)
        where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypeExtensions.Of<T>();
        TensorShape outputShape = Pooling.GetOutputShape(workload.InputShape, workload.Options);
        using var stream = CudaStream.Create(0);
        using var deviceInput = DeviceBuffer.Allocate<T>(input.LongLength);
        using var deviceOutput = DeviceBuffer.Allocate<T>(outputShape.ElementCount);
        deviceInput.CopyFrom<T>(input, 0, stream);
        DeviceTensor x = deviceInput.AsTensor(workload.InputShape, dataType);
        DeviceTensor y = deviceOutput.AsTensor(outputShape, dataType);

        var milliseconds = new double[runs];
        for (int run = -1; run < runs; run++)
        {
            long start = Stopwatch.GetTimestamp();
            Pooling.Pool(x, y, workload.Options, stream);
            stream.Synchronize();
            if (run >= 0)
            {
                milliseconds[run] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        var output = new T[outputShape.ElementCount];
        deviceOutput.CopyTo<T>(output, 0, stream);
        return (Summarize("cuda", workload.InputShape, outputShape, milliseconds, Unsafe.SizeOf<T>()), output);
    }

    /// <summary>The largest |a - b| over two outputs of the same workload.</summary>
    public static double MaxAbsoluteDifference<T>(T[] a, T[] b)
        where T : unmanaged
    {
        double max = 0;
        for (long i = 0; i < a.LongLength; i++)
        {
            double difference = Math.Abs((double)ToFloat(a[i]) - ToFloat(b[i]));
            max = double.IsNaN(difference) ? double.NaN : Math.Max(max, difference);
        }
        return max;
    }

    private static Measurement Summarize(string device, TensorShape input, TensorShape output, double[] milliseconds, int elementSize)
    {
        Array.Sort(milliseconds);
        int n = milliseconds.Length;
        double median = n % 2 == 1 ? milliseconds[n / 2] : (milliseconds[n / 2 - 1] + milliseconds[n / 2]) / 2;
        long bytes = (input.ElementCount + output.ElementCount) * elementSize;
        return new Measurement(device, input, output, median, milliseconds[0], bytes);
    }

    private static T FromFloat<T>(float value)
        where T : unmanaged
    {
        if (typeof(T) == typeof(Float16))
        {
            var half = (Float16)value;
            return Unsafe.As<Float16, T>(ref half);
        }
        if (typeof(T) == typeof(BFloat16))
        {
            var bfloat = (BFloat16)value;
            return Unsafe.As<BFloat16, T>(ref bfloat);
        }
        return Unsafe.As<float, T>(ref value);
    }

    private static float ToFloat<T>(T value)
        where T : unmanaged
    {
        if (typeof(T) == typeof(Float16))
        {
            return Unsafe.As<T, Float16>(ref value);
        }
        if (typeof(T) == typeof(BFloat16))
        {
            return Unsafe.As<T, BFloat16>(ref value);
        }
        return Unsafe.As<T, float>(ref value);
    }
}
