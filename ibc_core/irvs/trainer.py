"""IRvSTrainer: the IBC training loop on (action, return) targets. It loads every episode
the config selects (set data.successful_only: false to learn from failures too), attaches the
returns, and hands the network y = (a, G) where IBC hands it a."""
from __future__ import annotations

from typing import Optional

import torch

from ibc_core.config_io import ConfigError
from ibc_core.data.memory import Demonstrations
from ibc_core.irvs.returns import RETURN_KEY, ReturnDemonstrations, with_returns
from ibc_core.models.base import PolicyNetwork
from ibc_core.samplers.noise import HashedNoise
from ibc_core.config import TrainConfig
from ibc_core.training.trainer import Trainer


class IRvSTrainer(Trainer):
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        if cfg.model.kind != "irvs":
            raise ConfigError(f"IRvSTrainer needs model.kind: irvs, got {cfg.model.kind!r}")
        super().__init__(cfg, resume)

    def run(self, demos: Optional[Demonstrations] = None):
        if demos is not None and not isinstance(demos, ReturnDemonstrations):
            raise ConfigError("IRvS training needs demonstrations with returns (ibc_core.irvs.returns)")
        return super().run(demos)

    def _load_data(self) -> ReturnDemonstrations:
        data = self.cfg.data
        return with_returns(super()._load_data(), data.path, self.cfg.irvs, data.successful_only,
                            data.max_episodes)

    def _step(self, network: PolicyNetwork, obs: dict[str, torch.Tensor], actions: torch.Tensor,
              noise: HashedNoise) -> tuple[torch.Tensor, dict[str, float]]:
        returns = obs.pop(RETURN_KEY).to(actions)
        return super()._step(network, obs, torch.cat([actions, returns.unsqueeze(-1)], dim=-1), noise)
