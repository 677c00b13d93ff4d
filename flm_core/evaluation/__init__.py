"""Evaluation of localization results (no ROS imports): error statistics of trajectories against ground truth
(:mod:`.trajectory`, evo-compatible), consistency of their covariances (:mod:`.metrics`), reports (:mod:`.report`)."""
