"""State estimation and classical baselines (no ROS imports).

* :mod:`.eskf` - the planar error-state Kalman filter (IMU/odometry propagation, model and classical corrections,
  Mahalanobis gating, delayed measurements, reset);
* :mod:`.frames` - ``map -> odom`` from the filter's ``map -> base_link`` and odometry's ``odom -> base_link``;
* :mod:`.multilateration` - robust UWB multilateration (Gauss-Newton, NLOS rejection);
* :mod:`.icp` - scan-to-map registration, 2D scans against an occupancy map and 3D clouds against a point map;
* :mod:`.baselines` - the common baseline interface and the UWB / lidar-ICP / odometry baselines;
* :mod:`.mcl` - Nav2's AMCL (likelihood field, KLD sampling) in numpy; the GPL beam-model bindings are in bench/;
* :mod:`.solver` - a robust weighted Gauss-Newton pose solver (scans against the map's distance field, points
  against a point map, UWB ranges with biases, a pose prior) whose covariance is the inverse information;
* :mod:`.refine` - ``Refined(source)``: a pose source that solves the inner source's pose against the window.
"""
from .eskf import Eskf, EskfConfig, UpdateResult

__all__ = ['Eskf', 'EskfConfig', 'UpdateResult']
