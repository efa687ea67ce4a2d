"""Dense networks (appendix E.1): plain or dense-ResNet, optional spectral normalisation.

MLP takes several inputs whose first layers are summed, which is the same as one dense layer
on their concatenation; with broadcasting, obs features [B, 1, F] + actions [B, N, A] give late
fusion without materialising the tiled [B, N, F + A] tensor."""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ibc_core.config import MLPConfig

try:  # oneDNN's fused linear + ReLU (the kernel torch.compile emits on CPU); optional
    _LINEAR_RELU = torch.ops.mkldnn._linear_pointwise
except (AttributeError, RuntimeError):
    _LINEAR_RELU = None


@functools.cache
def fused_bfloat16_relu_available() -> bool:
    """Whether oneDNN runs the fused bfloat16 linear + ReLU here: CPUs without AVX512 have no
    bfloat16 inner-product primitive and the op raises (the plain path still works there)."""
    if _LINEAR_RELU is None:
        return False
    x, w = torch.ones(2, 2, dtype=torch.bfloat16), torch.ones(2, 2, dtype=torch.bfloat16)
    try:
        _LINEAR_RELU(x, w, torch.zeros(2, dtype=torch.bfloat16), "relu", [], "")
    except RuntimeError:
        return False
    return True


def int8_linear_available() -> bool:
    """FBGEMM/x86 dynamic int8 matrix products (AVX2 and up); absent on other CPUs/builds."""
    return ("x86" in torch.backends.quantized.supported_engines
            or "fbgemm" in torch.backends.quantized.supported_engines) and hasattr(torch.ops.quantized,
                                                                               "linear_dynamic")


class DynamicInt8Linear(nn.Module):
    """Inference-only replacement of an nn.Linear: int8 weights with one scale per output
    channel, activations quantised per call (dynamic), float32 in and out. For CPUs without
    fast bfloat16, where it runs the wide hidden layers ~1.7x faster than float32."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
        zero_points = torch.zeros(len(scales), dtype=torch.long)
        with warnings.catch_warnings():
            # torch flags its quantised-tensor constructors as deprecated in favour of torchao,
            # whose CPU int8 path needs torch.compile; int8_linear_available() guards removal.
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
            bias = None if linear.bias is None else linear.bias.detach().float()
            self._packed = torch.ops.quantized.linear_prepack(quantized, bias)
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: 7-bit activations, so FBGEMM's AVX2 16-bit accumulation cannot saturate.
        out = torch.ops.quantized.linear_dynamic(x.reshape(-1, x.shape[-1]).float(), self._packed, True)
        return out.view(*x.shape[:-1], self.out_features)


def dense(in_dim: int, out_dim: int, use_spectral_norm: bool, bias: bool = True) -> nn.Module:
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    return spectral_norm(layer) if use_spectral_norm else layer


def activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.SiLU()


class ResidualBlock(nn.Module):
    """Pre-activation block: x + W2 act(W1 act(x))."""

    def __init__(self, width: int, cfg: MLPConfig):
        super().__init__()
        self.body = nn.Sequential(activation(cfg.activation), dense(width, width, cfg.spectral_norm),
                                  activation(cfg.activation), nn.Dropout(cfg.dropout),
                                  dense(width, width, cfg.spectral_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MLP(nn.Module):
    """`depth` hidden layers of `width` units; dense ResNet groups the hidden layers after the
    first into residual pairs (an odd one left over stays a plain layer)."""

    def __init__(self, in_dims: Sequence[int], out_dim: int, cfg: MLPConfig, output_bias: bool = True):
        super().__init__()
        # Only the first input carries a bias: the summed layer is one affine map.
        self.inputs = nn.ModuleList(dense(d, cfg.width, cfg.spectral_norm, bias=i == 0)
                                    for i, d in enumerate(in_dims))
        hidden: list[nn.Module] = []
        remaining = cfg.depth - 1
        if cfg.resnet:
            hidden += [ResidualBlock(cfg.width, cfg) for _ in range(remaining // 2)]
            remaining %= 2
        for _ in range(remaining):
            hidden += [activation(cfg.activation), nn.Dropout(cfg.dropout),
                       dense(cfg.width, cfg.width, cfg.spectral_norm)]
        self.hidden = nn.Sequential(*hidden)
        self.head = nn.Sequential(activation(cfg.activation), nn.Dropout(cfg.dropout),
                                  dense(cfg.width, out_dim, cfg.spectral_norm, bias=output_bias))
        self._relu_chain: Optional[list[nn.Linear]] = None   # set on frozen bfloat16 copies only

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"MLP expects {len(self.inputs)} inputs, got {len(inputs)}")
        h = sum(layer(x) for layer, x in zip(self.inputs, inputs))
        return self._trunk(h)

    def _trunk(self, h: torch.Tensor) -> torch.Tensor:
        """Everything after the summed first layer."""
        if self._relu_chain is None or h.device.type != "cpu":
            return self.head(self.hidden(h))
        # Plain ReLU MLP in bfloat16 on CPU: ReLU fused into each hidden matmul (oneDNN),
        # ~20-35 % faster than separate bfloat16 ReLUs (docs/BENCHMARKS.md).
        x = torch.relu(h).reshape(-1, h.shape[-1])
        for layer in self._relu_chain[:-1]:
            x = _LINEAR_RELU(x, layer.weight, layer.bias, "relu", [], "")
        return self._relu_chain[-1](x).view(*h.shape[:-1], -1)

    def bind(self, *leading: torch.Tensor) -> Callable[..., torch.Tensor]:
        """Fixes the leading inputs (e.g. observation features [B, 1, F]) and returns
        f(*remaining) == self(*leading, *remaining): their first-layer contribution is computed
        once instead of on every call (DFO evaluates the same observation 3+ times)."""
        fixed = sum(layer(x) for layer, x in zip(self.inputs, leading))
        rest = self.inputs[len(leading):]

        def forward(*remaining: torch.Tensor) -> torch.Tensor:
            if len(remaining) != len(rest):
                raise ValueError(f"bound MLP expects {len(rest)} inputs, got {len(remaining)}")
            h = fixed
            for layer, x in zip(rest, remaining):
                h = h + layer(x)
            return self._trunk(h)
        return forward

    def frozen(self, dtype: torch.dtype) -> "MLP":
        """An inference-only copy: spectral normalisation folded into plain weights (computed
        once, not per call), parameters in `dtype`, eval mode, no gradients. torch.qint8: the
        hidden layers become DynamicInt8Linear (float32 in and out)."""
        clone = copy.deepcopy(self).eval()
        with torch.no_grad():
            for path, module in list(clone.named_modules()):
                if isinstance(module, nn.Linear) and parametrize.is_parametrized(module, "weight"):
                    # A fresh Linear: remove_parametrizations would edit the class the copy
                    # shares with the original and so break the original module.
                    plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
                    plain.weight.copy_(module.weight)
                    if module.bias is not None:
                        plain.bias.copy_(module.bias)
                    parent, _, name = path.rpartition(".")
                    setattr(clone.get_submodule(parent), name, plain)
        if dtype == torch.qint8:
            return clone.requires_grad_(False)._quantize_trunk()
        clone = clone.to(dtype).requires_grad_(False)
        if dtype == torch.bfloat16 and fused_bfloat16_relu_available():
            clone._relu_chain = clone._plain_relu_linears()
        return clone

    def _quantize_trunk(self) -> "MLP":
        for path, module in list(self.named_modules()):
            # The input layers and the output head stay float32: small, or run once per
            # observation (bind); the head's precision is the energy's precision.
            if isinstance(module, nn.Linear) and path.startswith("hidden"):
                parent, _, name = path.rpartition(".")
                setattr(self.get_submodule(parent), name, DynamicInt8Linear(module))
        return self

    def _plain_relu_linears(self) -> Optional[list[nn.Linear]]:
        """The Linear layers after the first if they form ReLU -> Dropout -> Linear repeats
        (plain ReLU MLP, no residual blocks), else None."""
        modules = list(self.hidden) + list(self.head)
        triples = [modules[i:i + 3] for i in range(0, len(modules), 3)]
        plain = len(modules) % 3 == 0 and all(
            isinstance(a, nn.ReLU) and isinstance(d, nn.Dropout) and isinstance(l, nn.Linear) for a, d, l in triples)
        return [l for _, _, l in triples] if plain else None
