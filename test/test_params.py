"""One source of truth for parameters: config/flm.yaml sets exactly the declared parameters of each node."""
import yaml

from conftest import ROOT
from flm_ros import params as P


def test_config_file_matches_the_parameter_tables():
    cfg = yaml.safe_load((ROOT / 'config' / 'flm.yaml').read_text())
    common = set(cfg['/**']['ros__parameters'])
    localizer = set(cfg['flm_localizer']['ros__parameters'])
    assert common == {p.name for p in P.COMMON}
    assert localizer == {p.name for p in P.LOCALIZER}
    for table, values in ((P.COMMON, cfg['/**']['ros__parameters']),
                          (P.LOCALIZER, cfg['flm_localizer']['ros__parameters'])):
        for p in table:
            assert p.description, p.name
            assert type(values[p.name]) is type(p.default) or isinstance(p.default, float), p.name
