using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// The bindings against the header they mirror (copied next to the tests) and against the loaded library:
/// struct layouts, one DllImport per function, constants and version.
/// </summary>
public class ConformanceTests
{
    private static readonly string Header = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "tokenkernels.h"));

    private static readonly Dictionary<Type, string> StructMirrors = new()
    {
        [typeof(TkTensor)] = "tk_tensor",
        [typeof(TkPoolParams)] = "tk_pool_params",
        [typeof(TkMergeParams)] = "tk_merge_params",
        [typeof(TkEvsParams)] = "tk_evs_params",
        [typeof(TkDycokeParams)] = "tk_dycoke_params",
        [typeof(TkVidcom2Params)] = "tk_vidcom2_params",
        [typeof(TkFramefusionParams)] = "tk_framefusion_params",
        [typeof(TkDpcKnnParams)] = "tk_dpc_knn_params",
        [typeof(TkClusterMergeParams)] = "tk_cluster_merge_params",
        [typeof(TkRelevanceParams)] = "tk_relevance_params",
        [typeof(TkDppParams)] = "tk_dpp_params",
        [typeof(TkKmeansParams)] = "tk_kmeans_params",
        [typeof(TkDlpackDevice)] = "tk_dlpack_device",
        [typeof(TkDlpackDtype)] = "tk_dlpack_dtype",
        [typeof(TkDlpackTensor)] = "tk_dlpack_tensor",
        [typeof(TkDlpackManagedTensor)] = "tk_dlpack_managed_tensor",
        [typeof(TkDlpackVersion)] = "tk_dlpack_version",
        [typeof(TkDlpackManagedTensorVersioned)] = "tk_dlpack_managed_tensor_versioned",
    };

    [OneTimeSetUp]
    public void LoadLibrary() => TokenKernelsLibrary.Load();

    [Test]
    public void StructSizesAndFieldOffsetsMatchTheLibrary()
    {
        using (Assert.EnterMultipleScope())
        {
            foreach ((Type mirror, string cName) in StructMirrors)
            {
                Assert.That((ulong)Marshal.SizeOf(mirror), Is.EqualTo(NativeLayout(cName, null)), $"sizeof({cName})");
                foreach (FieldInfo field in mirror.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
                {
                    string cField = SnakeCase(field.Name);
                    Assert.That((ulong)Marshal.OffsetOf(mirror, field.Name), Is.EqualTo(NativeLayout(cName, cField)), $"offsetof({cName}, {cField})");
                }
            }
        }
    }

    [Test]
    public void StructMirrorsHaveTheHeaderFieldsInOrder()
    {
        using (Assert.EnterMultipleScope())
        {
            foreach ((Type mirror, string cName) in StructMirrors)
            {
                Match body = Regex.Match(Header, @"typedef\s+struct\s+" + cName + @"\s*\{(?<body>[^}]*)\}\s*" + cName + @"\s*;");
                Assert.That(body.Success, $"typedef struct {cName} in the header");
                string[] headerFields = Regex.Matches(StripComments(body.Groups["body"].Value), @"(?<name>\w+)\s*(\[[^\]]*\])?\s*;")
                    .Select(m => m.Groups["name"].Value).ToArray();
                string[] mirrorFields = mirror.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                    .OrderBy(f => Marshal.OffsetOf(mirror, f.Name).ToInt64()).Select(f => SnakeCase(f.Name)).ToArray();
                Assert.That(mirrorFields, Is.EqualTo(headerFields), cName);
            }
        }
    }

    [Test]
    public void EveryHeaderFunctionHasExactlyOneDllImportAndViceVersa()
    {
        Dictionary<string, int> headerFunctions = HeaderFunctions();
        MethodInfo[] imports = typeof(NativeMethods).GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Where(m => m.GetCustomAttribute<DllImportAttribute>() != null).ToArray();

        Assert.That(headerFunctions, Is.Not.Empty);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(imports.Select(m => m.Name).OrderBy(n => n, StringComparer.Ordinal),
                Is.EqualTo(headerFunctions.Keys.OrderBy(n => n, StringComparer.Ordinal)), "header TK_API functions vs NativeMethods DllImports");
            foreach (MethodInfo import in imports)
            {
                DllImportAttribute attribute = import.GetCustomAttribute<DllImportAttribute>()!;
                Assert.That(attribute.Value, Is.EqualTo("tokenkernels"), import.Name + " library");
                Assert.That(attribute.EntryPoint ?? import.Name, Is.EqualTo(import.Name), import.Name + " entry point");
                Assert.That(attribute.CallingConvention, Is.EqualTo(CallingConvention.Cdecl), import.Name + " calling convention");
                Assert.That(attribute.ExactSpelling, Is.True, import.Name + " ExactSpelling");
                Assert.That(attribute.SetLastError, Is.False, import.Name + " SetLastError");
                if (headerFunctions.TryGetValue(import.Name, out int parameterCount))
                {
                    Assert.That(import.GetParameters(), Has.Length.EqualTo(parameterCount), import.Name + " parameter count");
                }
                foreach (Type type in import.GetParameters().Select(p => p.ParameterType).Append(import.ReturnType))
                {
                    Assert.That(IsBlittable(type), $"{import.Name}: {type} is not a pointer or fixed-width integer");
                }
            }
        }
    }

    [Test]
    public void HeaderConstantsEqualTheBindingConstants()
    {
        var constants = typeof(NativeMethods).GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Where(f => f.IsLiteral && f.Name.StartsWith("TK_", StringComparison.Ordinal))
            .ToDictionary(f => f.Name, f => Convert.ToInt64(f.GetRawConstantValue()));
        var header = new Dictionary<string, long>();
        foreach (Match m in Regex.Matches(Header, @"\b(?<name>TK_[A-Z0-9_]+)\s*=\s*(?<value>\d+)"))
        {
            header[m.Groups["name"].Value] = long.Parse(m.Groups["value"].Value);
        }
        foreach (Match m in Regex.Matches(Header, @"#define\s+(?<name>TK_[A-Z0-9_]+)\s+(?<value>\d+)\s*$", RegexOptions.Multiline))
        {
            header[m.Groups["name"].Value] = long.Parse(m.Groups["value"].Value);
        }
        header["TK_VERSION"] = header["TK_VERSION_MAJOR"] * 10000 + header["TK_VERSION_MINOR"] * 100 + header["TK_VERSION_PATCH"];

        Assert.That(header, Has.Count.GreaterThan(20));
        Assert.That(constants, Is.EquivalentTo(header));
    }

    [Test]
    public void VersionConstantsEqualTheLoadedLibrary()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TokenKernelsLibrary.Version, Is.EqualTo(NativeMethods.TK_VERSION));
            Assert.That(TokenKernelsLibrary.BindingsVersion, Is.EqualTo(NativeMethods.TK_VERSION));
            Assert.That(TokenKernelsLibrary.VersionString,
                Is.EqualTo($"{NativeMethods.TK_VERSION_MAJOR}.{NativeMethods.TK_VERSION_MINOR}.{NativeMethods.TK_VERSION_PATCH}"));
            Assert.That(typeof(TokenKernelsLibrary).Assembly.GetName().Version!.ToString(3), Is.EqualTo(TokenKernelsLibrary.VersionString), "assembly version");
        }
    }

    [Test]
    public unsafe void EnumsMatchTheNativeNamesAndSizes()
    {
        using (Assert.EnterMultipleScope())
        {
            foreach (TokenKernelsStatus status in Enum.GetValues<TokenKernelsStatus>())
            {
                string expected = "TK_STATUS_" + SnakeCase(status.ToString()).ToUpperInvariant();
                Assert.That(NativeStatus.DecodeUtf8(NativeMethods.tk_status_name((int)status)), Is.EqualTo(expected), status.ToString());
            }
            foreach (TensorDataType dataType in Enum.GetValues<TensorDataType>())
            {
                Assert.That(dataType.ElementSize(), Is.EqualTo(NativeMethods.tk_dtype_size((int)dataType)), dataType.ToString());
            }
            Assert.That(NativeMethods.tk_dtype_size(99), Is.Zero, "unknown dtype");
        }
    }

    [Test]
    public unsafe void PoolingNeedsNoWorkspaceInAnyMode()
    {
        var x = new float[1 * 2 * 6 * 6 * 3];
        var y = new float[1 * 2 * 3 * 3 * 3];
        var inShape = new TensorShape(1, 2, 6, 6, 3);
        var outShape = new TensorShape(1, 2, 3, 3, 3);
        PoolOptions[] all =
        {
            PoolOptions.WindowAvg((1, 2, 2)), PoolOptions.WindowMax((1, 2, 2)),
            PoolOptions.AdaptiveAvg((2, 3, 3)), PoolOptions.AdaptiveMax((2, 3, 3)), PoolOptions.Bilinear(3, 3),
        };
        fixed (float* xp = x)
        fixed (float* yp = y)
        {
            TkTensor xt = TensorLayout.Descriptor(xp, TensorDataType.Float32, NativeMethods.TK_DEVICE_CPU, 0, inShape, inShape.ContiguousStrides());
            TkTensor yt = TensorLayout.Descriptor(yp, TensorDataType.Float32, NativeMethods.TK_DEVICE_CPU, 0, outShape, outShape.ContiguousStrides());
            foreach (PoolOptions options in all)
            {
                TkPoolParams native = options.ToNative(inShape[1]);
                ulong bytes = 1;
                NativeStatus.Check(NativeMethods.tk_pool_workspace_size(&native, &xt, &yt, &bytes));
                Assert.That(bytes, Is.Zero, options.ToString());
            }
        }
    }

    [Test]
    public void UnknownStructLayoutIsAnInvalidArgument()
    {
        var ex = Assert.Throws<TokenKernelsException>(() => NativeLayout("tk_no_such_struct", null));
        Assert.That(ex!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
        Assert.That(ex.NativeMessage, Does.Contain("tk_no_such_struct"));
    }

    /// <summary>TK_API functions of the header with their parameter counts.</summary>
    private static Dictionary<string, int> HeaderFunctions()
    {
        var functions = new Dictionary<string, int>();
        foreach (Match m in Regex.Matches(StripComments(Header), @"TK_API\s+[^;{]*?\b(?<name>tk_\w+)\s*\((?<parameters>[^)]*)\)\s*;"))
        {
            string parameters = m.Groups["parameters"].Value.Trim();
            string name = m.Groups["name"].Value;
            Assert.That(functions.ContainsKey(name), Is.False, "declared twice in the header: " + name);
            functions[name] = parameters == "void" || parameters.Length == 0 ? 0 : parameters.Split(',').Length;
        }
        return functions;
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

    private static bool IsBlittable(Type type)
        => type.IsPointer || type == typeof(IntPtr) || type == typeof(int) || type == typeof(long) || type == typeof(uint) || type == typeof(ulong);

    private static string StripComments(string text) => Regex.Replace(text, @"/\*.*?\*/|//[^\n]*", " ", RegexOptions.Singleline);

    /// <summary>DeviceOrdinal to device_ordinal, as the C fields are named.</summary>
    private static string SnakeCase(string pascal) => Regex.Replace(pascal, "(?<=[a-z0-9])([A-Z])", "_$1").ToLowerInvariant();
}
