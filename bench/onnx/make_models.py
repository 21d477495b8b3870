#!/usr/bin/python3
"""Writes the ONNX models of the ONNX Runtime benchmarks (bench/managed/TokenKernels.Benchmarks,
OnnxRuntimeBenchmarks): for each case, three graphs over the same upstream node (x + bias, standing for
the layer that produced the tokens):

  <case>.upstream.onnx   the upstream node alone: its output is copied out and compressed by a direct call
  <case>.tokenkernels.onnx  the upstream node, then the ai.tokenkernels node of the method
  <case>.standard.onnx   the upstream node, then the method written with ONNX's standard operators (where it
                         can be: DivPrune's greedy selection is not, so that case has no such graph)

Cases (float32, LLaVA shapes):
  fastv      LLaVA-1.5 7B at layer 2: attention [1, 32, 651, 651], hidden states [1, 651, 4096], the 576 image
             tokens from position 35, R = 50%: 363 tokens out. Standard: Slice the last query row and the
             image keys, ReduceMean over heads, TopK, the kept positions put back in order (a second TopK),
             Concat with the text positions, Gather.
  avgpool    LLaVA-Video: 2x2 average pooling of SigLIP's 27x27 grid, 16 frames [1, 16, 27, 27, 1152]:
             [1, 16, 13, 13, 1152]. Standard: Transpose to NCHW, AveragePool, Transpose back.
  divprune   LLaVA-1.5 CLIP-L/336: [1, 576, 1024], DivPrune's 9.8%: 56 tokens.

Needs Debian's python3-onnx. Usage: make_models.py OUTPUT_DIRECTORY
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DOMAIN = "ai.tokenkernels"
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def const(name, values, dtype=np.int64):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(values, dtype=dtype), name))


def save(directory, name, nodes, inputs, outputs):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(
        graph,
        producer_name="tokenkernels-bench",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)],
    )
    model.ir_version = 8
    onnx.save(model, os.path.join(directory, name + ".onnx"))


def upstream(input_name, shape):
    """x + bias over the last dimension: the node every graph of a case starts with."""
    bias = numpy_helper.from_array(np.full(shape[-1], 0.25, dtype=np.float32), "bias")
    node = helper.make_node("Constant", [], ["bias"], value=bias)
    add = helper.make_node("Add", [input_name, "bias"], [input_name + "_up"])
    return [node, add], input_name + "_up"


def fastv(directory):
    heads, n, channels, start, image, keep = 32, 651, 4096, 35, 576, 288
    attention = helper.make_tensor_value_info("attention", FLOAT, [1, heads, n, n])
    hidden = helper.make_tensor_value_info("hidden_states", FLOAT, [1, n, channels])
    up, hidden_up = upstream("hidden_states", [1, n, channels])
    out_len = n - image + keep

    save(directory, "fastv.upstream", up, [attention, hidden],
         [helper.make_tensor_value_info(hidden_up, FLOAT, [1, n, channels])])

    node = helper.make_node("FastV", ["attention", hidden_up], ["tokens", "position_ids"], domain=DOMAIN,
                            image_token_start_index=start, image_token_length=image, fastv_r=0.5)
    save(directory, "fastv.tokenkernels", up + [node], [attention, hidden],
         [helper.make_tensor_value_info("tokens", FLOAT, [1, out_len, channels]),
          helper.make_tensor_value_info("position_ids", INT64, [1, out_len])])

    nodes = up + [
        const("row_starts", [n - 1, start]), const("row_ends", [n, start + image]), const("row_axes", [2, 3]),
        helper.make_node("Slice", ["attention", "row_starts", "row_ends", "row_axes"], ["last_row"]),
        helper.make_node("ReduceMean", ["last_row"], ["scores"], axes=[1, 2], keepdims=0),  # [1, 576]
        const("k", [keep]),
        helper.make_node("TopK", ["scores", "k"], ["top_scores", "top_image"], axis=1, largest=1, sorted=1),
        # FastV keeps the kept tokens in sequence order: sort the positions ascending.
        helper.make_node("Cast", ["top_image"], ["top_image_f"], to=FLOAT),
        helper.make_node("TopK", ["top_image_f", "k"], ["ordered_f", "ignored"], axis=1, largest=0, sorted=1),
        helper.make_node("Cast", ["ordered_f"], ["ordered"], to=INT64),
        const("start", [start]),
        helper.make_node("Add", ["ordered", "start"], ["image_positions"]),
        const("text_before", [list(range(start))]),
        const("text_after", [list(range(start + image, n))]),
        helper.make_node("Concat", ["text_before", "image_positions", "text_after"], ["position_ids"], axis=1),
        const("flat", [out_len]),
        helper.make_node("Reshape", ["position_ids", "flat"], ["flat_positions"]),
        helper.make_node("Gather", [hidden_up, "flat_positions"], ["tokens"], axis=1),
    ]
    save(directory, "fastv.standard", nodes, [attention, hidden],
         [helper.make_tensor_value_info("tokens", FLOAT, [1, out_len, channels]),
          helper.make_tensor_value_info("position_ids", INT64, [1, out_len])])


def avgpool(directory):
    frames, side, channels, pooled = 16, 27, 1152, 13
    x = helper.make_tensor_value_info("x", FLOAT, [1, frames, side, side, channels])
    up, x_up = upstream("x", [1, frames, side, side, channels])
    y_shape = [1, frames, pooled, pooled, channels]

    save(directory, "avgpool.upstream", up, [x], [helper.make_tensor_value_info(x_up, FLOAT, [1, frames, side, side, channels])])

    node = helper.make_node("Pool", [x_up], ["y"], domain=DOMAIN, mode="window_avg", kernel=[1, 2, 2], stride=[1, 2, 2])
    save(directory, "avgpool.tokenkernels", up + [node], [x], [helper.make_tensor_value_info("y", FLOAT, y_shape)])

    nodes = up + [
        const("frames_shape", [frames, side, side, channels]),
        helper.make_node("Reshape", [x_up, "frames_shape"], ["frames_nhwc"]),
        helper.make_node("Transpose", ["frames_nhwc"], ["frames_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["frames_nchw"], ["pooled_nchw"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["pooled_nchw"], ["pooled_nhwc"], perm=[0, 2, 3, 1]),
        const("y_shape", y_shape),
        helper.make_node("Reshape", ["pooled_nhwc", "y_shape"], ["y"]),
    ]
    save(directory, "avgpool.standard", nodes, [x], [helper.make_tensor_value_info("y", FLOAT, y_shape)])


def divprune(directory):
    n, channels, kept = 576, 1024, 56
    x = helper.make_tensor_value_info("x", FLOAT, [1, n, channels])
    up, x_up = upstream("x", [1, n, channels])
    save(directory, "divprune.upstream", up, [x], [helper.make_tensor_value_info(x_up, FLOAT, [1, n, channels])])
    node = helper.make_node("DivPrune", [x_up], ["tokens", "kept_positions"], domain=DOMAIN, threshold_ratio=0.098)
    save(directory, "divprune.tokenkernels", up + [node], [x],
         [helper.make_tensor_value_info("tokens", FLOAT, [1, kept, channels]),
          helper.make_tensor_value_info("kept_positions", INT64, [1, kept])])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    fastv(directory)
    avgpool(directory)
    divprune(directory)
    for name in sorted(os.listdir(directory)):
        onnx.checker.check_model(onnx.load(os.path.join(directory, name)))


if __name__ == "__main__":
    main()
