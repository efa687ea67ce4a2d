"""ROS-free motion control shared by the sim env and the ROS controller node (contract #2)."""
from cell.control.arm_limits import ArmLimits, ArmLimitsConfig, TipBoxConfig, load_arm_limits
from cell.control.cartesian_controller import CartesianController, EStopLatched, StartRefused
from cell.control.config import (ControllerConfig, IKConfig, WorkspaceConfig, controller_config_path,
                                 load_controller_config)
from cell.control.envelope import SafetyEnvelope
from cell.control.ik import IKError, XArmIK
from cell.control.interpolation import SetpointInterpolator

__all__ = ["ArmLimits", "ArmLimitsConfig", "TipBoxConfig", "load_arm_limits", "CartesianController", "EStopLatched", "StartRefused", "ControllerConfig", "IKConfig", "WorkspaceConfig", "controller_config_path", "load_controller_config",
           "SafetyEnvelope", "IKError", "XArmIK", "SetpointInterpolator"]
