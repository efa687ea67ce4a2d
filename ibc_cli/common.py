"""What the ibc_cli commands share: one error line, and one spelling for configuration overrides.

Every command that changes a configuration takes KEY=VALUE words, the key a dotted path of
fields and the value YAML (numbers, true/false, [lists]):

    ibc-train train_push_states optim.steps=2000 model.mlp.width=256     # the training config
    ibc-bench inference --config push_states ebm.dfo.samples=4096        # the same config
    ibc-data generate --task push_states ... task.oracle_noise=0.3       # the task config
    ibc-eval --checkpoint P --task push_states task.max_steps=40 policy.irvs.inverse_eta=2
    ibc-ros launch real_push sim:=true policy.irvs.inverse_eta=2         # + launch arguments

The key is the field's path from the top of what the command configures. ibc-train and
ibc-bench configure a training config, whose top-level sections (data, model, ebm, optim, run,
irvs) start their keys. ibc-data, ibc-eval and ibc-ros configure a rollout - a task
(config/sim_<task>.yaml) and a policy (the training config stored in its checkpoint) - so their
keys start with `task.` or `policy.`: `task.max_steps` means the same in ibc-data and ibc-eval,
and `policy.X` in ibc-eval or ibc-ros is the X that ibc-train trained with. The old spellings
`--set KEY=VALUE` and `--policy-set KEY=VALUE` are refused, naming the word to write instead.
"""
from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import sys
import typing
from collections import Counter
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from ibc_core.config import TrainConfig
from ibc_core.config_io import ConfigError
from sim.config import TaskConfig


def report_errors(prog: str, errors: tuple[type[Exception], ...], work: Callable[[], str]) -> int:
    """Runs a command's work and prints the summary line it returns; exit status 0. One of
    `errors` (the user's mistake: a bad config, a missing dataset) is printed as one
    `prog: error: ...` line on stderr instead of a traceback, with argparse's usage status 2."""
    try:
        summary = work()
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


class OverrideError(ConfigError):
    """An override word is malformed or names no field; the message quotes the word."""


class Configs(NamedTuple):
    """The configurations a command's override words change: key prefix -> (config dataclass,
    its name in messages). The prefix "" means keys without a prefix (one configuration)."""
    targets: Mapping[str, tuple[type, str]]
    example: str                      # a word shown in messages, e.g. "task.max_steps=100"


_TASK = (TaskConfig, "task config (config/sim_<task>.yaml)")
_POLICY = (TrainConfig, "policy's training config")
# What each command's words change.
TRAINING = Configs({"": (TrainConfig, "training config")}, "optim.steps=2000")   # ibc-train, ibc-bench
TASK = Configs({"task": _TASK}, "task.max_steps=100")                            # ibc-data generate
ROLLOUT = Configs({"task": _TASK, "policy": _POLICY}, "task.max_steps=100")      # ibc-eval
POLICY = Configs({"policy": _POLICY}, "policy.irvs.inverse_eta=2")               # ibc-ros


def parse_overrides(words: Sequence[str], configs: Configs) -> dict[str, list[str]]:
    """KEY=VALUE words -> for each prefix of `configs`, its words without the prefix, in order
    (what ibc_core.config_io.load_config and Policy.load take). Every key must name a field of its
    configuration (checked against the dataclasses, before anything runs); the values are
    type-checked when the configuration loads. OverrideError names the first bad word."""
    split: dict[str, list[str]] = {prefix: [] for prefix in configs.targets}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.strip() or key != key.strip() or ":" in key:
            raise OverrideError(f"{word!r} is not an override: write KEY=VALUE, e.g. {configs.example}")
        parts = key.split(".")
        prefix = "" if "" in configs.targets else parts[0]
        if prefix not in configs.targets:
            raise OverrideError(f"{word!r}: {_prefix_hint(word, parts, configs)}")
        rest = parts if prefix == "" else parts[1:]
        cls, name = configs.targets[prefix]
        problem = field_path_problem(cls, rest) if rest else "no key (the word names only the configuration)"
        if problem:
            raise OverrideError(f"{word!r}: the {name} has {problem}")
        split[prefix].append(f"{'.'.join(rest)}={value}")
    return split


def _prefix_hint(word: str, parts: list[str], configs: Configs) -> str:
    prefixes = [f"{p}." for p in configs.targets]
    hint = f"a key starts with the configuration it changes: {' or '.join(prefixes)}"
    fits = [p for p, (cls, _) in configs.targets.items() if not field_path_problem(cls, parts)]
    if fits:
        hint += f" (here: {fits[0]}.{word})"
    return hint


def field_path_problem(cls: type, parts: Sequence[str]) -> str | None:
    """None if the dotted field path `parts` exists in dataclass `cls` (a free-form mapping
    field takes any sub-key), else what is wrong, to follow "the config has": "no key 'x' ..."."""
    hint: Any = cls
    for depth, part in enumerate(parts):
        section = _dataclass_of(hint)
        if section is None:
            if hint is Any or hint is dict or typing.get_origin(hint) in (dict, collections.abc.Mapping):
                return None
            return f"a value at {'.'.join(parts[:depth])}, not a section with keys"
        names = [f.name for f in dataclasses.fields(section) if f.init]
        if part not in names:
            where = f" in {'.'.join(parts[:depth])}" if depth else ""
            return f"no key {part!r}{where} (keys{' there' if depth else ''}: {', '.join(names)})"
        hint = typing.get_type_hints(section)[part]
    return None


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds: the type itself, or the one dataclass of an Optional/Union."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    classes = [a for a in typing.get_args(hint) if isinstance(a, type) and dataclasses.is_dataclass(a)]
    return classes[0] if len(classes) == 1 else None


class _OldSpelling(argparse.Action):
    """--set / --policy-set: refused, with the words to write instead."""

    def __init__(self, option_strings, dest, prefix: str = "", **kwargs):
        self.prefix = prefix
        super().__init__(option_strings, dest, nargs="*", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        words = " ".join(f"{self.prefix}{value}" for value in values) or f"{self.prefix}KEY=VALUE"
        parser.exit(2, f"{parser.prog}: error: {option_string} is gone: give overrides as KEY=VALUE words: "
                       f"{words}\n")


def add_override_words(parser: argparse.ArgumentParser, help: str, old: Mapping[str, str] | None = None,
                       metavar: str = "KEY=VALUE") -> None:
    """The positional override words (`args.words`, taken anywhere between the options by
    parse_command_line) and the refusal of the old spellings: old maps an option (--set) to the
    prefix its values now take ("task.")."""
    parser.add_argument("words", nargs="*", metavar=metavar, help=help)
    refuse_old_spellings(parser, old or {})


def refuse_old_spellings(parser: argparse.ArgumentParser, old: Mapping[str, str]) -> None:
    """Hidden options (--set) that stop the command, naming the words (prefix + each value) to write."""
    for option, prefix in old.items():
        parser.add_argument(option, action=_OldSpelling, prefix=prefix)


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, with the words of add_override_words allowed between options (argparse would
    take only the first run of them; parse_intermixed_args does not support subcommands). The
    words keep their command-line order (a later word wins)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    options = [word for word in extra if word.startswith("-")]
    if options or (extra and not hasattr(args, "words")):
        parser.error(f"unrecognized arguments: {' '.join(options or extra)}")
    if hasattr(args, "words"):
        wanted = Counter([*args.words, *extra])
        args.words = []
        for word in argv:
            if wanted[word] > 0:
                wanted[word] -= 1
                args.words.append(word)
    return args
