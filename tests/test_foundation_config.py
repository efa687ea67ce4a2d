"""Configuration dataclasses from YAML with overrides; errors name the bad field."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ibc_core.config_io import ConfigError, load_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    decay_steps: int = 100

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass
class Train:
    name: str
    optim: Optim = field(default_factory=Optim)
    sizes: tuple[int, ...] = (128, 128)
    device: str | None = None


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("name: states\noptim:\n  lr: 0.01\n")
    cfg = load_config(Train, path, ["optim.decay_steps=200", "sizes=[64, 32]", "device=cpu"])
    assert cfg == Train(name="states", optim=Optim(lr=0.01, decay_steps=200), sizes=(64, 32), device="cpu")
    assert to_dict(cfg)["sizes"] == [64, 32]
    # YAML 1.1 reads 5e-4 (no dot) as a string; a float field takes it as the number it is.
    path.write_text("name: states\noptim:\n  lr: 2e-3\n")
    assert load_config(Train, path, []).optim.lr == 2e-3
    assert load_config(Train, path, ["optim.lr=5e-4"]).optim.lr == 5e-4
    with pytest.raises(ConfigError, match="optim.decay_steps"):
        load_config(Train, path, ["optim.decay_steps=1e2"])  # an int field stays strict


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "optim": {"lr": "fast"}}, "optim.lr"),
    ({"name": "x", "optim": {"lr": -1.0}}, "lr must be positive"),
    ({"name": "x", "optim": {"learning_rate": 1.0}}, "optim.learning_rate"),
    ({"optim": {}}, "missing required field name"),
    ({"name": "x", "sizes": [1, "two"]}, "sizes[1]"),
    ({"name": 3}, "name"),
])
def test_bad_values_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(Train, raw)


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Train, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Train, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Train, {"name": "x"}, ["optim.lr"])
