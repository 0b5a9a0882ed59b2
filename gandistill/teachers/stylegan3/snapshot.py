"""Which network family an NVlabs snapshot holds, and how to rebuild each of its networks with our classes.

NVlabs' StyleGAN2-ADA and StyleGAN3 repositories write the same persistence records, and their class
names collide (``Generator``, ``MappingNetwork``, ``FullyConnectedLayer``...; the pickle stores no
module, and the module source is never looked at). So the family is told by *structure*:

* ``stylegan3``: G's synthesis network has a ``SynthesisInput`` called ``input`` and layers named
  ``L{idx}_{size}_{channels}``. G is rebuilt as ``SG3Generator`` from its flat kwargs plus StyleGAN3's
  class defaults (see ``networks.py``); every per-layer value the file stores (sizes, sampling rates,
  cutoffs, padding, taps...) is then compared with the rebuilt layer, so a default we got wrong
  cannot pass silently.
* ``stylegan2-sg3repo``: a StyleGAN2 G (blocks ``b4``, ``b8``...) whose kwargs are flat (no
  ``synthesis_kwargs``): written by the StyleGAN3 repository's ``--cfg=stylegan2``. Rebuilt as our
  StyleGAN2 ``Generator`` with the kwargs nested and that repository's class defaults filled in
  (``num_fp16_res=4``, ``conv_clamp=256``, mapping ``w_avg_beta=0.998``; ``fused_modconv_default``
  is a speed switch and is dropped).
* ``stylegan2-ada``: everything else, rebuilt as before.

D: the StyleGAN3 repository's discriminator is its own copy of StyleGAN2's, whose defaults differ
from StyleGAN2-ADA's (``architecture='resnet'``, ``num_fp16_res=4``, ``conv_clamp=256`` instead of
0 and None). In a snapshot of either StyleGAN3-repository family, D's missing kwargs are filled from
those defaults; in a StyleGAN2-ADA snapshot from StyleGAN2-ADA's.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Tuple

from torch import nn

from gandistill.io.safe_pickle import SafeLoadError
from gandistill.teachers.stylegan2.discriminator import Discriminator
from gandistill.teachers.stylegan2.networks import Generator
from gandistill.teachers.stylegan2.nvlabs_pickle import PersistentRecord, SG2LoadError, record_kwargs, summary

from .layers import layer_settings
from .networks import SG3Generator

__all__ = ["SG3LoadError", "snapshot_variant", "network_plan", "check_stored_settings", "is_stylegan3_generator",
           "VARIANTS", "SG3_REPO_D_DEFAULTS"]

VARIANTS = ("stylegan2-ada", "stylegan3", "stylegan2-sg3repo")
LAYER_NAME = re.compile(r"L(\d+)_(\d+)_(\d+)$")
SG3_REPO_D_DEFAULTS = dict(architecture="resnet", num_fp16_res=4, conv_clamp=256)
SG3_REPO_SG2_SYNTHESIS_DEFAULTS = dict(num_fp16_res=4, conv_clamp=256)
SG3_REPO_SG2_MAPPING_DEFAULTS = dict(w_avg_beta=0.998)
_TOP_LEVEL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
_SPEED_ONLY = ("fused_modconv_default",)


class SG3LoadError(SG2LoadError):
    """A StyleGAN3-repository snapshot could not be rebuilt (its stored layer values disagree with ours, ...)."""


def _child(rec: Any, name: str) -> Optional[PersistentRecord]:
    if not isinstance(rec, PersistentRecord):
        return None
    child = rec.children.get(name)
    return child if isinstance(child, PersistentRecord) else None


def is_stylegan3_generator(rec: Any) -> bool:
    """G's synthesis has a ``SynthesisInput`` ``input`` and ``L{idx}_{size}_{channels}`` layers."""
    syn = _child(rec, "synthesis")
    inp = _child(syn, "input")
    if inp is None or inp.class_name != "SynthesisInput":
        return False
    return any(isinstance(k, str) and LAYER_NAME.match(k) for k in syn.children)


def _is_flat_sg2_generator(rec: Any) -> bool:
    syn = _child(rec, "synthesis")
    return (syn is not None and _child(syn, "b4") is not None and isinstance(rec.init_kwargs, dict)
            and "synthesis_kwargs" not in rec.init_kwargs)


def snapshot_variant(snap: Dict[str, Any]) -> str:
    """``stylegan3``, ``stylegan2-sg3repo`` or ``stylegan2-ada`` (decided by the generators' structure)."""
    gens = [snap.get(k) for k in ("G_ema", "G") if isinstance(snap.get(k), PersistentRecord)]
    if any(is_stylegan3_generator(g) for g in gens):
        return "stylegan3"
    if any(_is_flat_sg2_generator(g) for g in gens):
        return "stylegan2-sg3repo"
    return "stylegan2-ada"


def _nest_sg2_kwargs(flat: dict) -> dict:
    """StyleGAN3-repository StyleGAN2 G kwargs (flat) -> StyleGAN2-ADA's nested layout with its defaults."""
    out = {k: flat[k] for k in _TOP_LEVEL if k in flat}
    out["mapping_kwargs"] = {**SG3_REPO_SG2_MAPPING_DEFAULTS, **dict(flat.get("mapping_kwargs") or {})}
    synthesis = {k: v for k, v in flat.items() if k not in _TOP_LEVEL and k not in _SPEED_ONLY}
    out["synthesis_kwargs"] = {**SG3_REPO_SG2_SYNTHESIS_DEFAULTS, **synthesis}
    return out


def network_plan(name: str, rec: PersistentRecord, variant: str) -> Tuple[type, dict]:
    """``(class, complete constructor kwargs)`` for network ``name`` (G_ema, G, D) of a snapshot ``variant``."""
    kwargs = record_kwargs(rec)
    if name == "D":
        if variant != "stylegan2-ada":
            kwargs = {**SG3_REPO_D_DEFAULTS, **kwargs}
        return Discriminator, kwargs
    if is_stylegan3_generator(rec):
        return SG3Generator, kwargs
    if variant == "stylegan2-sg3repo" or _is_flat_sg2_generator(rec):
        return Generator, _nest_sg2_kwargs(kwargs)
    return Generator, kwargs


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) and isinstance(a, bool) == isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) or hasattr(a, "tolist"):
        a = list(a)
        b = list(b) if isinstance(b, (list, tuple)) or hasattr(b, "tolist") else b
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compare(where: str, what: str, stored: Dict[str, Any], ours: Dict[str, Any]) -> None:
    for key, value in ours.items():
        if key not in stored:  # another repository version may not store it: nothing to compare
            continue
        try:
            ok = _same(stored[key], value)
        except SafeLoadError:  # e.g. a numpy array that was never filled
            raise
        except Exception:
            ok = False
        if not ok:
            raise SG3LoadError(f"{where}: {what} stores {key}={summary(stored[key], 60)} but the StyleGAN3 "
                               f"defaults rebuild {summary(value, 60)}; this snapshot uses settings gandistill "
                               "does not know, refusing rather than computing something else")


def check_stored_settings(net: nn.Module, rec: PersistentRecord, where: str, name: str = "G") -> None:
    """For an ``SG3Generator``: the file's per-layer values must equal the rebuilt network's (no-op otherwise)."""
    if not isinstance(net, SG3Generator):
        return
    syn_rec = _child(rec, "synthesis")
    syn = net.synthesis
    names = syn_rec.state.get("layer_names")
    if names is not None and list(names) != syn.layer_names:
        raise SG3LoadError(f"{where}: {name}.synthesis lists the layers {summary(names, 120)}, the StyleGAN3 defaults "
                           f"rebuild {syn.layer_names}; refusing")
    _compare(where, f"{name}.synthesis", syn_rec.state,
             dict(num_ws=syn.num_ws, margin_size=syn.margin_size, output_scale=syn.output_scale,
                  num_layers=syn.num_layers, num_critical=syn.num_critical))
    inp = syn.input
    _compare(where, f"{name}.synthesis.input", _child(syn_rec, "input").state,
             dict(channels=inp.channels, size=list(inp.size), sampling_rate=inp.sampling_rate,
                  bandwidth=inp.bandwidth))
    for layer_name in syn.layer_names:
        layer_rec = _child(syn_rec, layer_name)
        if layer_rec is None:
            raise SG3LoadError(f"{where}: {name}.synthesis has no layer {layer_name}")
        layer = getattr(syn, layer_name)
        settings = layer_settings(layer)
        settings.update(conv_clamp=layer.conv_clamp)
        _compare(where, f"{name}.synthesis.{layer_name}", layer_rec.state, settings)
