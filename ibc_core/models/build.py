"""Builds the policy network a (model, ebm[, irvs]) configuration describes."""
from __future__ import annotations

from typing import Optional

from ibc_core.models.return_energy import ReturnEnergyNetwork
from ibc_core.models.base import PolicyNetwork
from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.models.energy import AutoregressiveEnergyNetwork, EnergyNetwork
from ibc_core.models.explicit import MDNNetwork, MSENetwork, NearestNeighbourNetwork
from ibc_core.config import EBMConfig, IRvSConfig, ModelConfig


def build_network(spec: ObservationSpec, model: ModelConfig, ebm: EBMConfig,
                  memory_size: int = 0, irvs: Optional[IRvSConfig] = None) -> PolicyNetwork:
    encoder = ObservationEncoder(spec, model.encoder)
    if model.kind == "irvs":
        return ReturnEnergyNetwork(spec, encoder, model.mlp, ebm, irvs or IRvSConfig())
    if model.kind == "mse":
        return MSENetwork(spec, encoder, model.mlp)
    if model.kind == "mdn":
        return MDNNetwork(spec, encoder, model.mlp, model.mdn)
    if model.kind == "nn":
        return NearestNeighbourNetwork(spec, encoder, model.nn, memory_size)
    if ebm.sampler == "autoregressive":
        return AutoregressiveEnergyNetwork(spec, encoder, model.mlp, ebm)
    return EnergyNetwork(spec, encoder, model.mlp, ebm)
