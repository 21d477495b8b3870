using System;
using System.CommandLine;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Commands;

/// <summary><c>tokenkernels info</c>: the library, the CPU variant and threads, and the CUDA build and devices.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Show the native library's version and path, the CPU vector variant and threads, and the CUDA build and devices.");
        command.SetAction(_ => Run());
        return command;
    }

    private static int Run()
    {
        if (!NativeLibrary.TryLoad(out string? loadError))
        {
            Console.Error.WriteLine("error: " + loadError);
            return ExitCodes.Failure;
        }
        Console.WriteLine($"library   TokenKernels {TokenKernelsLibrary.VersionString}");
        Console.WriteLine($"path      {TokenKernelsLibrary.LoadedFrom}");
        Console.WriteLine($"cpu       {TokenKernelsLibrary.CpuIsa}, {TokenKernelsLibrary.NumThreads} threads ({Environment.ProcessorCount} logical processors)");
        Console.WriteLine($"cuda      {(TokenKernelsLibrary.IsCudaBuilt ? "built in (architectures " + Cuda.Architectures + ")" : "not built into this library")}");
        if (Cuda.IsAvailable)
        {
            for (int ordinal = 0; ordinal < Cuda.DeviceCount; ordinal++)
            {
                string capability = Cuda.GetComputeCapability(ordinal) is (int major, int minor) ? $"compute capability {major}.{minor}" : "compute capability unknown";
                Console.WriteLine($"device {ordinal}  {Cuda.GetDeviceName(ordinal)}, {capability}");
            }
        }
        else if (TokenKernelsLibrary.IsCudaBuilt)
        {
            Console.WriteLine($"devices   none ({Cuda.UnavailableReason})");
        }
        Console.WriteLine($"methods   {MethodCatalog.All.Count} (compress --method NAME; compress --help lists their parameters):");
        foreach (TokenMethod method in MethodCatalog.All)
        {
            Console.WriteLine($"  {method.Name,-13} {method.Title}");
        }
        return ExitCodes.Success;
    }
}
