"""`pts export --format control-vector`: the GGUF file, read back with gguf and by repeng, as llama.cpp."""

import numpy as np
import pytest
import torch
from consumers import repeng
from export_samples import (
    last_token_state,
    read_control_vector,
    write_control_vector,
)

from pts.errors import PTSError
from pts.export.records import read_pivots
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export
from pts.steering.directions import decision_tokens

pytestmark = pytest.mark.usefixtures("forget_states")

# --- control vector --------------------------------------------------------------------------------------------


def test_control_vector_reads_back_with_gguf(real, original, embedded_loaded, tmp_path):
    import gguf

    out = tmp_path / "vector.gguf"
    summary = export(
        ExportConfig(input_path=str(real[0]), format="control-vector", output_path=str(out), layer_nums=[5, 18]),
        loaded=embedded_loaded,
    )
    assert "norm 1" in summary.format()
    reader = gguf.GGUFReader(str(out))
    field = reader.get_field("general.architecture")
    assert bytes(field.parts[-1]).decode() == "controlvector"
    assert bytes(reader.get_field("controlvector.model_hint").parts[-1]).decode() == "llama"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 2
    assert bytes(reader.get_field("pts.activation_dtype").parts[-1]).decode() == "float32"
    norms = dict(x.split(":") for x in bytes(reader.get_field("pts.residual_norms").parts[-1]).decode().split(","))
    assert sorted(norms, key=int) == ["5", "18"] and all(float(v) > 1 for v in norms.values())
    assert sorted(t.name for t in reader.tensors) == ["direction.18", "direction.5"]
    model = embedded_loaded.model
    pivots = read_pivots(real[0])
    pairs = [(p.context_ids, d) for p in pivots if (d := decision_tokens(p)).objective == "logit_difference"]
    assert pairs
    for t in reader.tensors:
        layer = int(t.name.split(".")[1])
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [model.config.hidden_size]
        # the mean over pairs of (residual after the success-side token - after the failure-side one), unit length
        diff = np.mean(
            [
                last_token_state(model, [*ids, d.success_id], layer)
                - last_token_state(model, [*ids, d.failure_id], layer)
                for ids, d in pairs
            ],
            axis=0,
        )
        np.testing.assert_allclose(t.data, diff / np.linalg.norm(diff), atol=1e-3)
        assert np.linalg.norm(t.data) == pytest.approx(1.0, abs=1e-5)  # repeng's normalisation
    hint, directions = read_control_vector(out)
    assert hint == "llama" and sorted(directions) == [5, 18]

    # the original tool's file has no rollouts' first tokens: no pair to contrast, refused before loading a model
    with pytest.raises(PTSError, match="measured counterpart"):
        export(ExportConfig(input_path=str(original[0]), format="control-vector", output_path=str(tmp_path / "o.gguf")))
    with pytest.raises(PTSError, match="layer 0"):
        export(
            ExportConfig(
                input_path=str(real[0]),
                format="control-vector",
                output_path=str(tmp_path / "x.gguf"),
                layer_nums=[0, 5],
            ),
            loaded=embedded_loaded,
        )
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "o.gguf").exists()


def test_repeng_reads_the_control_vector_and_steers_as_llama_cpp_does(real, embedded_loaded, tmp_path):
    repeng_module = repeng()
    out = tmp_path / "vector.gguf"
    export(
        ExportConfig(input_path=str(real[0]), format="control-vector", output_path=str(out), layer_nums=[5, 18]),
        loaded=embedded_loaded,
    )
    hint, directions = read_control_vector(out)
    vector = repeng_module.ControlVector.import_gguf(str(out))
    assert vector.model_type == hint and sorted(vector.directions) == [5, 18]
    for layer, direction in directions.items():
        np.testing.assert_array_equal(vector.directions[layer], direction)

    model = embedded_loaded.model
    ids = torch.tensor([real[1][0]["pivot_context_ids"]])
    coeff = 2.0
    # llama.cpp's semantics: coeff * direction.L added to the output of decoder layer L at every position
    added = [
        model.model.layers[layer].register_forward_hook(
            lambda _m, _i, output, d=torch.tensor(direction): (
                (output[0] + coeff * d,) + tuple(output[1:]) if isinstance(output, tuple) else output + coeff * d
            )
        )
        for layer, direction in directions.items()
    ]
    try:
        with torch.inference_mode():
            expected = model(input_ids=ids).logits
    finally:
        for h in added:
            h.remove()
    controlled = repeng_module.ControlModel(model, [5, 18])
    try:
        controlled.set_control(vector, coeff)
        with torch.inference_mode():
            got = controlled(input_ids=ids).logits
            controlled.reset()
            plain = controlled(input_ids=ids).logits
    finally:
        controlled.unwrap()
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-3)
    assert not np.allclose(got.numpy(), plain.numpy(), atol=1e-2)  # it does steer


def test_control_vector_writer_matches_repengs_layout(tmp_path):
    directions = {3: np.arange(4, dtype=np.float32), 1: -np.ones(4, dtype=np.float32)}
    write_control_vector(tmp_path / "v.gguf", directions, "llama", extra={"method": "mean_difference"})
    hint, back = read_control_vector(tmp_path / "v.gguf")
    assert hint == "llama" and sorted(back) == [1, 3]
    for k, v in directions.items():
        np.testing.assert_array_equal(back[k], v)
    with pytest.raises(PTSError):
        write_control_vector(tmp_path / "w.gguf", {1: np.zeros(4), 2: np.zeros(5)}, "llama")
    assert not (tmp_path / "w.gguf").exists()


def test_the_card_converts_the_measured_shares_of_the_residual_to_this_files_scales():
    """A scale means a different share of the residual on each model (Gemma's is ~50x SmolLM2's): the card states,
    at the file's middle layer, the scales that add the shares measured on both embedded models."""
    from pathlib import Path

    from pts.formats.base import FileSummary
    from pts.formats.control_vector import scale_note

    unit = {11: 1.0, 14: 1.0, 16: 1.0}
    gemma_like = FileSummary(
        Path("v.gguf"),
        "control-vector",
        3,
        extra={"norms": unit, "residual_norms": {11: 9740.0, 14: 16700.0, 16: 27500.0}},
    )
    note = scale_note(gemma_like)
    assert "length 1" in note and "0.01%" in note  # what scale 1 adds at layer 11 (1/9740)
    assert "at layer 14 of this file: scale 167 adds 1%" in note and "scale 668 adds 4%" in note
    assert "scale 2.67e+03 adds 16%" in note
    smol_like = FileSummary(
        Path("v.gguf"),
        "control-vector",
        2,
        extra={"norms": {18: 2.0, 23: 2.0}, "residual_norms": {18: 195.0, 23: 348.0}},
    )
    note = scale_note(smol_like)
    assert "length 1" not in note and "at layer 23 of this file: scale 1.74 adds 1%" in note
