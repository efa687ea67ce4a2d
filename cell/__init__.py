"""The robot cell without ROS: motion control and IK, the xArm6 and camera drivers, mouse-teleop
mapping, demonstration recording formats and the stack description. Imports ibc_core only;
sim and ibc_ros build on it (docs/ARCHITECTURE.md)."""
