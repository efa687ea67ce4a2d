"""`ibc-ros`: start a stack from config/stack.yaml without the ROS launch tools.

    ibc-ros launch real_push sim:=true episodes:=10 [policy:=policies/push_pixels.pt ...]
    ibc-ros launch real_push sim:=true policy:=runs/irvs_push/policy.pt policy.irvs.inverse_eta=2
    ibc-ros launch real_push --print          # show the node command lines, start nothing
    ibc-ros args real_push                    # list the launch arguments

The same stack description and parameter files as launch/*.launch.py (ibc_ros/ros2_launch.py); every node is a
separate process (`<executable> --ros-args -r __node:=NAME --params-file F -p k:=v`), its output
prefixed with its name. Ctrl-C (or SIGTERM) stops all nodes cleanly; so does the exit of any
node. Exit status: 0 when a `required` node (the sim's episode supervisor) finished normally
or after Ctrl-C, else the first failing node's status.

Words: name:=value sets a launch argument (as ros2 launch); policy.KEY=VALUE changes an inference
setting of the checkpoint, as ibc-eval's policy.KEY=VALUE (KEY as ibc-train's, e.g.
policy.ebm.dfo.samples=4096), passed to the policy node as its policy_set parameter. `ros2 launch`, which takes only
name:=value words, spells the same settings policy_set:="irvs.inverse_eta=2"; ibc-ros refuses
that spelling, naming the policy.KEY=VALUE words to write.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Sequence

from cell.stack import NodeSpec, Stack, StackError, load_stack, parse_arguments, resolve
from ibc_cli.common import POLICY, OverrideError, add_override_words, parse_command_line, parse_overrides
from cell.processes import interrupt, wait_or_kill

STOP_TIMEOUT_S = 10.0


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen


def node_command(spec: NodeSpec) -> list[str]:
    """The console script next to this Python (the venv's bin) if installed, else `python -m`."""
    script = shutil.which(spec.executable, path=os.path.dirname(sys.executable)) or shutil.which(spec.executable)
    base = [script] if script else [sys.executable, "-m", f"ibc_ros.nodes.{spec.executable}"]
    return base + spec.ros_args()


def _forward_output(name: str, stream: IO[bytes], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        with lock:
            print(f"[{name}] {line}", flush=True)


class Supervisor:
    def __init__(self, specs: Sequence[NodeSpec]) -> None:
        self.specs = specs
        self.nodes: list[RunningNode] = []
        self._print_lock = threading.Lock()
        self._stop_requested = threading.Event()

    def request_stop(self, signum: int, _frame: object) -> None:
        self._say(f"{signal.Signals(signum).name}: stopping all nodes")
        self._stop_requested.set()

    def _say(self, text: str) -> None:
        with self._print_lock:
            print(f"[ibc-ros] {text}", flush=True)

    def start(self) -> None:
        for spec in self.specs:
            # Own session: the terminal's Ctrl-C reaches only the supervisor, which stops the
            # nodes in order and waits for them instead of leaving orphans behind.
            process = subprocess.Popen(node_command(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=_die_with_supervisor,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self.nodes.append(RunningNode(spec, process))
            threading.Thread(target=_forward_output, args=(spec.name, process.stdout, self._print_lock),
                             daemon=True).start()
            self._say(f"started {spec.name} (pid {process.pid}): {' '.join(node_command(spec))}")

    def wait(self) -> int:
        """Block until Ctrl-C or a node exits; returns the stack's exit status."""
        while not self._stop_requested.is_set():
            for node in self.nodes:
                code = node.process.poll()
                if code is None:
                    continue
                if node.spec.required and code == 0:
                    self._say(f"{node.spec.name} finished: stopping the stack")
                    return 0
                self._say(f"{node.spec.name} exited with status {code}: stopping the stack")
                return code or 1
            time.sleep(0.1)
        return 0

    def stop(self) -> None:
        # All nodes are interrupted before waiting on any, so they shut down in parallel within
        # one shared deadline rather than one timeout each.
        for node in self.nodes:
            interrupt(node.process)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in self.nodes:
            if wait_or_kill(node.process, timeout=max(0.1, deadline - time.monotonic())):
                self._say(f"{node.spec.name} ignored SIGINT for {STOP_TIMEOUT_S:.0f} s: killed it")
        self._say("all nodes stopped")


POLICY_SET = "policy_set"   # the launch argument (stack.yaml) that carries policy overrides to the node


def launch_arguments(stack: Stack, words: Sequence[str]) -> dict[str, str]:
    """name:=value launch arguments and policy.KEY=VALUE overrides -> the stack's argument values
    (the overrides joined into policy_set, the policy node's parameter)."""
    pairs = [word for word in words if ":=" in word]
    for pair in pairs:
        if pair.startswith(f"{POLICY_SET}:="):
            settings = pair.partition(":=")[2].split()
            raise OverrideError(f"{pair!r} is ros2 launch's spelling; ibc-ros takes the settings as words: "
                                f"{' '.join('policy.' + s for s in settings) or 'policy.KEY=VALUE'}")
    overrides = parse_overrides([word for word in words if ":=" not in word], POLICY)["policy"]
    if overrides and POLICY_SET not in {argument.name for argument in stack.arguments}:
        raise OverrideError(f"stack {stack.name} runs no policy: nothing takes "
                            f"{' '.join('policy.' + override for override in overrides)}")
    arguments = parse_arguments(stack, pairs)
    if overrides:
        arguments[POLICY_SET] = " ".join(overrides)
    return arguments


def launch(stack_name: str, words: list[str], print_only: bool) -> int:
    stack = load_stack(stack_name)
    specs = resolve(stack, launch_arguments(stack, words))
    if print_only:
        for spec in specs:
            print(" ".join(node_command(spec)))
        return 0
    supervisor = Supervisor(specs)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    try:
        supervisor.start()
        return supervisor.wait()
    finally:
        supervisor.stop()


def list_arguments(stack_name: str) -> int:
    stack = load_stack(stack_name)
    print(f"{stack.name}: {stack.description}")
    for arg in stack.arguments:
        if arg.name == POLICY_SET:
            print("  policy.KEY=VALUE  policy inference settings, e.g. policy.irvs.inverse_eta=2 "
                  "(ros2 launch: policy_set:=\"irvs.inverse_eta=2\")")
            continue
        choices = f" {{{', '.join(arg.choices)}}}" if arg.choices else ""
        kind = f" ({arg.type})" if arg.type != "str" else ""
        print(f"  {arg.name}:={arg.default}{choices}{kind}  {arg.description}")
    return 0


def _die_with_supervisor() -> None:
    """Runs in each node's child process before exec: if the supervisor itself is killed
    (SIGKILL, OOM), the kernel sends the node SIGTERM, so no node keeps driving the arm alone."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ibc-ros", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    launch_parser = commands.add_parser("launch", help="start a stack: ibc-ros launch real_push sim:=true",
                                        description=next(p for p in __doc__.split("\n\n") if p.startswith("Words:")))
    launch_parser.add_argument("stack")
    add_override_words(launch_parser, "launch arguments (ibc-ros args STACK lists them) and policy inference "
                                      "settings, e.g. sim:=true policy.irvs.inverse_eta=2",
                       old={"--policy-set": "policy.", "--set": "policy."}, metavar="name:=value | policy.KEY=VALUE")
    launch_parser.add_argument("--print", action="store_true", dest="print_only",
                               help="print the node command lines instead of starting them")
    args_parser = commands.add_parser("args", help="list a stack's launch arguments")
    args_parser.add_argument("stack")
    args = parse_command_line(parser, argv)
    try:
        if args.command == "launch":
            code = launch(args.stack, args.words, args.print_only)
        else:
            code = list_arguments(args.stack)
    except (StackError, OverrideError) as exc:
        parser.exit(2, f"ibc-ros: error: {exc}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
