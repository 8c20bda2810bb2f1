"""A corruption matrix: every kind of damage, to every kind of array, gives one `Error:` line.

The cases are generated below (array kinds x damage kinds) and each is applied to a fresh
copy of one synthetic store (``small_spec()``: 3 complete steps, 2 layers, a 4x4x6 grid,
6 tokens, 13 video frames all written). Then ``wan-analyze STORE -o OUT --quiet`` (and,
where the damage is something ``info`` reads, ``wan-analyze info STORE``) must exit 1
with exactly one line, starting "Error: ", that names what is wrong; never a traceback,
never a picture drawn from damaged data with exit 0, and never a file written outside
the output directory (the test's whole folder, the store included, is compared before
and after).

Damage that could hang a reader (a FIFO), exhaust memory (/dev/zero, a zip bomb, an
absurd shape) runs the command in a child process, with a timeout and an address-space
limit, so that a regression fails the test instead of stalling or swapping the suite.

Every array of schema 1.1 carries a crc32c checksum after compression, so any flipped
bit, truncation or emptied chunk file must be detected on read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from analyzer_cli_helpers import run
from corrupt import (
    ATTENTION,
    PADDING,
    TOKEN_IDS,
    ARRAY_PATHS,
    INFO_READS,
    PER_STEP_ARRAYS,
    SPECS,
    STEP_ARRAYS,
    VIDEO_FRAME,
    assert_confined,
    build_pristine,
    chunk_file,
    chunk_key,
    chunk_shape,
    edit_metadata,
    flip_bit,
    fresh_copy,
    read_metadata,
    run_subprocess,
    snapshot,
    truncate,
    zip_store,
)

from shared import schema
from shared.local_store import MAX_KEY_BYTES

VIDEO = schema.VIDEO.path
VIDEO_WRITTEN = schema.VIDEO_WRITTEN.path
LAYER_BLOCK = schema.LAYER_BLOCK.path

# Address space for the child processes of the memory-sensitive cases: a normal analysis of
# the synthetic store runs in well under 512 MiB; an allocation sized from a hostile shape does not.
MEMORY_LIMIT = 2**30
CHILD_TIMEOUT = 60

# A case's expectation for `info`: "ok" (exit 0), a tuple of fragments (one-line error),
# or None: info does not read what was damaged, so it may succeed or fail, but only with one line.
OK = "ok"
UNCHECKED = None


class AnyOf(tuple):
    """A fragment with alternatives: the error line must contain at least one of them."""


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[Path, Path], Path | None]  # (store, work folder) -> the location to analyse (None: the store)
    analyze: tuple | str  # fragments of the expected error line, or OK
    info: tuple | str | None = UNCHECKED
    child: bool = False  # run in a child process (timeout, memory limit) instead of in-process

    def param(self):
        return pytest.param(self, id=self.id)



# --- damage ----------------------------------------------------------------------------------------
def _in_chunk(array: str, action: Callable[[Path], object]):
    def damage(store: Path, work: Path):
        action(chunk_file(store, array))
    return damage


def _flip_at(where: str):
    offsets = {"first-byte": (0, 0), "middle-byte": (None, 3), "last-data-byte": (-5, 6), "checksum-byte": (-1, 7)}
    offset, bit = offsets[where]

    def action(path: Path):
        flip_bit(path, path.stat().st_size // 2 if offset is None else offset, bit)
    return action


def _metadata(node: str, edit: Callable[[dict], object]):
    def damage(store: Path, work: Path):
        edit_metadata(store, node, edit)
    return damage


def _set(key: str, value):
    def edit(meta: dict):
        meta[key] = value
    return edit


def _several(*damages):
    def damage(store: Path, work: Path):
        for d in damages:
            d(store, work)
    return damage


def _shape(node: str, shape: list[int], chunks: list[int] | None = None):
    def edit(meta: dict):
        meta["shape"] = shape
        if chunks is not None:
            meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
    return _metadata(node, edit)


def _attribute(node: str, key: str, value):
    return _metadata(node, lambda meta: meta["attributes"].__setitem__(key, value))


def _remove(relative: str):
    def damage(store: Path, work: Path):
        (store / relative).unlink()
    return damage


def _chunk_error(array: str) -> tuple:
    """What a read of the damaged chunk of ``array`` must say: the array, the chunk and where it is."""
    fragments = [f"cannot read {array} chunk {chunk_key(array)}"]
    if array in PER_STEP_ARRAYS:
        fragments.append("at step 1 (branch cond)")
    if array == VIDEO:
        fragments.append(f"frame {VIDEO_FRAME}")
    return tuple(fragments)


# --- 1. bit flips, truncation, empty and deleted chunks -------------------------------------------
FLIP_POSITIONS = ("first-byte", "middle-byte", "last-data-byte", "checksum-byte")


def _chunk_damage_cases():
    for array in ARRAY_PATHS:
        checksum = (*_chunk_error(array), "checksum")
        info = checksum if array in INFO_READS else UNCHECKED
        for where in FLIP_POSITIONS:
            yield Case(f"flip-{where}-{array}", _in_chunk(array, _flip_at(where)), checksum, info)
        yield Case(f"truncated-{array}", _in_chunk(array, truncate), checksum, info)
        yield Case(f"empty-{array}", _in_chunk(array, lambda p: p.write_bytes(b"")), checksum, info)


def _deleted(array: str):
    return _in_chunk(array, Path.unlink)


# What a deleted chunk must say: it reads back as the array's fill value, which is never a valid value
# of a complete step (NaN, -1, -2, false), and the analysis names it.
DELETED = {
    ATTENTION: ((f"{ATTENTION} at step 1: NaN", "although the step is marked complete",
                 f"its chunk {chunk_key(ATTENTION)} is missing"), UNCHECKED),
    PADDING: ((f"{PADDING} at step 1: NaN", "although the step is marked complete",
               f"its chunk {chunk_key(PADDING)} is missing"), UNCHECKED),
    **{spec.path: ((f"{spec.path} at step 1: NaN", "although the step is marked complete"), UNCHECKED)
       for spec in (schema.head_entropy("cond"), schema.head_token_mass("cond"), schema.head_padding_mass("cond"))},
    TOKEN_IDS: ((f"{TOKEN_IDS} entry 0 is -1, the fill value",), (f"{TOKEN_IDS} entry 0 is -1, the fill value",)),
    schema.STEP_INDEX.path: (("steps/index at position 0 is -1 (never written) although the step is marked complete",),
                             UNCHECKED),
    schema.STEP_TIMESTEP.path: (("steps/timestep at step 0 is NaN although the step is marked complete",),
                                UNCHECKED),
    schema.STEP_SIGMA.path: (("steps/sigma at step 0 is NaN although the step is marked complete",), UNCHECKED),
    # -1, the fill value, is the documented "expert unknown" (analyzer.reader.Step): the pictures are right
    schema.STEP_EXPERT.path: (OK, OK),
    schema.STEP_COMPLETE.path: (("has no complete step yet (status 'complete')",), UNCHECKED),
    LAYER_BLOCK: (("layers/block entry 0 is -2, the fill value",), ("layers/block entry 0 is -2, the fill value",)),
    VIDEO: ((f"video frame {VIDEO_FRAME} is marked written (video_written)",
             f"but its chunk {chunk_key(VIDEO)} is missing"), UNCHECKED),
    VIDEO_WRITTEN: ((VIDEO_WRITTEN, "its chunk c/0 is missing"), (VIDEO_WRITTEN, "its chunk c/0 is missing")),
}


def _deletion_cases():
    assert set(DELETED) == set(ARRAY_PATHS)
    for array, (analyze, info) in DELETED.items():
        yield Case(f"deleted-{array}", _deleted(array), analyze, info)


# --- 2. metadata edits in zarr.json -----------------------------------------------------------------
DATA_TYPES = ("int8", "uint64", "complex128", "string")


def _other_dims(meta: dict):
    names = meta["dimension_names"]
    meta["dimension_names"] = list(reversed(names)) if len(names) > 1 else ["bogus"]


def _smaller_last_chunk(meta: dict):
    chunks = chunk_shape(meta)
    chunks[-1] = chunks[-1] - 1 if chunks[-1] > 1 else 2


def _without_checksum(meta: dict):
    meta["codecs"] = [c for c in meta["codecs"] if c["name"] != "crc32c"]


def _negative_steps(meta: dict):
    meta["shape"][0] = -1


def _metadata_cases():
    for array in ARRAY_PATHS:
        for dtype in DATA_TYPES:
            if dtype == SPECS[array].dtype:
                continue
            error = (array, AnyOf((f"{array} has data type {dtype}, expected {SPECS[array].dtype}",
                                   f"the metadata of {array} is unreadable")))
            yield Case(f"data_type-{dtype}-{array}", _metadata(array, _set("data_type", dtype)), error, error)
        error = (f"the metadata of {array} is unreadable", "non-negative")
        yield Case(f"negative-shape-{array}", _metadata(array, _negative_steps), error, error)
        error = (f"{array} has dimensions",)
        yield Case(f"dimension_names-{array}", _metadata(array, _other_dims), error, error)
        error = (f"{array} has no crc32c checksum, which every array of schema 1.1 and later carries",)
        yield Case(f"no-crc32c-{array}", _metadata(array, _without_checksum), error, error)
        # chunk_shape: the schema fixes it for attention, padding and video (validated on open); the
        # others fail on read, when the chunk does not fit the edited shape
        if array in (ATTENTION, PADDING):
            error = (f"{array} has chunks", "not the schema's")
            info = error
        elif array == VIDEO:
            error = ("video has chunks [1, 64, 96, 2], not one frame per chunk",)
            info = error
        else:
            first = "c/0" + "/0" * (len(SPECS[array].dims) - 1)
            error = (f"cannot read {array} chunk {first}", "reshape")
            info = error if array in INFO_READS else UNCHECKED
        yield Case(f"chunk_shape-{array}", _metadata(array, _smaller_last_chunk), error, info)
    for array in STEP_ARRAYS:
        error = ("the step arrays disagree on the number of steps: [3, 4]",)
        yield Case(f"step-count-disagrees-{array}", _shape(array, [4]), error, error)
    error = ("is not a readable Zarr store", "No group found")
    yield Case("root-zarr.json-deleted", _remove("zarr.json"), error, error)
    error = ("is not a readable wan-attention store", "'cond'")
    yield Case("cond-zarr.json-deleted", _remove("cond/zarr.json"), error, error)


# Root and branch attributes of the wrong type: (node, key, value, fragments).
BAD_ATTRIBUTES = [
    ("", "schema_version", "abc", ("has an unreadable schema_version 'abc'",)),
    ("", "schema_version", None, ("has an unreadable schema_version 'None'",)),
    ("", "schema_version", ["1.1"], ("has an unreadable schema_version",)),
    ("", "schema_version", "2.0", ("uses schema version 2.0, newer than this reader's " + schema.SCHEMA_VERSION,)),
    ("", "schema", 42, ("is not a wan-attention store (schema attribute is '42')",)),
    ("", "record_options", "a string", ("record_options.branches is None, expected ['cond'] or ['cond', 'uncond']",)),
    ("", "record_options", {"branches": "cond"}, ("record_options.branches is cond",)),
    ("", "record_options", {"branches": ["cond", "cond"]}, ("record_options.branches is ['cond', 'cond']",)),
    ("", "record_options", {"branches": ["cond"], "mantissa_bits": "10"},
     ("attribute record_options.mantissa_bits is malformed",)),
    ("", "record_options", {"branches": ["cond"], "step_stride": "x"},
     ("attribute record_options.step_stride is malformed",)),
    ("", "latent_grid", [4, 4, 6], ("attribute latent_grid is malformed",)),
    ("", "latent_grid", None, ("latent_grid says (None, None, None) but the attention grid is (4, 4, 6)",)),
    ("", "num_frames", "13", ("video has shape [13, 64, 96] (frames, height, width) but the attributes say",)),
    ("cond", "tokens", None, ("attribute cond/tokens is malformed",)),
    ("cond", "words", None, ("attribute cond/words is malformed",)),
    ("cond", "words", [{"text": "a", "tokens": [99]}], ("word 0 of group cond has token indices [99] outside 0..5",)),
    ("cond", "num_keys", "x", ("attribute cond/num_keys is malformed",)),
]


def _attribute_cases():
    for node, key, value, error in BAD_ATTRIBUTES:
        name = f"{node or 'root'}-{key}={value!r}".replace(" ", "")
        yield Case(f"attribute-{name}", _attribute(node, key, value), error, error)


# --- 3. absurd shapes: refused from the metadata, before anything is allocated ---------------------
G = 10**9


def _absurd_cases():
    cases = [
        ("latent_grid-width-1e9",
         _metadata("", lambda m: m["attributes"]["latent_grid"].__setitem__("width", G)),
         ("latent_grid says (4, 4, 1000000000) but the attention grid is (4, 4, 6)",)),
        ("attention-width-1e9", _shape(ATTENTION, [3, 2, 4, 4, G, 6]),
         (f"{ATTENTION} declares a map of 4 x 4 x 1000000000 x 6 tokens", "bounds")),
        ("attention-and-padding-width-1e9",
         _several(_shape(ATTENTION, [3, 2, 4, 4, G, 6]), _shape(PADDING, [3, 2, 4, 4, G])),
         (f"{ATTENTION} declares a map of 4 x 4 x 1000000000 x 6 tokens", "bounds")),
        ("attention-chunk-width-1e9", _shape(ATTENTION, [3, 2, 4, 4, G, 6], [1, 1, 4, 4, G, 6]),
         (f"{ATTENTION} declares chunks of [1, 1, 4, 4, 1000000000, 6], beyond what a store holds",)),
        ("attention-tokens-1e6", _shape(ATTENTION, [3, 2, 4, 4, 6, 10**6]),
         (f"{ATTENTION} declares a map of 4 x 4 x 6 x 1000000 tokens", "bounds")),
        ("video-1e9-frames", _shape(VIDEO, [G, 64, 96, 3]),
         ("1000000000 video frames is more than any recording has (at most 100001)",)),
        ("video-and-written-1e9-frames",
         _several(_shape(VIDEO, [G, 64, 96, 3]), _shape(VIDEO_WRITTEN, [G]),
                  _attribute("", "num_frames", G)),
         ("1000000000 video frames is more than any recording has",)),
        ("video_written-chunk-1e9", _several(_shape(VIDEO, [G, 64, 96, 3]), _shape(VIDEO_WRITTEN, [G], [G])),
         (f"{VIDEO_WRITTEN} declares chunks of [1000000000], beyond what a store holds",)),
        ("video-width-1e9", _several(_shape(VIDEO, [13, 64, G, 3]), _attribute("", "width", G)),
         ("1000000000 video width is more than any recording has",)),
        ("steps-1e9", _several(*(_shape(a, [G]) for a in STEP_ARRAYS)),
         ("1000000000 recorded steps is more than any recording has (at most 10000)",)),
        ("layers-1e9", _shape(LAYER_BLOCK, [G]), ("1000000000 layers is more than any recording has",)),
        ("heads-1e6", _several(*(_shape(schema_path, [3, 2, 10**6, *extra]) for schema_path, extra in (
            (schema.head_entropy("cond").path, []), (schema.head_padding_mass("cond").path, []),
            (schema.head_token_mass("cond").path, [6])))),
         (f"{schema.head_entropy('cond').path} has shape [3, 2, 1000000], expected [3, 2, heads <= 1024]",)),
    ]
    for name, damage, error in cases:
        yield Case(f"absurd-{name}", damage, error, error, child=True)
    # Every bound respected, one by one, yet the map is beyond what an analysis can hold: the tokens
    # (4096), the words and the grid agree, the chunks are the schema's, and no attention chunk exists.
    # Refusing it up front (shared.store.MAX_MAP_VALUES) or failing with one line on the allocation are both fine.
    for words in (6, 4096):
        yield Case(f"absurd-in-bounds-map-4096-tokens-{words}-words", _huge_map(words), (), UNCHECKED, child=True)


def _huge_map(n_words: int, tokens: int = 4096):
    frames, height, width = 13, 64, 96  # the video is 13 x 64 x 96, so this grid is inside it

    def damage(store: Path, work: Path):
        import numpy as np
        import zarr

        for array, shape in ((ATTENTION, [3, 2, frames, height, width, tokens]), (PADDING, [3, 2, frames, height, width]),
                             (schema.head_token_mass("cond").path, [3, 2, 2, tokens]), (TOKEN_IDS, [tokens])):
            chunks = (list(schema.attention_chunks(tuple(shape), SPECS[array].dtype)) if array in (ATTENTION, PADDING)
                      else [1, 2, 2, tokens] if array != TOKEN_IDS else [tokens])
            _shape(array, shape, chunks)(store, work)
            shutil.rmtree(store / array / "c")
        zarr.open_array(store / TOKEN_IDS, mode="r+")[:] = np.arange(tokens, dtype=np.int32) + 100
        edit_metadata(store, "", lambda m: m["attributes"]["latent_grid"].update(
            frames=frames, height=height, width=width, pixel_frames=[[0, 0]] + [[k, k] for k in range(1, frames)]))
        edit_metadata(store, "cond", lambda m: m["attributes"].update(
            tokens=[f"\u2581t{i}" for i in range(tokens)],
            words=[{"text": f"t{i}", "start": 0, "end": 1, "tokens": [i]} for i in range(n_words)]))
    return damage


# --- 4. chunks that are not regular files inside the store -----------------------------------------
def _replace_chunk(kind: str, array: str):
    def damage(store: Path, work: Path):
        path = chunk_file(store, array)
        original = path.read_bytes()
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            os.symlink("/dev/zero", path)
        else:  # a symlink to a copy of the very chunk, outside the store: valid bytes, wrong place
            outside = work / "outside.bin"
            outside.write_bytes(original)
            os.symlink(outside if kind == "outside-absolute" else os.path.relpath(outside, path.parent), path)
    return damage


SPECIAL = {"fifo": "is not a regular file", "dev-zero": "points outside the store (to /dev/zero)",
           "outside-absolute": "points outside the store", "outside-relative": "points outside the store"}


def _special_file_cases():
    for kind, message in SPECIAL.items():
        for array in (ATTENTION, schema.head_entropy("cond").path, schema.STEP_COMPLETE.path, VIDEO):
            error = (*_chunk_error(array), f"{array}/{chunk_key(array)} {message}")
            info = error if array in INFO_READS else UNCHECKED
            yield Case(f"{kind}-chunk-{array}", _replace_chunk(kind, array), error, info, child=True)

    def fifo_metadata(store: Path, work: Path):
        (store / ATTENTION / "zarr.json").unlink()
        os.mkfifo(store / ATTENTION / "zarr.json")

    error = (f"the metadata of {ATTENTION} is unreadable", f"{ATTENTION}/zarr.json is not a regular file")
    yield Case("fifo-array-zarr.json", fifo_metadata, error, error, child=True)

    def zero_root(store: Path, work: Path):
        (store / "zarr.json").unlink()
        os.symlink("/dev/zero", store / "zarr.json")

    error = ("is not a readable Zarr store", "zarr.json points outside the store (to /dev/zero)")
    yield Case("dev-zero-root-zarr.json", zero_root, error, error, child=True)


# --- 5. zip stores: a zip bomb, and a member that lies about its size ------------------------------
def _zipped(bomb_member: str | None = None, lie: bool = False):
    def damage(store: Path, work: Path):
        archive = zip_store(store, work / "store.zip", bomb_member=bomb_member)
        if lie:
            under_declare(archive, bomb_member, 1000)
        return archive
    return damage


def under_declare(archive: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local and central headers to ``size``."""
    import struct

    data = bytearray(archive.read_bytes())
    name = member.encode()
    for signature, size_at, name_length_at, name_at in ((b"PK\x01\x02", 24, 28, 46), (b"PK\x03\x04", 22, 26, 30)):
        start, found = 0, 0
        while (i := data.find(signature, start)) >= 0:
            n = struct.unpack_from("<H", data, i + name_length_at)[0]
            if bytes(data[i + name_at:i + name_at + n]) == name:
                struct.pack_into("<I", data, i + size_at, size)
                found += 1
            start = i + 4
        assert found == 1, (signature, found)
    archive.write_bytes(bytes(data))


def _zip_cases():
    yield Case("zip-intact", _zipped(), OK, OK, child=True)
    for member in (f"{ATTENTION}/{chunk_key(ATTENTION)}", "zarr.json", f"{VIDEO}/{chunk_key(VIDEO)}"):
        error = (f"zip member {member!r} expands to {300 * 2**20} bytes",
                 f"more than any key of a store ({MAX_KEY_BYTES}); refusing it")
        yield Case(f"zip-bomb-{member}", _zipped(member), error, error, child=True)
    member = f"{ATTENTION}/{chunk_key(ATTENTION)}"
    yield Case("zip-member-under-declares-its-size", _zipped(member, lie=True),
               (*_chunk_error(ATTENTION), f"Bad CRC-32 for file {member!r}"), UNCHECKED, child=True)
    yield Case("zip-member-under-declares-its-size-zarr.json", _zipped("zarr.json", lie=True),
               ("is not a readable Zarr store", "Bad CRC-32 for file 'zarr.json'"),
               ("is not a readable Zarr store", "Bad CRC-32 for file 'zarr.json'"), child=True)


CASES = [*_chunk_damage_cases(), *_deletion_cases(), *_metadata_cases(), *_attribute_cases(), *_absurd_cases(),
         *_special_file_cases(), *_zip_cases()]


# --- running -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_pristine(tmp_path_factory.mktemp("pristine"))


@dataclass
class Outcome:
    exit_code: int
    output: str
    exception: BaseException | None = None
    seconds: float = 0.0


def _invoke(args: list, work: Path, child: bool) -> Outcome:
    start = time.monotonic()
    if child:
        try:
            proc = run_subprocess(args, work, timeout=CHILD_TIMEOUT, memory_bytes=MEMORY_LIMIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"wan-analyze {' '.join(map(str, args))} did not finish within {CHILD_TIMEOUT} s (a hang)")
        return Outcome(proc.returncode, proc.stdout + proc.stderr, None, time.monotonic() - start)
    result = run(*args)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.output, exception, time.monotonic() - start)


def _matches(line: str, fragment) -> bool:
    return any(f in line for f in fragment) if isinstance(fragment, AnyOf) else fragment in line


def check(outcome: Outcome, expected, what: str) -> None:
    """``expected``: OK, a tuple of fragments (a one-line error), or None (either, but never anything else)."""
    shown = f"{what} exited {outcome.exit_code}:\n{outcome.output}"
    assert outcome.exception is None, f"{shown}\n{outcome.exception!r}"
    assert "Traceback" not in outcome.output, shown
    lines = outcome.output.strip().splitlines()
    if expected == OK or (expected is UNCHECKED and outcome.exit_code == 0):
        assert outcome.exit_code == 0, shown
        assert not any(line.startswith("Error") for line in lines), shown
        return
    assert outcome.exit_code == 1, shown
    assert len(lines) == 1 and lines[0].startswith("Error: "), shown
    for fragment in expected or ():
        assert _matches(lines[0], fragment), f"{fragment!r} not in the error of {what}:\n{lines[0]}"


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_damaged_store_is_one_line_error(case: Case, pristine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to the working directory would show in the snapshot
    store = fresh_copy(pristine, tmp_path)
    location = case.damage(store, tmp_path) or store
    out = tmp_path / "out"
    before = snapshot(tmp_path)

    outcome = _invoke([location, "-o", out, "--quiet"], tmp_path, case.child)
    check(outcome, case.analyze, "wan-analyze")
    if case.analyze == OK:
        assert (out / "attention_analysis_report.md").is_file()
    if case.info is not UNCHECKED or not case.child:
        check(_invoke(["info", location], tmp_path, case.child), case.info, "wan-analyze info")
    if case.child:
        assert outcome.seconds < CHILD_TIMEOUT / 2, f"took {outcome.seconds:.1f} s: not failing fast"

    assert snapshot(tmp_path, exclude=(out,)) == before, "files outside the output directory changed"
    if out.exists():
        assert_confined(out)


def test_matrix_covers_every_array_and_damage():
    """The generated matrix has every array under every chunk damage, and nothing is listed twice."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for array in ARRAY_PATHS:
        for kind in (*(f"flip-{w}" for w in FLIP_POSITIONS), "truncated", "empty", "deleted", "negative-shape",
                     "dimension_names", "no-crc32c", "chunk_shape"):
            assert f"{kind}-{array}" in ids
    assert len(ARRAY_PATHS) == 14


# --- 6. hostile strings in the attributes --------------------------------------------------------------
HOSTILE = {
    "osc-title": "\x1b]0;pwned\x07",
    "clear-screen": "\x1b[2J",
    "cursor-up": "\r\x1b[1A",
    "html": "<script>alert(1)</script>",
    "table-pipe": "a|b",
    "backtick": "`rm -rf ~`",
    "parent-path": "../../etc/passwd",
    "slash": "a/b",
    "nul": "nul\x00here",
    "newline": "line\nbreak",
    "bidi-override": "\u202eevil",
    "c1-csi": "\x9b2J",
}
RAW_CONTROLS = ("\x1b", "\x07", "\x00", "\r", "\x9b", "\u202e")


def _hostile(text: str):
    def damage(store: Path, work: Path):
        tokens = ["\u2581" + text, "\u2581" + HOSTILE["parent-path"], HOSTILE["slash"], "\u2581" + text + "x", text,
                  "</s>"]
        words = [{"text": f"{text}{i}", "start": 0, "end": 1, "tokens": [i]} for i in range(6)]
        edit_metadata(store, "cond", lambda m: m["attributes"].update(prompt=f"a {text} b", tokens=tokens,
                                                                       words=words))
        edit_metadata(store, "", lambda m: m["attributes"].update(
            prompt=f"a {text} b", negative_prompt=text, model_id=f"../../{text}", model_class=text, scheduler=text,
            versions={text: text, "wan_attention": text}, notes=[text]))
    return damage


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_strings_are_shown_never_obeyed(name, pristine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = fresh_copy(pristine, tmp_path)
    _hostile(HOSTILE[name])(store, tmp_path)
    assert read_metadata(store, "cond")["attributes"]["tokens"][0].endswith(HOSTILE[name])
    out = tmp_path / "out"
    before = snapshot(tmp_path)

    analysis = run(store, "-o", out, "--quiet")
    check(Outcome(analysis.exit_code, analysis.output,
                  None if isinstance(analysis.exception, SystemExit) else analysis.exception), UNCHECKED, "analysis")
    info = run("info", store)
    check(Outcome(info.exit_code, info.output, None if isinstance(info.exception, SystemExit) else info.exception),
          OK, "info")
    for output, what in ((info.output, "info"), (analysis.output, "analysis")):
        for control in RAW_CONTROLS:
            assert control not in output, f"{what} prints a raw {control!r}:\n{output!r}"
    assert len(info.output.strip().splitlines()) == 12, info.output  # no field made a line of its own

    assert snapshot(tmp_path, exclude=(out,)) == before, "files outside the output directory changed"
    if analysis.exit_code == 0:
        assert_confined(out)
        for path in out.rglob("*"):
            assert all(c.isascii() and (c.isalnum() or c in "._-") for c in path.name), path.name
        report = (out / "attention_analysis_report.md").read_text(encoding="utf-8")
        for control in RAW_CONTROLS:
            assert control not in report, f"the report holds a raw {control!r}"
        assert "<script>" not in report
