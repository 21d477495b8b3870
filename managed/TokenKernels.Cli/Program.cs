using System;
using System.Globalization;
using TokenKernels;
using TokenKernels.Cli;

if (!CliOptions.TryParse(args, out CliOptions options, out string? error))
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine();
    Console.Error.WriteLine(CliOptions.Usage);
    return 2;
}
if (options.ShowHelp)
{
    Console.WriteLine(CliOptions.Usage);
    return 0;
}

try
{
    TokenKernelsLibrary.Load();
}
catch (TokenKernelsLoadException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
if (options.Threads is int threads)
{
    TokenKernelsLibrary.NumThreads = threads;
}

bool runCpu = options.Device != DeviceChoice.Cuda;
bool runCuda = options.Device != DeviceChoice.Cpu && Cuda.IsAvailable;
if (options.Device == DeviceChoice.Cuda && !runCuda)
{
    Console.Error.WriteLine("--device cuda: no CUDA device: " + Cuda.UnavailableReason + ".");
    return 1;
}

Console.WriteLine($"TokenKernels {TokenKernelsLibrary.VersionString}, native library {TokenKernelsLibrary.LoadedFrom}");
Console.WriteLine($"CPU: {TokenKernelsLibrary.NumThreads} threads");
Console.WriteLine(Cuda.IsAvailable
    ? $"CUDA: device 0 {Cuda.GetDeviceName(0)}, compute capability {Cuda.GetComputeCapability(0)?.Major}.{Cuda.GetComputeCapability(0)?.Minor}"
    : $"CUDA: not used ({Cuda.UnavailableReason})");
Console.WriteLine($"dtype {CliOptions.ShortName(options.DataType)}, fresh random inputs, {options.Runs} timed runs after 1 warm-up; median (min) per run");
Console.WriteLine();
Console.WriteLine($"{"method",-16} {"pooling",-24} {"device",-6} {"input",-24} {"output",-24} {"tokens",-16} {"median ms",10} {"min ms",9} {"GB/s",7}");

foreach (Workload workload in Workload.All(options.Frames))
{
    switch (options.DataType)
    {
        case TensorDataType.Float16:
            Run<Float16>(workload);
            break;
        case TensorDataType.BFloat16:
            Run<BFloat16>(workload);
            break;
        default:
            Run<float>(workload);
            break;
    }
}
return 0;

void Run<T>(Workload workload)
    where T : unmanaged
{
    T[] input = PoolingRun.RandomTokens<T>(workload.InputShape.ElementCount);
    T[]? cpuOutput = null;
    if (runCpu)
    {
        (Measurement measurement, cpuOutput) = PoolingRun.OnCpu(workload, input, options.Runs);
        Print(workload, measurement);
    }
    if (runCuda)
    {
        (Measurement measurement, T[] cudaOutput) = PoolingRun.OnCuda(workload, input, options.Runs);
        Print(workload, measurement);
        if (cpuOutput != null)
        {
            Console.WriteLine($"{"",-16} {"",-24} max |cpu - cuda| = {PoolingRun.MaxAbsoluteDifference(cpuOutput, cudaOutput).ToString("G3", CultureInfo.InvariantCulture)}");
        }
    }
}

static void Print(Workload workload, Measurement m)
{
    string tokens = $"{Workload.Tokens(m.InputShape)} -> {Workload.Tokens(m.OutputShape)}";
    double gigabytesPerSecond = m.BytesMoved / (m.MedianMilliseconds / 1000) / 1e9;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{workload.Method,-16} {workload.Description,-24} {m.Device,-6} {m.InputShape,-24} {m.OutputShape,-24} {tokens,-16} {m.MedianMilliseconds,10:F2} {m.MinMilliseconds,9:F2} {gigabytesPerSecond,7:F1}"));
}
