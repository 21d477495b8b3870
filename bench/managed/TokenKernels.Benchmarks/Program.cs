using System.Linq;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace TokenKernels.Benchmarks;

internal static class Program
{
    /// <summary>
    /// Runs the benchmarks the arguments select (BenchmarkDotNet's command line: --filter, --job, ...). Exits with 1
    /// when a benchmark failed to build or run, since BenchmarkDotNet itself still exits with 0 then and a CI
    /// smoke run must not pass on a table of NA.
    /// </summary>
    private static int Main(string[] args)
    {
        Summary[] summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args).ToArray();
        bool failed = summaries.Any(summary => summary.HasCriticalValidationErrors || summary.Reports.Any(report => !report.Success));
        return failed ? 1 : 0;
    }
}
