"""ROS-free motion control shared by the sim env and the ROS controller node (contract #2)."""
from ibc_ros.control.cartesian_controller import CartesianController
from ibc_ros.control.config import ControllerConfig, IKConfig, WorkspaceConfig, load_controller_config
from ibc_ros.control.envelope import SafetyEnvelope
from ibc_ros.control.ik import IKError, XArmIK
from ibc_ros.control.interpolation import SetpointInterpolator

__all__ = ["CartesianController", "ControllerConfig", "IKConfig", "WorkspaceConfig", "load_controller_config",
           "SafetyEnvelope", "IKError", "XArmIK", "SetpointInterpolator"]
