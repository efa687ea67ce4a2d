"""ROS-free motion control shared by the sim env and the ROS controller node (contract #2)."""
from ibc_ros.control.arm_limits import ArmLimits, ArmLimitsConfig, TipBoxConfig, load_arm_limits
from ibc_ros.control.cartesian_controller import CartesianController, EStopLatched
from ibc_ros.control.config import ControllerConfig, IKConfig, WorkspaceConfig, load_controller_config
from ibc_ros.control.envelope import SafetyEnvelope
from ibc_ros.control.ik import IKError, XArmIK
from ibc_ros.control.interpolation import SetpointInterpolator

__all__ = ["ArmLimits", "ArmLimitsConfig", "TipBoxConfig", "load_arm_limits", "CartesianController", "EStopLatched", "ControllerConfig", "IKConfig", "WorkspaceConfig", "load_controller_config",
           "SafetyEnvelope", "IKError", "XArmIK", "SetpointInterpolator"]
