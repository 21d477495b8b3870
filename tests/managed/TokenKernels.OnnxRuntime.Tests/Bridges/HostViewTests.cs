using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NUnit.Framework;
using OrtBFloat16 = Microsoft.ML.OnnxRuntime.BFloat16;
using OrtFloat16 = Microsoft.ML.OnnxRuntime.Float16;
using TkBFloat16 = TokenKernels.BFloat16;
using TkFloat16 = TokenKernels.Float16;

namespace TokenKernels.OnnxRuntime.Tests.Bridges;

/// <summary>
/// Host views of OrtValues and OrtValues over TokenKernels memory: one memory seen two ways, in every element type,
/// and the refusals of what a view cannot be.
/// </summary>
public class HostViewTests
{
    private static readonly long[] Sizes = { 2, 3, 4 };

    [Test]
    public void FloatViewsAliasTheOrtValue() => CheckAliasing<float, float>(TensorElementType.Float, i => i * 0.5f - 3);

    [Test]
    public void Float16ViewsAliasTheOrtValue() => CheckAliasing<TkFloat16, OrtFloat16>(TensorElementType.Float16, i => (TkFloat16)(i * 0.25f - 2));

    [Test]
    public void HalfViewsAliasTheOrtValue() => CheckAliasing<Half, OrtFloat16>(TensorElementType.Float16, i => (Half)(i * 0.125f + 1));

    [Test]
    public void BFloat16ViewsAliasTheOrtValue() => CheckAliasing<TkBFloat16, OrtBFloat16>(TensorElementType.BFloat16, i => (TkBFloat16)(i * 2.0f - 9));

    [Test]
    public void Int32ViewsAliasTheOrtValue() => CheckAliasing<int, int>(TensorElementType.Int32, i => i * 7 - 40);

    [Test]
    public void Int64ViewsAliasTheOrtValue() => CheckAliasing<long, long>(TensorElementType.Int64, i => (i - 5) * 10_000_000_000L);

    [Test]
    public void FloatOrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<float, float>(i => i * 1.5f);

    [Test]
    public void Float16OrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<TkFloat16, OrtFloat16>(i => (TkFloat16)(i - 6.5f));

    [Test]
    public void HalfOrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<Half, OrtFloat16>(i => (Half)(i * 0.5f));

    [Test]
    public void BFloat16OrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<TkBFloat16, OrtBFloat16>(i => (TkBFloat16)(i * 4.0f));

    [Test]
    public void Int32OrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<int, int>(i => -i);

    [Test]
    public void Int64OrtValuesOverArraysAliasTheArray() => CheckArrayAliasing<long, long>(i => i * (1L << 40));

    [Test]
    public void AReadOnlyViewSeesTheOrtValuesElementsAndShape()
    {
        var data = new float[] { 1, 2, 3, 4, 5, 6 };
        using OrtValue value = OrtValue.CreateTensorValueFromMemory(data, new long[] { 3, 2 });

        ReadOnlyHostTensor<float> view = value.AsReadOnlyHostTensor<float>();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(view.Shape, Is.EqualTo(new TensorShape(3, 2)));
            Assert.That(view.Strides, Is.EqualTo(new TensorStrides(2, 1)));
            Assert.That(view.DataType, Is.EqualTo(TensorDataType.Float32));
            Assert.That(view.Data.ToArray(), Is.EqualTo(data));
        }
        data[4] = 50;
        Assert.That(view.Data[4], Is.EqualTo(50f), "the view reads the array ONNX Runtime wraps, not a copy");
    }

    [Test]
    public void AnOrtValueOverMemoryCoversTheShapeOnly()
    {
        var data = new int[10];
        using OrtValue value = OrtValueBridge.CreateTensorValue(new Memory<int>(data, 2, 8), new TensorShape(2, 3));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(value.GetTensorTypeAndShape().Shape, Is.EqualTo(new long[] { 2, 3 }));
            Assert.That(value.GetTensorSizeInBytes(), Is.EqualTo(6 * sizeof(int)));
        }
        value.GetTensorMutableDataAsSpan<int>()[0] = 99;
        Assert.That(data[2], Is.EqualTo(99), "element 0 of the OrtValue is element 0 of the memory slice");
    }

    [Test]
    public void AnEmptyTensorGivesAnEmptyView()
    {
        using OrtValue value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, new long[] { 2, 0, 3 });

        HostTensor<float> view = value.AsHostTensor<float>();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(view.Shape, Is.EqualTo(new TensorShape(2, 0, 3)));
            Assert.That(view.Data.Length, Is.Zero);
        }
    }

    [Test]
    public void AViewOfAnotherElementTypeIsRefusedNamingBoth()
    {
        using OrtValue value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float16, Sizes);

        var e = Assert.Throws<ArgumentException>(() => value.AsHostTensor<float>());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(e!.ParamName, Is.EqualTo("value"));
            Assert.That(e.Message, Does.StartWith(
                "AsHostTensor<Single> needs a tensor of element type Float, but the OrtValue holds a Float16 tensor of shape [2, 3, 4] in Cpu memory (CPU, device 0)."));
        }
        var readOnly = Assert.Throws<ArgumentException>(() => value.AsReadOnlyHostTensor<TkBFloat16>());
        Assert.That(readOnly!.Message, Does.StartWith("AsReadOnlyHostTensor<BFloat16> needs a tensor of element type BFloat16, but the OrtValue holds a Float16 tensor"));
    }

    [Test]
    public void ElementTypesTokenKernelsDoesNotTakeAreRefused()
    {
        using OrtValue doubles = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Double, Sizes);
        using OrtValue strings = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, new long[] { 2 });

        var fromDoubles = Assert.Throws<ArgumentException>(() => doubles.AsHostTensor<float>());
        var fromStrings = Assert.Throws<ArgumentException>(() => strings.AsReadOnlyHostTensor<int>());
        var asDouble = Assert.Throws<NotSupportedException>(() => doubles.AsHostTensor<double>());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(fromDoubles!.Message, Does.StartWith(
                "AsHostTensor<Single> takes tensors of element type Float, Float16, BFloat16, Int32 or Int64, but the OrtValue holds a Double tensor of shape [2, 3, 4]"));
            Assert.That(fromStrings!.Message, Does.Contain("holds a String tensor of shape [2]"));
            Assert.That(asDouble!.Message, Does.StartWith("Double is not a TokenKernels element type"));
        }
    }

    [Test]
    public void ScalarsAndValuesOtherThanTensorsAreRefused()
    {
        using OrtValue scalar = OrtValue.CreateTensorValueFromMemory(new float[] { 1 }, Array.Empty<long>());
        using OrtValue sequence = OrtValue.CreateSequence(new List<OrtValue> { OrtValue.CreateTensorValueFromMemory(new float[] { 1 }, new long[] { 1 }) });

        var fromScalar = Assert.Throws<ArgumentException>(() => scalar.AsHostTensor<float>());
        var fromSequence = Assert.Throws<ArgumentException>(() => sequence.AsHostTensor<float>());
        var fromNull = Assert.Throws<ArgumentNullException>(() => OrtValueBridge.AsHostTensor<float>(null!));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(fromScalar!.Message, Does.StartWith("AsHostTensor<Single> takes tensors of rank 1 to 8, but the OrtValue holds a Float tensor of shape [] in Cpu memory (CPU, device 0) (a scalar)."));
            Assert.That(fromSequence!.Message, Does.StartWith("The OrtValue holds ONNX_TYPE_SEQUENCE, not a dense tensor"));
            Assert.That(fromNull!.ParamName, Is.EqualTo("value"));
        }
    }

    [Test]
    public void ATensorInCudaMemoryIsRefusedByTheHostViews()
    {
        using var cuda = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 1, OrtMemType.Default);
        using OrtValue value = OrtValue.CreateTensorValueWithData(cuda, TensorElementType.Float, Sizes, new IntPtr(0x10000), 24 * sizeof(float));

        var e = Assert.Throws<ArgumentException>(() => value.AsHostTensor<float>());

        Assert.That(e!.Message, Does.StartWith(
            "AsHostTensor<Single> views host memory, but the OrtValue holds a Float tensor of shape [2, 3, 4] in Cuda memory (GPU, device 1): use AsDeviceTensor for CUDA device memory."));
    }

    [Test]
    public unsafe void CudaPinnedHostMemoryIsViewedAsHostMemory()
    {
        var data = new float[] { 1, 2, 3 };
        fixed (float* pointer = data)
        {
            using var pinned = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA_PINNED, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.CpuOutput);
            using OrtValue value = OrtValue.CreateTensorValueWithData(pinned, TensorElementType.Float, new long[] { 3 }, (IntPtr)pointer, sizeof(float) * 3);

            HostTensor<float> view = value.AsHostTensor<float>();
            view.Data[1] = 20;

            Assert.That(data[1], Is.EqualTo(20f));
            var e = Assert.Throws<ArgumentException>(() => value.AsDeviceTensor());
            Assert.That(e!.Message, Does.StartWith(
                "AsDeviceTensor views CUDA device memory, but the OrtValue holds a Float tensor of shape [3] in CudaPinned memory (GPU host-accessible, device 0): use AsHostTensor<T> for host memory."));
        }
    }

    [Test]
    public void TensorsOfMoreThanTwoGibibytesAreRefusedBeforeTheirDataIsTouched()
    {
        // ONNX Runtime's C# accessor would wrap the length to an int; the memory is never read, so no allocation is needed.
        const long elements = 3L << 28;
        using OrtValue value = OrtValue.CreateTensorValueWithData(
            OrtMemoryInfo.DefaultInstance, TensorElementType.Float, new[] { elements }, new IntPtr(0x10000), elements * sizeof(float));

        var e = Assert.Throws<NotSupportedException>(() => value.AsHostTensor<float>());

        Assert.That(e!.Message, Does.StartWith(
            "The OrtValue holds a Float tensor of shape [805306368] in Cpu memory (CPU, device 0), 3221225472 bytes; ONNX Runtime's C# API gives access to the data of tensors of at most 2147483647 bytes"));
    }

    [Test]
    public void CreatingAnOrtValueChecksTheShapeAgainstTheMemory()
    {
        var shortData = Assert.Throws<ArgumentException>(() => OrtValueBridge.CreateTensorValue(new float[5], new TensorShape(2, 3)));
        var noShape = Assert.Throws<ArgumentException>(() => OrtValueBridge.CreateTensorValue(new float[5], default));
        var nullArray = Assert.Throws<ArgumentNullException>(() => OrtValueBridge.CreateTensorValue((float[])null!, new TensorShape(1)));
        var notAnElementType = Assert.Throws<NotSupportedException>(() => OrtValueBridge.CreateTensorValue(new double[6], new TensorShape(2, 3)));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(shortData!.ParamName, Is.EqualTo("data"));
            Assert.That(shortData.Message, Does.StartWith("The shape [2, 3] has 6 elements but data holds 5."));
            Assert.That(noShape!.ParamName, Is.EqualTo("shape"));
            Assert.That(nullArray!.ParamName, Is.EqualTo("data"));
            Assert.That(notAnElementType!.Message, Does.StartWith("Double is not a TokenKernels element type"));
        }
    }

    /// <summary>
    /// An OrtValue ONNX Runtime allocated (native memory) and its view: writes through the view are read through
    /// ONNX Runtime's own span of its element type, and the other way round.
    /// </summary>
    private static void CheckAliasing<T, TOrt>(TensorElementType elementType, Func<int, T> valueAt)
        where T : unmanaged
        where TOrt : unmanaged
    {
        using OrtValue value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, elementType, Sizes);
        int count = 24;

        HostTensor<T> view = value.AsHostTensor<T>();
        for (int i = 0; i < count; i++)
        {
            view.Data[i] = valueAt(i);
        }
        Span<TOrt> ortElements = value.GetTensorMutableDataAsSpan<TOrt>();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(view.Shape, Is.EqualTo(new TensorShape(2, 3, 4)));
            Assert.That(view.DataType, Is.EqualTo(TensorDataTypeExtensions.Of<T>()));
            Assert.That(view.Data.Length, Is.EqualTo(count));
            Assert.That(Bytes(ortElements), Is.EqualTo(Bytes<T>(view.Data)), "ONNX Runtime reads what was written through the view");
        }

        // ONNX Runtime writes element i's bits to position count - 1 - i; the views see it.
        TOrt[] reversed = ortElements.ToArray();
        Array.Reverse(reversed);
        reversed.CopyTo(ortElements);
        ReadOnlyHostTensor<T> readOnly = value.AsReadOnlyHostTensor<T>();
        for (int i = 0; i < count; i++)
        {
            Assert.That(Bits(readOnly.Data[i]), Is.EqualTo(Bits(valueAt(count - 1 - i))), "element " + i);
        }
    }

    /// <summary>An OrtValue over an array: ONNX Runtime reads the array's elements, and its writes land in the array.</summary>
    private static void CheckArrayAliasing<T, TOrt>(Func<int, T> valueAt)
        where T : unmanaged
        where TOrt : unmanaged
    {
        var data = new T[24];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = valueAt(i);
        }
        using OrtValue value = OrtValueBridge.CreateTensorValue(data, new TensorShape(2, 3, 4));
        OrtTensorTypeAndShapeInfo typeAndShape = value.GetTensorTypeAndShape();
        Span<TOrt> ortElements = value.GetTensorMutableDataAsSpan<TOrt>();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(typeAndShape.ElementDataType, Is.EqualTo(OrtValueBridge.ToOrtElementType(TensorDataTypeExtensions.Of<T>())));
            Assert.That(typeAndShape.Shape, Is.EqualTo(Sizes));
            Assert.That(value.GetTensorMemoryInfo().GetDeviceType(), Is.EqualTo(OrtMemoryInfoDeviceType.CPU));
            Assert.That(Bytes(ortElements), Is.EqualTo(Bytes<T>(data)));
        }

        ortElements[5] = ortElements[17];
        Assert.That(Bits(data[5]), Is.EqualTo(Bits(valueAt(17))), "ONNX Runtime's write landed in the array");
        Assert.That(Bits(value.AsReadOnlyHostTensor<T>().Data[5]), Is.EqualTo(Bits(valueAt(17))));
    }

    private static byte[] Bytes<T>(ReadOnlySpan<T> values)
        where T : unmanaged
        => MemoryMarshal.AsBytes(values).ToArray();

    private static byte[] Bytes<T>(Span<T> values)
        where T : unmanaged
        => MemoryMarshal.AsBytes(values).ToArray();

    private static ulong Bits<T>(T value)
        where T : unmanaged
    {
        ulong bits = 0;
        MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).CopyTo(MemoryMarshal.AsBytes(new Span<ulong>(ref bits)));
        return bits;
    }
}
