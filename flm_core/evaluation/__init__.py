"""Evaluation of localization results (no ROS imports): trajectory metrics in :mod:`.metrics`."""
from .metrics import (TrajectoryErrors, absolute_errors, ate_rmse, chi2_bounds, failure_rate, nees, pose_nees, rpe,
                      summarize, yaw_rmse)

__all__ = ['TrajectoryErrors', 'absolute_errors', 'ate_rmse', 'chi2_bounds', 'failure_rate', 'nees', 'pose_nees',
           'rpe', 'summarize', 'yaw_rmse']
