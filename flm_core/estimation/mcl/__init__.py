"""Monte Carlo localization as nav2_amcl does it, in numpy (Apache-2.0; the algorithm learnt from nav2_amcl's
sources and documentation, no code of it copied).

* :mod:`.params` - Nav2's parameter defaults, a tuned set and why, parameter checks;
* :mod:`.likelihood_field` - the map's distance field and the likelihood-field beam weights;
* :mod:`.motion` - the differential and omnidirectional odometry motion models; sideways-motion detection;
* :mod:`.particle_filter` - the particle set: Gaussian start, weighting, KLD resampling, clusters and statistics;
* :mod:`.node` - the AMCL node's logic (update thresholds, scan conversion, initial pose, map->odom) behind the
  project's Baseline interface, for any filter;
* :mod:`.baseline` - :class:`LikelihoodFieldMcl`, Nav2's default configuration ('amcl-lf').

Nav2's beam model through the GPL ``amcl`` bindings is not here: it lives in ``bench/amcl_beam.py``, outside the
installed packages (nothing under flm_core or flm_ros imports the ``amcl`` package).
"""
from .baseline import LikelihoodFieldMcl
from .node import AmclNode, ScanData, convert_scan
from .params import NAV2_DEFAULTS, ROBOTS, TUNED, TUNING_NOTES

__all__ = ['AmclNode', 'LikelihoodFieldMcl', 'NAV2_DEFAULTS', 'ROBOTS', 'ScanData', 'TUNED', 'TUNING_NOTES',
           'convert_scan']
