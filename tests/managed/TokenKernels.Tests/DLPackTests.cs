using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NUnit.Framework;
using TokenKernels.Interop;

namespace TokenKernels.Tests;

/// <summary>
/// DLPack tensors in (views of a DLTensor, DLManagedTensor and DLManagedTensorVersioned as host and device tensors) and
/// out (the library's DLManagedTensors and their deleters), with the native library's refusals as exceptions.
/// </summary>
public unsafe class DLPackTests
{
    // DLPack's numbers written out, so that a wrong binding constant fails here.
    private const int KDLCPU = 1;
    private const int KDLCUDA = 2;
    private const int KDLCUDAHost = 3;
    private const int KDLROCM = 10;
    private const byte KDLInt = 0;
    private const byte KDLFloat = 2;
    private const byte KDLBfloat = 4;

    /// <summary>
    /// A DLTensor over native memory it owns (the data, shape and strides arrays) inside a DLManagedTensor and a
    /// DLManagedTensorVersioned, as a producer would hand them over.
    /// </summary>
    private sealed class ProducerTensor : IDisposable
    {
        public ProducerTensor(long elements, long[] shape, long[]? strides, byte code = KDLFloat, byte bits = 32)
        {
            Data = NativeMemory.AllocZeroed((nuint)(elements * 8));
            Shape = (long*)NativeMemory.Alloc((nuint)(shape.Length * sizeof(long)));
            shape.AsSpan().CopyTo(new Span<long>(Shape, shape.Length));
            if (strides != null)
            {
                Strides = (long*)NativeMemory.Alloc((nuint)(strides.Length * sizeof(long)));
                strides.AsSpan().CopyTo(new Span<long>(Strides, strides.Length));
            }
            Managed = (TkDlpackManagedTensor*)NativeMemory.AllocZeroed((nuint)sizeof(TkDlpackManagedTensor));
            Versioned = (TkDlpackManagedTensorVersioned*)NativeMemory.AllocZeroed((nuint)sizeof(TkDlpackManagedTensorVersioned));
            Managed->DlTensor = new TkDlpackTensor
            {
                Data = Data,
                Device = new TkDlpackDevice { DeviceType = KDLCPU, DeviceId = 0 },
                Ndim = shape.Length,
                Dtype = new TkDlpackDtype { Code = code, Bits = bits, Lanes = 1 },
                Shape = Shape,
                Strides = Strides,
                ByteOffset = 0,
            };
            Versioned->Version = new TkDlpackVersion { Major = 1, Minor = 0 };
            Sync();
        }

        public void* Data { get; }

        public long* Shape { get; }

        public long* Strides { get; }

        public TkDlpackManagedTensor* Managed { get; }

        public TkDlpackManagedTensorVersioned* Versioned { get; }

        public ref TkDlpackTensor DlTensor => ref Managed->DlTensor;

        public IntPtr DlTensorAddress => (IntPtr)(&Managed->DlTensor);

        /// <summary>Copies the DLTensor into the versioned struct after a test changed it.</summary>
        public void Sync() => Versioned->DlTensor = Managed->DlTensor;

        public void Dispose()
        {
            NativeMemory.Free(Data);
            NativeMemory.Free(Shape);
            NativeMemory.Free(Strides);
            NativeMemory.Free(Managed);
            NativeMemory.Free(Versioned);
        }
    }

    [OneTimeSetUp]
    public void LoadLibrary() => TokenKernelsLibrary.Load();

    [Test]
    public void ADLTensorIsViewedAsAHostTensorWithoutACopy()
    {
        using var producer = new ProducerTensor(24, new long[] { 2, 3, 4 }, null);
        var values = new Span<float>(producer.Data, 24);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = i * 0.5f;
        }

        DLPackTensor tensor = DLPack.FromDLTensor(producer.DlTensorAddress);
        HostTensor<float> view = tensor.AsHostTensor<float>();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(tensor.Data, Is.EqualTo((IntPtr)producer.Data));
            Assert.That(tensor.DataType, Is.EqualTo(TensorDataType.Float32));
            Assert.That(tensor.Shape, Is.EqualTo(new TensorShape(2, 3, 4)));
            Assert.That(tensor.Strides, Is.EqualTo(new TensorStrides(12, 4, 1)), "NULL strides are compact row-major");
            Assert.That(tensor.IsCuda, Is.False);
            Assert.That(tensor.IsWritable, Is.True);
            Assert.That(tensor.ToString(), Is.EqualTo("DLPackTensor Float32 [2, 3, 4] on cpu"));
            Assert.That(Unsafe.AsPointer(ref view.Data[0]) == producer.Data, "the view is the producer's memory");
            Assert.That(view.Data[23], Is.EqualTo(11.5f));
        }
        view.Data[5] = -7f;
        Assert.That(values[5], Is.EqualTo(-7f), "a write through the view is a write to the producer's memory");
    }

    [Test]
    public void ByteOffsetAndTheStridesOfSizeOneDimensionsAreApplied()
    {
        // [1, 3, 1, 2] with PyTorch-like odd strides on the size-1 dimensions, 4 floats into the buffer.
        using var producer = new ProducerTensor(32, new long[] { 1, 3, 1, 2 }, new long[] { 999, 4, -3, 1 });
        producer.DlTensor.ByteOffset = 4 * sizeof(float);
        DLPackTensor tensor = DLPack.FromDLTensor(producer.DlTensorAddress);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(tensor.Data, Is.EqualTo((IntPtr)((float*)producer.Data + 4)));
            Assert.That(tensor.Strides, Is.EqualTo(new TensorStrides(6, 4, 2, 1)));
            Assert.That(tensor.AsReadOnlyHostTensor<float>().Data.Length, Is.EqualTo(2 * 4 + 1 + 1));
        }
    }

    [Test]
    public void EveryElementTypeMapsAndAMismatchedTypeIsRefused()
    {
        (byte Code, byte Bits, TensorDataType Type)[] mappings =
        {
            (KDLFloat, 32, TensorDataType.Float32), (KDLFloat, 16, TensorDataType.Float16), (KDLBfloat, 16, TensorDataType.BFloat16),
            (KDLInt, 32, TensorDataType.Int32), (KDLInt, 64, TensorDataType.Int64),
        };
        using (Assert.EnterMultipleScope())
        {
            foreach ((byte code, byte bits, TensorDataType type) in mappings)
            {
                using var producer = new ProducerTensor(6, new long[] { 2, 3 }, null, code, bits);
                Assert.That(DLPack.FromDLTensor(producer.DlTensorAddress).DataType, Is.EqualTo(type), $"code {code}, {bits} bits");
            }
            using var halves = new ProducerTensor(6, new long[] { 2, 3 }, null, KDLFloat, 16);
            DLPackTensor half = DLPack.FromDLTensor(halves.DlTensorAddress);
            Assert.That(half.AsHostTensor<Half>().Shape, Is.EqualTo(new TensorShape(2, 3)));
            Assert.That(half.AsHostTensor<Float16>().Shape, Is.EqualTo(new TensorShape(2, 3)));
            Assert.That(() => half.AsHostTensor<float>(),
                Throws.InvalidOperationException.With.Message.Contains("holds Float16 elements, not Single"));
            Assert.That(() => half.AsHostTensor<byte>(), Throws.TypeOf<NotSupportedException>());
        }
    }

    [Test]
    public void RefusalsCarryTheNativeMessage()
    {
        using var producer = new ProducerTensor(6, new long[] { 2, 3 }, null);
        producer.DlTensor.Device.DeviceType = KDLROCM;
        var rocm = Assert.Throws<TokenKernelsException>(() => DLPack.FromDLTensor(producer.DlTensorAddress));
        producer.DlTensor.Device.DeviceType = KDLCPU;
        producer.DlTensor.Dtype = new TkDlpackDtype { Code = 1, Bits = 8, Lanes = 1 };
        var uint8 = Assert.Throws<TokenKernelsException>(() => DLPack.FromManagedTensor((IntPtr)producer.Managed));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(rocm!.Status, Is.EqualTo(TokenKernelsStatus.InvalidArgument));
            Assert.That(rocm.NativeMessage, Does.StartWith("dl_tensor.device.device_type: expected kDLCPU (1)"));
            Assert.That(rocm.NativeMessage, Does.EndWith("got 10 (kDLROCM)"));
            Assert.That(uint8!.NativeMessage, Does.StartWith("managed->dl_tensor.dtype: expected"));
            Assert.That(uint8.NativeMessage, Does.Contain("got code 1 (kDLUInt), 8 bits"));
            Assert.That(() => DLPack.FromDLTensor(IntPtr.Zero), Throws.ArgumentNullException);
            Assert.That(() => DLPack.FromManagedTensor(IntPtr.Zero), Throws.ArgumentNullException);
            Assert.That(() => DLPack.FromVersionedTensor(IntPtr.Zero, writable: false), Throws.ArgumentNullException);
        }
    }

    [Test]
    public void AReadOnlyVersionedTensorIsReadOnly()
    {
        using var producer = new ProducerTensor(6, new long[] { 2, 3 }, null);
        producer.Versioned->Flags = NativeMethods.TK_DLPACK_FLAG_READ_ONLY;
        var refused = Assert.Throws<TokenKernelsException>(() => DLPack.FromVersionedTensor((IntPtr)producer.Versioned, writable: true));
        DLPackTensor tensor = DLPack.FromVersionedTensor((IntPtr)producer.Versioned, writable: false);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(refused!.NativeMessage, Does.StartWith("managed->flags: expected a tensor without the read-only flag"));
            Assert.That(tensor.IsWritable, Is.False);
            Assert.That(() => tensor.AsHostTensor<float>(), Throws.InvalidOperationException.With.Message.Contains("read-only"));
            Assert.That(tensor.AsReadOnlyHostTensor<float>().Shape, Is.EqualTo(new TensorShape(2, 3)));
        }
        producer.Versioned->Version.Major = 2;
        var newer = Assert.Throws<TokenKernelsException>(() => DLPack.FromVersionedTensor((IntPtr)producer.Versioned, writable: false));
        Assert.That(newer!.NativeMessage, Is.EqualTo("managed->version: expected DLPack major version 1, got 2.0"));
    }

    [Test]
    public void CudaTensorsAreDeviceTensorsAndPinnedHostMemoryIsHostMemory()
    {
        // Descriptors only: no device is needed and nothing is dereferenced.
        using var producer = new ProducerTensor(6, new long[] { 2, 3 }, null, KDLBfloat, 16);
        producer.DlTensor.Device = new TkDlpackDevice { DeviceType = KDLCUDA, DeviceId = 1 };
        DLPackTensor cuda = DLPack.FromDLTensor(producer.DlTensorAddress);
        DeviceTensor device = cuda.AsDeviceTensor();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cuda.IsCuda, Is.True);
            Assert.That(cuda.DeviceOrdinal, Is.EqualTo(1));
            Assert.That(cuda.ToString(), Is.EqualTo("DLPackTensor BFloat16 [2, 3] on cuda:1"));
            Assert.That(device.Data, Is.EqualTo((IntPtr)producer.Data));
            Assert.That(device.DataType, Is.EqualTo(TensorDataType.BFloat16));
            Assert.That(device.DeviceOrdinal, Is.EqualTo(1));
            Assert.That(device.Strides, Is.EqualTo(new TensorStrides(3, 1)));
            Assert.That(() => cuda.AsReadOnlyHostTensor<BFloat16>(), Throws.InvalidOperationException.With.Message.Contains("CUDA device 1"));
        }
        producer.DlTensor.Device = new TkDlpackDevice { DeviceType = KDLCUDAHost, DeviceId = 0 };
        DLPackTensor pinned = DLPack.FromDLTensor(producer.DlTensorAddress);
        Assert.That(pinned.IsCuda, Is.False);
        Assert.That(() => pinned.AsDeviceTensor(), Throws.InvalidOperationException.With.Message.Contains("host memory"));
    }

    [Test]
    public void ALayoutTheViewsDoNotTakeIsRefusedByTheView()
    {
        // A transposed [3, 2] index tensor: the library takes it, a HostTensor (last stride 1) does not.
        using var producer = new ProducerTensor(6, new long[] { 3, 2 }, new long[] { 1, 3 }, KDLInt, 32);
        DLPackTensor tensor = DLPack.FromDLTensor(producer.DlTensorAddress);
        Assert.That(tensor.Strides, Is.EqualTo(new TensorStrides(1, 3)));
        Assert.That(() => tensor.AsReadOnlyHostTensor<int>(),
            Throws.InvalidOperationException.With.Message.Contains("must be contiguous"));
    }

    [Test]
    public void AnExportedHostTensorRoundTripsAndItsDeleterFreesOnlyTheStruct()
    {
        float[] memory = GC.AllocateArray<float>(40, pinned: true);
        var tensor = new HostTensor<float>(memory.AsSpan(4), new TensorShape(2, 3, 4), new TensorStrides(16, 4, 1));
        IntPtr exported = DLPack.ToManagedTensor(tensor);
        var managed = (TkDlpackManagedTensor*)exported;
        fixed (float* first = &memory[4])
        {
            using (Assert.EnterMultipleScope())
            {
                Assert.That(managed->DlTensor.Data == first);
                Assert.That(managed->DlTensor.ByteOffset, Is.Zero);
                Assert.That(managed->DlTensor.Device.DeviceType, Is.EqualTo(KDLCPU));
                Assert.That(managed->DlTensor.Dtype.Code, Is.EqualTo(KDLFloat));
                Assert.That(managed->DlTensor.Dtype.Bits, Is.EqualTo(32));
                Assert.That(managed->DlTensor.Dtype.Lanes, Is.EqualTo(1));
                Assert.That(new ReadOnlySpan<long>(managed->DlTensor.Shape, 3).ToArray(), Is.EqualTo(new long[] { 2, 3, 4 }));
                Assert.That(new ReadOnlySpan<long>(managed->DlTensor.Strides, 3).ToArray(), Is.EqualTo(new long[] { 16, 4, 1 }));
                Assert.That(managed->Deleter != null);
            }
        }

        DLPackTensor back = DLPack.FromManagedTensor(exported);
        back.AsHostTensor<float>().Data[1] = 42f;
        Assert.That(memory[5], Is.EqualTo(42f), "the round trip views the same memory");
        Assert.That(back.Strides, Is.EqualTo(tensor.Strides));
        DLPack.DeleteManagedTensor(exported);
        Assert.That(memory[5], Is.EqualTo(42f), "the deleter leaves the data alone");
    }

    [Test]
    public void AnOpRunsOnViewsTakenThroughDLPack()
    {
        // x [2, 4, 3] and indices [2, 2] from a producer, out exported by the library and viewed back.
        using var x = new ProducerTensor(24, new long[] { 2, 4, 3 }, null);
        var xValues = new Span<float>(x.Data, 24);
        for (int i = 0; i < xValues.Length; i++)
        {
            xValues[i] = i + 1;
        }
        using var indices = new ProducerTensor(4, new long[] { 2, 2 }, null, KDLInt, 64);
        new long[] { 3, 0, -1, 2 }.CopyTo(new Span<long>(indices.Data, 4));
        float[] outMemory = GC.AllocateArray<float>(12, pinned: true);
        IntPtr outExported = DLPack.ToVersionedTensor(new HostTensor<float>(outMemory, new TensorShape(2, 2, 3)));

        DLPackTensor outView = DLPack.FromVersionedTensor(outExported, writable: true);
        TokenPruning.Gather(DLPack.FromDLTensor(x.DlTensorAddress).AsReadOnlyHostTensor<float>(),
            DLPack.FromManagedTensor((IntPtr)indices.Managed).AsReadOnlyHostTensor<long>(), outView.AsHostTensor<float>());
        DLPack.DeleteVersionedTensor(outExported);

        Assert.That(outMemory, Is.EqualTo(new float[] { 10, 11, 12, 1, 2, 3, 0, 0, 0, 19, 20, 21 }));
    }

    [Test]
    public void ExportsCarryDeviceAndReadOnlyFlag()
    {
        var device = new DeviceTensor(new IntPtr(0x10000), TensorDataType.Int64, new TensorShape(5, 2), deviceOrdinal: 3);
        IntPtr versioned = DLPack.ToVersionedTensor(device, readOnly: true);
        var v = (TkDlpackManagedTensorVersioned*)versioned;
        int[] readOnlyData = { 1, 2, 3 };
        IntPtr readOnly = DLPack.ToVersionedTensor(new ReadOnlyHostTensor<int>(readOnlyData, new TensorShape(3)));
        IntPtr managed = DLPack.ToManagedTensor(device);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(v->Version.Major, Is.EqualTo(1u));
            Assert.That(v->Version.Minor, Is.EqualTo(0u));
            Assert.That(v->Flags, Is.EqualTo(NativeMethods.TK_DLPACK_FLAG_READ_ONLY));
            Assert.That(v->DlTensor.Device.DeviceType, Is.EqualTo(KDLCUDA));
            Assert.That(v->DlTensor.Device.DeviceId, Is.EqualTo(3));
            Assert.That(v->DlTensor.Dtype.Code, Is.EqualTo(KDLInt));
            Assert.That(v->DlTensor.Dtype.Bits, Is.EqualTo(64));
            Assert.That(((TkDlpackManagedTensorVersioned*)readOnly)->Flags, Is.EqualTo(NativeMethods.TK_DLPACK_FLAG_READ_ONLY));
            Assert.That(((TkDlpackManagedTensor*)managed)->DlTensor.Device.DeviceId, Is.EqualTo(3));
            DLPackTensor back = DLPack.FromManagedTensor(managed);
            Assert.That(back.AsDeviceTensor().Data, Is.EqualTo(new IntPtr(0x10000)));
            Assert.That(back.Shape, Is.EqualTo(new TensorShape(5, 2)));
        }
        DLPack.DeleteVersionedTensor(versioned);
        DLPack.DeleteVersionedTensor(readOnly);
        DLPack.DeleteManagedTensor(managed);

        var invalid = Assert.Throws<TokenKernelsException>(() => DLPack.ToManagedTensor(default(DeviceTensor)));
        Assert.That(invalid!.NativeMessage, Does.StartWith("tensor.rank: expected 1 to 8"));
    }

    private static int s_deleterCalls;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void CountingDeleter(TkDlpackManagedTensor* self) => s_deleterCalls++;

    [Test]
    public void DeletingAProducersTensorCallsItsDeleterOnceAndViewsNever()
    {
        using var producer = new ProducerTensor(6, new long[] { 2, 3 }, null);
        producer.Managed->Deleter = (void*)(delegate* unmanaged[Cdecl]<TkDlpackManagedTensor*, void>)&CountingDeleter;
        s_deleterCalls = 0;
        DLPack.FromManagedTensor((IntPtr)producer.Managed).AsHostTensor<float>();
        Assert.That(s_deleterCalls, Is.Zero, "taking a view called the deleter");
        DLPack.DeleteManagedTensor((IntPtr)producer.Managed);
        Assert.That(s_deleterCalls, Is.EqualTo(1));
        Assert.That(() => DLPack.DeleteManagedTensor(IntPtr.Zero), Throws.ArgumentNullException);
        Assert.That(() => DLPack.DeleteVersionedTensor(IntPtr.Zero), Throws.ArgumentNullException);
    }
}
