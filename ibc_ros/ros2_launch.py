"""The `ros2 launch` description of a stack in config/stack.yaml: what every launch/*.launch.py
returns. The nodes, their parameter files, inline parameters and which launch arguments select
them come from the stack description, resolved by cell.stack - the same description
and code `ibc-ros launch STACK ...` uses, so both start identical stacks.

Only `ros2 launch` imports this module: launch and launch_ros come with a ROS 2 install and are
not on PyPI (tests/test_ros_bringup.py checks it statically)."""
from functools import partial

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from cell.stack import Stack, load_stack, parse_arguments, resolve


def stack_launch_description(stack_name: str) -> LaunchDescription:
    """One DeclareLaunchArgument per stack argument (`--show-args` lists them), then the nodes
    the given values select."""
    stack = load_stack(stack_name)
    arguments = [DeclareLaunchArgument(arg.name, default_value=arg.default,
                                       description=arg.description + (f" ({arg.type})" if arg.type != "str" else ""),
                                       **({"choices": list(arg.choices)} if arg.choices else {}))
                 for arg in stack.arguments]
    return LaunchDescription(arguments + [OpaqueFunction(function=partial(_nodes, stack=stack))])


def _nodes(context, stack: Stack) -> list:
    # The values pass the same validation as `ibc-ros launch` arguments (parse_arguments).
    pairs = [f"{arg.name}:={LaunchConfiguration(arg.name).perform(context)}" for arg in stack.arguments]
    actions = []
    for spec in resolve(stack, parse_arguments(stack, pairs)):
        parameters = [str(spec.params_file)] if spec.params_file else []
        if spec.parameters:
            # The same typing as `-p name:=value` on the command line: values are YAML.
            parameters.append({key: yaml.safe_load(value) for key, value in spec.parameters.items()})
        # Any node exiting ends the launch, as in `ibc-ros launch` (the sim node exits after episodes:=N).
        actions.append(Node(package="ibc_ros", executable=spec.executable, name=spec.name,
                            parameters=parameters, output="screen", emulate_tty=True,
                            on_exit=Shutdown(reason=f"{spec.name} exited")))
    return actions
