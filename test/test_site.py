"""Site files: round trip through map_server maps and YAML, and errors that name the key."""
import numpy as np
import pytest
import yaml

from flm_core.site import Anchor, OccupancyMap, Site, SiteError, load_map_yaml, load_site, save_site


def _site():
    grid = np.zeros((40, 60), dtype=np.int8)
    grid[0, :] = grid[-1, :] = 100
    grid[:, 0] = grid[:, -1] = 100
    grid[10:15, 30:33] = -1
    m = OccupancyMap(grid=grid, resolution=0.05, origin=np.array([-1.0, -0.5, 0.0]))
    anchors = (Anchor('a0', np.array([0.0, 0.0, 2.5])), Anchor('a1', np.array([2.9, 0.0, 2.5]), bias=0.1),
               Anchor('a2', np.array([1.5, 1.9, 2.4])))
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    return Site(name='test_building', map=m, anchors=anchors, point_map=pts)


def test_round_trip(tmp_path):
    s = _site()
    path = save_site(s, tmp_path)
    back = load_site(path)
    assert back.name == 'test_building' and back.frame_id == 'map'
    np.testing.assert_array_equal(back.map.grid, s.map.grid)
    assert back.map.resolution == pytest.approx(0.05)
    np.testing.assert_allclose(back.map.origin, s.map.origin)
    assert [a.id for a in back.anchors] == ['a0', 'a1', 'a2']
    np.testing.assert_allclose(back.anchor_positions(), s.anchor_positions())
    assert back.anchors[1].bias == pytest.approx(0.1)
    np.testing.assert_allclose(back.point_map, s.point_map)


def test_cell_world_conventions_row0_is_lowest_y():
    s = _site()
    m = s.map
    # the cell containing the map origin corner is (0, 0)
    np.testing.assert_array_equal(m.world_to_cell(np.array([-0.99, -0.49])), [0, 0])
    # the top row (highest y) of the grid
    np.testing.assert_array_equal(m.world_to_cell(np.array([-0.99, -0.5 + 40 * 0.05 - 0.01])), [0, 39])
    np.testing.assert_allclose(m.cell_to_world(np.array([0, 0])), [-0.975, -0.475])
    assert len(m.occupied_points()) == int(m.occupied().sum())


def test_map_server_image_orientation(tmp_path):
    """An image whose top-left pixel is black is occupied at the top-left (max y) in the map."""
    from PIL import Image
    img = np.full((10, 20), 254, dtype=np.uint8)
    img[0, 0] = 0
    Image.fromarray(img).save(tmp_path / 'm.pgm')
    (tmp_path / 'm.yaml').write_text(yaml.safe_dump({'image': 'm.pgm', 'resolution': 0.1, 'origin': [0, 0, 0]}))
    m = load_map_yaml(tmp_path / 'm.yaml')
    assert m.grid[9, 0] == 100 and m.grid[0, 0] == 0


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.pop('anchors') and d.pop('map') and d.pop('point_map'), 'at least one'),
    (lambda d: d['anchors'][0].pop('position'), "anchors\\[0\\]: missing key 'position'"),
    (lambda d: d['anchors'][1].update(position=[1, 2]), "anchors\\[1\\]: key 'position' must be a list of 3"),
    (lambda d: d['anchors'][1].update(id='a0'), 'duplicate anchor id'),
    (lambda d: d['anchors'][2].update(position=[1, 'x', 2]), "key 'position' must be a number"),
    (lambda d: d.update(anchors={'a': 1}), "key 'anchors' must be a list"),
    (lambda d: d.update(colour='red'), 'unknown key'),
    (lambda d: d.update(map='missing.yaml'), 'missing.yaml: file not found'),
    (lambda d: d.update(point_map='pts.txt'), 'unsupported format'),
])
def test_malformed_site_names_the_key(tmp_path, mutate, message):
    path = save_site(_site(), tmp_path)
    d = yaml.safe_load(path.read_text())
    mutate(d)
    path.write_text(yaml.safe_dump(d))
    (tmp_path / 'pts.txt').write_text('1 2 3')
    with pytest.raises(SiteError, match=message):
        load_site(path)


@pytest.mark.parametrize('key, value, message', [
    ('resolution', -0.05, "'resolution' must be a positive"),
    ('origin', [0, 0], "'origin' must be a list of 3"),
    ('mode', 'fancy', "'mode' must be one of"),
    ('free_thresh', 0.9, 'free_thresh < occupied_thresh'),
])
def test_malformed_map_yaml_names_the_key(tmp_path, key, value, message):
    path = save_site(_site(), tmp_path)
    mp = tmp_path / 'site_map.yaml'
    d = yaml.safe_load(mp.read_text())
    d[key] = value
    mp.write_text(yaml.safe_dump(d))
    with pytest.raises(SiteError, match=message):
        load_site(path)


def test_not_yaml_and_not_a_mapping(tmp_path):
    p = tmp_path / 's.yaml'
    p.write_text('anchors: [unclosed')
    with pytest.raises(SiteError, match='not valid YAML'):
        load_site(p)
    p.write_text('- 1\n- 2\n')
    with pytest.raises(SiteError, match='mapping'):
        load_site(p)


def test_occupancy_at_points_and_free_at_points():
    """A point's cell value (-1 off the grid, as unknown) and whether it is free floor, as free() says for the cell;
    a rotated origin is followed."""
    grid = np.array([[0, 30, -1], [100, 10, 25]], np.int8)                 # row 0 = lowest y
    m = OccupancyMap(grid, 0.5, np.array([1.0, 2.0, 0.0]))
    xy = np.array([[1.2, 2.2], [1.7, 2.2], [2.2, 2.2], [1.2, 2.7], [1.7, 2.7], [2.2, 2.7], [0.9, 2.2], [1.2, 3.1]])
    np.testing.assert_array_equal(m.at(xy), [0, 30, -1, 100, 10, 25, -1, -1])
    np.testing.assert_array_equal(m.free_at(xy), [True, False, False, False, True, True, False, False])
    cells = m.world_to_cell(xy[:6])
    np.testing.assert_array_equal(m.free_at(xy[:6]), m.free()[cells[:, 1], cells[:, 0]])
    turned = OccupancyMap(grid, 0.5, np.array([0.0, 0.0, np.pi / 2]))     # columns along +y, rows along -x
    assert int(turned.at(np.array([-0.7, 0.2]))) == 100 and int(turned.at(np.array([-0.2, 0.7]))) == 30
