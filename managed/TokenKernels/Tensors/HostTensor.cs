using System;

namespace TokenKernels;

/// <summary>
/// A writable view of host memory as a tensor: a span, a shape and strides in elements. It never owns or copies
/// the memory; native calls pin it for their duration only.
/// </summary>
/// <typeparam name="T"><see cref="float"/>, <see cref="Float16"/>, <see cref="BFloat16"/> (or <c>System.Half</c> on .NET 8+)
/// for features; <see cref="int"/> or <see cref="long"/> for indices.</typeparam>
/// <remarks>Use <see cref="ReadOnlyHostTensor{T}"/> for inputs; a <see cref="HostTensor{T}"/> converts to it implicitly.</remarks>
public readonly ref struct HostTensor<T>
    where T : unmanaged
{
    /// <summary>A contiguous (row-major) view of <paramref name="data"/>.</summary>
    /// <param name="data">The elements; at least as many as the view spans.</param>
    /// <param name="shape">The sizes, outermost first.</param>
    /// <param name="strides">Strides in elements, or default for contiguous.</param>
    /// <exception cref="ArgumentException">The shape or strides are invalid, or <paramref name="data"/> is too short for them.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public HostTensor(Span<T> data, TensorShape shape, TensorStrides strides = default)
    {
        DataType = TensorDataTypeExtensions.Of<T>();
        Strides = TensorLayout.Validate(shape, strides, nameof(shape), nameof(strides), out long extent);
        TensorLayout.RequireLength(data.Length, extent, shape, Strides, nameof(data));
        Data = data;
        Shape = shape;
    }

    /// <summary>A view of an array.</summary>
    /// <inheritdoc cref="HostTensor{T}(Span{T}, TensorShape, TensorStrides)"/>
    public HostTensor(T[] data, TensorShape shape, TensorStrides strides = default)
        : this(new Span<T>(data ?? throw new ArgumentNullException(nameof(data))), shape, strides)
    {
    }

    /// <summary>A view of the memory of <paramref name="data"/>.</summary>
    /// <inheritdoc cref="HostTensor{T}(Span{T}, TensorShape, TensorStrides)"/>
    public HostTensor(Memory<T> data, TensorShape shape, TensorStrides strides = default)
        : this(data.Span, shape, strides)
    {
    }

    /// <summary>The elements the view spans (possibly more: strided views skip some).</summary>
    public Span<T> Data { get; }

    /// <summary>The sizes, outermost first.</summary>
    public TensorShape Shape { get; }

    /// <summary>The strides in elements (contiguous ones when none were given).</summary>
    public TensorStrides Strides { get; }

    /// <summary>The element type.</summary>
    public TensorDataType DataType { get; }

    /// <summary>The same view, read-only.</summary>
    public ReadOnlyHostTensor<T> AsReadOnly() => new ReadOnlyHostTensor<T>(Data, Shape, Strides, DataType);

    /// <summary>The same view, read-only.</summary>
    public static implicit operator ReadOnlyHostTensor<T>(HostTensor<T> tensor) => tensor.AsReadOnly();

    /// <summary>"HostTensor&lt;Single&gt; [1, 64, 27, 27, 1152]".</summary>
    public override string ToString() => "HostTensor<" + typeof(T).Name + "> " + Shape;
}

/// <summary>
/// A read-only view of host memory as a tensor: a span, a shape and strides in elements. It never owns or copies
/// the memory; native calls pin it for their duration only.
/// </summary>
/// <typeparam name="T"><see cref="float"/>, <see cref="Float16"/>, <see cref="BFloat16"/> (or <c>System.Half</c> on .NET 8+)
/// for features; <see cref="int"/> or <see cref="long"/> for indices.</typeparam>
public readonly ref struct ReadOnlyHostTensor<T>
    where T : unmanaged
{
    /// <summary>A view of <paramref name="data"/>.</summary>
    /// <param name="data">The elements; at least as many as the view spans.</param>
    /// <param name="shape">The sizes, outermost first.</param>
    /// <param name="strides">Strides in elements, or default for contiguous.</param>
    /// <exception cref="ArgumentException">The shape or strides are invalid, or <paramref name="data"/> is too short for them.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not a TokenKernels element type.</exception>
    public ReadOnlyHostTensor(ReadOnlySpan<T> data, TensorShape shape, TensorStrides strides = default)
    {
        DataType = TensorDataTypeExtensions.Of<T>();
        Strides = TensorLayout.Validate(shape, strides, nameof(shape), nameof(strides), out long extent);
        TensorLayout.RequireLength(data.Length, extent, shape, Strides, nameof(data));
        Data = data;
        Shape = shape;
    }

    /// <summary>A view of an array.</summary>
    /// <inheritdoc cref="ReadOnlyHostTensor{T}(ReadOnlySpan{T}, TensorShape, TensorStrides)"/>
    public ReadOnlyHostTensor(T[] data, TensorShape shape, TensorStrides strides = default)
        : this(new ReadOnlySpan<T>(data ?? throw new ArgumentNullException(nameof(data))), shape, strides)
    {
    }

    /// <summary>A view of the memory of <paramref name="data"/>.</summary>
    /// <inheritdoc cref="ReadOnlyHostTensor{T}(ReadOnlySpan{T}, TensorShape, TensorStrides)"/>
    public ReadOnlyHostTensor(ReadOnlyMemory<T> data, TensorShape shape, TensorStrides strides = default)
        : this(data.Span, shape, strides)
    {
    }

    // For a view already validated as a HostTensor<T>.
    internal ReadOnlyHostTensor(ReadOnlySpan<T> data, TensorShape shape, TensorStrides strides, TensorDataType dataType)
    {
        Data = data;
        Shape = shape;
        Strides = strides;
        DataType = dataType;
    }

    /// <summary>The elements the view spans (possibly more: strided views skip some).</summary>
    public ReadOnlySpan<T> Data { get; }

    /// <summary>The sizes, outermost first.</summary>
    public TensorShape Shape { get; }

    /// <summary>The strides in elements (contiguous ones when none were given).</summary>
    public TensorStrides Strides { get; }

    /// <summary>The element type.</summary>
    public TensorDataType DataType { get; }

    /// <summary>"ReadOnlyHostTensor&lt;Single&gt; [1, 64, 27, 27, 1152]".</summary>
    public override string ToString() => "ReadOnlyHostTensor<" + typeof(T).Name + "> " + Shape;
}
