"""``wan-record batch``: many prompts, one store each, on one machine or spread over processes.

    PROMPTS: a text file (one prompt a line; blank lines and lines starting with ``#`` are
    skipped) or JSON Lines (one object a line: ``prompt`` and any of :data:`JOB_KEYS`).

Every job is parsed and checked (:mod:`recorder.inputs`) before any model loads. Job ``i``
goes to ``OUTDIR/<i:04d>-<slug of the prompt>.zarr`` (or ``OUTDIR/<name>.zarr``), a name
that does not change between runs. A process takes the jobs ``rank::world_size``, where
RANK and WORLD_SIZE come from the environment (torchrun, or a SLURM array that sets them),
loads the pipeline once (only when one of its jobs needs recording) and calls
:func:`recorder.record.record` per job.

A rerun skips complete stores and redoes failed, interrupted and abandoned ("recording",
no live owner) ones; :func:`shared.store.create_recording_store` refuses a store that a
live process records and a directory that is not a store. One job's error is its entry's
error; the others go on. A stop signal ends the process after marking the store
"interrupted" (``record()`` does that).

The catalog: each process writes ``OUTDIR/.catalog.rank-R.json`` (temporary file and
rename); the merge into ``OUTDIR/catalog.json`` reads every store's status and size back
from the store. Under torchrun (MASTER_ADDR set, WORLD_SIZE > 1) a gloo barrier comes
first and rank 0 merges; otherwise every process merges under a file lock, so that the
last one to finish writes the whole catalog (a SLURM array whose tasks need not overlap).
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import re
import socket
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from types import SimpleNamespace

from recorder import inputs
from recorder.errors import RecordError, RecordInterrupted
from recorder.request import GenerationRequest
from shared.errors import describe, first_line
from shared.schema import FLOAT16_MANTISSA_BITS

CATALOG_NAME = "catalog.json"
CATALOG_VERSION = 1
RANK_CATALOG = ".catalog.rank-{rank}.json"
LOCK_NAME = ".catalog.lock"
SLUG_CHARS = 40
# Keys a JSON Lines job may give, each with its wan-record option.
JOB_KEYS = {
    "prompt": "--prompt", "negative_prompt": "--negative-prompt", "seed": "--seed", "height": "--height",
    "width": "--width", "frames": "--frames", "steps": "--steps", "guidance": "--guidance",
    "guidance_2": "--guidance-2", "max_sequence_length": "--max-sequence-length", "layers": "--layers",
    "heads": "--heads", "layer_mean": "--layer-mean", "branch": "--branch", "step_stride": "--step-stride",
    "mantissa_bits": "--mantissa-bits", "name": "(the store's name)",
}
# Actions in the catalog: what this run did with a job.
RECORDED, SKIPPED, FAILED, INTERRUPTED, NOT_RUN = "recorded", "skipped", "failed", "interrupted", "not run"
MISSING = "missing"  # the catalog's status of a job without a store


class BatchError(RecordError):
    """A prompts file or batch option that cannot be run. One line, before any model loads."""


# WanPipeline's own defaults, as GenerationRequest holds them: one place, so a batch never drifts from a recording.
_REQUEST_DEFAULTS = {f.name: f.default for f in dataclasses.fields(GenerationRequest)}


@dataclass(frozen=True)
class Defaults:
    """The per-job options a line does not give (the command line's)."""

    negative_prompt: str = _REQUEST_DEFAULTS["negative_prompt"]
    seed: int = _REQUEST_DEFAULTS["seed"]  # a line without a seed gets seed + its job index
    height: int = _REQUEST_DEFAULTS["height"]
    width: int = _REQUEST_DEFAULTS["width"]
    frames: int = _REQUEST_DEFAULTS["num_frames"]
    steps: int = _REQUEST_DEFAULTS["num_inference_steps"]
    guidance: float = _REQUEST_DEFAULTS["guidance_scale"]
    guidance_2: float | None = _REQUEST_DEFAULTS["guidance_scale_2"]
    max_sequence_length: int = _REQUEST_DEFAULTS["max_sequence_length"]
    layers: object = "all"
    heads: object = "mean"
    layer_mean: bool = False
    branch: str = "cond"
    step_stride: int = 1
    mantissa_bits: int = FLOAT16_MANTISSA_BITS
    query_chunk_mb: int = 256


@dataclass
class Job:
    """One prompt of the file: where its store goes and how it is recorded."""

    index: int
    line: int
    name: str  # the store's directory name in OUTDIR
    request: object  # recorder.record.GenerationRequest
    config: object  # recorder.capture.CaptureConfig
    storage: object  # shared.store.StorageOptions
    options: dict = field(default_factory=dict)  # the job's options as the catalog lists them

    def path(self, outdir: str) -> str:
        return os.path.join(outdir, self.name)


# ----------------------------------------------------------------------------------------- parsing


def slug(text: str, limit: int = SLUG_CHARS) -> str:
    """A file-name-safe, stable short form of a prompt: lower-case ASCII words joined by '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(words) > limit:
        words = words[:limit].rsplit("-", 1)[0] if "-" in words[:limit] else words[:limit]
    return words.strip("-") or "prompt"


def _index_option(value, what: str, everything: str):
    """``--layers``/``--heads`` of a line: the word for all, a list of integers, or "0,3,5"."""
    if value is None or value == everything:
        return None
    if isinstance(value, str):
        try:
            items = tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise RecordError(f"{what} must be {everything!r} or comma-separated integers, got {value!r}") from None
        return items
    if isinstance(value, list):
        return tuple(value)
    raise RecordError(f"{what} must be {everything!r}, a list of integers or \"0,3,5\", got {value!r}")


def _is_jsonl(path: str, lines: list[str]) -> bool:
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return True
    if lower.endswith(".txt"):
        return False
    first = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    return first.startswith("{")


def read_prompts(path: str) -> list[tuple[int, dict]]:
    """The (line number, fields) of every job in the prompts file; BatchError naming the line otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise BatchError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BatchError(f"cannot read the prompts file {path}: {describe(exc)}") from None
    lines = text.splitlines()
    entries = []
    jsonl = _is_jsonl(path, lines)
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not jsonl:
            entries.append((number, {"prompt": stripped}))
            continue
        try:
            fields = json.loads(stripped)
        except ValueError as exc:
            raise BatchError(f"{path} line {number}: not JSON ({first_line(exc)})") from None
        if not isinstance(fields, dict):
            raise BatchError(f"{path} line {number}: a line must be a JSON object like "
                             f'{{"prompt": "...", "seed": 1}}, got {type(fields).__name__}')
        unknown = sorted(set(fields) - set(JOB_KEYS))
        if unknown:
            raise BatchError(f"{path} line {number}: unknown key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; a line may give {', '.join(JOB_KEYS)}")
        if "prompt" not in fields:
            raise BatchError(f"{path} line {number}: no \"prompt\"")
        entries.append((number, fields))
    if not entries:
        raise BatchError(f"{path} holds no prompts (blank lines and # comments are skipped)")
    return entries


def make_jobs(path: str, outdir: str, defaults: Defaults = Defaults()) -> list[Job]:
    """Every job of the prompts file, each checked as ``wan-record`` checks its inputs, before any model loads."""
    from recorder.capture import CaptureConfig  # torch: only once a command runs

    jobs, names = [], {}
    for index, (number, fields) in enumerate(read_prompts(path)):
        try:
            job = _make_job(index, number, fields, defaults, CaptureConfig, GenerationRequest)
            inputs.check_output_location(job.path(outdir))
        except RecordError as exc:
            raise BatchError(f"{path} line {number}: {first_line(exc)}") from None
        if job.name in names:
            raise BatchError(f"{path} line {number}: the store name {job.name} is also line {names[job.name]}'s; "
                             "give each line its own \"name\"")
        names[job.name] = number
        jobs.append(job)
    return jobs


def _make_job(index, number, fields, defaults: Defaults, capture_config, generation_request) -> Job:
    get = {**{k: getattr(defaults, k) for k in JOB_KEYS if hasattr(defaults, k)}, **fields}.get
    seed = fields.get("seed", defaults.seed + index)
    request_fields = {"prompt": get("prompt"), "negative_prompt": get("negative_prompt"), "seed": seed,
                      "height": get("height"), "width": get("width"), "num_frames": get("frames"),
                      "num_inference_steps": get("steps"), "guidance_scale": get("guidance"),
                      "guidance_scale_2": get("guidance_2"), "max_sequence_length": get("max_sequence_length")}
    inputs.check_generation_request(SimpleNamespace(**request_fields))
    branch = get("branch")
    if branch not in ("cond", "both"):
        raise RecordError(f"branch must be 'cond' or 'both' (--branch), got {branch!r}")
    config_fields = {"heads": _index_option(get("heads"), "heads (--heads)", "mean"),
                     "layers": _index_option(get("layers"), "layers (--layers)", "all"),
                     "layer_mean": get("layer_mean"),
                     "branches": ("cond", "uncond") if branch == "both" else ("cond",),
                     "step_stride": get("step_stride"),
                     "query_chunk_bytes": inputs.check_query_chunk_mb(defaults.query_chunk_mb)}
    inputs.check_capture_config(SimpleNamespace(**config_fields))
    inputs.check_branches(SimpleNamespace(**request_fields), SimpleNamespace(**config_fields))
    storage = inputs.check_storage(get("mantissa_bits"))
    config = capture_config(**config_fields)
    inputs.check_capture_config(config)
    name = fields.get("name")
    if name is None:
        name = f"{index:04d}-{slug(request_fields['prompt'])}.zarr"
    else:
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name or "\0" in name \
                or name.strip() in (".", "..") or name.startswith("."):
            raise RecordError(f"name must be a plain file name (no '/', not starting with '.'), got {name!r}")
        name = name if name.endswith(".zarr") else f"{name}.zarr"
    if name == CATALOG_NAME:
        raise RecordError(f"name {name!r} is the catalog's")
    options = {"height": request_fields["height"], "width": request_fields["width"],
               "frames": request_fields["num_frames"], "steps": request_fields["num_inference_steps"],
               "guidance": request_fields["guidance_scale"], "guidance_2": request_fields["guidance_scale_2"],
               "max_sequence_length": request_fields["max_sequence_length"],
               "layers": "all" if config.layers is None else list(config.layers),
               "heads": "mean" if config.heads is None else list(config.heads),
               "layer_mean": config.layer_mean, "branch": branch, "step_stride": config.step_stride,
               "mantissa_bits": storage.mantissa_bits}
    return Job(index=index, line=number, name=name, request=generation_request(**request_fields), config=config,
               storage=storage, options=options)


# ----------------------------------------------------------------------------------------- the processes


@dataclass(frozen=True)
class Place:
    """This process's place among the batch's: its rank, how many there are, and its local rank."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether the processes run together and can meet at a barrier (torchrun sets MASTER_ADDR)."""
        return self.world_size > 1 and bool(os.environ.get("MASTER_ADDR")) and bool(os.environ.get("MASTER_PORT"))


def place_from_env(environ=os.environ) -> Place:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun (or a SLURM array script) sets them; 0, 1, 0 without them."""
    values = {}
    for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", None)):
        text = environ.get(key, "").strip()
        if not text:
            values[key] = default
            continue
        try:
            values[key] = int(text)
        except ValueError:
            raise BatchError(f"the environment variable {key}={text!r} is not an integer") from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise BatchError(f"RANK={rank} and WORLD_SIZE={world}: a rank must be 0..WORLD_SIZE-1")
    local = values["LOCAL_RANK"] if values["LOCAL_RANK"] is not None else 0
    if local < 0:
        raise BatchError(f"LOCAL_RANK={local} is negative")
    return Place(rank, world, local)


def device_for(device: str, place: Place) -> str:
    """This process's device: cuda:LOCAL_RANK when CUDA is there and ``device`` is auto or cuda, else ``device``."""
    import torch  # on use

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{place.local_rank % torch.cuda.device_count()}"
    return inputs.check_device(device)


def store_status(path: str) -> tuple[str, dict]:
    """The status of the store at ``path`` ("missing" without one) and its root attributes, read back."""
    from shared.store import StoreError, open_store

    if not os.path.lexists(path):
        return MISSING, {}
    try:
        root = open_store(path)
        attrs = root.attrs.asdict()
        return str(attrs.get("status")), attrs
    except StoreError:
        pass
    try:  # the start of a store (no arrays yet), or not a store
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            attrs = json.loads(f.read(1 << 20)).get("attributes") or {}
        if isinstance(attrs, dict) and attrs.get("status"):
            return str(attrs["status"]), attrs
    except (OSError, ValueError, AttributeError):
        pass
    return "unreadable", {}


def stored_size(path: str) -> int | None:
    from shared.store import StoreError, open_store, stored_bytes

    try:
        return int(stored_bytes(open_store(path)))
    except (StoreError, OSError):
        return None


def mismatch(job: Job, attrs: dict) -> str | None:
    """What differs between a complete store's attributes and the job (None when it is this job's recording)."""
    request = job.request
    wanted = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": request.seed,
              "height": request.height, "width": request.width, "num_frames_requested": request.num_frames,
              "num_inference_steps": request.num_inference_steps, "guidance_scale": request.guidance_scale,
              "max_sequence_length": request.max_sequence_length}
    for key, value in wanted.items():
        if key in attrs and attrs[key] != value:
            return f"{key} {attrs[key]!r}, not {value!r}"
    options = attrs.get("record_options") or {}
    got = {"heads": options.get("heads"), "layer_mean": options.get("layer_reduction") == "mean",
           "branches": options.get("branches"), "step_stride": options.get("step_stride"),
           "mantissa_bits": options.get("mantissa_bits")}
    config = job.config
    want = {"heads": "mean" if config.heads is None else list(config.heads), "layer_mean": config.layer_mean,
            "branches": list(config.branches), "step_stride": config.step_stride,
            "mantissa_bits": job.storage.mantissa_bits}
    for key, value in want.items():
        if options and got[key] != value:
            return f"record option {key} {got[key]!r}, not {value!r}"
    if config.layers is not None and options and options.get("layers") != list(config.layers):
        return f"layers {options.get('layers')!r}, not {list(config.layers)!r}"
    return None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _entry(job: Job, place: Place, action: str, error: str | None = None, seconds: float | None = None) -> dict:
    return {"index": job.index, "action": action, "error": error, "rank": place.rank, "seconds": seconds,
            "host": socket.gethostname(), "pid": os.getpid(), "at": now()}


@dataclass
class BatchResult:
    """What one process did: an entry per job of its share, and how it ended."""

    entries: list[dict]
    interrupted: RecordInterrupted | None = None
    catalog: dict | None = None  # the merged catalog, where this process wrote it

    @property
    def ok(self) -> bool:
        return self.interrupted is None and all(e["action"] in (RECORDED, SKIPPED) for e in self.entries)


def run_share(jobs: list[Job], outdir: str, place: Place, load, *, overwrite_failed: bool = True,
              model_id: str | None = None, show_progress: bool = False, say=None) -> BatchResult:
    """Record this process's jobs (``jobs[rank::world_size]``) one after another.

    ``load()`` returns the pipeline; it is called once, at the first job that needs recording.
    ``say(line)`` hears a line per job.
    """
    from recorder.record import record
    from recorder.signals import StopRequested, stop_on_signals
    from shared.store import StoreError

    say = say or (lambda line: None)
    share = jobs[place.rank::place.world_size]
    entries = {job.index: _entry(job, place, NOT_RUN) for job in share}
    pipe, load_error = None, None
    total = len(jobs)
    interrupted = None
    with stop_on_signals() as guard:
        try:
            for job in share:
                path = job.path(outdir)
                tag = f"[{job.index + 1}/{total}] {job.name}"
                status, attrs = store_status(path)
                if status == "complete":
                    differs = mismatch(job, attrs)
                    if differs is None:
                        entries[job.index] = _entry(job, place, SKIPPED)
                        say(f"{tag}: complete, skipped")
                    else:
                        error = (f"{path} holds another recording ({differs}); move it away or choose another "
                                 "OUTDIR")
                        entries[job.index] = _entry(job, place, FAILED, error)
                        say(f"{tag}: failed: {error}")
                    continue
                if status != MISSING and not overwrite_failed:
                    error = f"{path} was left at status {status!r}; rerun with --overwrite-failed to redo it"
                    entries[job.index] = _entry(job, place, FAILED, error)
                    say(f"{tag}: failed: {error}")
                    continue
                if load_error is None and pipe is None:
                    try:
                        pipe = load()
                    except Exception as exc:  # noqa: BLE001 - every job of the share says why
                        load_error = f"loading the model failed: {first_line(exc)}"
                if load_error is not None:
                    entries[job.index] = _entry(job, place, FAILED, load_error)
                    say(f"{tag}: failed: {load_error}")
                    continue
                started = time.perf_counter()
                redo = f" (redoing status {status!r})" if status != MISSING else ""
                say(f"{tag}: recording{redo}, seed {job.request.seed}")
                try:
                    inputs.check_request_for_pipeline(pipe, job.request, model_id)
                    record(pipe, job.request, path, job.config, storage=job.storage, overwrite=status != MISSING,
                           model_id=model_id, show_progress=show_progress,
                           notify=lambda note, tag=tag: say(f"{tag}: note: {note}"))
                except RecordInterrupted:
                    raise
                except (RecordError, StoreError, ValueError) as exc:
                    error = first_line(exc)
                except Exception as exc:  # noqa: BLE001 - one job's failure is its own; the batch goes on
                    error = describe(exc)
                else:
                    error = None
                seconds = round(time.perf_counter() - started, 3)
                entries[job.index] = _entry(job, place, FAILED if error else RECORDED, error, seconds)
                say(f"{tag}: failed: {error}" if error else f"{tag}: recorded in {seconds:.1f} s")
        except RecordInterrupted as exc:
            guard.cleanup()
            interrupted = exc
            entries[job.index] = _entry(job, place, INTERRUPTED, first_line(exc))
        except (StopRequested, KeyboardInterrupt) as exc:  # between jobs, or while loading
            guard.cleanup()
            name = exc.name if isinstance(exc, StopRequested) else "SIGINT"
            code = exc.exit_code if isinstance(exc, StopRequested) else 130
            interrupted = RecordInterrupted(f"interrupted by {name} between recordings", name, code)
    return BatchResult([entries[job.index] for job in share], interrupted)


# ----------------------------------------------------------------------------------------- the catalog


def _write_json(path: str, data) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsynced, renamed into place."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # a full disk leaves no half-written catalog behind
        except OSError:
            pass
        raise


def write_rank_catalog(outdir: str, place: Place, result: BatchResult) -> str:
    path = os.path.join(outdir, RANK_CATALOG.format(rank=place.rank))
    _write_json(path, {"rank": place.rank, "world_size": place.world_size, "at": now(),
                       "interrupted": first_line(result.interrupted) if result.interrupted else None,
                       "entries": result.entries})
    return path


def _rank_entries(outdir: str) -> dict[int, dict]:
    """The newest entry of each job over every rank's catalog in ``outdir`` (older runs' included)."""
    newest: dict[int, dict] = {}
    pattern = re.compile(r"^\.catalog\.rank-\d+\.json$")
    for name in sorted(os.listdir(outdir)):
        if not pattern.match(name):
            continue
        try:
            with open(os.path.join(outdir, name), encoding="utf-8") as f:
                data = json.load(f)
            entries = data["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                old = newest.get(entry["index"])
                if old is None or str(entry.get("at", "")) >= str(old.get("at", "")):
                    newest[entry["index"]] = entry
    return newest


def build_catalog(jobs: list[Job], outdir: str, prompts: str, model: str | None = None,
                  world_size: int = 1) -> dict:
    """The catalog: every job, with its status and size read back from its store and what the last run did."""
    reported = _rank_entries(outdir)
    stores = []
    for job in jobs:
        path = job.path(outdir)
        status, _ = store_status(path)
        entry = reported.get(job.index, {})
        action = entry.get("action", NOT_RUN)
        ok = status == "complete" and action in (RECORDED, SKIPPED)
        stores.append({
            "index": job.index, "line": job.line, "store": job.name, "prompt": job.request.prompt,
            "negative_prompt": job.request.negative_prompt, "seed": job.request.seed, "options": job.options,
            "status": status, "bytes": stored_size(path) if status != MISSING else None, "ok": ok,
            "action": action, "error": entry.get("error"), "rank": entry.get("rank"),
            "seconds": entry.get("seconds"), "at": entry.get("at"),
        })
    counts: dict[str, int] = {}
    for item in stores:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return {"catalog_version": CATALOG_VERSION, "prompts": os.path.abspath(prompts), "outdir": os.path.abspath(outdir),
            "model": model, "world_size": world_size, "updated_at": now(), "jobs": len(stores),
            "ok": sum(item["ok"] for item in stores), "statuses": counts,
            "bytes": sum(item["bytes"] or 0 for item in stores), "stores": stores}


def merge_catalog(jobs: list[Job], outdir: str, prompts: str, model: str | None = None,
                  world_size: int = 1) -> dict:
    """Write ``OUTDIR/catalog.json`` from every rank's entries and the stores, under OUTDIR's catalog lock."""
    fd = os.open(os.path.join(outdir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        catalog = build_catalog(jobs, outdir, prompts, model, world_size)
        _write_json(os.path.join(outdir, CATALOG_NAME), catalog)
    finally:
        os.close(fd)
    return catalog


class _Group:
    """torch.distributed over gloo, only for barriers; nothing when the processes do not run together."""

    def __init__(self, place: Place):
        self.active = False
        if not place.distributed:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            # the ranks may finish their shares hours apart: the barrier waits as long as a batch can run
            dist.init_process_group("gloo", init_method="env://", rank=place.rank, world_size=place.world_size,
                                    timeout=datetime.timedelta(days=7))
            self.owned = True
        else:
            self.owned = False
        self.active = True

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.active and self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
        self.active = False


def run_batch(prompts: str, outdir: str, load, *, defaults: Defaults = Defaults(), place: Place | None = None,
              overwrite_failed: bool = True, model_id: str | None = None, show_progress: bool = False,
              say=None, jobs: list[Job] | None = None) -> BatchResult:
    """The whole batch for this process: its share, its rank catalog, and the merged catalog where it merges.

    ``load()`` returns the pipeline (called at most once). Raises BatchError for a bad prompts
    file or OUTDIR before anything is loaded; never for one job's failure (see the entries).
    """
    place = place or place_from_env()
    if jobs is None:
        jobs = make_jobs(prompts, outdir, defaults)
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise BatchError(f"{outdir} is not a directory")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create {outdir}: {describe(exc)}") from None
    group = _Group(place)
    try:
        result = run_share(jobs, outdir, place, load, overwrite_failed=overwrite_failed, model_id=model_id,
                           show_progress=show_progress, say=say)
        write_rank_catalog(outdir, place, result)
        if result.interrupted is not None or not group.active:
            # alone, or stopping: merge what is known now; the last process to merge writes the fullest catalog
            result.catalog = merge_catalog(jobs, outdir, prompts, model_id, place.world_size)
            return result
        group.barrier()
        if place.rank == 0:
            result.catalog = merge_catalog(jobs, outdir, prompts, model_id, place.world_size)
        group.barrier()  # no process leaves (and no launcher stops the others) before the catalog is written
        return result
    finally:
        group.close()


def failures(catalog: dict) -> list[str]:
    """One line per job of the catalog that is not a complete store this run recorded or skipped."""
    lines = []
    for item in catalog["stores"]:
        if not item["ok"]:
            why = item["error"] or (f"status {item['status']!r}" if item["action"] != NOT_RUN
                                    else f"not run (status {item['status']!r})")
            lines.append(f"{item['store']} (line {item['line']}): {why}")
    return lines


def print_lines(lines, stream=None) -> None:
    stream = stream or sys.stderr
    for line in lines:
        print(line, file=stream, flush=True)
