using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading.Tasks;
using NUnit.Framework;

namespace TokenKernels.OnnxRuntime.Tests;

/// <summary>One model of tests/onnx/make_models.py: a graph of one ai.tokenkernels node.</summary>
/// <param name="Name">The model's name (its file is Name.onnx).</param>
/// <param name="Op">The node's op.</param>
/// <param name="Attributes">The node's attributes as the script wrote them.</param>
/// <param name="Inputs">The graph's inputs: name, element type ("float32", "float16", "bfloat16", "int32", "int64"), shape.</param>
/// <param name="Outputs">The graph's outputs: name and element type.</param>
/// <param name="Expect">"ok", or where TokenKernels refuses it: "load" (session creation) or "run".</param>
internal sealed record ModelSpec(
    string Name,
    string Op,
    IReadOnlyDictionary<string, JsonElement> Attributes,
    IReadOnlyList<(string Name, string Type, long[] Shape)> Inputs,
    IReadOnlyList<(string Name, string Type)> Outputs,
    string Expect)
{
    /// <summary>The shape of input <paramref name="name"/>.</summary>
    public long[] Shape(string name) => Inputs.First(i => i.Name == name).Shape;

    /// <summary>Integer attribute <paramref name="name"/>, which the op requires (the model sets it).</summary>
    public int Int(string name) =>
        Attributes.TryGetValue(name, out JsonElement value) ? value.GetInt32() : throw new ArgumentException("model " + Name + " sets no attribute " + name + ".", nameof(name));

    /// <summary>Integer attribute <paramref name="name"/>, or <paramref name="fallback"/> when the model leaves it out.</summary>
    public int Int(string name, int fallback) => Attributes.TryGetValue(name, out JsonElement value) ? value.GetInt32() : fallback;

    /// <summary>Float attribute <paramref name="name"/> (a float32 in the model), or <paramref name="fallback"/>.</summary>
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out JsonElement value) ? (float)value.GetDouble() : fallback;

    /// <summary>String attribute <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public string Text(string name, string fallback) => Attributes.TryGetValue(name, out JsonElement value) ? value.GetString()! : fallback;

    /// <summary>Integer list attribute <paramref name="name"/>, or null when absent.</summary>
    public int[]? Ints(string name) => Attributes.TryGetValue(name, out JsonElement value) ? value.EnumerateArray().Select(e => e.GetInt32()).ToArray() : null;

    /// <summary>Whether the model sets attribute <paramref name="name"/>.</summary>
    public bool Has(string name) => Attributes.ContainsKey(name);
}

/// <summary>
/// Writes the test models once for the whole run (tests/onnx/make_models.py with Debian's /usr/bin/python3, which has
/// python3-onnx) into a temporary directory, and reads their manifest: on first use, which may be the discovery of the
/// tests whose cases are the models, or else in this fixture's one-time setup; the teardown removes them.
/// </summary>
[SetUpFixture]
public sealed class TestModels
{
    private const string Python = "/usr/bin/python3";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    private static readonly Lazy<(string Directory, Dictionary<string, ModelSpec> Specs)> Written = new(Write);

    /// <summary>The directory holding the models.</summary>
    internal static string Directory => Written.Value.Directory;

    /// <summary>Every model by name.</summary>
    internal static IReadOnlyDictionary<string, ModelSpec> Specs => Written.Value.Specs;

    /// <summary>The model <paramref name="name"/>.</summary>
    internal static ModelSpec Get(string name) =>
        Specs.TryGetValue(name, out ModelSpec? spec) ? spec : throw new ArgumentException("make_models.py writes no model " + name + ".", nameof(name));

    /// <summary>The full path of model <paramref name="name"/>.</summary>
    internal static string PathOf(string name) => Path.Combine(Directory, Get(name).Name + ".onnx");

    [OneTimeSetUp]
    public void WriteModels() => Assert.That(Specs, Is.Not.Empty);

    [OneTimeTearDown]
    public void RemoveModels()
    {
        if (Written.IsValueCreated && System.IO.Directory.Exists(Written.Value.Directory))
        {
            System.IO.Directory.Delete(Written.Value.Directory, recursive: true);
        }
    }

    private static (string Directory, Dictionary<string, ModelSpec> Specs) Write()
    {
        (int exitCode, string output) = Run("-c", "import onnx");
        if (exitCode != 0)
        {
            throw new InvalidOperationException(
                $"these tests write their ONNX models with the onnx module of {Python} (apt install python3-onnx): {output.Trim()}");
        }
        string directory = System.IO.Directory.CreateTempSubdirectory("tokenkernels-onnx-tests-").FullName;
        string script = Path.Combine(AppContext.BaseDirectory, "onnx", "make_models.py");
        (exitCode, output) = Run(script, directory);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"{script} failed (exit code {exitCode}):\n{output}");
        }
        return (directory, ReadManifest(Path.Combine(directory, "manifest.json")));
    }

    private static (int ExitCode, string Output) Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{Python} did not start.");
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            throw new InvalidOperationException(
                $"{Python} cannot be run ({exception.Message}): these tests need Debian's python3 with python3-onnx (apt install python3-onnx).", exception);
        }
        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"{Python} {string.Join(" ", arguments)} ran longer than {Timeout}.");
            }
            return (process.ExitCode, output.Result + error.Result);
        }
    }

    private static Dictionary<string, ModelSpec> ReadManifest(string path)
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path));
        var specs = new Dictionary<string, ModelSpec>();
        foreach (JsonProperty model in document.RootElement.EnumerateObject())
        {
            JsonElement m = model.Value;
            var attributes = m.GetProperty("attributes").EnumerateObject().ToDictionary(a => a.Name, a => a.Value.Clone());
            var inputs = m.GetProperty("inputs").EnumerateArray()
                .Select(i => (i.GetProperty("name").GetString()!, i.GetProperty("type").GetString()!,
                              i.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()))
                .ToList();
            var outputs = m.GetProperty("outputs").EnumerateArray()
                .Select(o => (o.GetProperty("name").GetString()!, o.GetProperty("type").GetString()!))
                .ToList();
            specs[model.Name] = new ModelSpec(model.Name, m.GetProperty("op").GetString()!, attributes, inputs, outputs, m.GetProperty("expect").GetString()!);
        }
        return specs;
    }
}
