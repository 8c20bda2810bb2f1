"""Property-based tests: whatever a store holds, wan-analyze renders or says one line; nothing else.

Hypothesis generates edits of a small synthetic store (``small_spec()``): attribute values
of random JSON types and sizes, random float16 values in attention and padding chunks
(rewritten through zarr, so their checksums stay valid), random shapes and random values
of any key in an array's zarr.json, random bytes in chunk files. For every edited store:

* ``wan-analyze STORE -o OUT --quiet --outputs report,words`` and ``wan-analyze info STORE``
  either exit 0 (the analysis having written its report) or exit 1 with exactly one line
  starting "Error: "; never a traceback, never another exit code;
* nothing is written, changed or removed outside the output directory (the store included),
  and nothing inside it leaves it.

Where the edit makes the store unusable beyond doubt, the test also demands the error: a
changed shape, a changed chunk file (crc32c), a value that no probability can be.

Each example works on a fresh copy of the store in its own temporary folder, which is also
the working directory while the command runs. ``derandomize=True``: the examples are the
same on every run, so the suite is not flaky; raise ``max_examples`` locally to search more.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from analyzer_cli_helpers import run
from corrupt import (
    ATTENTION,
    PADDING,
    TOKEN_IDS,
    ARRAY_PATHS,
    INFO_READS,
    SPECS,
    assert_confined,
    build_pristine,
    fresh_copy,
    metadata_path,
    read_metadata,
    snapshot,
    write_metadata,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from analyzer import integrity
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey, RecordOption

OUTPUTS = "report,words"  # the streaming pass over every step and layer, and every video frame

SETTINGS = {"deadline": None, "derandomize": True, "database": None, "print_blob": True,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.large_base_example]}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_pristine(tmp_path_factory.mktemp("pristine"))


@contextlib.contextmanager
def workspace(pristine: Path):
    """A temporary folder holding a fresh copy of the store, and the working directory meanwhile."""
    with tempfile.TemporaryDirectory(prefix="wan-hostile-") as folder:
        work = Path(folder)
        store = fresh_copy(pristine, work)
        previous = os.getcwd()
        os.chdir(work)
        try:
            yield work, store
        finally:
            os.chdir(previous)


def run_both(work: Path, store: Path):
    """Analysis and info on the store; check the contract of each; return both results."""
    out = work / "out"
    before = snapshot(work)
    analysis = run(store, "-o", out, "--quiet", "--outputs", OUTPUTS)
    info = run("info", store)
    for result, what in ((analysis, "analysis"), (info, "info")):
        assert_contract(result, what)
        if currently_in_test_context():  # --hypothesis-show-statistics: how often each way
            event(f"{what} exit {result.exit_code}")
    if analysis.exit_code == 0:
        assert (out / "attention_analysis_report.md").is_file(), analysis.output
    assert snapshot(work, exclude=(out,)) == before, "files outside the output directory changed"
    if out.exists():
        assert_confined(out)
    return analysis, info


def assert_contract(result, what: str) -> None:
    """Exit 0 without an error line, or exit 1 with exactly one 'Error: ' line; never a traceback."""
    shown = f"{what} exited {result.exit_code}:\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), f"{shown}\n{result.exception!r}"
    assert "Traceback" not in result.output, shown
    lines = result.output.strip().splitlines()
    if result.exit_code == 0:
        assert not any(line.startswith("Error") for line in lines), shown
    else:
        assert result.exit_code == 1, shown
        assert len(lines) == 1 and lines[0].startswith("Error: "), shown


def error_line(result) -> str:
    assert result.exit_code == 1, f"expected an error, got exit {result.exit_code}:\n{result.output}"
    return result.output.strip()


# --- strategies -------------------------------------------------------------------------------------
_awkward = st.sampled_from([0, -1, 1, 10**9, 2**31, 2**63, -(2**63), 10**100, 1e308, -0.0, "", "cond", "uncond",
                            "complete", "1.1", "NaN", "\x1b[2J", "../x", "a/b", "\x00", "\u2581"])
json_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
               | st.text(max_size=40) | _awkward)
# big values: a long string, a long list (sizes a store might be given to make a reader slow or large)
json_big = (st.integers(0, 200_000).map(lambda n: "x" * n)
            | st.integers(0, 20_000).map(lambda n: list(range(n)))
            | st.integers(0, 2_000).map(lambda n: {str(i): i for i in range(n)}))
json_values = st.recursive(json_leaves | json_big,
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=5),
                           max_leaves=12)

# Where an attribute edit lands: (group, path inside its attributes).
ROOT_KEYS = [*schema.REQUIRED_ROOT_ATTRS, Attr.STATUS, Attr.ERROR, Attr.INTERRUPTED_BY, Attr.OWNER, Attr.NOTES,
             Attr.TIMING, Attr.ENDED_AT, Attr.COMPRESSION, Attr.EXPERT_BOUNDARY, Attr.GUIDANCE_SCALE_2,
             Attr.NUM_FRAMES_REQUESTED, Attr.SCHEDULER_CONFIG, Attr.TRANSFORMER_CONFIG]
NESTED = ([(Attr.LATENT_GRID, k) for k in (GridKey.FRAMES, GridKey.HEIGHT, GridKey.WIDTH, GridKey.PATCH_SIZE,
                                           GridKey.VAE_SCALE_TEMPORAL, GridKey.VAE_SCALE_SPATIAL,
                                           GridKey.PIXEL_FRAMES)]
          + [(Attr.RECORD_OPTIONS, k) for k in (RecordOption.HEADS, RecordOption.LAYERS, RecordOption.LAYER_REDUCTION,
                                                RecordOption.BRANCHES, RecordOption.STEP_STRIDE,
                                                RecordOption.MANTISSA_BITS, RecordOption.PRECISION)]
          + [(Attr.LATENT_GRID, GridKey.PIXEL_FRAMES, 1), (Attr.VERSIONS, "wan_attention")])
BRANCH_PATHS = ([(k,) for k in (BranchAttr.PROMPT, BranchAttr.TOKENS, BranchAttr.WORDS, BranchAttr.NUM_KEYS,
                                BranchAttr.NUM_REAL_TOKENS, BranchAttr.PAD_KEYS_COLLAPSED)]
                + [(BranchAttr.TOKENS, 0), (BranchAttr.TOKENS, 5), (BranchAttr.WORDS, 0), (BranchAttr.WORDS, 0, "tokens"),
                   (BranchAttr.WORDS, 0, "tokens", 0), (BranchAttr.WORDS, 1, "text"), (BranchAttr.WORDS, 2, "special"),
                   (BranchAttr.WORDS, 1, "punctuation")])
attribute_targets = (st.sampled_from([("", (k,)) for k in ROOT_KEYS] + [("", p) for p in NESTED])
                     | st.sampled_from([("cond", p) for p in BRANCH_PATHS])
                     | st.tuples(st.sampled_from(["", "cond"]), st.text(max_size=10).map(lambda k: (k,))))


def set_path(attributes: dict, path: tuple, value) -> None:
    """Set ``attributes[path[0]][path[1]]... = value``; where the path does not exist, set the first key."""
    container = attributes
    for part in path[:-1]:
        try:
            container = container[part]
        except (KeyError, IndexError, TypeError):
            attributes[path[0]] = value
            return
    try:
        container[path[-1]] = value
    except (IndexError, TypeError):
        attributes[path[0]] = value


# --- 1. attributes of random JSON types and sizes -------------------------------------------------
@settings(max_examples=50, **SETTINGS)
@given(edits=st.lists(st.tuples(attribute_targets, json_values), min_size=1, max_size=3))
def test_random_attribute_values(pristine, edits):
    with workspace(pristine) as (work, store):
        for (node, path), value in edits:
            meta = read_metadata(store, node)
            set_path(meta["attributes"], path, value)
            write_metadata(store, node, meta)
        run_both(work, store)


# --- 2. float16 values of every kind in attention and padding chunks, with valid checksums ------------
HALF_SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, 65504.0, -65504.0, 2.0**-24, -(2.0**-24), 0.5,
                1.0 + 2.0**-10, 1.0 + 2.0**-9, 1.01, 2.0, -1e-3]
half_values = st.floats(width=16) | st.sampled_from(HALF_SPECIAL)


@pytest.fixture(scope="module")
def pristine_row_error(pristine):
    """The largest |row sum - 1| of the pristine store (float16 rounding of its synthetic values)."""
    import zarr

    root = zarr.open_group(pristine, mode="r")
    att = np.asarray(root[ATTENTION][:], dtype=np.float64)
    pad = np.asarray(root[PADDING][:], dtype=np.float64)
    return float(np.abs(att.sum(axis=-1) + pad - 1.0).max())


@settings(max_examples=50, **SETTINGS)
@given(which=st.sampled_from([ATTENTION, PADDING]), step=st.integers(0, 2), layer=st.integers(0, 1),
       writes=st.lists(st.tuples(st.integers(0, 10**6), half_values), min_size=1, max_size=12),
       fill=st.none() | half_values)
def test_random_float16_values(pristine, pristine_row_error, which, step, layer, writes, fill):
    import zarr

    with workspace(pristine) as (work, store):
        root = zarr.open_group(store, mode="r+")
        array = root[which]
        chunk = np.array(array[step, layer], dtype=np.float16)
        flat = chunk.reshape(-1)
        if fill is not None:
            flat[:] = np.float16(fill)
        for position, value in writes:
            flat[position % flat.size] = np.float16(value)
        array[step, layer] = chunk  # through zarr: a new, valid checksum

        att = np.asarray(root[ATTENTION][step, layer], dtype=np.float64)
        pad = np.asarray(root[PADDING][step, layer], dtype=np.float64)
        analysis, _ = run_both(work, store)

        # What no analysis may draw. With one (step, layer) chunk edited, the layer mean of a row
        # moves by the edited row's error over the number of layers; beyond the tolerance, it fails.
        n_layers = root[ATTENTION].shape[1]
        tolerance = integrity.row_sum_tolerance(integrity.FLOAT16_MANTISSA_BITS, root[ATTENTION].shape[-1])
        edited = chunk.astype(np.float64)
        not_probability = bool(np.isnan(edited).any() or np.isinf(edited).any() or (edited < 0).any())
        rows = att.sum(axis=-1) + pad
        with np.errstate(invalid="ignore"):
            off = bool((np.abs(rows - 1.0) > n_layers * tolerance + pristine_row_error + 1e-4).any())
        event(f"values no analysis may draw: {not_probability or off}")
        if not_probability or off:
            line = error_line(analysis)
            assert which in line and f"at step {step}" in line, line


weights = st.floats(0.0, 1.0) | st.sampled_from([0.0, 2.0**-24, 1e-4, 1.0])


@settings(max_examples=20, **SETTINGS)
@given(step=st.integers(0, 2), layer=st.integers(0, 1),
       rows=st.lists(st.tuples(st.integers(0, 10**6), st.lists(weights, min_size=7, max_size=7)), min_size=1,
                     max_size=8))
def test_valid_probabilities_always_render(pristine, step, layer, rows):
    """The converse: any distribution over the tokens and the pad keys, rounded to float16, is drawn (exit 0)."""
    import zarr

    with workspace(pristine) as (work, store):
        root = zarr.open_group(store, mode="r+")
        att = np.array(root[ATTENTION][step, layer], dtype=np.float16)
        pad = np.array(root[PADDING][step, layer], dtype=np.float16)
        flat_att, flat_pad = att.reshape(-1, att.shape[-1]), pad.reshape(-1)
        for query, raw in rows:
            w = np.asarray(raw, dtype=np.float64)
            w = w / w.sum() if w.sum() > 0 else np.eye(7)[6]
            flat_att[query % flat_pad.size] = w[:6].astype(np.float16)
            flat_pad[query % flat_pad.size] = np.float16(w[6])
        tolerance = integrity.row_sum_tolerance(integrity.FLOAT16_MANTISSA_BITS, att.shape[-1])
        sums = flat_att.astype(np.float64).sum(axis=1) + flat_pad.astype(np.float64)
        assert np.abs(sums - 1.0).max() < tolerance  # float16 rounding of a distribution stays inside
        root[ATTENTION][step, layer] = att
        root[PADDING][step, layer] = pad
        analysis, info = run_both(work, store)
        assert analysis.exit_code == 0 and info.exit_code == 0, analysis.output


def test_negative_zero_attention_is_drawn_or_named(pristine):
    import zarr

    with workspace(pristine) as (work, store):
        array = zarr.open_group(store, mode="r+")[ATTENTION]
        chunk = np.array(array[1, 0], dtype=np.float16)
        moved = float(chunk[0, 0, 0, 0])
        chunk[0, 0, 0, 1] = np.float16(float(chunk[0, 0, 0, 1]) + moved)  # the row still sums to 1
        chunk[0, 0, 0, 0] = np.float16(-0.0)
        array[1, 0] = chunk
        analysis, _ = run_both(work, store)
        if analysis.exit_code != 0:  # refusing it is fine, as long as the error says where and why
            line = error_line(analysis)
            assert "frame 0, y 0, x 0" in line and "though no single layer does" not in line, line


# --- 3. random shapes (and chunk shapes) in an array's zarr.json ------------------------------------------
dimension = st.integers(-3, 40) | st.sampled_from([0, 10**9, 2**31, 2**63 - 1, 2**64, 10**30])


@settings(max_examples=50, **SETTINGS)
@given(array=st.sampled_from(ARRAY_PATHS), shape=st.lists(dimension, max_size=7),
       chunks=st.none() | st.lists(dimension, max_size=7))
def test_random_shapes(pristine, array, shape, chunks):
    with workspace(pristine) as (work, store):
        meta = read_metadata(store, array)
        original = list(meta["shape"])
        meta["shape"] = shape
        if chunks is not None:
            meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
        write_metadata(store, array, meta)
        analysis, info = run_both(work, store)
        if shape != original:  # every shape is checked against the others and the attributes, on open
            error_line(analysis)
            error_line(info)


# --- 4. random values of any key of an array's or a group's zarr.json ------------------------------------
ARRAY_KEYS = ["shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs", "dimension_names",
              "zarr_format", "node_type", "attributes", "storage_transformers", "extra-key"]


@settings(max_examples=30, **SETTINGS)
@given(node=st.sampled_from([*ARRAY_PATHS, "", "cond", "steps", "layers"]), key=st.sampled_from(ARRAY_KEYS),
       value=json_values, remove=st.booleans())
def test_random_metadata_values(pristine, node, key, value, remove):
    with workspace(pristine) as (work, store):
        meta = read_metadata(store, node)
        if remove:
            meta.pop(key, None)
        else:
            meta[key] = value
        metadata_path(store, node).write_text(json.dumps(meta))
        run_both(work, store)


# --- 5. random bytes in chunk files (and in zarr.json files) ---------------------------------------------
def chunk_files(store: Path) -> list[str]:
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")


@settings(max_examples=40, **SETTINGS)
@given(data=st.data(), how=st.sampled_from(["replace", "overwrite", "append", "truncate"]),
       payload=st.binary(max_size=300), offset=st.integers(0, 10**4))
def test_random_bytes_in_chunks(pristine, data, how, payload, offset):
    key = data.draw(st.sampled_from(chunk_files(pristine)), label="chunk")
    with workspace(pristine) as (work, store):
        path = store / key
        original = path.read_bytes()
        at = offset % (len(original) + 1)
        changed = {"replace": payload,
                   "overwrite": original[:at] + payload + original[at + len(payload):],
                   "append": original + (payload or b"\x00"),
                   "truncate": original[:at]}[how]
        path.write_bytes(changed)
        analysis, info = run_both(work, store)
        array = next((a for a in ARRAY_PATHS if key.startswith(a + "/c/")), None)
        if array is None:  # a coordinate (schema 1.3): labels for xarray, which the analysis does not read
            if changed != original:
                from shared.check import check_store

                assert any(key.startswith(p.array + "/") for p in check_store(store).problems), key
            return
        if changed != original and array != TOKEN_IDS:  # crc32c: a changed chunk never reads as valid
            assert array in error_line(analysis)
            if array in INFO_READS:
                assert array in error_line(info)


@settings(max_examples=20, **SETTINGS)
@given(node=st.sampled_from([*ARRAY_PATHS, "", "cond", "steps", "layers"]), payload=st.binary(max_size=200),
       keep=st.integers(0, 4000))
def test_random_bytes_in_metadata(pristine, node, payload, keep):
    with workspace(pristine) as (work, store):
        path = metadata_path(store, node)
        path.write_bytes(path.read_bytes()[:keep] + payload)
        run_both(work, store)


def test_strategies_cover_every_array():
    assert set(ARRAY_PATHS) == set(SPECS) and len(ARRAY_PATHS) == 14
