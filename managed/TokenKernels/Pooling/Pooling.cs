using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// Spatio-temporal pooling of video tokens <c>[B, T, H, W, C]</c> (channels last) to <c>[B, T', H', W', C]</c>, on
/// host memory or on a CUDA device (docs/SPEC.md, section 1). Feature types float32, float16 and bfloat16, accumulated in
/// float32; the output has the input's type.
/// </summary>
/// <remarks>
/// <para>The overloads that take an output tensor allocate nothing: the native descriptors are built on the stack
/// and host memory is pinned for the call only. The overloads without one return a new array and its shape.</para>
/// <para>Arguments that are cheap to check here (rank, element type, output shape, kernel sizes) throw
/// <see cref="ArgumentException"/> naming the parameter before any native call; whatever only the native library
/// can check (a kernel larger than the input, overlapping input and output, a foreign device pointer) throws
/// <see cref="TokenKernelsException"/> with its message. Device calls are enqueued on the stream and return
/// without waiting.</para>
/// </remarks>
public static unsafe class Pooling
{
    private const int TokenRank = 5;

    /// <summary>The output shape <c>[B, T', H', W', C]</c> that <paramref name="options"/> give for an input shape (<c>tk_pool_output_shape</c>).</summary>
    /// <param name="inputShape">The input shape <c>[B, T, H, W, C]</c>.</param>
    /// <param name="options">What the pooling computes.</param>
    /// <exception cref="ArgumentException">The input shape is not rank 5, or the options are incomplete.</exception>
    /// <exception cref="TokenKernelsException">The options do not fit the input (for example a kernel larger than it).</exception>
    public static TensorShape GetOutputShape(TensorShape inputShape, in PoolOptions options)
    {
        RequireTokenRank(inputShape, nameof(inputShape));
        options.Validate(nameof(options));
        NativeLibraryLoader.EnsureLoaded();
        return NativeOutputShape(inputShape, options);
    }

    // ---- Host tensors, caller-provided output ----

    /// <summary>Pools <paramref name="input"/> into <paramref name="output"/> as <paramref name="options"/> say.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>; the channel dimension contiguous, the others any positive stride.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c>; its shape must be <see cref="GetOutputShape"/> of the input's.</param>
    /// <param name="options">What the pooling computes.</param>
    /// <exception cref="ArgumentException">Wrong rank, a non-float element type, an output shape that does not match, or incomplete options.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments; nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Pool<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output, in PoolOptions options)
        where T : unmanaged
    {
        TkPoolParams native = Prepare(input.Shape, input.DataType, output.Shape, options);
        fixed (T* x = input.Data)
        fixed (T* y = output.Data)
        {
            TkTensor xTensor = TensorLayout.Descriptor(x, input.DataType, NativeMethods.TK_DEVICE_CPU, 0, input.Shape, input.Strides);
            TkTensor yTensor = TensorLayout.Descriptor(y, output.DataType, NativeMethods.TK_DEVICE_CPU, 0, output.Shape, output.Strides);
            // Pooling needs no workspace in any mode (tk_pool_workspace_size is 0), so none is passed.
            NativeStatus.Check(NativeMethods.tk_pool(&native, &xTensor, &yTensor, null, 0, IntPtr.Zero));
        }
    }

    /// <summary>Window average pooling into <paramref name="output"/>: kernel (1, 2, 2) turns 27x27 frames into 13x13.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c> with T' = (T - kt) / st + 1, likewise H' and W'.</param>
    /// <param name="kernel">Window size along (time, height, width), each at least 1.</param>
    /// <param name="stride">Step between windows, each at least 1; null means equal to <paramref name="kernel"/>.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, HostTensor{T}, in PoolOptions)" path="/exception"/>
    public static void WindowAvg<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        where T : unmanaged
        => Pool(input, output, PoolOptions.WindowAvg(kernel, stride));

    /// <summary>Window max pooling into <paramref name="output"/> (a window holding a NaN gives NaN).</summary>
    /// <inheritdoc cref="WindowAvg{T}(ReadOnlyHostTensor{T}, HostTensor{T}, ValueTuple{int, int, int}, ValueTuple{int, int, int}?)"/>
    public static void WindowMax<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        where T : unmanaged
        => Pool(input, output, PoolOptions.WindowMax(kernel, stride));

    /// <summary>Adaptive average pooling to the shape of <paramref name="output"/>, whose (T', H', W') is the output size.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c>; T', H', W' at least 1.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, HostTensor{T}, in PoolOptions)" path="/exception"/>
    public static void AdaptiveAvg<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output)
        where T : unmanaged
        => Pool(input, output, PoolOptions.AdaptiveAvg(OutputSizeOf(output.Shape, nameof(output))));

    /// <summary>Adaptive max pooling to the shape of <paramref name="output"/> (a bin holding a NaN gives NaN).</summary>
    /// <inheritdoc cref="AdaptiveAvg{T}(ReadOnlyHostTensor{T}, HostTensor{T})"/>
    public static void AdaptiveMax<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output)
        where T : unmanaged
        => Pool(input, output, PoolOptions.AdaptiveMax(OutputSizeOf(output.Shape, nameof(output))));

    /// <summary>Bilinear resize of every frame to the (H', W') of <paramref name="output"/> (align_corners = False).</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="output">Receives <c>[B, T, H', W', C]</c>.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, HostTensor{T}, in PoolOptions)" path="/exception"/>
    public static void Bilinear<T>(ReadOnlyHostTensor<T> input, HostTensor<T> output)
        where T : unmanaged
    {
        (_, int height, int width) = OutputSizeOf(output.Shape, nameof(output));
        Pool(input, output, PoolOptions.Bilinear(height, width));
    }

    // ---- Host tensors, new output array ----

    /// <summary>Pools <paramref name="input"/> into a new array.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="options">What the pooling computes.</param>
    /// <returns>The pooled tokens, contiguous, and their shape <c>[B, T', H', W', C]</c>.</returns>
    /// <exception cref="ArgumentException">Wrong rank, a non-float element type, incomplete options, or an output too large for an array.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static (T[] Data, TensorShape Shape) Pool<T>(ReadOnlyHostTensor<T> input, in PoolOptions options)
        where T : unmanaged
    {
        RequireTokenRank(input.Shape, nameof(input));
        TensorShape shape = GetOutputShape(input.Shape, options);
        if (shape.ElementCount > int.MaxValue)
        {
            throw new ArgumentException("The output " + shape + " has more elements than an array can hold; pool into a HostTensor over native memory instead.", nameof(input));
        }
        var data = new T[shape.ElementCount];
        Pool(input, new HostTensor<T>(data, shape), options);
        return (data, shape);
    }

    /// <summary>Window average pooling into a new array.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="kernel">Window size along (time, height, width), each at least 1.</param>
    /// <param name="stride">Step between windows, each at least 1; null means equal to <paramref name="kernel"/>.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, in PoolOptions)" path="/returns|/exception"/>
    public static (T[] Data, TensorShape Shape) WindowAvg<T>(ReadOnlyHostTensor<T> input, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        where T : unmanaged
        => Pool(input, PoolOptions.WindowAvg(kernel, stride));

    /// <summary>Window max pooling into a new array.</summary>
    /// <inheritdoc cref="WindowAvg{T}(ReadOnlyHostTensor{T}, ValueTuple{int, int, int}, ValueTuple{int, int, int}?)"/>
    public static (T[] Data, TensorShape Shape) WindowMax<T>(ReadOnlyHostTensor<T> input, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        where T : unmanaged
        => Pool(input, PoolOptions.WindowMax(kernel, stride));

    /// <summary>Adaptive average pooling to <paramref name="outputSize"/> into a new array.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="outputSize">(T', H', W'), each at least 1.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, in PoolOptions)" path="/returns|/exception"/>
    public static (T[] Data, TensorShape Shape) AdaptiveAvg<T>(ReadOnlyHostTensor<T> input, (int Time, int Height, int Width) outputSize)
        where T : unmanaged
        => Pool(input, PoolOptions.AdaptiveAvg(outputSize));

    /// <summary>Adaptive max pooling to <paramref name="outputSize"/> into a new array.</summary>
    /// <inheritdoc cref="AdaptiveAvg{T}(ReadOnlyHostTensor{T}, ValueTuple{int, int, int})"/>
    public static (T[] Data, TensorShape Shape) AdaptiveMax<T>(ReadOnlyHostTensor<T> input, (int Time, int Height, int Width) outputSize)
        where T : unmanaged
        => Pool(input, PoolOptions.AdaptiveMax(outputSize));

    /// <summary>Bilinear resize of every frame to <paramref name="height"/> x <paramref name="width"/> into a new array.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c>.</param>
    /// <param name="height">H', at least 1.</param>
    /// <param name="width">W', at least 1.</param>
    /// <inheritdoc cref="Pool{T}(ReadOnlyHostTensor{T}, in PoolOptions)" path="/returns|/exception"/>
    public static (T[] Data, TensorShape Shape) Bilinear<T>(ReadOnlyHostTensor<T> input, int height, int width)
        where T : unmanaged
        => Pool(input, PoolOptions.Bilinear(height, width));

    // ---- Device tensors ----

    /// <summary>
    /// Pools <paramref name="input"/> into <paramref name="output"/> on their CUDA device, enqueued on
    /// <paramref name="stream"/>; returns without waiting.
    /// </summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c> in device memory.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c>; same element type and device as <paramref name="input"/>.</param>
    /// <param name="options">What the pooling computes.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">Wrong rank, element types or devices that differ or are not float, an output shape that does not match, or incomplete options.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments (for example a pointer the device cannot address).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void Pool(DeviceTensor input, DeviceTensor output, in PoolOptions options, CudaStream? stream = null)
    {
        if (output.DataType != input.DataType)
        {
            throw new ArgumentException("The output is " + output.DataType + " but the input is " + input.DataType + ": both must have the same element type.", nameof(output));
        }
        if (output.DeviceOrdinal != input.DeviceOrdinal)
        {
            throw new ArgumentException("The output is on cuda:" + output.DeviceOrdinal + " but the input is on cuda:" + input.DeviceOrdinal + ".", nameof(output));
        }
        TkPoolParams native = Prepare(input.Shape, input.DataType, output.Shape, options);
        IntPtr streamHandle = stream?.Handle ?? IntPtr.Zero;
        TkTensor xTensor = TensorLayout.Descriptor((void*)input.Data, input.DataType, NativeMethods.TK_DEVICE_CUDA, input.DeviceOrdinal, input.Shape, input.Strides);
        TkTensor yTensor = TensorLayout.Descriptor((void*)output.Data, output.DataType, NativeMethods.TK_DEVICE_CUDA, output.DeviceOrdinal, output.Shape, output.Strides);
        NativeStatus.Check(NativeMethods.tk_pool(&native, &xTensor, &yTensor, null, 0, streamHandle));
    }

    /// <summary>Window average pooling on the device (enqueued on <paramref name="stream"/>).</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c> in device memory.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c>.</param>
    /// <param name="kernel">Window size along (time, height, width), each at least 1.</param>
    /// <param name="stride">Step between windows, each at least 1; null means equal to <paramref name="kernel"/>.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <inheritdoc cref="Pool(DeviceTensor, DeviceTensor, in PoolOptions, CudaStream?)" path="/exception"/>
    public static void WindowAvg(DeviceTensor input, DeviceTensor output, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null, CudaStream? stream = null)
        => Pool(input, output, PoolOptions.WindowAvg(kernel, stride), stream);

    /// <summary>Window max pooling on the device (enqueued on <paramref name="stream"/>).</summary>
    /// <inheritdoc cref="WindowAvg(DeviceTensor, DeviceTensor, ValueTuple{int, int, int}, ValueTuple{int, int, int}?, CudaStream?)"/>
    public static void WindowMax(DeviceTensor input, DeviceTensor output, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null, CudaStream? stream = null)
        => Pool(input, output, PoolOptions.WindowMax(kernel, stride), stream);

    /// <summary>Adaptive average pooling on the device to the (T', H', W') of <paramref name="output"/>.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c> in device memory.</param>
    /// <param name="output">Receives <c>[B, T', H', W', C]</c>.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <inheritdoc cref="Pool(DeviceTensor, DeviceTensor, in PoolOptions, CudaStream?)" path="/exception"/>
    public static void AdaptiveAvg(DeviceTensor input, DeviceTensor output, CudaStream? stream = null)
        => Pool(input, output, PoolOptions.AdaptiveAvg(OutputSizeOf(output.Shape, nameof(output))), stream);

    /// <summary>Adaptive max pooling on the device to the (T', H', W') of <paramref name="output"/>.</summary>
    /// <inheritdoc cref="AdaptiveAvg(DeviceTensor, DeviceTensor, CudaStream?)"/>
    public static void AdaptiveMax(DeviceTensor input, DeviceTensor output, CudaStream? stream = null)
        => Pool(input, output, PoolOptions.AdaptiveMax(OutputSizeOf(output.Shape, nameof(output))), stream);

    /// <summary>Bilinear resize on the device of every frame to the (H', W') of <paramref name="output"/>.</summary>
    /// <param name="input">Tokens <c>[B, T, H, W, C]</c> in device memory.</param>
    /// <param name="output">Receives <c>[B, T, H', W', C]</c>.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <inheritdoc cref="Pool(DeviceTensor, DeviceTensor, in PoolOptions, CudaStream?)" path="/exception"/>
    public static void Bilinear(DeviceTensor input, DeviceTensor output, CudaStream? stream = null)
    {
        (_, int height, int width) = OutputSizeOf(output.Shape, nameof(output));
        Pool(input, output, PoolOptions.Bilinear(height, width), stream);
    }

    // ---- Checks shared by host and device ----

    /// <summary>Every check that needs no native call, then the output shape against the native helper's.</summary>
    private static TkPoolParams Prepare(TensorShape inputShape, TensorDataType dataType, TensorShape outputShape, in PoolOptions options)
    {
        options.Validate(nameof(options));
        if (!dataType.IsFloatingPoint())
        {
            throw new ArgumentException("Pooling takes Float32, Float16 or BFloat16 tokens, got " + dataType + ".", "input");
        }
        RequireTokenRank(inputShape, "input");
        RequireTokenRank(outputShape, "output");
        NativeLibraryLoader.EnsureLoaded();
        TkPoolParams native = options.ToNative(inputShape[1]);
        NativeDims expected;
        NativeOutputShape(&native, inputShape, expected.Values);
        for (int d = 0; d < TokenRank; d++)
        {
            if (outputShape[d] != expected.Values[d])
            {
                throw new ArgumentException(
                    "The output shape " + outputShape + " does not match " + new TensorShape(new ReadOnlySpan<long>(expected.Values, TokenRank)) + ", what "
                    + options + " gives for an input of shape " + inputShape + ".",
                    "output");
            }
        }
        return native;
    }

    private static TensorShape NativeOutputShape(TensorShape inputShape, in PoolOptions options)
    {
        TkPoolParams native = options.ToNative(inputShape[1]);
        NativeDims output;
        NativeOutputShape(&native, inputShape, output.Values);
        return new TensorShape(new ReadOnlySpan<long>(output.Values, TokenRank));
    }

    private static void NativeOutputShape(TkPoolParams* native, TensorShape inputShape, long* output)
    {
        NativeDims input;
        inputShape.Sizes.CopyTo(input.Values);
        NativeStatus.Check(NativeMethods.tk_pool_output_shape(native, input.Values, output));
    }

    private static void RequireTokenRank(TensorShape shape, string parameter)
    {
        if (shape.Rank != TokenRank)
        {
            throw new ArgumentException("Pooling takes video tokens [B, T, H, W, C] (rank 5), got shape " + shape + " (rank " + shape.Rank + ").", parameter);
        }
    }

    /// <summary>(T', H', W') of an output shape, for the overloads that take the output size from the output tensor.</summary>
    private static (int Time, int Height, int Width) OutputSizeOf(TensorShape outputShape, string parameter)
    {
        RequireTokenRank(outputShape, parameter);
        for (int d = 1; d <= 3; d++)
        {
            if (outputShape[d] < 1 || outputShape[d] > int.MaxValue)
            {
                throw new ArgumentException("The output shape " + outputShape + " needs T', H' and W' between 1 and " + int.MaxValue + ".", parameter);
            }
        }
        return ((int)outputShape[1], (int)outputShape[2], (int)outputShape[3]);
    }
}
