"""One source of truth for parameters: config/flm.yaml sets exactly the declared parameters of each node."""
import yaml

from conftest import ROOT
from flm_ros import params as P


def test_config_file_matches_the_parameter_tables():
    cfg = yaml.safe_load((ROOT / 'config' / 'flm.yaml').read_text())
    assert list(cfg) == ['/**'], 'only wildcard entries: node-specific ones would outrank launch overrides'
    values = cfg['/**']['ros__parameters']
    assert set(values) == {p.name for p in P.COMMON + P.LOCALIZER}
    for p in P.COMMON + P.LOCALIZER:
        assert p.description, p.name
        assert type(values[p.name]) is type(p.default) or isinstance(p.default, float), p.name
