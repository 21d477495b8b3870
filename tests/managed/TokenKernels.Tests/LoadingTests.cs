using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// How the native library is found, and what a failure says. The search is exercised through the loader's own
/// probe with a search description built here, so the process's real library stays loaded for the other tests.
/// </summary>
public class LoadingTests
{
    private static string BuiltLibrary => Path.Combine(AppContext.BaseDirectory, NativeLibraryLoader.PlatformFileName);

    [Test]
    public void TheExplicitPathOrElseTheLibraryNextToTheApplicationIsLoaded()
    {
        string? explicitPath = Environment.GetEnvironmentVariable(TokenKernelsLibrary.PathEnvironmentVariable);
        TokenKernelsLibrary.Load();
        Assert.That(TokenKernelsLibrary.LoadedFrom, Is.EqualTo(string.IsNullOrEmpty(explicitPath) ? BuiltLibrary : explicitPath));
    }

    [Test]
    public void AMissingExplicitPathIsTheOnlyThingTriedAndTheMessageListsIt()
    {
        string missing = Path.Combine(Path.GetTempPath(), "tokenkernels-no-such-dir", NativeLibraryLoader.PlatformFileName);
        var attempts = new List<string>();
        var search = new NativeLibraryLoader.LibrarySearch(null, missing, new[] { BuiltLibrary }, useDefaultSearch: true);

        NativeLibraryLoader.LoadedLibrary result = NativeLibraryLoader.Probe(search, attempts);
        string message = TokenKernelsLoadException.NotFound(attempts).Message;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.Handle, Is.EqualTo(IntPtr.Zero), "an explicit path is authoritative: the built library next to the tests is not loaded instead");
            Assert.That(attempts, Is.EqualTo(new[] { "TOKENKERNELS_NATIVE_LIBRARY=" + missing + ": no such file" }));
            Assert.That(message, Does.Contain("Tried, in order:").And.Contain(missing).And.Contain("no such file"));
            Assert.That(message, Does.Contain("To fix it:").And.Contain("  1. ").And.Contain("  5. "));
            Assert.That(message, Does.Contain("TOKENKERNELS_NATIVE_LIBRARY").And.Contain("ResolveLibrary").And.Contain("cmake"));
        }
    }

    [Test]
    public void EveryCandidateIsListedWhenNoneLoads()
    {
        string directory = Path.Combine(Path.GetTempPath(), "tokenkernels-loading-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            string notALibrary = Path.Combine(directory, NativeLibraryLoader.PlatformFileName);
            File.WriteAllText(notALibrary, "not a shared library");
            IReadOnlyList<string> candidates = NativeLibraryLoader.LibrarySearch.CandidatePathsFor(directory, null);
            var attempts = new List<string>();

            NativeLibraryLoader.LoadedLibrary result = NativeLibraryLoader.Probe(new NativeLibraryLoader.LibrarySearch(null, null, candidates, useDefaultSearch: false), attempts);

            using (Assert.EnterMultipleScope())
            {
                Assert.That(result.Handle, Is.EqualTo(IntPtr.Zero));
                Assert.That(attempts, Has.Count.EqualTo(candidates.Count));
                Assert.That(attempts[0], Does.StartWith(Path.Combine(directory, NativeLibraryLoader.PlatformFileNames[0])).And.EndWith("no such file"));
                Assert.That(attempts[1], Does.StartWith(notALibrary).And.Contain("exists but did not load"));
                Assert.That(attempts[2], Does.Contain(Path.Combine("runtimes", RuntimeInformation.RuntimeIdentifier, "native")).And.EndWith("no such file"));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void CandidatesAreTheApplicationDirectoryThenRuntimesRidNative()
    {
        string app = Path.Combine(Path.GetTempPath(), "app");
        string plugin = Path.Combine(Path.GetTempPath(), "plugin");
        IReadOnlyList<string> candidates = NativeLibraryLoader.LibrarySearch.CandidatePathsFor(app, plugin);
        string file = NativeLibraryLoader.PlatformFileName;
        string cudaFile = NativeLibraryLoader.PlatformFileNames[0];
        string portableRid = (RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "win" : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "osx" : "linux")
            + "-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(candidates.Take(4), Is.EqualTo(new[]
            {
                Path.Combine(app, cudaFile), Path.Combine(app, file), Path.Combine(plugin, cudaFile), Path.Combine(plugin, file),
            }), "in each directory the CUDA build (which holds the CPU backend too) comes before the CPU build");
            Assert.That(candidates, Does.Contain(Path.Combine(app, "runtimes", portableRid, "native", file)));
            Assert.That(candidates, Does.Contain(Path.Combine(plugin, "runtimes", portableRid, "native", file)));
            var order = candidates.ToList();
            Assert.That(order.IndexOf(Path.Combine(app, "runtimes", portableRid, "native", cudaFile)),
                Is.EqualTo(order.IndexOf(Path.Combine(app, "runtimes", portableRid, "native", file)) - 1));
            Assert.That(file, Does.Contain("tokenkernels"));
            Assert.That(cudaFile, Does.Contain("tokenkernels_cuda"));
        }
    }

    [Test]
    public void TheHostHookComesFirstAndZeroFallsThrough()
    {
        IntPtr handle = NativeLibrary.Load(BuiltLibrary);
        var attempts = new List<string>();

        NativeLibraryLoader.LoadedLibrary hooked = NativeLibraryLoader.Probe(
            new NativeLibraryLoader.LibrarySearch(name => name == "tokenkernels" ? handle : IntPtr.Zero, null, Array.Empty<string>(), useDefaultSearch: false), attempts);
        NativeLibraryLoader.LoadedLibrary fellThrough = NativeLibraryLoader.Probe(
            new NativeLibraryLoader.LibrarySearch(_ => IntPtr.Zero, null, new[] { BuiltLibrary }, useDefaultSearch: false), attempts);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(hooked.Handle, Is.EqualTo(handle));
            Assert.That(hooked.Source, Is.EqualTo("TokenKernelsLibrary.ResolveLibrary"));
            Assert.That(fellThrough.Handle, Is.Not.EqualTo(IntPtr.Zero));
            Assert.That(fellThrough.Source, Is.EqualTo(BuiltLibrary));
            Assert.That(attempts, Is.EqualTo(new[] { "TokenKernelsLibrary.ResolveLibrary: returned IntPtr.Zero" }));
        }
    }

    [TestCase(100, true)]
    [TestCase(101, true)]
    [TestCase(199, true)]
    [TestCase(200, false)]
    [TestCase(0, false)]
    [TestCase(10100, false)]
    public void OnlyPatchReleasesOfTheSameMinorVersionAreCompatibleBefore1Point0(int nativeVersion, bool compatible)
        => Assert.That(NativeLibraryLoader.IsCompatible(nativeVersion), Is.EqualTo(compatible));

    [Test]
    public void AVersionMismatchNamesBothVersionsAndTheFile()
    {
        string message = TokenKernelsLoadException.VersionMismatch(200, "/opt/lib/libtokenkernels.so").Message;
        Assert.That(message, Does.Contain("0.2.0").And.Contain("0.1.0").And.Contain("/opt/lib/libtokenkernels.so").And.Contain("TOKENKERNELS_NATIVE_LIBRARY"));
    }

    [Test]
    public void HooksCannotChangeOnceLoaded()
    {
        TokenKernelsLibrary.Load();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenKernelsLibrary.ResolveLibrary = _ => IntPtr.Zero, Throws.InvalidOperationException.With.Message.Contain("before the first TokenKernels call"));
            Assert.That(() => TokenKernelsLibrary.UseBuiltInResolver = false, Throws.InvalidOperationException);
        }
    }

    [Test]
    public void QueriesThatNeverThrowAnswer()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenKernelsLibrary.IsCudaBuilt, Throws.Nothing);
            Assert.That(() => Cuda.IsAvailable, Throws.Nothing);
            Assert.That(Cuda.DeviceCount, Is.GreaterThanOrEqualTo(0));
            Assert.That(Cuda.GetDeviceName(4096), Is.Null);
            Assert.That(Cuda.GetComputeCapability(-1), Is.Null);
            Assert.That(Cuda.IsAvailable, Is.EqualTo(Cuda.UnavailableReason == null));
            Assert.That(TokenKernelsLibrary.TryLoad(out string? failure), Is.True);
            Assert.That(failure, Is.Null);
        }
    }

    [Test]
    public void ArchitecturesDecideWhichComputeCapabilitiesRun()
    {
        string architectures = Cuda.Architectures;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(architectures.Length == 0, Is.EqualTo(!TokenKernelsLibrary.IsCudaBuilt), architectures);
            Assert.That(Cuda.SupportsComputeCapability(2, 0), Is.False, "no build holds sm_20 code");
            Assert.That(Cuda.SupportsComputeCapability(9, 10), Is.False, "minor 10 is no capability");
            if (architectures.Length == 0)
            {
                Assert.That(Cuda.SupportsComputeCapability(9, 0), Is.False, "nothing runs without CUDA");
            }
            foreach (string entry in architectures.Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                // Each entry's own capability runs its code (arch-specific "a" entries included).
                string digits = new string(entry.TakeWhile(char.IsDigit).ToArray());
                int capability = int.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
                Assert.That(Cuda.SupportsComputeCapability(capability / 10, capability % 10), Is.True, entry);
            }
        }
    }

    [Test]
    public void ThreadCountRoundTrips()
    {
        int before = TokenKernelsLibrary.NumThreads;
        try
        {
            TokenKernelsLibrary.NumThreads = 1;
            Assert.That(TokenKernelsLibrary.NumThreads, Is.EqualTo(1));
            TokenKernelsLibrary.NumThreads = 0;
            Assert.That(TokenKernelsLibrary.NumThreads, Is.GreaterThanOrEqualTo(1), "0 restores the default");
        }
        finally
        {
            TokenKernelsLibrary.NumThreads = before;
        }
    }
}
