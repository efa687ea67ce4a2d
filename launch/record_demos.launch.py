"""Record mouse demonstrations: camera + teleop + controller + driver + recorder (sim:=true swaps
the PyBullet sim node in for camera + driver).

    ros2 launch ibc_ros record_demos.launch.py [sim:=true] [output_dir:=~/demos] [robot_ip:=...]

The nodes, their params files and arguments come from the `record_demos` stack in
config/stack.yaml, the same description `ibc-ros launch record_demos ...` starts without a
ROS install (ibc_ros/bringup/stack.py resolves both).
"""
import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from ibc_ros.bringup.stack import load_stack, resolve

STACK = "record_demos"


def _nodes(context):
    stack = load_stack(STACK)
    arguments = {a.name: context.launch_configurations[a.name] for a in stack.arguments}
    return [Node(package="ibc_ros", executable=spec.executable, name=spec.name, output="screen",
                 parameters=([str(spec.params_file)] if spec.params_file else [])
                 + [{key: yaml.safe_load(value) for key, value in spec.parameters.items()}])
            for spec in resolve(stack, arguments)]


def generate_launch_description():
    stack = load_stack(STACK)
    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                      **({"choices": list(a.choices)} if a.choices else {}))
                for a in stack.arguments]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
