#!/usr/bin/python3
"""Writes the ONNX models of the ONNX Runtime tests (tests/managed/TokenKernels.OnnxRuntime.Tests): one
graph of a single ai.tokenkernels node per op family and method recipe, in float32, float16 and
bfloat16, with odd shapes (B = 2, token counts that divide by nothing in particular, C = 48 or 40),
and the models whose attributes or shapes TokenKernels refuses.

Each model's node, element types and shapes are here alone: manifest.json lists every model with its
op, attributes, inputs (name, element type, shape) and outputs, and the C# tests read it to build the
same call through the TokenKernels API.

Needs Debian's python3-onnx (1.12: opset 17, IR version 8). Usage: make_models.py OUTPUT_DIRECTORY
"""

import json
import os
import sys

import onnx
from onnx import TensorProto, helper

DOMAIN = "ai.tokenkernels"
OPSET = 17

ELEMENT_TYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
}
FEATURE_TYPES = ["float32", "float16", "bfloat16"]


def write_model(directory, manifest, name, op, inputs, outputs, attributes=None, expect=None):
    """One graph holding one node of `op`.

    inputs: [(name, element type, shape)], "" as a name leaves an optional input out;
    outputs: [(name, element type, rank)]; the output dimensions are left to the op (named, not sized).
    expect: None (the op runs) or "load" / "run": where TokenKernels refuses the model.
    """
    attributes = attributes or {}
    node = helper.make_node(
        op,
        [i[0] for i in inputs],
        [o[0] for o in outputs],
        name=name,
        domain=DOMAIN,
        **attributes,
    )
    graph = helper.make_graph(
        [node],
        name,
        [helper.make_tensor_value_info(n, ELEMENT_TYPES[t], s) for n, t, s in inputs if n],
        [helper.make_tensor_value_info(n, ELEMENT_TYPES[t], [f"{n}_{d}" for d in range(r)]) for n, t, r in outputs if n],
    )
    model = helper.make_model(
        graph,
        producer_name="tokenkernels-tests",
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
    )
    model.ir_version = 8  # what ONNX 1.12 writes for opset 17
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(directory, name + ".onnx"))
    manifest[name] = {
        "op": op,
        "attributes": attributes,
        "inputs": [{"name": n, "type": t, "shape": s} for n, t, s in inputs if n],
        "outputs": [{"name": n, "type": t, "rank": r} for n, t, r in outputs if n],
        "expect": expect or "ok",
    }


def family_models(directory, manifest):
    for t in FEATURE_TYPES:
        video = [("x", t, [2, 3, 7, 5, 40])]
        write_model(directory, manifest, f"pool_window_avg_{t}", "Pool", video, [("y", t, 5)],
                    {"mode": "window_avg", "kernel": [1, 2, 2]})
        write_model(directory, manifest, f"pool_window_max_{t}", "Pool", video, [("y", t, 5)],
                    {"mode": "window_max", "kernel": [2, 3, 2], "stride": [1, 2, 3]})
        write_model(directory, manifest, f"pool_adaptive_avg_{t}", "Pool", video, [("y", t, 5)],
                    {"mode": "adaptive_avg", "output_size": [2, 3, 2]})
        write_model(directory, manifest, f"pool_adaptive_max_{t}", "Pool", video, [("y", t, 5)],
                    {"mode": "adaptive_max", "output_size": [3, 4, 3]})
        write_model(directory, manifest, f"pool_bilinear_{t}", "Pool", video, [("y", t, 5)],
                    {"mode": "bilinear", "output_size": [4, 3]})

        merge_outputs = [("out", t, 3), ("out_size", "float32", 2), ("source_map", "int64", 2), ("merge_count", "int32", 1)]
        write_model(directory, manifest, f"tome_merge_{t}", "ToMeMerge",
                    [("metric", "float32", [2, 37, 24]), ("x", t, [2, 37, 48])], merge_outputs,
                    {"r": 7, "protect_first": 1})
        write_model(directory, manifest, f"tome_merge_threshold_{t}", "ToMeMerge",
                    [("metric", t, [2, 37, 24]), ("x", t, [2, 37, 48]), ("size", "float32", [2, 37])], merge_outputs,
                    {"r": 12, "threshold": 0.25, "mode": "mean", "order": "tome"})
        write_model(directory, manifest, f"tome_unmerge_{t}", "ToMeUnmerge",
                    [("y", t, [2, 30, 48]), ("source_map", "int64", [2, 37])], [("out", t, 3)])

        write_model(directory, manifest, f"attention_importance_{t}", "AttentionImportance",
                    [("attention", t, [2, 3, 5, 37])], [("importance", "float32", 2)],
                    {"query_begin": -2, "key_begin": 1, "key_end": -4, "head_reduce": "sum"})
        write_model(directory, manifest, f"qk_importance_{t}", "QkImportance",
                    [("q", t, [2, 4, 5, 64]), ("k", t, [2, 2, 37, 64])], [("importance", "float32", 2)],
                    {"query_begin": 1, "key_begin": 3, "causal": 1, "query_reduce": "sum"})

        write_model(directory, manifest, f"topk_{t}", "TopK", [("scores", t, [2, 37])],
                    [("indices", "int64", 2), ("ranked", "int64", 2)], {"k": 11})
        write_model(directory, manifest, f"gather_{t}", "Gather",
                    [("x", t, [2, 37, 48]), ("indices", "int64", [2, 9])], [("out", t, 3)])

        write_model(directory, manifest, f"diversity_{t}", "DiversitySelect", [("x", t, [2, 37, 40])],
                    [("order", "int64", 2), ("sorted", "int64", 2)], {"k": 9})
        write_model(directory, manifest, f"diversity_score_{t}", "DiversitySelect",
                    [("x", t, [2, 37, 40]), ("first_score", "float32", [2, 37])], [("order", "int64", 2), ("sorted", "int64", 2)],
                    {"k": 9, "distance": "l2", "first": "score", "objective": "max_sum"})


def recipe_models(directory, manifest):
    for t in FEATURE_TYPES:
        write_model(directory, manifest, f"visionzip_{t}", "VisionZip",
                    [("attention", "float32", [2, 3, 37, 37]), ("metric", t, [2, 37, 24]), ("hidden_states", t, [2, 37, 48])],
                    [("tokens", t, 3), ("kept_positions", "int64", 2)], {"dominant": 9, "contextual": 4})
        write_model(directory, manifest, f"fastv_{t}", "FastV",
                    [("attention", t, [2, 3, 6, 41]), ("hidden_states", t, [2, 41, 40])],
                    [("tokens", t, 3), ("position_ids", "int64", 2)],
                    # 29 image tokens at R = 0.5 keep round(14.5) = 14: Python's half to even.
                    {"image_token_start_index": 5, "image_token_length": 29, "fastv_r": 0.5})
        write_model(directory, manifest, f"divprune_{t}", "DivPrune", [("x", t, [2, 53, 40])],
                    [("tokens", t, 3), ("kept_positions", "int64", 2), ("order", "int64", 2)], {"threshold_ratio": 0.3})
        cdpruner_inputs = [("features", t, [2, 37, 48]), ("visual_embeds", "float32", [2, 37, 24]),
                           ("text_embeds", "float32", [2, 5, 24])]
        cdpruner_outputs = [("tokens", t, 3), ("kept_positions", "int64", 2), ("order", "int64", 2)]
        write_model(directory, manifest, f"cdpruner_{t}", "CDPruner", cdpruner_inputs, cdpruner_outputs, {"visual_token_num": 10})
        write_model(directory, manifest, f"cdpruner_theta_{t}", "CDPruner", cdpruner_inputs, cdpruner_outputs,
                    {"visual_token_num": 10, "theta": 0.5, "negate": 0})
        cluster_outputs = [("tokens", t, 3), ("sizes", "float32", 2), ("centres", "int64", 2), ("assignment", "int64", 2)]
        write_model(directory, manifest, f"dpcknn_{t}", "DpcKnnAggregate", [("x", t, [2, 37, 40])], cluster_outputs,
                    {"clusters": 7})
        write_model(directory, manifest, f"dpcknn_blend_{t}", "DpcKnnAggregate", [("x", t, [2, 37, 40])], cluster_outputs,
                    {"clusters": 6, "neighbours": 4, "mode": "centre_count_blend", "beta": 0.6})
        # HoliTom's centre blend: neighbours above clusters, so its k = min(neighbours, clusters) matters.
        write_model(directory, manifest, f"dpcknn_holitom_{t}", "DpcKnnAggregate", [("x", t, [2, 37, 40])], cluster_outputs,
                    {"clusters": 5, "neighbours": 7, "mode": "centre_blend", "beta": 0.6})
        write_model(directory, manifest, f"kmeans_{t}", "KMeans", [("x", t, [2, 37, 24])],
                    [("centres", "float32", 3), ("assignment", "int64", 2), ("sizes", "float32", 2), ("iterations", "int32", 1)],
                    {"n_clusters": 5, "random_state": 7})

        selection_outputs = [("tokens", t, 3), ("kept_positions", "int64", 2), ("grid_positions", "int64", 3), ("mask", "int32", 2)]
        write_model(directory, manifest, f"evs_{t}", "EVS", [("x", t, [2, 5, 3, 4, 40])], selection_outputs,
                    {"video_pruning_rate": 0.6})
        write_model(directory, manifest, f"dycoke_{t}", "DyCoke", [("x", t, [2, 7, 3, 4, 40])], selection_outputs)
        write_model(directory, manifest, f"vidcom2_{t}", "VidCom2", [("x", t, [2, 5, 3, 4, 48])], selection_outputs,
                    {"retention_ratio": 0.3})
        write_model(directory, manifest, f"framefusion_{t}", "FrameFusion", [("x", t, [2, 5, 3, 4, 40])],
                    [("tokens", t, 3), ("merge_count", "int32", 1), ("sizes", "float32", 2), ("source_map", "int64", 2)],
                    {"similarity_lower_bound": 0.6, "max_merges": 20})


def minimal_models(directory, manifest):
    """Float32 models that leave optional outputs out (the op then keeps what it needs in scratch), named
    <model>_minimal: the tests compare each with the full model on the same inputs."""
    kept = {
        "tome_merge_threshold_float32": ["out"],
        "topk_float32": ["indices"],
        "diversity_float32": ["order"],
        "divprune_float32": ["tokens", "kept_positions"],
        "cdpruner_float32": ["tokens", "kept_positions"],
        "dpcknn_blend_float32": ["tokens"],
        "kmeans_float32": ["centres"],
        "evs_float32": ["tokens"],
        "framefusion_float32": ["tokens", "merge_count"],
    }
    for full, names in kept.items():
        spec = manifest[full]
        write_model(directory, manifest, full + "_minimal", spec["op"],
                    [(i["name"], i["type"], i["shape"]) for i in spec["inputs"]],
                    [(o["name"], o["type"], o["rank"]) for o in spec["outputs"] if o["name"] in names],
                    spec["attributes"])


def error_models(directory, manifest):
    """Models TokenKernels refuses: at session creation (attributes) or at run (shapes and values)."""
    f = "float32"
    video = [("x", f, [2, 3, 7, 5, 40])]
    # Attributes, refused when the kernel is created.
    write_model(directory, manifest, "bad_pool_mode", "Pool", video, [("y", f, 5)], {"mode": "median"}, expect="load")
    write_model(directory, manifest, "bad_pool_kernel", "Pool", video, [("y", f, 5)], {"kernel": [1, 0, 2]}, expect="load")
    write_model(directory, manifest, "bad_tome_r", "ToMeMerge",
                [("metric", f, [2, 37, 24]), ("x", f, [2, 37, 48])], [("out", f, 3)], {"r": -3}, expect="load")
    write_model(directory, manifest, "bad_topk_missing_k", "TopK", [("scores", f, [2, 37])], [("indices", "int64", 2)],
                expect="load")
    write_model(directory, manifest, "bad_topk_float_k", "TopK", [("scores", f, [2, 37])], [("indices", "int64", 2)],
                {"k": 2.5}, expect="load")
    write_model(directory, manifest, "bad_evs_rate", "EVS", [("x", f, [2, 5, 3, 4, 40])], [("tokens", f, 3)],
                {"video_pruning_rate": 1.5}, expect="load")
    write_model(directory, manifest, "bad_divprune_ratio", "DivPrune", [("x", f, [2, 53, 40])],
                [("tokens", f, 3), ("kept_positions", "int64", 2)], {"threshold_ratio": 1.5}, expect="load")
    write_model(directory, manifest, "bad_kmeans_max_iter", "KMeans", [("x", f, [2, 37, 24])], [("centres", f, 3)],
                {"n_clusters": 4, "max_iter": 0}, expect="load")
    # No cluster would leave every token's assignment -1, which the int64 outputs cannot carry.
    write_model(directory, manifest, "bad_kmeans_no_clusters", "KMeans", [("x", f, [2, 37, 24])],
                [("centres", f, 3), ("assignment", "int64", 2)], {"n_clusters": 0}, expect="load")
    write_model(directory, manifest, "bad_kmeans_missing_n_clusters", "KMeans", [("x", f, [2, 37, 24])], [("centres", f, 3)],
                expect="load")
    write_model(directory, manifest, "bad_dpcknn_no_clusters", "DpcKnnAggregate", [("x", f, [2, 37, 40])],
                [("tokens", f, 3), ("sizes", f, 2), ("centres", "int64", 2), ("assignment", "int64", 2)], {"clusters": 0},
                expect="load")
    write_model(directory, manifest, "bad_dpcknn_missing_clusters", "DpcKnnAggregate", [("x", f, [2, 37, 40])],
                [("tokens", f, 3)], expect="load")
    # Shapes and values, refused by the C ABI when the node runs.
    write_model(directory, manifest, "bad_topk_k_above_n", "TopK", [("scores", f, [2, 37])], [("indices", "int64", 2)],
                {"k": 40}, expect="run")
    write_model(directory, manifest, "bad_pool_window_above_input", "Pool", video, [("y", f, 5)],
                {"kernel": [1, 9, 2]}, expect="run")
    write_model(directory, manifest, "bad_tome_tokens", "ToMeMerge",
                [("metric", f, [2, 37, 24]), ("x", f, [2, 35, 48])], [("out", f, 3)], {"r": 4}, expect="run")
    write_model(directory, manifest, "bad_gather_index", "Gather",
                [("x", f, [2, 37, 48]), ("indices", "int64", [2, 9])], [("out", f, 3)], expect="run")
    write_model(directory, manifest, "bad_visionzip_dominant", "VisionZip",
                [("attention", f, [2, 3, 37, 37]), ("metric", f, [2, 37, 24]), ("hidden_states", f, [2, 37, 48])],
                [("tokens", f, 3), ("kept_positions", "int64", 2)], {"dominant": 40, "contextual": 0}, expect="run")
    write_model(directory, manifest, "bad_visionzip_queries", "VisionZip",
                [("attention", f, [2, 3, 1, 37]), ("metric", f, [2, 37, 24]), ("hidden_states", f, [2, 37, 48])],
                [("tokens", f, 3), ("kept_positions", "int64", 2)], {"dominant": 9, "contextual": 4}, expect="run")
    write_model(directory, manifest, "bad_visionzip_metric", "VisionZip",
                [("attention", f, [2, 3, 37, 37]), ("metric", f, [2, 36, 24]), ("hidden_states", f, [2, 37, 48])],
                [("tokens", f, 3), ("kept_positions", "int64", 2)], {"dominant": 9, "contextual": 4}, expect="run")
    write_model(directory, manifest, "bad_attention_key_range", "AttentionImportance",
                [("attention", f, [2, 3, 5, 37])], [("importance", "float32", 2)], {"key_begin": 30, "key_end": 40},
                expect="run")
    write_model(directory, manifest, "bad_fastv_span", "FastV",
                [("attention", f, [2, 3, 6, 41]), ("hidden_states", f, [2, 41, 40])],
                [("tokens", f, 3), ("position_ids", "int64", 2)], {"image_token_start_index": 20, "image_token_length": 30},
                expect="run")
    write_model(directory, manifest, "bad_diversity_rank", "DiversitySelect", [("x", f, [2, 37])], [("order", "int64", 2)],
                {"k": 3}, expect="run")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUTPUT_DIRECTORY")
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    manifest = {}
    family_models(directory, manifest)
    recipe_models(directory, manifest)
    minimal_models(directory, manifest)
    error_models(directory, manifest)
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=1, sort_keys=True)
    print(f"{len(manifest)} models in {directory}")


if __name__ == "__main__":
    main()
