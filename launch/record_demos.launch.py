"""ros2 launch ibc_ros record_demos.launch.py [sim:=true] [output_dir:=~/demos] [robot_ip:=IP]

Stack "record_demos" of config/stack.yaml: record mouse demonstrations with camera + teleop +
controller + xArm driver + recorder (sim:=true swaps the PyBullet sim node in for camera +
driver), built by ibc_ros.ros2_launch - `ibc-ros launch record_demos ...` starts the
same nodes without a ROS install.
`ros2 launch ibc_ros record_demos.launch.py --show-args` lists the arguments.
"""
from ibc_ros.ros2_launch import stack_launch_description


def generate_launch_description():
    return stack_launch_description("record_demos")
