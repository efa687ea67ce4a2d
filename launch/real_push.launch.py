"""ros2 launch ibc_ros real_push.launch.py sim:=true|false policy:=CKPT robot_ip:=IP camera:=realsense|v4l2

Stack "real_push" of config/stack.yaml (camera + policy + controller + xArm driver; sim:=true
swaps the PyBullet sim node in for camera + driver), built by ibc_ros.ros2_launch -
`ibc-ros launch real_push ...` starts the same nodes without a ROS install.
`ros2 launch ibc_ros real_push.launch.py --show-args` lists the arguments.
"""
from ibc_ros.ros2_launch import stack_launch_description


def generate_launch_description():
    return stack_launch_description("real_push")
