"""A GGUF control vector: what ``pts export --format control-vector`` writes, for llama.cpp.

Not JSON lines: a GGUF file (architecture ``controlvector``) with one
``direction.<layer>`` tensor per layer, the keys ``controlvector.model_hint``
and ``controlvector.layer_count``, and pts's own ``pts.*`` metadata. It is
recognised by the file's first bytes (:func:`is_gguf`) and summarised from its
metadata (:func:`read_gguf`); :mod:`pts.export.control_vector` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.formats.base import PHI4_LINK, PTS_LINK, ExportRequest, FileSummary, Format, Written

# What each GGUF key of the file means (the direction.<layer> tensors are described by ControlVector.describe).
FIELDS = {
    "general.architecture": "`controlvector`: what llama.cpp and repeng expect of a control vector file.",
    "controlvector.model_hint": "Architecture (model type) of the model the vector is for.",
    "controlvector.layer_count": "Number of layer directions in the file.",
    "pts.model_id": "Model the activations were read from.",
    "pts.method": "How the directions were computed (`unit_mean_paired_difference`: for each pivot with a measured "
    "counterpart, the residual after the success-side token minus the residual after the failure-side token at "
    "the same context; averaged, then scaled to length 1 per layer, as repeng's directions are).",
    "pts.pairs": "Pivot/counterpart pairs behind the directions.",
    "pts.activation_dtype": "Dtype of the forward passes the residuals were read from.",
    "pts.residual_norms": "Median norm of the residual stream at each layer over the pivots' contexts, as "
    "`layer:norm` pairs: scale S adds S/norm of it (the directions have length 1).",
    "pts.positive_pivots": "Positive pivots behind the directions (files of earlier pts versions).",
    "pts.negative_pivots": "Negative pivots behind the directions (files of earlier pts versions).",
}

# llama.cpp's control-vector options, as in common/arg.cpp of the llama.cpp that llama-cpp-python 0.3.36 vendors:
# `--control-vector FNAME[,FNAME...]` adds each at scale 1; `--control-vector-scaled FNAME:SCALE[,...]` (one
# argument; older builds took FNAME and SCALE as two, which today's reject) adds it times SCALE.
# One-shot generation is `llama-completion` in current llama.cpp (`llama-cli` became an interactive chat).
LLAMA_CPP_COMMANDS = (
    'llama-completion -m MODEL.gguf --control-vector {file} -n 64 -p "What is 17 * 23? Think step by step."',
    'llama-completion -m MODEL.gguf --control-vector-scaled {file}:16 -n 64 -p "..."   # 16 times as strong',
)
# repeng 0.4.0 (its latest release) names np.float_ in type annotations; numpy 2 removed it.
REPENG_SNIPPET = (
    "import numpy as np",
    "",
    'if not hasattr(np, "float_"):',
    "    np.float_ = np.float64  # repeng 0.4.0 names np.float_, which numpy 2 removed",
    "from repeng import ControlModel, ControlVector",
    "",
    'vector = ControlVector.import_gguf("{file}")',
    "# controlled = ControlModel(model, sorted(vector.directions)); controlled.set_control(vector, 1.0)",
)


# What a share of the residual norm at the middle one of a file's layers did to greedy next tokens
# (`bench/control_scale.py`, docs/exporting.md): SmolLM2-135M at scales 4, 16 and 64 and Gemma 3 270M at 184, 735
# and 3006 changed about as many tokens at about the same shares, though their residual norms differ 50-fold. So a
# share carries over between models and a scale does not: the card converts these shares to this file's scales.
SHARE_EFFECTS = ((0.01, "2-3%"), (0.04, "10-12%"), (0.16, "27-45%"))


def _percent(x: float) -> str:
    return f"{x:.2g}%" if x < 10 else f"{x:.0f}%"


def scale_note(s: FileSummary) -> str:
    """What a scale means for this file: its directions' length against the residual norms measured at export."""
    norms, residual = s.extra.get("norms", {}), s.extra.get("residual_norms", {})
    if not residual:
        return "pts did not record the residual norms for this file, so the size of a scale is not stated."
    unit = all(abs(n - 1.0) < 1e-3 for n in norms.values())
    parts = ", ".join(f"{residual[k]:.3g} at layer {k}" for k in sorted(residual))
    share = ", ".join(_percent(100 * norms.get(k, 1.0) / residual[k]) for k in sorted(residual))
    return (
        ("Each direction has length 1 (repeng's normalisation). " if unit else "")
        + f"The residual stream's median norm over the pivots' contexts was {parts} (`pts.residual_norms`): "
        + f"scale 1 adds {share} of it at those layers, and scale S adds S times as much. "
        + _share_scales(norms, residual)
    )


def _share_scales(norms: dict[int, float], residual: dict[int, float]) -> str:
    """The scales of this file that add the shares of :data:`SHARE_EFFECTS` at its middle layer, and what those
    shares did on the embedded models."""
    middle = sorted(residual)[len(residual) // 2]
    per_unit = norms.get(middle, 1.0) / residual[middle]
    steps = "; ".join(
        f"scale {share / per_unit:.3g} adds {100 * share:.0f}% and changed {effect}" for share, effect in SHARE_EFFECTS
    )
    return (
        f"Measured on SmolLM2-135M and Gemma 3 270M (pts's docs/exporting.md), the share of the residual at the "
        f"middle layer decides how many greedy next tokens change, whatever the model; at layer {middle} of this "
        f"file: {steps} of them. Scale 1 of a unit-length vector is a tiny share on a model whose residual is large."
    )


def is_gguf(path: Path) -> bool:
    """Whether the file at ``path`` starts like a GGUF file (OSError when it cannot be read)."""
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


class ControlVectorFile(Format):
    name = "control-vector"
    aliases = ("control_vector", "controlvector", "gguf")
    what = "control vectors"
    fields = FIELDS
    jsonl = False
    title = "Pivotal-token control vector"
    tags = ("control-vector", "steering-vectors", "gguf", "llama.cpp", "interpretability")
    noun = "layer directions"
    unit = "layer directions"
    default_output = "control_vector.gguf"
    settings_type = "pts.export.steering:SteeringSettings"

    def matches(self, row: Mapping[str, Any] | Iterable[str]) -> bool:
        return False  # a GGUF file, not records: see is_gguf

    def describe(self, s: FileSummary, name: str) -> str | None:
        if name.startswith("direction."):
            layer = name.split(".", 1)[1]
            return (
                f"Direction llama.cpp adds to the output of decoder block {layer} at every position "
                f"(L2 norm {s.extra['norms'][int(layer)]:.3g})."
            )
        return super().describe(s, name)

    def field_type(self, s: FileSummary, name: str) -> str:
        if name.startswith("direction."):
            return f"float32[{s.extra['dim']}]"
        return "uint32" if isinstance(s.samples.get(name), int) else "string"

    def description(self, s: FileSummary, model: str | None) -> str:
        hint = s.extra.get("model_hint")
        return (
            f"A GGUF control vector built by {PTS_LINK} from pivotal tokens (the {PHI4_LINK}): per layer, the mean "
            f"difference between the residual stream after the success-side and after the failure-side token of each "
            f"pivot (contrastive activation addition over pivot/counterpart pairs at the same context), scaled to "
            f"length 1 as repeng's directions are, in the format repeng writes and llama.cpp loads with "
            f"`--control-vector`" + (f" (model architecture `{hint}`)." if hint else ".")
        )

    def counts(self, s: FileSummary) -> list[tuple[str, str]]:
        rows = [
            (self.noun.capitalize(), str(s.rows)),
            ("Layers", ", ".join(map(str, s.extra["layers"]))),
            ("Vector size", str(s.extra["dim"])),
        ]
        if s.extra.get("model_hint"):
            rows.append(("Model architecture (hint)", f"`{s.extra['model_hint']}`"))
        if s.positives is not None:
            rows.append(("Pivots behind it (positive / negative)", f"{s.positives} / {s.negatives}"))
        if s.models:
            rows.append(("Model", ", ".join(f"`{k}`" for k in s.models)))
        return rows

    def usage(self, s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
        return [
            "### Download",
            "",
            "```bash",
            f"hf download {repo_id} {filename} --repo-type dataset --local-dir .",
            "```",
            "",
            "### Steer generation with llama.cpp",
            "",
            "```bash",
            *(c.format(file=filename) for c in LLAMA_CPP_COMMANDS),
            "```",
            "",
            "`MODEL.gguf` must be the model the vector was built from"
            + (f" (`{model}`)" if model else "")
            + "; a negative scale steers the other way. "
            + scale_note(s),
            "",
            "### Load it with repeng",
            "",
            "```python",
            *(line.format(file=filename) for line in REPENG_SNIPPET),
            "```",
            "",
            "### Read it in Python",
            "",
            "```python",
            "from gguf import GGUFReader",
            "",
            f'reader = GGUFReader("{filename}")',
            'directions = {int(t.name.split(".")[1]): t.data for t in reader.tensors}',
            "print(sorted(directions))",
            "```",
        ]

    def write(self, request: ExportRequest) -> Written:
        """Per layer, the unit mean paired difference of the pivots' residuals (:mod:`pts.export.control_vector`)."""
        from pts.export.control_vector import write_control_vector
        from pts.export.layer_inputs import layer_inputs

        inputs = layer_inputs(request, control_vector=True)
        rows, details = write_control_vector(
            inputs.loaded, inputs.pivots, inputs.layers, request.settings.batch_size, request.output
        )
        return Written(rows, "\n".join(filter(None, [details, inputs.note])))


def read_gguf(path: Path) -> FileSummary:
    """Summarise the GGUF control vector at ``path``; PTSError (one line) when it is not one."""
    import numpy as np
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises bare ValueError/struct errors on a damaged file
        raise PTSError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None

    def field_value(name: str) -> Any:
        f = reader.fields.get(name)
        if f is None:
            return None
        try:
            return f.contents()
        except Exception:  # noqa: BLE001 - older gguf versions lack contents()
            return None

    arch = field_value("general.architecture")
    directions: dict[int, Any] = {}
    for t in reader.tensors:
        name = t.name
        if name.startswith("direction."):
            try:
                directions[int(name.split(".", 1)[1])] = t
            except ValueError:
                continue
    if arch != "controlvector" or not directions:
        raise PTSError(
            f"{path} is a GGUF file but not a control vector (architecture {arch!r}, "
            f"{len(directions)} direction.<layer> tensors)"
        )
    s = FileSummary(path=path, fmt=ControlVectorFile.name, rows=len(directions))
    pts_keys = [name for name in reader.fields if name.startswith("pts.")]
    if isinstance(model_id := field_value("pts.model_id"), str) and model_id:
        s.models[model_id] = 1
    pos, neg = field_value("pts.positive_pivots"), field_value("pts.negative_pivots")
    if isinstance(pos, int) and isinstance(neg, int):
        s.positives, s.negatives = pos, neg
    residual = {}
    for item in str(field_value("pts.residual_norms") or "").split(","):
        layer, _, norm = item.partition(":")
        try:
            residual[int(layer)] = float(norm)
        except ValueError:
            continue
    layers = sorted(directions)
    first = directions[layers[0]]
    s.extra.update(
        {
            "layers": layers,
            "dim": int(first.n_elements),
            "model_hint": field_value("controlvector.model_hint"),
            "layer_count": field_value("controlvector.layer_count"),
            "residual_norms": residual,
            "norms": {
                layer: float(np.linalg.norm(np.asarray(directions[layer].data, dtype=np.float64))) for layer in layers
            },
        }
    )
    s.fields = ["general.architecture", "controlvector.model_hint", "controlvector.layer_count", *pts_keys]
    s.fields += [f"direction.{layer}" for layer in layers]
    s.samples = {name: field_value(name) for name in s.fields if not name.startswith("direction.")}
    return s


FORMAT = ControlVectorFile()
