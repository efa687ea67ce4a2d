"""Builds the policy network a (model, ebm) configuration describes."""
from __future__ import annotations

from ibc_core.models.base import PolicyNetwork
from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.models.energy import AutoregressiveEnergyNetwork, EnergyNetwork
from ibc_core.models.explicit import MDNNetwork, MSENetwork, NearestNeighbourNetwork
from ibc_core.training.config import EBMConfig, ModelConfig


def build_network(spec: ObservationSpec, model: ModelConfig, ebm: EBMConfig,
                  memory_size: int = 0) -> PolicyNetwork:
    encoder = ObservationEncoder(spec, model.encoder)
    if model.kind == "mse":
        return MSENetwork(spec, encoder, model.mlp)
    if model.kind == "mdn":
        return MDNNetwork(spec, encoder, model.mlp, model.mdn)
    if model.kind == "nn":
        return NearestNeighbourNetwork(spec, encoder, model.nn, memory_size)
    if ebm.sampler == "autoregressive":
        return AutoregressiveEnergyNetwork(spec, encoder, model.mlp, ebm)
    return EnergyNetwork(spec, encoder, model.mlp, ebm)
