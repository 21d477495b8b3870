using System;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using System.IO;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// Bad pruning arguments give ArgumentException naming the parameter for what C# checks, TokenKernelsException with
/// the native message for what only the native library checks, and nothing is written; the new structs mirror the header.
/// </summary>
public class PruningErrorTests
{
    private static readonly ImportanceOptions Options = new ImportanceOptions(1, 3, 2, 6);

    private static ReadOnlyHostTensor<float> Attention => new ReadOnlyHostTensor<float>(new float[2 * 3 * 4 * 7], new TensorShape(2, 3, 4, 7));

    private static ReadOnlyHostTensor<float> Q => new ReadOnlyHostTensor<float>(new float[2 * 4 * 4 * 5], new TensorShape(2, 4, 4, 5));

    private static ReadOnlyHostTensor<float> K => new ReadOnlyHostTensor<float>(new float[2 * 2 * 7 * 5], new TensorShape(2, 2, 7, 5));

    private static ReadOnlyHostTensor<float> Scores => new ReadOnlyHostTensor<float>(new float[2 * 9], new TensorShape(2, 9));

    private static ReadOnlyHostTensor<float> Tokens => new ReadOnlyHostTensor<float>(new float[2 * 9 * 3], new TensorShape(2, 9, 3));

    [Test]
    public void OptionsRejectBadValues()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new ImportanceOptions(-1, 2, 0, 3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("queryBegin"));
            Assert.That(() => new ImportanceOptions(2, 2, 0, 3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("queryEnd"));
            Assert.That(() => new ImportanceOptions(0, 1, -1, 3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("keyBegin"));
            Assert.That(() => new ImportanceOptions(0, 1, 4, 3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("keyEnd"));
            Assert.That(() => Options with { HeadReduce = (ReduceMode)2 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("HeadReduce"));
            Assert.That(() => Options with { QueryReduce = (ReduceMode)(-1) }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("QueryReduce"));
            Assert.That(() => Options with { Scale = 0f }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Scale"));
            Assert.That(() => Options with { Scale = -1f }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Scale"));
            Assert.That(() => Options with { Scale = float.NaN }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Scale"));
            Assert.That(() => Options with { Scale = float.PositiveInfinity }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Scale"));
            Assert.That(() => ImportanceOptions.FastV(3, 9, 0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("queries"));
            Assert.That(() => ImportanceOptions.FastV(-1, 9, 10), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageStart"));
            Assert.That(() => ImportanceOptions.FastV(5, 4, 10), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("imageEnd"));
            Assert.That(() => ImportanceOptions.VisionZip(0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
            Assert.That(() => ImportanceOptions.SdpaScale(0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("headDim"));
        }
    }

    [Test]
    public void WithMethodsRejectBadValuesByTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Options.WithHeadReduce((ReduceMode)2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("headReduce")
                .And.Message.Contains("Not a ReduceMode"));
            Assert.That(() => Options.WithQueryReduce((ReduceMode)(-1)), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("queryReduce"));
            foreach (float scale in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
            {
                Assert.That(() => Options.WithScale(scale), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("scale")
                    .And.Message.Contains("finite and above 0"), scale.ToString());
            }
        }
    }

    [Test]
    public void ImportanceArgumentsNameTheirParameterAndWriteNothing()
    {
        var output = new float[8];
        output.AsSpan().Fill(3f);
        HostTensor<float> Output() => new HostTensor<float>(output, new TensorShape(2, 4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenPruning.AttentionImportance(new ReadOnlyHostTensor<float>(new float[84], new TensorShape(6, 2, 7)), Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("attention").And.Message.Contains("[B, H, Nq, Nk]"));
            Assert.That(() => TokenPruning.AttentionImportance(new ReadOnlyHostTensor<int>(new int[168], new TensorShape(2, 3, 4, 7)), Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("attention").And.Message.Contains("Int32"));
            Assert.That(() => TokenPruning.AttentionImportance(Attention, new HostTensor<float>(output, new TensorShape(2, 3)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output").And.Message.Contains("[2, 4]"));
            Assert.That(() => TokenPruning.AttentionImportance(Attention, Output(), new ImportanceOptions(1, 5, 2, 6)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("options").And.Message.Contains("Nq = 4"));
            Assert.That(() => TokenPruning.AttentionImportance(Attention, new HostTensor<float>(new float[12], new TensorShape(2, 6)), new ImportanceOptions(1, 3, 2, 8)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("options").And.Message.Contains("Nk = 7"));
            Assert.That(() => TokenPruning.AttentionImportance(Attention, Output(), default),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("options").And.Message.Contains("default"));
            Assert.That(() => TokenPruning.QkImportance(new ReadOnlyHostTensor<float>(new float[40], new TensorShape(8, 5)), K, Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("q"));
            Assert.That(() => TokenPruning.QkImportance(Q, new ReadOnlyHostTensor<float>(new float[2 * 2 * 7 * 6], new TensorShape(2, 2, 7, 6)), Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("k").And.Message.Contains("d = 5"));
            Assert.That(() => TokenPruning.QkImportance(Q, new ReadOnlyHostTensor<float>(new float[2 * 3 * 7 * 5], new TensorShape(2, 3, 7, 5)), Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("k").And.Message.Contains("divide"));
            Assert.That(() => TokenPruning.QkImportance(Q, new ReadOnlyHostTensor<float>(new float[1 * 2 * 7 * 5], new TensorShape(1, 2, 7, 5)), Output(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("k").And.Message.Contains("B = 2"));
            Assert.That(() => TokenPruning.QkImportance(Q, K, Output(), Options, new ReadOnlyHostTensor<float>(new float[8], new TensorShape(2, 4))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("lse").And.Message.Contains("[2, 4, 4]"));
            Assert.That(() => TokenPruning.QkImportance(Q, K, new HostTensor<float>(output, new TensorShape(4, 2)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenPruning.QkImportance(Q, K, Output(), new ImportanceOptions(0, 1, 0, 8)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("options"));
        }
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [Test]
    public void TopKArgumentsNameTheirParameterAndWriteNothing()
    {
        var indices = new int[6];
        indices.AsSpan().Fill(7);
        HostTensor<int> Indices() => new HostTensor<int>(indices, new TensorShape(2, 3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenPruning.TopK(new ReadOnlyHostTensor<float>(new float[18], new TensorShape(18)), Indices()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("scores").And.Message.Contains("[B, N]"));
            Assert.That(() => TokenPruning.TopK(new ReadOnlyHostTensor<long>(new long[18], new TensorShape(2, 9)), Indices()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("scores"));
            Assert.That(() => TokenPruning.TopK(new ReadOnlyHostTensor<float>(new float[4], new TensorShape(2, 2)), Indices()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("indices").And.Message.Contains("N = 2"));
            Assert.That(() => TokenPruning.TopK(Scores, new HostTensor<int>(indices, new TensorShape(3, 2))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("indices").And.Message.Contains("B = 2"));
            Assert.That(() => TokenPruning.TopK(Scores, Indices(), lengths: new ReadOnlyHostTensor<int>(new int[3], new TensorShape(3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("lengths").And.Message.Contains("[B] = [2]"));
            Assert.That(() => TokenPruning.TopK(Scores, Indices(), itemK: new ReadOnlyHostTensor<int>(new int[2], new TensorShape(2, 1))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("itemK"));
            Assert.That(() => TokenPruning.TopK(Scores, Indices(), ranked: new HostTensor<int>(new int[4], new TensorShape(2, 2))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("ranked").And.Message.Contains("[2, 3]"));
            Assert.That(() => TokenPruning.TopK(Scores, -1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => TokenPruning.TopKRanked(Scores, 10), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
        }
        Assert.That(indices, Is.All.EqualTo(7), "nothing was written");
    }

    [TestCase(new[] { 9, 10 }, null, "lengths[1]")]
    [TestCase(new[] { -1, 4 }, null, "lengths[0]")]
    [TestCase(null, new[] { 3, 4 }, "item_k[1]")]
    [TestCase(null, new[] { -2, 1 }, "item_k[0]")]
    public void TopKLengthsAndItemKOutOfRangeAreReportedByTheNativeLibrary(int[]? lengths, int[]? itemK, string named)
    {
        var indices = new int[6];
        var ranked = new int[6];
        indices.AsSpan().Fill(7);
        ranked.AsSpan().Fill(7);
        var ex = Assert.Throws<TokenKernelsException>(() => TokenPruning.TopK(
            Scores, new HostTensor<int>(indices, new TensorShape(2, 3)),
            lengths == null ? default : new ReadOnlyHostTensor<int>(lengths, new TensorShape(2)),
            itemK == null ? default : new ReadOnlyHostTensor<int>(itemK, new TensorShape(2)),
            new HostTensor<int>(ranked, new TensorShape(2, 3))));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
            Assert.That(ex.NativeMessage, Does.Contain(named));
            Assert.That(indices, Is.All.EqualTo(7), "nothing was written");
            Assert.That(ranked, Is.All.EqualTo(7), "nothing was written");
        }
    }

    [Test]
    public void GatherArgumentsNameTheirParameterAndWriteNothing()
    {
        var output = new float[2 * 4 * 3];
        output.AsSpan().Fill(3f);
        var indexData = new int[8];
        ReadOnlyHostTensor<int> Indices() => new ReadOnlyHostTensor<int>(indexData, new TensorShape(2, 4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenPruning.Gather(new ReadOnlyHostTensor<float>(new float[54], new TensorShape(18, 3)), Indices(), new HostTensor<float>(output, new TensorShape(2, 4, 3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => TokenPruning.Gather(Tokens, new ReadOnlyHostTensor<int>(new int[8], new TensorShape(4, 2)), new HostTensor<float>(output, new TensorShape(2, 4, 3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("indices"));
            Assert.That(() => TokenPruning.Gather(Tokens, new ReadOnlyHostTensor<long>(new long[8], new TensorShape(8)), new HostTensor<float>(output, new TensorShape(2, 4, 3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("indices"));
            Assert.That(() => TokenPruning.Gather(Tokens, Indices(), new HostTensor<float>(output, new TensorShape(2, 3, 4))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output").And.Message.Contains("[2, 4, 3]"));
        }
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [TestCase(9, "indices[1, 2]")]
    [TestCase(-2, "indices[1, 2]")]
    public void GatherIndicesOutOfRangeAreReportedByTheNativeLibrary(long bad, string named)
    {
        var output = new float[2 * 4 * 3];
        output.AsSpan().Fill(3f);
        long[] indices = { 0, 1, 2, -1, 8, 7, bad, 3 };
        var ex = Assert.Throws<TokenKernelsException>(() =>
            TokenPruning.Gather(Tokens, new ReadOnlyHostTensor<long>(indices, new TensorShape(2, 4)), new HostTensor<float>(output, new TensorShape(2, 4, 3))));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain(named).And.Contain(bad.ToString()));
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [Test]
    public void GatherIntoItsOwnInputIsReportedByTheNativeLibrary()
    {
        var shared = Enumerable.Range(0, 54).Select(i => (float)i).ToArray();
        var ex = Assert.Throws<TokenKernelsException>(() => TokenPruning.Gather(
            new ReadOnlyHostTensor<float>(shared, new TensorShape(2, 9, 3)), new ReadOnlyHostTensor<int>(new int[4], new TensorShape(2, 2)),
            new HostTensor<float>(shared.AsSpan(6, 12), new TensorShape(2, 2, 3))));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("out"));
        Assert.That(shared, Is.EqualTo(Enumerable.Range(0, 54).Select(i => (float)i).ToArray()), "nothing was written");
    }

    [Test]
    public void ContextualArgumentsNameTheirParameterAndWriteNothing()
    {
        var output = new float[2 * 2 * 3];
        output.AsSpan().Fill(3f);
        int[] keptData = { 0, 1, 2, 3 };
        ReadOnlyHostTensor<int> Kept() => new ReadOnlyHostTensor<int>(keptData, new TensorShape(2, 2));
        HostTensor<float> Output() => new HostTensor<float>(output, new TensorShape(2, 2, 3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenPruning.VisionZipContextual(new ReadOnlyHostTensor<float>(new float[54], new TensorShape(18, 3)), Tokens, Kept(), Output()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("metric"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, new ReadOnlyHostTensor<float>(new float[48], new TensorShape(2, 8, 3)), Kept(), Output()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x").And.Message.Contains("N = 9"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, new ReadOnlyHostTensor<int>(new int[54], new TensorShape(2, 9, 3)), Kept(), new HostTensor<int>(new int[12], new TensorShape(2, 2, 3))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, Tokens, new ReadOnlyHostTensor<int>(new int[20], new TensorShape(2, 10)), Output()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("kept"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, Tokens, new ReadOnlyHostTensor<int>(new int[16], new TensorShape(2, 8)), Output()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output").And.Message.Contains("N - K = 1"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, Tokens, Kept(), new HostTensor<float>(output, new TensorShape(2, 3, 2))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenPruning.VisionZipContextual(Tokens, Tokens, Kept(), -1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("contextual"));
        }
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [TestCase(new long[] { 0, 4, 2, 2 }, "kept[1, 1]")]
    [TestCase(new long[] { 0, 9, 2, 3 }, "kept[0, 1]")]
    [TestCase(new long[] { 0, 1, -1, 3 }, "kept[1, 0]")]
    public void DuplicateOrOutOfRangeKeptPositionsAreReportedByTheNativeLibrary(long[] kept, string named)
    {
        var output = new float[2 * 3 * 3];
        output.AsSpan().Fill(3f);
        var ex = Assert.Throws<TokenKernelsException>(() => TokenPruning.VisionZipContextual(
            Tokens, Tokens, new ReadOnlyHostTensor<long>(kept, new TensorShape(2, 2)), new HostTensor<float>(output, new TensorShape(2, 3, 3))));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain(named));
        Assert.That(output, Is.All.EqualTo(3f), "nothing was written");
    }

    [Test]
    public void DeviceCallsCheckTypesShapesAndDevicesBeforeTheNativeCall()
    {
        var attention = new DeviceTensor(new IntPtr(256), TensorDataType.Float16, new TensorShape(2, 3, 4, 7));
        var importance = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, new TensorShape(2, 4));
        var halfImportance = new DeviceTensor(new IntPtr(4096), TensorDataType.Float16, new TensorShape(2, 4));
        var otherDevice = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, new TensorShape(2, 4), default, 1);
        var q = new DeviceTensor(new IntPtr(8192), TensorDataType.BFloat16, new TensorShape(2, 4, 4, 64));
        var k = new DeviceTensor(new IntPtr(16384), TensorDataType.BFloat16, new TensorShape(2, 2, 7, 64));
        var kHalf = new DeviceTensor(new IntPtr(16384), TensorDataType.Float16, new TensorShape(2, 2, 7, 64));
        var lseHalf = new DeviceTensor(new IntPtr(32768), TensorDataType.Float16, new TensorShape(2, 4, 4));
        var scores = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, new TensorShape(2, 9));
        var indices = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 3));
        var indices64 = new DeviceTensor(new IntPtr(4096), TensorDataType.Int64, new TensorShape(2, 3));
        var lengths64 = new DeviceTensor(new IntPtr(8192), TensorDataType.Int64, new TensorShape(2));
        var tokens = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, new TensorShape(2, 9, 3));
        var gathered = new DeviceTensor(new IntPtr(8192), TensorDataType.Float16, new TensorShape(2, 3, 3));
        var kept = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 2));
        var keptFloat = new DeviceTensor(new IntPtr(4096), TensorDataType.Float32, new TensorShape(2, 2));
        var contextual = new DeviceTensor(new IntPtr(8192), TensorDataType.Float32, new TensorShape(2, 3, 3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TokenPruning.AttentionImportance(attention, halfImportance, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenPruning.AttentionImportance(attention, otherDevice, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("output").And.Message.Contains("cuda:1"));
            Assert.That(() => TokenPruning.QkImportance(q, kHalf, importance, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("k"));
            Assert.That(() => TokenPruning.QkImportance(q, k, importance, Options, lseHalf), Throws.ArgumentException.With.Property("ParamName").EqualTo("lse"));
            Assert.That(() => TokenPruning.QkImportance(q, k, importance, Options, workspaceBytes: 64), Throws.ArgumentException.With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => TokenPruning.QkImportance(q, k, importance, Options, workspace: new IntPtr(1024), workspaceBytes: -1),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => TokenPruning.GetQkImportanceWorkspaceSize(q, kHalf, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("k"));
            Assert.That(() => TokenPruning.TopK(scores, indices64), Throws.ArgumentException.With.Property("ParamName").EqualTo("indices"));
            Assert.That(() => TokenPruning.TopK(scores, indices, lengths: lengths64), Throws.ArgumentException.With.Property("ParamName").EqualTo("lengths"));
            Assert.That(() => TokenPruning.TopK(scores, indices, ranked: indices64), Throws.ArgumentException.With.Property("ParamName").EqualTo("ranked"));
            Assert.That(() => TokenPruning.GetTopKWorkspaceSize(scores, 10), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => TokenPruning.Gather(tokens, indices, gathered), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenPruning.Gather(tokens, keptFloat, contextual), Throws.ArgumentException.With.Property("ParamName").EqualTo("indices"));
            Assert.That(() => TokenPruning.VisionZipContextual(tokens, tokens, keptFloat, contextual), Throws.ArgumentException.With.Property("ParamName").EqualTo("kept"));
            Assert.That(() => TokenPruning.VisionZipContextual(tokens, tokens, kept, gathered), Throws.ArgumentException.With.Property("ParamName").EqualTo("output"));
            Assert.That(() => TokenPruning.GetVisionZipContextualWorkspaceSize(8, tokens, tokens, kept), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("contextual"));
        }
    }

    [Test]
    public void DeviceCallsWithoutCudaAreReportedByTheNativeLibrary()
    {
        if (Cuda.IsAvailable)
        {
            Assert.Ignore("a CUDA device is present; this checks the library without one");
        }
        var scores = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, new TensorShape(2, 9));
        var indices = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 3));
        var ex = Assert.Throws<TokenKernelsException>(() => TokenPruning.TopK(scores, indices));
        Assert.That(ex!.Status, Is.AnyOf(TokenKernelsStatus.BackendUnavailable, TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Is.Not.Empty);
    }

    [Test]
    public void ParameterStructsHaveTheHeaderFieldsInOrderAndTheCLayout()
    {
        string header = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "tokenkernels.h"));
        // Natural C alignment of int64_t, int32_t / tk_reduce and float fields, in header order.
        CheckMirror<TkImportanceParams>(header, "tk_importance_params", new[] { 0, 8, 16, 24, 32, 36, 40, 44 }, 48);
        CheckMirror<TkTopkParams>(header, "tk_topk_params", new[] { 0 }, 4);
    }

    [Test]
    public void ParameterStructLayoutsMatchTheLibrary()
    {
        TokenKernelsLibrary.Load();
        using (Assert.EnterMultipleScope())
        {
            foreach ((Type mirror, string cName) in new[] { (typeof(TkImportanceParams), "tk_importance_params"), (typeof(TkTopkParams), "tk_topk_params") })
            {
                Assert.That((ulong)Marshal.SizeOf(mirror), Is.EqualTo(NativeLayout(cName, null)), "sizeof(" + cName + ")");
                foreach (var field in mirror.GetFields())
                {
                    string cField = SnakeCase(field.Name);
                    Assert.That((ulong)Marshal.OffsetOf(mirror, field.Name), Is.EqualTo(NativeLayout(cName, cField)), "offsetof(" + cName + ", " + cField + ")");
                }
            }
        }
    }

    private static void CheckMirror<T>(string header, string cName, int[] offsets, int size)
        where T : struct
    {
        Match body = Regex.Match(header, @"typedef\s+struct\s+" + cName + @"\s*\{(?<body>[^}]*)\}\s*" + cName + @"\s*;");
        Assert.That(body.Success, "typedef struct " + cName + " in the header");
        string[] headerFields = Regex.Matches(Regex.Replace(body.Groups["body"].Value, @"/\*.*?\*/", " ", RegexOptions.Singleline), @"(?<name>\w+)\s*;")
            .Select(m => m.Groups["name"].Value).ToArray();
        var fields = typeof(T).GetFields().OrderBy(f => Marshal.OffsetOf<T>(f.Name).ToInt64()).ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(fields.Select(f => SnakeCase(f.Name)), Is.EqualTo(headerFields), cName + " fields");
            Assert.That(fields.Select(f => (int)Marshal.OffsetOf<T>(f.Name)), Is.EqualTo(offsets), cName + " offsets");
            Assert.That(Marshal.SizeOf<T>(), Is.EqualTo(size), "sizeof(" + cName + ")");
        }
    }

    private static unsafe ulong NativeLayout(string structName, string? field)
    {
        ulong value;
        fixed (byte* s = Encoding.UTF8.GetBytes(structName + "\0"))
        fixed (byte* f = field == null ? null : Encoding.UTF8.GetBytes(field + "\0"))
        {
            NativeStatus.Check(NativeMethods.tk_struct_layout(s, f, &value));
        }
        return value;
    }

    private static string SnakeCase(string pascal) => Regex.Replace(pascal, "(?<=[a-z0-9])([A-Z])", "_$1").ToLowerInvariant();
}
