using System;
using System.Collections.Generic;
using System.Linq;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>The kind of redundancy a method removes, as the survey literature groups them.</summary>
internal enum MethodFamily
{
    /// <summary>Transformation: fixed pooling of the patch grid.</summary>
    Pooling,

    /// <summary>Similarity: merging similar tokens.</summary>
    Merging,

    /// <summary>Attention: keeping the tokens the model attends to.</summary>
    Attention,

    /// <summary>Diversity: keeping a spread-out subset.</summary>
    Diversity,

    /// <summary>Query relevance: keeping what the text asks about.</summary>
    Relevance,

    /// <summary>Clustering: replacing clusters by their means.</summary>
    Clustering,

    /// <summary>Temporal redundancy across video frames.</summary>
    Video,
}

/// <summary>
/// One published method, under its paper's name and parameters, run through the library's method API on host tensors. The
/// catalog (<see cref="MethodCatalog"/>) lists them; <c>compress</c>, <c>demo</c> and <c>bench</c> all run them through here.
/// </summary>
internal abstract class TokenMethod
{
    /// <summary>The name on the command line: lower case, e.g. "visionzip".</summary>
    public abstract string Name { get; }

    /// <summary>The method and its source, one line: "VisionZip (Yang et al., CVPR 2025): ...".</summary>
    public abstract string Title { get; }

    /// <summary>Its family.</summary>
    public abstract MethodFamily Family { get; }

    /// <summary>Whether it works on video frames (a grid with T frames) rather than one image.</summary>
    public virtual bool IsVideo => false;

    /// <summary>Whether it also takes several frames per item (pooling works frame by frame); video methods always do.</summary>
    public virtual bool AcceptsFrames => IsVideo;

    /// <summary>Its settings, with the paper's defaults.</summary>
    public abstract IReadOnlyList<MethodParameter> Parameters { get; }

    /// <summary>The auxiliary inputs it cannot run without.</summary>
    public virtual IReadOnlyList<AuxiliaryRole> Requires => Array.Empty<AuxiliaryRole>();

    /// <summary>The auxiliary inputs it reads when given (the required ones included).</summary>
    public virtual IReadOnlyList<AuxiliaryRole> Accepts => Requires;

    /// <summary>The prefix tokens it takes before the patches: 0 for most, 1 (the class token) for VisionZip; null: any (ToMe, FastV).</summary>
    public virtual int? Prefix => 0;

    /// <summary>Whether tokens may follow the patches (FastV's text after the image).</summary>
    public virtual bool AllowsTrailingTokens => false;

    /// <summary>
    /// Runs the method on <paramref name="inputs"/>; the library's exceptions pass through. Where the library has a call into
    /// the caller's arrays, the output arrays of <paramref name="previous"/> (an outcome of this method on inputs of the same
    /// shapes and settings) are written again instead of allocated, so that repeated calls (bench) time the method, not the
    /// allocator.
    /// </summary>
    public abstract MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
        where T : unmanaged;

    /// <summary>Whether the CLI runs it on a CUDA device: every step has the library's device call.</summary>
    public virtual bool RunsOnCuda => false;

    /// <summary>
    /// Enqueues the method on <paramref name="stream"/> over device tokens, writing into <paramref name="outputs"/>' buffers (by the
    /// names <see cref="DeviceOutputs"/> lists); nothing is synchronised. Only where <see cref="RunsOnCuda"/>.
    /// </summary>
    public virtual DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
        => throw new NotSupportedException($"{Name} runs on the CPU only in the CLI.");

    /// <summary>The parameter named <paramref name="name"/>, or null.</summary>
    public MethodParameter? FindParameter(string name) => Parameters.FirstOrDefault(p => p.Name == name);

    /// <summary>Null when every value given names one of this method's parameters and lies in its range; else the first problem.</summary>
    public string? CheckSettings(IReadOnlyDictionary<string, double> given)
    {
        foreach ((string name, double value) in given)
        {
            MethodParameter? parameter = FindParameter(name);
            if (parameter is null)
            {
                string accepted = Parameters.Count == 0 ? "none" : string.Join(", ", Parameters.Select(p => "--" + p.Name));
                return $"--{name} is not a parameter of {Name} (its parameters: {accepted}).";
            }
            if (parameter.Check(value) is string problem)
            {
                return problem;
            }
        }
        return null;
    }

    /// <summary>
    /// Null when tokens <c>[B, N, C]</c> on <paramref name="grid"/>, with the auxiliary roles given, suit this method; else what does
    /// not, in words a user can act on.
    /// </summary>
    public string? CheckInputs(TensorShape shape, TokenGrid grid, IEnumerable<AuxiliaryRole> given)
    {
        long patchesEnd = (long)grid.Prefix + grid.PatchTokens;
        if (Prefix is int prefix && grid.Prefix != prefix)
        {
            return prefix == 0
                ? $"{Name} takes the patch tokens alone; the input has {grid.Prefix} token(s) before the grid (drop them, or give --prefix 0)."
                : $"{Name} needs {prefix} token(s) before the grid (the class token); the input has {grid.Prefix} (give --prefix {prefix}).";
        }
        if (AllowsTrailingTokens ? patchesEnd > shape[1] : patchesEnd != shape[1])
        {
            return $"the grid {grid} holds {patchesEnd} tokens, the input has N = {shape[1]}" + (AllowsTrailingTokens ? " (fewer than the grid)." : ".");
        }
        if (IsVideo && grid.Frames < 1)
        {
            return $"{Name} needs video frames.";
        }
        if (!AcceptsFrames && grid.Frames != 1)
        {
            return $"{Name} works on one image per item; the grid {grid} has {grid.Frames} frames (reshape the frames into the batch).";
        }
        var givenSet = new HashSet<AuxiliaryRole>(given);
        foreach (AuxiliaryRole role in Requires)
        {
            if (!givenSet.Contains(role))
            {
                return $"{Name} needs {AuxiliaryNames.Describe(role)}.";
            }
        }
        foreach (AuxiliaryRole role in givenSet)
        {
            if (!Accepts.Contains(role))
            {
                return $"{Name} does not read {AuxiliaryNames.Describe(role)}.";
            }
        }
        return null;
    }

    // ---- Helpers the methods share ----

    /// <summary><paramref name="previous"/> when it has <paramref name="length"/> elements, else a new array.</summary>
    protected static TElement[] Reuse<TElement>(TElement[]? previous, long length)
        => previous is not null && previous.LongLength == length ? previous : new TElement[length];

    /// <summary>
    /// The source map <c>[B, N]</c> of a selection: the output row of each kept position (<paramref name="positions"/> <c>[B, K]</c>,
    /// each row increasing, offset by <paramref name="offset"/>), -1 elsewhere.
    /// </summary>
    internal static int[] SourceMapOfSelection(int batch, int length, int[] positions, int kept, int offset = 0)
    {
        var map = new int[(long)batch * length];
        Array.Fill(map, -1);
        for (int b = 0; b < batch; b++)
        {
            for (int k = 0; k < kept; k++)
            {
                int position = positions[(long)b * kept + k];
                if (position >= 0)
                {
                    map[(long)b * length + offset + position] = k;
                }
            }
        }
        return map;
    }

    /// <summary>
    /// The input position each output row was kept from (<c>[B, M]</c>), from a source map <c>[B, N]</c>: the one token an output
    /// row holds, -1 for a row that holds several (a merge) or none.
    /// </summary>
    internal static int[] PositionsOfSingletons(int batch, int length, int rows, int[] sourceMap)
    {
        var positions = new int[(long)batch * rows];
        var counts = new int[rows];
        for (int b = 0; b < batch; b++)
        {
            Array.Clear(counts);
            Span<int> itemPositions = positions.AsSpan(b * rows, rows);
            itemPositions.Fill(-1);
            for (int n = 0; n < length; n++)
            {
                int row = sourceMap[(long)b * length + n];
                if (row >= 0 && row < rows && ++counts[row] == 1)
                {
                    itemPositions[row] = n;
                }
            }
            for (int m = 0; m < rows; m++)
            {
                if (counts[m] != 1)
                {
                    itemPositions[m] = -1;
                }
            }
        }
        return positions;
    }
}

/// <summary>The names auxiliary inputs have in files and on the command line.</summary>
internal static class AuxiliaryNames
{
    /// <summary>The tensor name in a .safetensors file and the option's name: "attention", "metric", "text_embeds", "visual_embeds".</summary>
    public static string Of(AuxiliaryRole role) => role switch
    {
        AuxiliaryRole.Attention => "attention",
        AuxiliaryRole.Metric => "metric",
        AuxiliaryRole.TextEmbeddings => "text_embeds",
        AuxiliaryRole.VisualEmbeddings => "visual_embeds",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, null),
    };

    /// <summary>What the input is, for messages.</summary>
    public static string Describe(AuxiliaryRole role) => role switch
    {
        AuxiliaryRole.Attention => "attention probabilities ('attention')",
        AuxiliaryRole.Metric => "a metric ('metric', the layer's keys averaged over heads)",
        AuxiliaryRole.TextEmbeddings => "text embeddings ('text_embeds')",
        AuxiliaryRole.VisualEmbeddings => "visual embeddings in the text's space ('visual_embeds')",
        _ => role.ToString(),
    };
}
