"""Network building blocks: late fusion equals concatenation, encoder options, spectral norm,
the MDN's inference modes."""
from __future__ import annotations

import torch

from ibc_core.models.encoders import (ConvMaxPool, ObservationEncoder, ObservationSpec, SpatialSoftArgmax,
                                      add_coordinates)
from ibc_core.models.explicit import MDNNetwork
from ibc_core.models.mlp import MLP, ResidualBlock
from ibc_core.samplers.noise import GeneratorNoise
from ibc_core.config import EncoderConfig, MDNConfig, MLPConfig


def test_late_fusion_equals_tiled_concatenation() -> None:
    torch.manual_seed(0)
    mlp = MLP((5, 2), 1, MLPConfig(width=16, depth=3))
    features, actions = torch.randn(3, 5), torch.randn(3, 7, 2)
    fused = mlp(features.unsqueeze(1), actions)
    # The same network written as one dense layer on [features tiled, action].
    weight = torch.cat([mlp.inputs[0].weight, mlp.inputs[1].weight], dim=1)
    tiled = torch.cat([features.unsqueeze(1).expand(3, 7, 5), actions], dim=-1)
    first = tiled @ weight.T + mlp.inputs[0].bias
    torch.testing.assert_close(fused, mlp.head(mlp.hidden(first)))


def test_dense_resnet_and_spectral_norm() -> None:
    resnet = MLP((4,), 2, MLPConfig(width=8, depth=8, resnet=True))
    assert sum(isinstance(m, ResidualBlock) for m in resnet.hidden) == 3  # 7 hidden layers: 3 pairs + 1
    normed = MLP((4,), 2, MLPConfig(width=32, depth=2, spectral_norm=True))
    normed.train()
    for _ in range(20):  # power iterations run on training forward passes
        normed(torch.randn(8, 4))
    weight = normed.hidden[2].weight
    assert abs(torch.linalg.matrix_norm(weight, ord=2).item() - 1.0) < 0.05


def test_spatial_soft_argmax_finds_the_peak() -> None:
    features = torch.full((1, 1, 9, 17), -50.0)
    features[0, 0, 2, 12] = 50.0
    x, y = SpatialSoftArgmax()(features)[0]
    assert abs(x.item() - (12 / 16 * 2 - 1)) < 1e-4 and abs(y.item() - (2 / 8 * 2 - 1)) < 1e-4


def test_conv_encoder_options_and_once_per_observation() -> None:
    images = torch.rand(2, 6, 32, 48)
    assert add_coordinates(images).shape == (2, 8, 32, 48)
    avg = ConvMaxPool(6, EncoderConfig(channels=(4, 8)))
    soft = ConvMaxPool(6, EncoderConfig(channels=(4, 8), pooling="spatial_softmax", coordconv=True))
    assert avg(images).shape == (2, 8) and avg.output_dim == 8
    assert soft(images).shape == (2, 16) and soft.output_dim == 16
    spec = ObservationSpec(history_length=2, action_dim=2, state_dim=3, image_hw=(32, 48))
    encoder = ObservationEncoder(spec, EncoderConfig(channels=(4, 8)))
    obs = {"state": torch.randn(5, 2, 3), "rgb": torch.randint(0, 256, (5, 2, 32, 48, 3), dtype=torch.uint8)}
    assert encoder(obs).shape == (5, encoder.output_dim) == (5, 2 * 3 + 8)


def test_mdn_inference_modes() -> None:
    torch.manual_seed(0)
    spec = ObservationSpec(history_length=1, action_dim=2, state_dim=3)
    mdn = MDNNetwork(spec, ObservationEncoder(spec, EncoderConfig()), MLPConfig(width=16, depth=2),
                     MDNConfig(components=3, test_temperature=0.5))
    features = torch.randn(4, 3)
    logits, means, _ = mdn.mixture(features)
    noise = GeneratorNoise(torch.Generator().manual_seed(0), torch.device("cpu"))
    rows = torch.arange(4)
    # The mode is the most likely component's mean, whatever the temperature.
    torch.testing.assert_close(mdn.predict(features, noise), means[rows, logits.argmax(-1)].clamp(-1, 1))
    mdn.mdn.inference = "mean"
    weights = torch.softmax(logits / 0.5, -1)
    expected = (weights.unsqueeze(-1) * means).sum(1).clamp(-1, 1)
    torch.testing.assert_close(mdn.predict(features, noise), expected)
    mdn.mdn.inference = "sample"
    draws = torch.stack([mdn.predict(features, noise) for _ in range(2)])
    assert draws.shape == (2, 4, 2) and not torch.equal(draws[0], draws[1])
