using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// Bad diversity arguments give ArgumentException naming the parameter for what C# checks, TokenKernelsException with
/// the native message for what only the native library checks, and nothing is written; the params struct mirrors the header.
/// </summary>
public class DiversityErrorTests
{
    private static readonly DiversityOptions Options = DiversityOptions.DivPrune(3);

    private static ReadOnlyHostTensor<float> Tokens => new ReadOnlyHostTensor<float>(Enumerable.Range(0, 2 * 9 * 4).Select(i => (float)Math.Sin(i)).ToArray(), new TensorShape(2, 9, 4));

    private static ReadOnlyHostTensor<int> Items(params int[] values) => new ReadOnlyHostTensor<int>(values, new TensorShape(values.Length));

    // The workspace is scratch the op writes while it reads x: one over x's memory (the same array viewed as bytes) is refused.
    [Test]
    public void WorkspaceOverTheTokensIsRefusedByName()
    {
        float[] buffer = Enumerable.Range(0, 50000).Select(i => (float)Math.Cos(i)).ToArray();
        var shape = new TensorShape(2, 9, 4);
        Assert.That(buffer.Length * sizeof(float), Is.GreaterThanOrEqualTo(DiversitySelection.GetWorkspaceSize(new ReadOnlyHostTensor<float>(buffer, shape), Options)));
        int[] order = Enumerable.Repeat(7, 6).ToArray();
        float[] before = buffer.ToArray();
        var ex = Assert.Throws<TokenKernelsException>(() =>
            DiversitySelection.Select(new ReadOnlyHostTensor<float>(buffer, shape), new HostTensor<int>(order, new TensorShape(2, 3)), Options,
                workspace: MemoryMarshal.AsBytes(buffer.AsSpan())));
        Assert.That(ex!.NativeMessage, Does.Contain("workspace").And.Contain("disjoint from x"));
        Assert.That(order, Is.All.EqualTo(7));
        Assert.That(buffer, Is.EqualTo(before));
    }

    [Test]
    public void OptionsRejectBadValues()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new DiversityOptions(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => DiversityOptions.DivPrune(-2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => DiversityOptions.KCenterFromScore(-3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k"));
            Assert.That(() => Options with { K = -1 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("K"));
            Assert.That(() => Options with { Distance = (Distance)2 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Distance"));
            Assert.That(() => Options with { First = (FirstCenter)3 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("First"));
            Assert.That(() => Options with { First = (FirstCenter)(-1) }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("First"));
            Assert.That(() => Options with { Objective = (DiversityObjective)2 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Objective"));
        }
    }

    [Test]
    public void WithMethodsRejectBadValuesByTheirParameter()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => Options.WithK(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("k")
                .And.Message.Contains("0 or more"));
            Assert.That(() => Options.WithDistance((Distance)2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("distance")
                .And.Message.Contains("Not a Distance"));
            Assert.That(() => Options.WithFirst((FirstCenter)3), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("first")
                .And.Message.Contains("Not a FirstCenter"));
            Assert.That(() => Options.WithObjective((DiversityObjective)2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("objective")
                .And.Message.Contains("Not a DiversityObjective"));
        }
    }

    [Test]
    public void SelectArgumentsNameTheirParameterAndWriteNothing()
    {
        var order = new int[6];
        var sorted = new int[6];
        order.AsSpan().Fill(7);
        sorted.AsSpan().Fill(7);
        HostTensor<int> Order() => new HostTensor<int>(order, new TensorShape(2, 3));
        HostTensor<int> Sorted() => new HostTensor<int>(sorted, new TensorShape(2, 3));
        var scores = new float[18];
        var byIndex = Options with { First = FirstCenter.Index };
        var byScore = DiversityOptions.KCenterFromScore(3);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => DiversitySelection.Select(new ReadOnlyHostTensor<float>(new float[72], new TensorShape(18, 4)), Order(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x").And.Message.Contains("[B, N, C]"));
            Assert.That(() => DiversitySelection.Select(default(ReadOnlyHostTensor<float>), Order(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x").And.Message.Contains("default"));
            Assert.That(() => DiversitySelection.Select(new ReadOnlyHostTensor<int>(new int[72], new TensorShape(2, 9, 4)), Order(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x").And.Message.Contains("Int32"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options with { K = 10 }),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("options").And.Message.Contains("N = 9"));
            Assert.That(() => DiversitySelection.Select(Tokens, new HostTensor<int>(order, new TensorShape(3, 2)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("order").And.Message.Contains("[2, 3]"));
            Assert.That(() => DiversitySelection.Select(Tokens, new HostTensor<int>(order, new TensorShape(2, 2)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("order"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options, new HostTensor<int>(sorted, new TensorShape(6))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sorted"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options with { K = 4 }, Sorted()),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("order").And.Message.Contains("[2, 4]"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options, lengths: Items(9, 9, 9)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("lengths").And.Message.Contains("[B] = [2]"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options, itemK: new ReadOnlyHostTensor<int>(new int[2], new TensorShape(2, 1))),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("itemK"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), byIndex),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstIndex").And.Message.Contains("Index"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), Options, firstIndex: Items(0, 1)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstIndex").And.Message.Contains("MostIsolated"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), byIndex, firstIndex: Items(0, 1, 2)),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstIndex").And.Message.Contains("[B] = [2]"));
            Assert.That(() => DiversitySelection.Select(Tokens, Order(), byScore),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore").And.Message.Contains("Score"));
            Assert.That(() => DiversitySelection.Select(Tokens, new ReadOnlyHostTensor<float>(scores, new TensorShape(2, 9)), Order(), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore").And.Message.Contains("MostIsolated"));
            Assert.That(() => DiversitySelection.Select(Tokens, new ReadOnlyHostTensor<float>(new float[16], new TensorShape(2, 8)), Order(), byScore),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore").And.Message.Contains("[2, 9]"));
            Assert.That(() => DiversitySelection.Select(Tokens, new ReadOnlyHostTensor<long>(new long[18], new TensorShape(2, 9)), Order(), byScore),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore").And.Message.Contains("Int64"));
            Assert.That(() => DiversitySelection.Select(new ReadOnlyHostTensor<float>(new float[8], new TensorShape(8)), Options),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
        }
        Assert.That(order, Is.All.EqualTo(7), "nothing was written");
        Assert.That(sorted, Is.All.EqualTo(7), "nothing was written");
    }

    [TestCase(new[] { 9, 10 }, null, null, "lengths[1]")]
    [TestCase(new[] { -1, 4 }, null, null, "lengths[0]")]
    [TestCase(null, new[] { 3, 4 }, null, "item_k[1]")]
    [TestCase(null, new[] { -2, 1 }, null, "item_k[0]")]
    [TestCase(null, null, new[] { 0, 9 }, "first_index[1]")]
    [TestCase(null, null, new[] { -1, 0 }, "first_index[0]")]
    [TestCase(new[] { 4, 9 }, null, new[] { 4, 0 }, "first_index[0]")]
    public void OutOfRangeValuesAreReportedByTheNativeLibrary(int[]? lengths, int[]? itemK, int[]? firstIndex, string named)
    {
        var order = new int[6];
        var sorted = new int[6];
        order.AsSpan().Fill(7);
        sorted.AsSpan().Fill(7);
        DiversityOptions options = firstIndex == null ? Options : Options with { First = FirstCenter.Index };
        var ex = Assert.Throws<TokenKernelsException>(() => DiversitySelection.Select(
            Tokens, new HostTensor<int>(order, new TensorShape(2, 3)), options, new HostTensor<int>(sorted, new TensorShape(2, 3)),
            lengths == null ? default : Items(lengths), itemK == null ? default : Items(itemK), firstIndex == null ? default : Items(firstIndex)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
            Assert.That(ex.NativeMessage, Does.Contain(named));
            Assert.That(order, Is.All.EqualTo(7), "nothing was written");
            Assert.That(sorted, Is.All.EqualTo(7), "nothing was written");
        }
    }

    [Test]
    public void AFirstIndexOfAnEmptyItemIsNotRead()
    {
        (int[] order, _, _) = DiversitySelection.Select(Tokens, Options with { First = FirstCenter.Index }, lengths: Items(0, 9), firstIndex: Items(5, 2));
        Assert.That(order.Take(3), Is.EqualTo(new[] { -1, -1, -1 }));
        Assert.That(order[3], Is.EqualTo(2));
    }

    [Test]
    public void OrderOverlappingTheTokensIsReportedByTheNativeLibrary()
    {
        var shared = new float[2 * 9 * 4];
        var ex = Assert.Throws<TokenKernelsException>(() => DiversitySelection.Select(
            new ReadOnlyHostTensor<float>(shared, new TensorShape(2, 9, 4)),
            new HostTensor<int>(MemoryMarshal.Cast<float, int>(shared.AsSpan(0, 6)), new TensorShape(2, 3)), Options));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("order"));
        Assert.That(shared, Is.All.EqualTo(0f), "nothing was written");
    }

    [Test]
    public void DeviceCallsCheckTypesShapesAndDevicesBeforeTheNativeCall()
    {
        var x = new DeviceTensor(new IntPtr(256), TensorDataType.BFloat16, new TensorShape(2, 9, 4));
        var xInt = new DeviceTensor(new IntPtr(256), TensorDataType.Int32, new TensorShape(2, 9, 4));
        var order = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 3));
        var order64 = new DeviceTensor(new IntPtr(4096), TensorDataType.Int64, new TensorShape(2, 3));
        var otherDevice = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 3), default, 1);
        var lengths64 = new DeviceTensor(new IntPtr(8192), TensorDataType.Int64, new TensorShape(2));
        var items = new DeviceTensor(new IntPtr(8192), TensorDataType.Int32, new TensorShape(2));
        var scores = new DeviceTensor(new IntPtr(16384), TensorDataType.Float16, new TensorShape(2, 9));
        var scoresInt = new DeviceTensor(new IntPtr(16384), TensorDataType.Int32, new TensorShape(2, 9));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => DiversitySelection.Select(xInt, order, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => DiversitySelection.Select(x, order64, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("order"));
            Assert.That(() => DiversitySelection.Select(x, otherDevice, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("order").And.Message.Contains("cuda:1"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, sorted: order64), Throws.ArgumentException.With.Property("ParamName").EqualTo("sorted"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, sorted: otherDevice), Throws.ArgumentException.With.Property("ParamName").EqualTo("sorted"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, lengths: lengths64), Throws.ArgumentException.With.Property("ParamName").EqualTo("lengths"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, firstIndex: items), Throws.ArgumentException.With.Property("ParamName").EqualTo("firstIndex"));
            Assert.That(() => DiversitySelection.Select(x, order, Options with { First = FirstCenter.Score }), Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore"));
            Assert.That(() => DiversitySelection.Select(x, order, Options with { First = FirstCenter.Score }, firstScore: scoresInt), Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, firstScore: scores), Throws.ArgumentException.With.Property("ParamName").EqualTo("firstScore"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, workspaceBytes: 64), Throws.ArgumentException.With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => DiversitySelection.Select(x, order, Options, workspace: new IntPtr(1024), workspaceBytes: -1),
                Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("workspaceBytes"));
            Assert.That(() => DiversitySelection.GetWorkspaceSize(x, Options with { K = 10 }), Throws.ArgumentException.With.Property("ParamName").EqualTo("options"));
            Assert.That(() => DiversitySelection.GetWorkspaceSize(xInt, Options), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
        }
    }

    [Test]
    public void DeviceCallsWithoutCudaAreReportedByTheNativeLibrary()
    {
        if (Cuda.IsAvailable)
        {
            Assert.Ignore("a CUDA device is present; this checks the library without one");
        }
        var x = new DeviceTensor(new IntPtr(256), TensorDataType.Float32, new TensorShape(2, 9, 4));
        var order = new DeviceTensor(new IntPtr(4096), TensorDataType.Int32, new TensorShape(2, 3));
        var ex = Assert.Throws<TokenKernelsException>(() => DiversitySelection.Select(x, order, Options));
        Assert.That(ex!.Status, Is.AnyOf(TokenKernelsStatus.BackendUnavailable, TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Is.Not.Empty);
    }

    [Test]
    public void ParamsStructHasTheHeaderFieldsInOrderAndTheLibraryLayout()
    {
        string header = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "tokenkernels.h"));
        Match body = Regex.Match(header, @"typedef\s+struct\s+tk_diversity_params\s*\{(?<body>[^}]*)\}\s*tk_diversity_params\s*;");
        Assert.That(body.Success, "typedef struct tk_diversity_params in the header");
        string[] headerFields = Regex.Matches(Regex.Replace(body.Groups["body"].Value, @"/\*.*?\*/", " ", RegexOptions.Singleline), @"(?<name>\w+)\s*;")
            .Select(m => m.Groups["name"].Value).ToArray();
        var fields = typeof(TkDiversityParams).GetFields().OrderBy(f => Marshal.OffsetOf<TkDiversityParams>(f.Name).ToInt64()).ToArray();
        TokenKernelsLibrary.Load();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(fields.Select(f => SnakeCase(f.Name)), Is.EqualTo(headerFields), "fields");
            Assert.That((ulong)Marshal.SizeOf<TkDiversityParams>(), Is.EqualTo(NativeLayout("tk_diversity_params", null)), "sizeof");
            foreach (var field in fields)
            {
                string cField = SnakeCase(field.Name);
                Assert.That((ulong)Marshal.OffsetOf<TkDiversityParams>(field.Name), Is.EqualTo(NativeLayout("tk_diversity_params", cField)), "offsetof " + cField);
            }
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
