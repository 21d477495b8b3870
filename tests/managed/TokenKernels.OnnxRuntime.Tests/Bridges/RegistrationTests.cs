using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests.Bridges;

/// <summary>
/// Where RegisterTokenKernels looks for the custom-op library and what a failure says. The search is exercised
/// through its own probe with paths built here, and through the public call with TOKENKERNELS_ORT_LIBRARY pointing
/// at files that are not the custom-op library, so a library the build puts beside the tests does not interfere.
/// </summary>
[NonParallelizable]
public class RegistrationTests
{
    private string _directory = string.Empty;
    private string? _savedVariable;

    private static string Ext => TokenKernelsOrt.PlatformExtension;

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "tokenkernels-ort-registration-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _savedVariable = Environment.GetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable);
    }

    [TearDown]
    public void RemoveDirectory()
    {
        Environment.SetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable, _savedVariable);
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public void TheDomainAndTheFileNameAreTheAgreedOnes()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TokenKernelsOrt.Domain, Is.EqualTo("ai.tokenkernels"));
            Assert.That(TokenKernelsOrt.LibraryPathEnvironmentVariable, Is.EqualTo("TOKENKERNELS_ORT_LIBRARY"));
            Assert.That(TokenKernelsOrt.LibraryFileName, Is.EqualTo("libtokenkernels_ort" + Ext));
        }
    }

    [Test]
    public void TheCustomOpLibraryIsNamedAfterTheMainLibrary()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(CustomOpLibrarySearch.FileNamesFor(Path.Combine(_directory, "libtokenkernels.so.0.1.0")), Is.EqualTo(new[] { "libtokenkernels_ort" + Ext }));
            Assert.That(CustomOpLibrarySearch.FileNamesFor(Path.Combine(_directory, "libtokenkernels_cuda" + Ext)), Is.EqualTo(new[] { "libtokenkernels_cuda_ort" + Ext }));
            Assert.That(CustomOpLibrarySearch.FileNamesFor(null), Is.EqualTo(new[] { "libtokenkernels_cuda_ort" + Ext, "libtokenkernels_ort" + Ext }),
                "without a known main library file, both packaged names, the CUDA one first as the main library is searched");
        }
    }

    [Test]
    public void CandidatesAreBesideTheMainLibraryThenTheApplicationThenRuntimesRidNative()
    {
        string lib = Path.Combine(_directory, "build", "lib");
        string app = Path.Combine(_directory, "app");
        string plugin = Path.Combine(_directory, "plugin");
        string file = "libtokenkernels_ort" + Ext;

        IReadOnlyList<string> candidates = CustomOpLibrarySearch.CandidatePathsFor(Path.Combine(lib, "libtokenkernels.so"), app + Path.DirectorySeparatorChar, plugin);

        string rid = RuntimeInformation.RuntimeIdentifier;
        Assert.That(candidates, Is.EqualTo(new[]
        {
            Path.Combine(lib, file),
            Path.Combine(app, file),
            Path.Combine(plugin, file),
            Path.Combine(app, "runtimes", rid, "native", file),
            Path.Combine(plugin, "runtimes", rid, "native", file),
        }).Or.EqualTo(new[]
        {
            // A RID-specific runtime (e.g. ubuntu.24.04-x64) adds the portable one after its own.
            Path.Combine(lib, file),
            Path.Combine(app, file),
            Path.Combine(plugin, file),
            Path.Combine(app, "runtimes", rid, "native", file),
            Path.Combine(app, "runtimes", PortableRid(), "native", file),
            Path.Combine(plugin, "runtimes", rid, "native", file),
            Path.Combine(plugin, "runtimes", PortableRid(), "native", file),
        }));
    }

    [Test]
    public void TheSearchOfThisProcessStartsBesideTheLoadedTokenKernelsLibrary()
    {
        CustomOpLibrarySearch search = CustomOpLibrarySearch.FromEnvironment();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(search.MainLibraryPath, Is.EqualTo(Path.GetFullPath(TokenKernelsLibrary.LoadedFrom)));
            Assert.That(search.CandidatePaths[0], Is.EqualTo(Path.Combine(
                Path.GetDirectoryName(search.MainLibraryPath)!, CustomOpLibrarySearch.FileNamesFor(search.MainLibraryPath)[0])));
        }
    }

    [Test]
    public void WhenNoCandidateRegistersEveryPathTriedIsNamedWithItsReason()
    {
        string notALibrary = Path.Combine(_directory, "app", "libtokenkernels_ort" + Ext);
        Directory.CreateDirectory(Path.GetDirectoryName(notALibrary)!);
        File.WriteAllText(notALibrary, "not a shared library");
        string missing = Path.Combine(_directory, "lib", "libtokenkernels_ort" + Ext);
        var search = new CustomOpLibrarySearch(null, Path.Combine(_directory, "lib", "libtokenkernels.so"), new[] { missing, notALibrary });
        using var options = new SessionOptions();
        var attempts = new List<string>();

        string? registered = CustomOpLibrarySearch.Probe(search, options.RegisterCustomOpLibrary, attempts);
        string message = TokenKernelsOrtLoadException.NotFound(search, attempts).Message;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(registered, Is.Null);
            Assert.That(attempts, Has.Count.EqualTo(2));
            Assert.That(attempts[0], Is.EqualTo(missing + ": no such file"));
            Assert.That(attempts[1], Does.StartWith(notALibrary + ": the file exists but ONNX Runtime could not register it as a custom-op library"));
            Assert.That(message, Does.StartWith("TokenKernels could not register its ONNX Runtime custom-op library libtokenkernels_ort" + Ext
                + " (domain ai.tokenkernels; it goes with the TokenKernels library loaded from " + Path.Combine(_directory, "lib", "libtokenkernels.so")));
            Assert.That(message, Does.Contain(
                "Tried, in order:" + Environment.NewLine + "  - " + missing + ": no such file" + Environment.NewLine + "  - " + notALibrary + ": the file exists"));
            Assert.That(message, Does.Contain("To fix it:").And.Contain("TOKENKERNELS_ORT_LIBRARY").And.Contain("-DTOKENKERNELS_ORT=ON").And.Contain("TokenKernels.Runtime.Cpu"));
        }
    }

    [Test]
    public void AnExplicitPathToAMissingFileIsTheOnlyThingTried()
    {
        string missing = Path.Combine(_directory, "libtokenkernels_ort" + Ext);
        Environment.SetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable, missing);
        using var options = new SessionOptions();

        var e = Assert.Throws<TokenKernelsOrtLoadException>(() => options.RegisterTokenKernels());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(e!.Attempts, Is.EqualTo(new[] { "TOKENKERNELS_ORT_LIBRARY=" + missing + ": no such file" }));
            Assert.That(e.Message, Does.Contain("TOKENKERNELS_ORT_LIBRARY=" + missing + ": no such file"));
        }
    }

    [Test]
    public void AnExplicitPathToAFileThatIsNotALibraryGivesOnnxRuntimesReason()
    {
        string notALibrary = Path.Combine(_directory, "libtokenkernels_ort" + Ext);
        File.WriteAllText(notALibrary, "not a shared library");
        Environment.SetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable, notALibrary);
        using var options = new SessionOptions();

        var e = Assert.Throws<TokenKernelsOrtLoadException>(() => options.RegisterTokenKernels());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(e!.Attempts, Has.Count.EqualTo(1), "an explicit path is authoritative: nothing else is tried");
            Assert.That(e.Attempts[0], Does.StartWith("TOKENKERNELS_ORT_LIBRARY=" + notALibrary
                + ": the file exists but ONNX Runtime could not register it as a custom-op library (a missing dependency, another architecture, or not the TokenKernels custom-op library): "));
            Assert.That(e.Attempts[0], Does.Contain(notALibrary), "ONNX Runtime's own message names the file");
        }
    }

    [Test]
    public void AnExplicitPathToALibraryWithoutCustomOpsSaysSo()
    {
        // The TokenKernels library itself loads, but has no RegisterCustomOps entry point.
        string mainLibrary = Path.GetFullPath(TokenKernelsLibrary.LoadedFrom);
        Environment.SetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable, mainLibrary);
        using var options = new SessionOptions();

        var e = Assert.Throws<TokenKernelsOrtLoadException>(() => options.RegisterTokenKernels());

        Assert.That(e!.Attempts, Has.Count.EqualTo(1));
        Assert.That(e.Attempts[0], Does.StartWith("TOKENKERNELS_ORT_LIBRARY=" + mainLibrary + ": the file exists but ONNX Runtime could not register it").And.Contain("RegisterCustomOps"));
    }

    [Test]
    public void TheLibraryBesideTheLoadedTokenKernelsLibraryIsRegisteredOnceAndItsOpsRun()
    {
        Environment.SetEnvironmentVariable(TokenKernelsOrt.LibraryPathEnvironmentVariable, null);
        using var options = new SessionOptions();

        string registered = options.RegisterTokenKernels();
        string again = options.RegisterTokenKernels();

        string besideMain = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(TokenKernelsLibrary.LoadedFrom))!, TokenKernelsOrt.LibraryFileName);
        Assert.That(registered, Is.EqualTo(besideMain));
        Assert.That(again, Is.EqualTo(registered), "a second call on the same options registers nothing more");
        // A model with an ai.tokenkernels node loads only where its ops are registered (the model tests run them).
        using var session = new InferenceSession(TestModels.PathOf("pool_window_avg_float32"), options);
        Assert.That(session.InputMetadata, Has.Count.EqualTo(1));
    }

    [Test]
    public void NullOptionsAreRefused()
    {
        var e = Assert.Throws<ArgumentNullException>(() => SessionOptionsExtensions.RegisterTokenKernels(null!));
        Assert.That(e!.ParamName, Is.EqualTo("options"));
    }

    private static string PortableRid()
        => (RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "win" : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "osx" : "linux")
           + "-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
}
