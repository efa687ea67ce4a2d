"""ros2 launch ibc_ros real_push.launch.py sim:=true|false policy:=CKPT robot_ip:=IP camera:=realsense|v4l2

The nodes, their parameter files, inline parameters and which launch arguments select them all
come from config/stack.yaml (stack "real_push"), resolved by ibc_ros.bringup.stack - the same
description and code `ibc-ros launch real_push ...` uses, so both start identical stacks.
`ros2 launch ibc_ros real_push.launch.py --show-args` lists the arguments.
Any node exiting ends the launch (the sim node exits after episodes:=N).
"""
import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ibc_ros.bringup.stack import load_stack, parse_arguments, resolve

STACK = "real_push"


def _nodes(context):
    stack = load_stack(STACK)
    pairs = [f"{arg.name}:={LaunchConfiguration(arg.name).perform(context)}" for arg in stack.arguments]
    actions = []
    for spec in resolve(stack, parse_arguments(stack, pairs)):
        parameters = [str(spec.params_file)] if spec.params_file else []
        if spec.parameters:
            # The same typing as `-p name:=value` on the command line: values are YAML.
            parameters.append({key: yaml.safe_load(value) for key, value in spec.parameters.items()})
        actions.append(Node(package="ibc_ros", executable=spec.executable, name=spec.name,
                            parameters=parameters, output="screen", emulate_tty=True,
                            on_exit=Shutdown(reason=f"{spec.name} exited")))
    return actions


def generate_launch_description():
    stack = load_stack(STACK)
    arguments = [DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description,
                                       **({"choices": list(arg.choices)} if arg.choices else {}))
                 for arg in stack.arguments]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
