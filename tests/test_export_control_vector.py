"""`pts export --format control-vector`: the GGUF file, read back with gguf and by repeng, as llama.cpp."""

import json

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
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export

pytestmark = pytest.mark.usefixtures("forget_states")

# --- control vector --------------------------------------------------------------------------------------------


def test_control_vector_reads_back_with_gguf(real, original, embedded_loaded, tmp_path):
    import gguf

    out = tmp_path / "vector.gguf"
    export(
        ExportConfig(input_path=str(real[0]), format="control-vector", output_path=str(out), layer_nums=[5, 18]),
        loaded=embedded_loaded,
    )
    reader = gguf.GGUFReader(str(out))
    field = reader.get_field("general.architecture")
    assert bytes(field.parts[-1]).decode() == "controlvector"
    assert bytes(reader.get_field("controlvector.model_hint").parts[-1]).decode() == "llama"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 2
    assert sorted(t.name for t in reader.tensors) == ["direction.18", "direction.5"]
    model = embedded_loaded.model
    positive = np.array([r["is_positive"] for r in real[1]])
    for t in reader.tensors:
        layer = int(t.name.split(".")[1])
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [model.config.hidden_size]
        acts = np.array([last_token_state(model, r["pivot_context_ids"], layer) for r in real[1]])
        np.testing.assert_allclose(t.data, acts[positive].mean(0) - acts[~positive].mean(0), rtol=1e-3, atol=1e-3)
    hint, directions = read_control_vector(out)
    assert hint == "llama" and sorted(directions) == [5, 18]

    # from the original tool's file: the contexts are tokenized again, and the directions follow those ids
    out2 = tmp_path / "vector_original.gguf"
    export(
        ExportConfig(input_path=str(original[0]), format="control-vector", output_path=str(out2), layer_nums=[18]),
        loaded=embedded_loaded,
    )
    _, back = read_control_vector(out2)
    tok = embedded_loaded.tokenizer
    acts = np.array(
        [last_token_state(model, tok(r["pivot_context"], add_special_tokens=False)["input_ids"], 18) for r in real[1]]
    )
    np.testing.assert_allclose(back[18], acts[positive].mean(0) - acts[~positive].mean(0), rtol=1e-3, atol=1e-3)

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
    only_positive = tmp_path / "positive.jsonl"
    only_positive.write_text("".join(json.dumps(r) + "\n" for r in real[1] if r["is_positive"]))
    with pytest.raises(PTSError, match="every record is positive"):
        export(
            ExportConfig(input_path=str(only_positive), format="control-vector", output_path=str(tmp_path / "x.gguf"))
        )
    assert not (tmp_path / "x.gguf").exists()


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
