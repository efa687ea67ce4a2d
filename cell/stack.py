"""The stack description (config/stack.yaml), free of ROS: the single source of truth that both
launch/*.launch.py (through ibc_ros/ros2_launch.py) and `ibc-ros launch` turn into running nodes.

    stack = load_stack("real_push")                         # from the share dir's config/stack.yaml
    nodes = resolve(stack, {"sim": "true", "episodes": "5"})  # -> [NodeSpec, ...]

A stack has launch arguments (default, optional choices, optional `requires`: the values of
other arguments any value but its default needs) and nodes. Each node names its
executable (a console script / `ros2 run ibc_ros <executable>`), a params file in config/,
inline parameters whose values may reference arguments as "$(name)", a `when` map of
argument values that must all match for the node to start, and `required` (its exit ends the
stack: the sim node exits after `episodes`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from cell.paths import share_file

_REFERENCE = re.compile(r"\$\((\w+)\)")


class StackError(ValueError):
    """The stack description or the launch arguments are invalid; the message says which."""


# Launch argument types: what a value must parse as. A node would otherwise drop a value that
# does not fit its parameter's type without a word (episodes:=two ran forever).
ARGUMENT_TYPES = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str = ""
    choices: tuple[str, ...] = ()
    type: str = "str"
    requires: Mapping[str, str] = field(default_factory=dict)   # other arguments' values a non-default value needs

    def check(self, value: str) -> None:
        """StackError naming the argument and the type it needs, unless `value` fits."""
        if value == "" == self.default:
            return   # not given: resolve() leaves the parameter to the node, which owns the default
        if self.choices and value not in self.choices:
            raise StackError(f"{self.name}:={value} is not one of {list(self.choices)}")
        try:
            parsed = ARGUMENT_TYPES[self.type](value)
        except ValueError:
            parsed = None
        if parsed is None or (self.type == "float" and not math.isfinite(parsed)):
            example = {"int": "an integer, e.g. 5", "float": "a number, e.g. 0.5"}[self.type]
            raise StackError(f"launch argument {self.name}:={value!r} must be {example} ({self.type})")


@dataclass(frozen=True)
class NodeTemplate:
    name: str
    executable: str
    params_file: str = ""                       # in config/; "" = none
    parameters: Mapping[str, Any] = field(default_factory=dict)
    when: Mapping[str, str] = field(default_factory=dict)
    required: bool = False


@dataclass(frozen=True)
class Stack:
    name: str
    description: str
    arguments: tuple[Argument, ...]
    nodes: tuple[NodeTemplate, ...]


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: `<executable> --ros-args -r __node:=<name> --params-file <file> -p k:=v`."""
    name: str
    executable: str
    params_file: Path | None
    parameters: dict[str, str]                  # values as launch-argument text (YAML-parsed by ROS)
    required: bool

    def ros_args(self) -> list[str]:
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.params_file is not None:
            args += ["--params-file", str(self.params_file)]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={value}"]
        return args


def stack_file() -> Path:
    return share_file("config", "stack.yaml")


def load_stack(name: str, path: Path | None = None) -> Stack:
    path = path or stack_file()
    raw = yaml.safe_load(Path(path).read_text()) or {}
    stacks = raw.get("stacks", {})
    if name not in stacks:
        raise StackError(f"no stack {name!r} in {path}; known: {', '.join(sorted(stacks)) or 'none'}")
    entry = stacks[name]
    try:
        arguments = tuple(Argument(name=arg, default=str(spec.get("default", "")),
                                   description=spec.get("description", ""),
                                   choices=tuple(str(c) for c in spec.get("choices", ())),
                                   type=str(spec.get("type", "str")),
                                   requires={k: str(v).lower() for k, v in spec.get("requires", {}).items()})
                          for arg, spec in entry.get("arguments", {}).items())
        nodes = tuple(NodeTemplate(name=node["name"], executable=node["executable"],
                                   params_file=node.get("params_file", ""),
                                   parameters=dict(node.get("parameters", {})),
                                   when={k: str(v).lower() for k, v in node.get("when", {}).items()},
                                   required=bool(node.get("required", False)))
                      for node in entry["nodes"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise StackError(f"stack {name!r} in {path} is malformed: {exc!r}") from exc
    stack = Stack(name, entry.get("description", ""), arguments, nodes)
    for argument in arguments:
        if argument.type not in ARGUMENT_TYPES:
            raise StackError(f"argument {argument.name} of stack {name} in {path} has type {argument.type!r}; "
                             f"types: {', '.join(ARGUMENT_TYPES)}")
        argument.check(argument.default)   # a description whose own default is wrong fails here
    _check_references(stack)
    return stack


def _check_references(stack: Stack) -> None:
    known = {a.name for a in stack.arguments}
    for argument in stack.arguments:
        if set(argument.requires) - known:
            raise StackError(f"argument {argument.name} of stack {stack.name} requires undeclared argument(s) "
                             f"{', '.join(sorted(set(argument.requires) - known))}")
    for node in stack.nodes:
        used = set(node.when)
        for value in node.parameters.values():
            used.update(_REFERENCE.findall(str(value)))
        if used - known:
            raise StackError(f"node {node.name} of stack {stack.name} uses undeclared argument(s) "
                             f"{', '.join(sorted(used - known))}")


def parse_arguments(stack: Stack, pairs: list[str]) -> dict[str, str]:
    """`name:=value` command-line pairs -> full argument values (defaults filled in, checked)."""
    values = {a.name: a.default for a in stack.arguments}
    for pair in pairs:
        name, sep, value = pair.partition(":=")
        if not sep:
            raise StackError(f"launch argument {pair!r} must look like name:=value")
        if name not in values:
            raise StackError(f"unknown launch argument {name!r} for {stack.name}; "
                             f"known: {', '.join(values)}")
        values[name] = value
    for argument in stack.arguments:
        argument.check(values[argument.name])
    for argument in stack.arguments:
        if values[argument.name] == argument.default:
            continue
        for other, wanted in argument.requires.items():
            if values[other].lower() != wanted:
                raise StackError(f"{argument.name}:={values[argument.name]} needs {other}:={wanted} "
                                 f"(got {other}:={values[other]})")
    return values


def substitute(value: Any, arguments: Mapping[str, str]) -> str:
    """Parameter value as text with $(arg) references replaced (ROS then parses it as YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _REFERENCE.sub(lambda m: arguments[m.group(1)], str(value))


def resolve(stack: Stack, arguments: Mapping[str, str]) -> list[NodeSpec]:
    """The nodes to start for these argument values (as produced by parse_arguments)."""
    specs = []
    for node in stack.nodes:
        if any(arguments[arg].lower() != wanted for arg, wanted in node.when.items()):
            continue
        params_file = share_file("config", node.params_file) if node.params_file else None
        # An empty argument leaves the parameter to its params file (ROS reads "" as no value).
        parameters = {key: text for key, value in node.parameters.items()
                      if (text := substitute(value, arguments)) != ""}
        specs.append(NodeSpec(node.name, node.executable, params_file, parameters, node.required))
    return specs
