using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using TokenKernels.Interop;

namespace TokenKernels.Benchmarks;

/// <summary>
/// What the method-level C# call costs over its op: <see cref="VideoPruning.Evs{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int})"/>
/// into caller buffers against the raw <c>tk_evs</c> P/Invoke with its arguments prebuilt in native memory (the
/// baseline), on a video so small (3 frames of a 2x2 grid x 8 channels, q = 0.5: 6 tokens kept) that the arithmetic is
/// negligible. Both rows do the same native work; the goal is no measurable difference and 0 bytes allocated.
/// <see cref="VideoPruning.VidCom2{T}(ReadOnlyHostTensor{T}, int, int, double, HostTensor{T}, HostTensor{int}, HostTensor{int}, HostTensor{int}, double, double)"/>
/// against <c>tk_vidcom2</c> the same way, on the same video at r = 0.5 (also 6 tokens kept).
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public unsafe class EvsOverheadBenchmarks
{
    private const string EvsFloat32 = "Evs f32";
    private const string VidCom2Float32 = "VidCom2 f32";
    private const int Frames = 3, Height = 2, Width = 2, Channels = 8;
    private const double PruningRate = 0.5;
    private const long Retained = 6;  // EVS: max(4, int(12 * 0.5)); VidCom2 at r = 0.5: max(3, int(12 * 0.5))

    private static readonly TensorShape VideoShape = new TensorShape(1, Frames, Height * Width, Channels);
    private static readonly TensorShape KeptShape = new TensorShape(1, Retained, Channels);
    private static readonly TensorShape PositionsShape = new TensorShape(1, Retained, 3);

    private float[] _video = null!;
    private float[] _kept = null!;
    private int[] _positions = null!;
    private NativeEvsCall* _call;

    [GlobalSetup]
    public void Setup()
    {
        TokenKernelsLibrary.Load();
        _video = GC.AllocateArray<float>((int)VideoShape.ElementCount, pinned: true);
        for (int i = 0; i < _video.Length; i++)
        {
            _video[i] = MathF.Sin(i * 0.7f);
        }
        _kept = GC.AllocateArray<float>((int)KeptShape.ElementCount, pinned: true);
        _positions = GC.AllocateArray<int>((int)PositionsShape.ElementCount, pinned: true);
        _call = (NativeEvsCall*)NativeMemory.AllocZeroed((nuint)sizeof(NativeEvsCall));
        _call->Params.PruningRate = PruningRate;
        _call->Params.Height = Height;
        _call->Params.Width = Width;
        _call->VidCom2Params.RetentionRatio = PruningRate;
        _call->VidCom2Params.ChannelRatio = VideoPruning.VidCom2DefaultChannelRatio;
        _call->VidCom2Params.Temperature = VideoPruning.VidCom2DefaultTemperature;
        _call->VidCom2Params.Height = Height;
        _call->VidCom2Params.Width = Width;
        _call->Video = NativeTensors.ContiguousHostTensor(ArrayData(_video), NativeMethods.TK_DTYPE_F32, VideoShape);
        _call->Kept = NativeTensors.ContiguousHostTensor(ArrayData(_kept), NativeMethods.TK_DTYPE_F32, KeptShape);
        _call->Positions = NativeTensors.ContiguousHostTensor(ArrayData(_positions), NativeMethods.TK_DTYPE_I32, PositionsShape);
        // A rejected call returns early, so a baseline built wrong would time the error path and flatter the library.
        if (NativeTkEvs() != NativeMethods.TK_STATUS_OK)
        {
            throw new InvalidOperationException("tk_evs: " + NativeStatus.DecodeUtf8(NativeMethods.tk_last_error()));
        }
        if (NativeTkVidCom2() != NativeMethods.TK_STATUS_OK)
        {
            throw new InvalidOperationException("tk_vidcom2: " + NativeStatus.DecodeUtf8(NativeMethods.tk_last_error()));
        }
    }

    [GlobalCleanup]
    public void Cleanup() => NativeMemory.Free(_call);

    [Benchmark(Baseline = true), BenchmarkCategory(EvsFloat32)]
    public int NativeTkEvs()
        => NativeMethods.tk_evs(&_call->Params, &_call->Video, &_call->Kept, null, &_call->Positions, null, null, 0, IntPtr.Zero);

    [Benchmark, BenchmarkCategory(EvsFloat32)]
    public void VideoPruningEvs()
        => VideoPruning.Evs(new ReadOnlyHostTensor<float>(_video, VideoShape), Height, Width, PruningRate,
            output: new HostTensor<float>(_kept, KeptShape), positions: new HostTensor<int>(_positions, PositionsShape));

    [Benchmark(Baseline = true), BenchmarkCategory(VidCom2Float32)]
    public int NativeTkVidCom2()
        => NativeMethods.tk_vidcom2(&_call->VidCom2Params, &_call->Video, &_call->Kept, null, &_call->Positions, null, null, 0, IntPtr.Zero);

    [Benchmark, BenchmarkCategory(VidCom2Float32)]
    public void VideoPruningVidCom2()
        => VideoPruning.VidCom2(new ReadOnlyHostTensor<float>(_video, VideoShape), Height, Width, PruningRate,
            output: new HostTensor<float>(_kept, KeptShape), positions: new HostTensor<int>(_positions, PositionsShape));

    private static void* ArrayData<T>(T[] array)
        where T : unmanaged
        => Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));

    /// <summary>The arguments of one tk_evs (or tk_vidcom2) call, kept in native memory so the baseline passes them without pinning or copying.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct NativeEvsCall
    {
        public TkEvsParams Params;
        public TkVidcom2Params VidCom2Params;
        public TkTensor Video;
        public TkTensor Kept;
        public TkTensor Positions;
    }
}
