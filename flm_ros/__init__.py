"""flm_ros: the ROS 2 layer of FLM-ROS (message conversions, TF, nodes, bring-up)."""
__version__ = '0.1.0'
