using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using TokenKernels.Interop;

namespace TokenKernels.Benchmarks;

/// <summary>
/// What the C# layer costs per call: each category times a public API call against its raw P/Invoke with arguments
/// prebuilt in native memory (the baseline), on a tensor so small (1x1x2x2x8 pooled 2x2 to 1x1x1x1x8) that the
/// arithmetic is negligible; both rows of a category do the same native work, so their difference is the layer's
/// overhead. The goal is under 1 us and 0 bytes allocated per call.
/// </summary>
/// <remarks>
/// No benchmark method uses <c>stackalloc</c>: on .NET 10 that makes a method's P/Invoke calls several times
/// slower and would distort both sides.
/// </remarks>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public unsafe class PoolingOverheadBenchmarks
{
    private const string WindowAvgFloat32 = "WindowAvg f32";
    private const string WindowAvgFloat16 = "WindowAvg f16";
    private const string WindowAvgBFloat16 = "WindowAvg bf16";
    private const string OutputShape = "OutputShape";

    private static readonly TensorShape InputShape = new TensorShape(1, 1, 2, 2, 8);
    private static readonly TensorShape PooledShape = new TensorShape(1, 1, 1, 1, 8);
    private static readonly (int Time, int Height, int Width) Kernel = (1, 2, 2);
    private static readonly PoolOptions WindowAvgOptions = PoolOptions.WindowAvg(Kernel);

    private float[] _float32Input = null!;
    private float[] _float32Output = null!;
    private Float16[] _float16Input = null!;
    private Float16[] _float16Output = null!;
    private BFloat16[] _bfloat16Input = null!;
    private BFloat16[] _bfloat16Output = null!;

    private NativePoolCall* _float32Call;
    private NativePoolCall* _float16Call;
    private NativePoolCall* _bfloat16Call;
    private NativeShapeQuery* _shapeQuery;

    [GlobalSetup]
    public void Setup()
    {
        // The raw calls bypass the library's entry points, which are what load the native library.
        TokenKernelsLibrary.Load();
        _float32Input = PinnedArray(InputShape, i => i * 0.25f);
        _float32Output = PinnedArray<float>(PooledShape, _ => 0);
        _float16Input = PinnedArray(InputShape, i => (Float16)(i * 0.25f));
        _float16Output = PinnedArray<Float16>(PooledShape, _ => default);
        _bfloat16Input = PinnedArray(InputShape, i => (BFloat16)(i * 0.25f));
        _bfloat16Output = PinnedArray<BFloat16>(PooledShape, _ => default);

        _float32Call = NewPoolCall(NativeMethods.TK_DTYPE_F32, _float32Input, _float32Output);
        _float16Call = NewPoolCall(NativeMethods.TK_DTYPE_F16, _float16Input, _float16Output);
        _bfloat16Call = NewPoolCall(NativeMethods.TK_DTYPE_BF16, _bfloat16Input, _bfloat16Output);
        _shapeQuery = NewShapeQuery();

        // A rejected call returns early, so a baseline built wrong would time the error path and flatter the library.
        RequireOk(NativeTkPoolFloat32(), "tk_pool f32");
        RequireOk(NativeTkPoolFloat16(), "tk_pool f16");
        RequireOk(NativeTkPoolBFloat16(), "tk_pool bf16");
        RequireOk(NativeTkPoolOutputShape(), "tk_pool_output_shape");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.Free(_float32Call);
        NativeMemory.Free(_float16Call);
        NativeMemory.Free(_bfloat16Call);
        NativeMemory.Free(_shapeQuery);
    }

    [Benchmark(Baseline = true), BenchmarkCategory(WindowAvgFloat32)]
    public int NativeTkPoolFloat32() => NativeMethods.tk_pool(&_float32Call->Params, &_float32Call->Input, &_float32Call->Output, null, 0, IntPtr.Zero);

    [Benchmark, BenchmarkCategory(WindowAvgFloat32)]
    public void PoolingWindowAvgFloat32()
        => Pooling.WindowAvg(new ReadOnlyHostTensor<float>(_float32Input, InputShape), new HostTensor<float>(_float32Output, PooledShape), Kernel);

    [Benchmark(Baseline = true), BenchmarkCategory(WindowAvgFloat16)]
    public int NativeTkPoolFloat16() => NativeMethods.tk_pool(&_float16Call->Params, &_float16Call->Input, &_float16Call->Output, null, 0, IntPtr.Zero);

    [Benchmark, BenchmarkCategory(WindowAvgFloat16)]
    public void PoolingWindowAvgFloat16()
        => Pooling.WindowAvg(new ReadOnlyHostTensor<Float16>(_float16Input, InputShape), new HostTensor<Float16>(_float16Output, PooledShape), Kernel);

    [Benchmark(Baseline = true), BenchmarkCategory(WindowAvgBFloat16)]
    public int NativeTkPoolBFloat16() => NativeMethods.tk_pool(&_bfloat16Call->Params, &_bfloat16Call->Input, &_bfloat16Call->Output, null, 0, IntPtr.Zero);

    [Benchmark, BenchmarkCategory(WindowAvgBFloat16)]
    public void PoolingWindowAvgBFloat16()
        => Pooling.WindowAvg(new ReadOnlyHostTensor<BFloat16>(_bfloat16Input, InputShape), new HostTensor<BFloat16>(_bfloat16Output, PooledShape), Kernel);

    [Benchmark(Baseline = true), BenchmarkCategory(OutputShape)]
    public int NativeTkPoolOutputShape() => NativeMethods.tk_pool_output_shape(&_shapeQuery->Params, _shapeQuery->Input.Values, _shapeQuery->Output.Values);

    [Benchmark, BenchmarkCategory(OutputShape)]
    public TensorShape PoolingGetOutputShape() => Pooling.GetOutputShape(InputShape, WindowAvgOptions);

    /// <summary>An array on the pinned object heap, so its address can go into a native descriptor once and stay valid.</summary>
    private static T[] PinnedArray<T>(TensorShape shape, Func<int, T> element)
        where T : unmanaged
    {
        T[] array = GC.AllocateArray<T>((int)shape.ElementCount, pinned: true);
        for (int i = 0; i < array.Length; i++)
        {
            array[i] = element(i);
        }
        return array;
    }

    private static NativePoolCall* NewPoolCall<T>(int dtype, T[] input, T[] output)
        where T : unmanaged
    {
        var call = (NativePoolCall*)NativeMemory.AllocZeroed((nuint)sizeof(NativePoolCall));
        call->Params = WindowAvgParams();
        call->Input = NativeTensors.ContiguousHostTensor(Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(input)), dtype, InputShape);
        call->Output = NativeTensors.ContiguousHostTensor(Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(output)), dtype, PooledShape);
        return call;
    }

    private static NativeShapeQuery* NewShapeQuery()
    {
        var query = (NativeShapeQuery*)NativeMemory.AllocZeroed((nuint)sizeof(NativeShapeQuery));
        query->Params = WindowAvgParams();
        for (int d = 0; d < InputShape.Rank; d++)
        {
            query->Input.Values[d] = InputShape[d];
        }
        return query;
    }

    /// <summary>tk_pool_params for Kernel, filled field by field as a C caller would.</summary>
    private static TkPoolParams WindowAvgParams()
    {
        TkPoolParams native = default;
        native.Mode = NativeMethods.TK_POOL_WINDOW_AVG;
        native.Kernel[0] = native.Stride[0] = Kernel.Time;
        native.Kernel[1] = native.Stride[1] = Kernel.Height;
        native.Kernel[2] = native.Stride[2] = Kernel.Width;
        return native;
    }

    private static void RequireOk(int status, string call)
    {
        if (status != NativeMethods.TK_STATUS_OK)
        {
            throw new InvalidOperationException(call + " returned status " + status + ": " + NativeStatus.DecodeUtf8(NativeMethods.tk_last_error()));
        }
    }

    /// <summary>The arguments of one tk_pool call, kept in native memory so the baseline passes them without pinning or copying.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct NativePoolCall
    {
        public TkPoolParams Params;
        public TkTensor Input;
        public TkTensor Output;
    }

    /// <summary>The arguments of one tk_pool_output_shape call, kept in native memory like <see cref="NativePoolCall"/>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct NativeShapeQuery
    {
        public TkPoolParams Params;
        public NativeDims Input;
        public NativeDims Output;
    }
}
