"""The colour maps kept as tables are matplotlib's, entry for entry."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from analyzer import colour_tables


@pytest.mark.parametrize("name", colour_tables.NAMES)
def test_each_table_is_the_matplotlib_colour_map_rounded_to_8_bits(name):
    expected = np.round(colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    table = colour_tables.lut(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert np.array_equal(table, expected)
    assert not table.flags.writeable


def test_the_pictures_colour_maps_are_kept():
    from analyzer import heatmaps, overlays

    assert {heatmaps.COLORMAP, overlays.HEAT_COLORMAP} <= set(colour_tables.NAMES)
