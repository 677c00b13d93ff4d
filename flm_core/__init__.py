"""flm_core: the Foundation Localization Model library (no ROS imports).

Modules: ``site`` (site files), ``timebuffer`` (multi-sensor time window), ``geometry`` (SE(2)/SE(3) helpers),
``datagen`` (procedural scenarios), ``model`` / ``train`` (the FLM), ``estimation`` (filter and baselines),
``evaluation`` (trajectory metrics). Units are SI, frames follow REP-103/REP-105.
"""
__version__ = '0.1.0'
