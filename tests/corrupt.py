"""Damaging synthetic stores on disk, and running wan-analyze on them, for the hostile-store tests.

A pristine store is written once (:func:`build_pristine`, ``small_spec()``) and each case
works on a fresh copy (:func:`fresh_copy`), so every corruption is applied to an intact
store. Everything here edits the store's files directly, the way a bad disk, a bad copy
or a hostile sender would, never through the project's own writer (except
:func:`rewrite_values`, which goes through zarr so that the checksums stay valid).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from synthetic_store import small_spec, write_store

from shared import schema

ATTENTION = schema.attention("cond").path
PADDING = schema.padding_mass("cond").path
TOKEN_IDS = schema.token_ids("cond").path

REPO = Path(__file__).resolve().parent.parent

# Every array of a one-branch store, by its path: what the matrix is parametrised over.
SPECS = {spec.path: spec for spec in (*schema.branch_arrays(schema.BRANCH_COND), *schema.STEP_ARRAYS,
                                      schema.LAYER_BLOCK, schema.VIDEO, schema.VIDEO_WRITTEN)}
ARRAY_PATHS = tuple(SPECS)
STEP_ARRAYS = tuple(spec.path for spec in schema.STEP_ARRAYS)
# Arrays chunked one step (or one (step, layer)) per chunk: the damaged chunk is one of step 1.
PER_STEP_ARRAYS = tuple(spec.path for spec in schema.branch_arrays(schema.BRANCH_COND)
                        if spec.dims[0] == schema.DIM_STEP)
# What `wan-analyze info` reads besides metadata: it must notice damage to these too.
INFO_READS = (*STEP_ARRAYS, schema.LAYER_BLOCK.path, schema.token_ids(schema.BRANCH_COND).path,
              schema.VIDEO_WRITTEN.path)
VIDEO_FRAME = 5  # the frame whose chunk is damaged (small_spec writes all 13, all marked written)


def build_pristine(directory: Path) -> Path:
    """Write ``small_spec()`` (3 complete steps, 2 layers, 4x4x6 grid, 6 tokens, 13 video frames) once."""
    path = Path(directory) / "pristine.zarr"
    write_store(path, small_spec())
    return path


def fresh_copy(pristine: Path, directory: Path, name: str = "store.zarr") -> Path:
    """A copy of the pristine store, to damage."""
    target = Path(directory) / name
    shutil.copytree(pristine, target, symlinks=True)
    return target


def chunk_key(array_path: str) -> str:
    """The key (under the array's folder) of the chunk a test damages: one a full analysis reads.

    Step 1 for the per-step arrays (its first layer entry), frame VIDEO_FRAME of the video,
    the only chunk of the others. Zarr v3's default key encoding: "c/" and the chunk's
    grid coordinates joined by "/".
    """
    if array_path in PER_STEP_ARRAYS:
        first = 1
    elif array_path == schema.VIDEO.path:
        first = VIDEO_FRAME
    else:
        first = 0
    return "/".join(["c", str(first), *["0"] * (len(SPECS[array_path].dims) - 1)])


def chunk_file(store: Path, array_path: str) -> Path:
    """The file of the chunk :func:`chunk_key` names."""
    path = Path(store) / array_path / chunk_key(array_path)
    assert os.path.lexists(path), f"no chunk file {path}"
    return path


def flip_bit(path: Path, offset: int, bit: int) -> int:
    """Flip bit ``bit`` of the byte at ``offset`` (negative: from the end) of a file; return the byte's index."""
    data = bytearray(Path(path).read_bytes())
    index = offset % len(data)
    data[index] ^= 1 << bit
    Path(path).write_bytes(bytes(data))
    return index


def truncate(path: Path, keep: float = 0.5) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


def metadata_path(store: Path, node: str) -> Path:
    return Path(store) / node / "zarr.json" if node else Path(store) / "zarr.json"


def read_metadata(store: Path, node: str) -> dict:
    return json.loads(metadata_path(store, node).read_text())


def write_metadata(store: Path, node: str, meta: dict) -> None:
    metadata_path(store, node).write_text(json.dumps(meta, indent=2))


def edit_metadata(store: Path, node: str, edit) -> None:
    """Apply ``edit(meta)`` (which changes the dict in place) to the zarr.json of ``node`` ("" = root)."""
    meta = read_metadata(store, node)
    edit(meta)
    write_metadata(store, node, meta)


def chunk_shape(meta: dict) -> list[int]:
    return meta["chunk_grid"]["configuration"]["chunk_shape"]


def rewrite_values(store: Path, array_path: str, index, values) -> None:
    """Write ``values`` at ``index`` of an array through zarr: new contents, valid checksums."""
    import zarr

    array = zarr.open_array(Path(store) / array_path, mode="r+")
    array[index] = values


def zip_store(store: Path, zip_path: Path, bomb_member: str | None = None, bomb_bytes: int = 300 * 2**20) -> Path:
    """Zip the store's contents at the root of the archive (the layout the reader accepts).

    With ``bomb_member`` (a key such as "cond/attention/c/1/0/0/0/0/0"), that member holds
    ``bomb_bytes`` zeros instead, deflated and streamed 1 MiB at a time, so the archive is
    small and writing it never holds the expanded bytes in memory.
    """
    store = Path(store)
    block = bytes(2**20)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(p for p in store.rglob("*") if p.is_file()):
            key = path.relative_to(store).as_posix()
            if key == bomb_member:
                continue
            archive.write(path, key)
        if bomb_member is not None:
            info = zipfile.ZipInfo(bomb_member, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                left = bomb_bytes
                while left > 0:
                    member.write(block[: min(left, len(block))])
                    left -= len(block)
    return zip_path


def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links, skipping ``exclude``): kind, size and mtime.

    Comparing two snapshots shows any file written, changed or removed outside ``exclude``.
    """
    root = Path(root)
    skipped = {Path(p).resolve() for p in exclude}
    found: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        dirs[:] = [d for d in dirs if (here / d).resolve() not in skipped or (here / d).is_symlink()]
        for name in [*dirs, *files]:
            path = here / name
            if path.resolve() in skipped and not path.is_symlink():
                continue
            info = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[path.relative_to(root).as_posix()] = (kind, 0 if kind == "dir" else info.st_size,
                                                        0 if kind == "dir" else info.st_mtime_ns)
    return found


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*") if p.is_file() or p.is_symlink())


def assert_confined(out: Path) -> None:
    """Everything under ``out`` is a regular file or folder inside it: no link, nothing that leaves it."""
    real_out = Path(os.path.realpath(out))
    for path in Path(out).rglob("*"):
        assert not path.is_symlink(), f"{path} is a symlink"
        real = Path(os.path.realpath(path))
        assert real_out in real.parents, f"{path} resolves to {real}, outside {real_out}"


def run_subprocess(args, cwd: Path, timeout: float = 60, memory_bytes: int | None = None,
                   ) -> subprocess.CompletedProcess:
    """``python -m analyzer.cli ARGS`` in a child process, with a timeout and optionally an address-space limit.

    The timeout is what turns a hang (a FIFO read) into a test failure instead of a stuck
    suite; the limit turns an allocation sized from a hostile shape into a MemoryError
    instead of a machine that swaps.
    """
    def limit():
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               # one thread per pool: the limit must not be spent on thread stacks and malloc arenas
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="2", BLOSC_NTHREADS="1")
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *map(str, args)], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)


def assert_one_line_error_process(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 1 and exactly one line, 'Error: ...', containing every fragment; return that line."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}:\n{output}"
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
