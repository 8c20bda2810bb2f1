"""``WanT2V``: the Python API of the original WAN attention-visualization feature, on real attention.

Code written for that feature keeps working::

    model = WanT2V.from_pretrained("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", torch_dtype=torch.bfloat16,
                                   device_map="auto")
    video, timing_info = model.generate_with_attention_visualization("A cat walks on the grass")

What changed underneath: the maps are the softmax probabilities the model computed
(recorded by :func:`recorder.record.record` into a store), every recording run gets its
own directory ``output_dir/run_NNN/`` holding ``store.zarr`` and the analyzer's outputs
(the same files and names as ``wan-analyze``), and a frame count that is not 4k+1 is
changed as the pipeline changes it (n // 4 * 4 + 1: the default 16 gives 17), with a
warning and ``timing_info["notes"]``.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from recorder import inputs
from recorder.capture import CaptureConfig
from recorder.errors import RecordError
from recorder.record import GenerationRequest, check_request, generate_plain, record
from recorder.request import pipeline_progress
from shared.errors import describe

_REQUEST_FIELDS = {f.name for f in fields(GenerationRequest)} - {"prompt"}
_RUN_DIR = re.compile(r"^run_(\d+)$")
STORE_NAME = "store.zarr"


def _dtype_name(dtype) -> str | None:
    if dtype is None:
        return None
    return str(dtype).replace("torch.", "")


def _check_device_map(device_map) -> None:
    """Refuse, before loading, a ``device_map`` that :func:`_place` could not apply."""
    if device_map is None or device_map == "auto":
        return
    if not isinstance(device_map, str):
        raise RecordError(f"device_map must be None, 'auto' or a device string like 'cuda:0', got {device_map!r}")
    try:
        inputs.check_device(device_map)
    except RecordError as exc:
        raise RecordError(f"device_map: {exc}") from None


def _place(pipe, device_map):
    """Apply ``device_map`` to a pipeline loaded on the CPU; return the execution device as a string."""
    import torch  # on use: keeps --help light

    if device_map is None:
        return "cpu"
    if device_map != "auto":
        if not isinstance(device_map, str):
            raise ValueError(f"device_map must be None, 'auto' or a device string like 'cuda:0', got {device_map!r}")
        pipe.to(device_map)
        return device_map
    if not torch.cuda.is_available():
        return "cpu"
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    gpu = int(np.argmax(free))
    needed = sum(p.numel() * p.element_size() for c in pipe.components.values()
                 if isinstance(c, torch.nn.Module) for p in c.parameters())
    # Leave room for activations and the capture's logits; below that, offload instead of failing later.
    if needed < 0.8 * free[gpu]:
        pipe.to(f"cuda:{gpu}")
    else:
        pipe.enable_model_cpu_offload(gpu_id=gpu)
    return f"cuda:{gpu}"


class _StageTimer:
    """Times the stages of one pipeline call from the pipeline's own calls; removes itself on exit.

    Text encoding is the time spent in ``pipe.encode_prompt``, decoding the time in
    ``pipe.vae.decode``; a denoising step runs from the first transformer pass of the
    step to the end of ``scheduler.step``. The three methods are wrapped on the instance
    for the duration of the call only, and the transformers get a pre-forward hook; all
    of it is taken off again on exit. On a GPU each mark synchronises first, so the
    times are the device's, not the launch queue's.
    """

    def __init__(self, pipe):
        self.pipe = pipe
        self.text_encoding_s = 0.0
        self.decoding_s = 0.0
        self.step_s: list[float] = []
        self._step_start = None
        self._wrapped: list[tuple[object, str]] = []
        self._hooks: list = []
        self._cuda = False

    def _now(self) -> float:
        if self._cuda:
            import torch  # on use: keeps --help light

            torch.cuda.synchronize()
        return time.perf_counter()

    def _wrap(self, owner, name, before, after):
        if name in vars(owner):
            raise RuntimeError(f"{type(owner).__name__}.{name} is already wrapped on this instance")
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = self._now()
            before(start)
            result = original(*args, **kwargs)
            after(start, self._now())
            return result

        setattr(owner, name, timed)
        self._wrapped.append((owner, name))

    def __enter__(self) -> "_StageTimer":
        self._cuda = str(self.pipe._execution_device).startswith("cuda")

        def add_text(start, end):
            self.text_encoding_s += end - start

        def add_decode(start, end):
            self.decoding_s += end - start

        def end_step(_start, end):
            self.step_s.append(end - (self._step_start if self._step_start is not None else _start))
            self._step_start = None

        def start_pass(_module, _args):
            if self._step_start is None:
                self._step_start = self._now()

        try:
            self._wrap(self.pipe, "encode_prompt", lambda _: None, add_text)
            self._wrap(self.pipe.vae, "decode", lambda _: None, add_decode)
            self._wrap(self.pipe.scheduler, "step", lambda _: None, end_step)
            for transformer in (self.pipe.transformer, getattr(self.pipe, "transformer_2", None)):
                if transformer is not None:
                    self._hooks.append(transformer.register_forward_pre_hook(start_pass))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for owner, name in reversed(self._wrapped):
            delattr(owner, name)
        self._wrapped.clear()
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


class WanT2V:
    """A Wan text-to-video pipeline with the original feature's API, recording real cross-attention.

    ``timing_info`` (returned by every generate call) has these keys:

    - ``text_encoding_s``: seconds in ``encode_prompt`` (prompt and negative prompt)
    - ``denoising_step_s``: list, seconds of each denoising step (one per inference step)
    - ``decoding_s``: seconds in the VAE decoder
    - ``generation_s``: seconds of the pipeline call
    - ``total_s``: seconds of the whole call, recording and analysis included
    - ``num_frames``, ``num_frames_requested``, ``height``, ``width``, ``num_inference_steps``:
      what was generated (``num_frames`` differs from the request when it was not 4k+1)
    - ``notes``: list of what was adjusted (each also issued as a ``UserWarning``)
    - ``attention_visualization``: whether this call recorded

    and, when recording:

    - ``capture_s``: device seconds spent computing attention probabilities
    - ``write_s``: seconds the background writer spent writing the store
    - ``analysis_s``: seconds the analyzer took
    - ``analysis_error``: only if the analysis failed (then ``outputs`` is empty and a warning
      says so); the video and the complete store are still returned
    - ``run_dir``: the run's directory, ``output_dir/run_NNN``
    - ``store``: the store, ``run_dir/store.zarr`` (open it with ``wan-analyze`` or zarr)
    - ``outputs``: the analyzer's written paths, one key per output kind
      (``analyzer.outputs.names()``), as :func:`analyzer.run.analyze` returns them
    """

    def __init__(self, pipe, model_id: str | None = None, show_progress: bool = True):
        self.pipe = pipe
        self.model_id = model_id
        self.show_progress = show_progress
        self.visualization_dir: str | None = None
        self.capture_config = CaptureConfig()
        self.analyze_options: dict = {}

    @classmethod
    def from_pretrained(cls, model_id_or_path: str, torch_dtype=None, dtype=None, device_map=None,
                        show_progress: bool = True) -> "WanT2V":
        """Load a diffusers Wan pipeline (hub id or local directory) through :func:`recorder.loading.load_pipeline`.

        ``torch_dtype`` and ``dtype`` are the same thing (a ``torch.dtype`` or its name); give
        either. Default: bfloat16 when the pipeline goes to a GPU, float32 on the CPU. The VAE
        stays float32 either way.

        ``device_map``:

        - ``None``: the pipeline stays on the CPU.
        - a device string (``"cuda"``, ``"cuda:1"``, ``"cpu"``): ``pipe.to(device)``.
        - ``"auto"``: no GPU: stays on the CPU. One or several GPUs: the GPU with the most
          free memory is chosen; if the whole pipeline's weights fit in 80% of its free
          memory the pipeline is moved there, otherwise accelerate's model CPU offload
          (``enable_model_cpu_offload``) is enabled on it, which keeps the weights in CPU
          memory and moves one component at a time to the GPU. The pipeline is not split
          across GPUs: diffusers' Wan pipeline runs each component on one device.
        """
        import torch  # on use: keeps --help light

        from recorder.loading import load_pipeline

        names = {_dtype_name(torch_dtype), _dtype_name(dtype)} - {None}
        if len(names) > 1:
            raise ValueError(f"torch_dtype {torch_dtype} and dtype {dtype} disagree; give one of them")
        _check_device_map(device_map)
        gpu_bound = (device_map == "auto" and torch.cuda.is_available()) or (
            isinstance(device_map, str) and device_map.startswith("cuda"))
        name = names.pop() if names else ("bfloat16" if gpu_bound else "float32")
        pipe = load_pipeline(os.fspath(model_id_or_path), name, "cpu")
        _place(pipe, device_map)
        return cls(pipe, model_id=os.fspath(model_id_or_path), show_progress=show_progress)

    # --- visualization state --------------------------------------------------------------
    def enable_attention_visualization(self, output_dir: str | os.PathLike = "attention_outputs",
                                       capture_config: CaptureConfig | None = None, **analyze_options) -> None:
        """From now on every :meth:`generate` records a store and renders the analyzer's outputs.

        Each call gets a new ``output_dir/run_NNN/`` (the next free number; earlier runs are
        never touched) with ``store.zarr`` and the files ``wan-analyze`` writes.
        ``capture_config`` chooses layers, heads, branches and step stride (default: all
        layers, mean over heads, the prompt's branch, every step); ``analyze_options`` are
        the keywords of :func:`analyzer.run.analyze` (``outputs="report,montage"``, ...).
        Nothing is installed on the pipeline here: the capture is put on for each call and
        taken off when it ends.
        """
        _check_analyze_options(analyze_options)
        if capture_config is not None:
            if not isinstance(capture_config, CaptureConfig):
                raise RecordError(f"capture_config must be a recorder.capture.CaptureConfig, "
                                  f"got {type(capture_config).__name__}")
            inputs.check_capture_config(capture_config)
        _check_output_dir(output_dir)
        self.visualization_dir = os.fspath(output_dir)
        self.capture_config = capture_config or CaptureConfig()
        self.analyze_options = dict(analyze_options)

    def disable_attention_visualization(self) -> None:
        """Back to plain generation: no store, no outputs, the pipeline's own processors."""
        self.visualization_dir = None

    @property
    def attention_visualization_enabled(self) -> bool:
        return self.visualization_dir is not None

    # --- generation ---------------------------------------------------------------------------
    def generate(self, prompt: str, num_frames: int = 16, height: int = 256, width: int = 256,
                 num_inference_steps: int = 25, guidance_scale: float = 7.5, **kwargs):
        """Generate a video; return ``(video, timing_info)``.

        ``video`` is a float32 array (frames, height, width, 3) in [0, 1], as the pipeline
        returns it. ``kwargs`` are the other fields of :class:`recorder.record.GenerationRequest`:
        ``negative_prompt``, ``seed`` (default 0, on a CPU generator, so a seed gives the same
        video on every device), ``guidance_scale_2``, ``max_sequence_length``. Wan generates
        4k+1 frames; another count n becomes n // 4 * 4 + 1 as in the pipeline (the default 16
        gives 17, 10 gives 9), with a ``UserWarning``; ``timing_info["num_frames"]`` is what
        was generated. With
        visualization enabled the call also records and analyses; the class docstring lists
        the keys of ``timing_info``.
        """
        unknown = sorted(set(kwargs) - _REQUEST_FIELDS)
        if unknown:
            raise TypeError(f"generate() got unknown arguments: {', '.join(unknown)}; "
                            f"accepted: {', '.join(sorted(_REQUEST_FIELDS))}")
        request = GenerationRequest(prompt=prompt, num_frames=num_frames, height=height, width=width,
                                    num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                    **kwargs)
        # Every input before the pipeline runs: a bad one costs nothing and leaves nothing behind.
        inputs.check_generation_request(request)
        inputs.check_request_for_pipeline(self.pipe, request, self.model_id)
        if self.visualization_dir is None:
            return self._generate_plain(request)
        inputs.check_capture_config(self.capture_config)
        inputs.check_branches(request, self.capture_config)
        _check_output_dir(self.visualization_dir)
        return self._generate_recorded(request, self.visualization_dir)

    def generate_with_attention_visualization(self, prompt: str, num_frames: int = 16, height: int = 256,
                                              width: int = 256, num_inference_steps: int = 25,
                                              guidance_scale: float = 7.5,
                                              output_dir: str | os.PathLike = "attention_outputs", **kwargs):
        """One recorded generation into a new ``output_dir/run_NNN/``, whatever the enabled state.

        Returns ``(video, timing_info)``; ``timing_info["store"]`` is the store,
        ``timing_info["run_dir"]`` its directory and ``timing_info["outputs"]`` every written
        output by kind. Capture and analysis settings are those of the last
        :meth:`enable_attention_visualization` (the defaults otherwise).
        """
        previous = self.visualization_dir
        self.visualization_dir = os.fspath(output_dir)
        try:
            return self.generate(prompt, num_frames=num_frames, height=height, width=width,
                                 num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, **kwargs)
        finally:
            self.visualization_dir = previous

    def _generate_plain(self, request: GenerationRequest):
        started = time.perf_counter()
        requested_frames = request.num_frames
        request, notes = check_request(self.pipe, request)
        _warn(notes)
        with pipeline_progress(self.pipe, self.show_progress), _StageTimer(self.pipe) as stages:
            begin = time.perf_counter()
            video = generate_plain(self.pipe, request)
            generation_s = time.perf_counter() - begin
        timing = _timing(stages, request, requested_frames, notes, generation_s)
        timing["attention_visualization"] = False
        timing["total_s"] = time.perf_counter() - started
        return video, timing

    def _generate_recorded(self, request: GenerationRequest, output_dir: str):
        from analyzer.run import analyze

        started = time.perf_counter()
        _, notes = check_request(self.pipe, request)
        _warn(notes)  # before the long generation, as the CLI says it
        run_dir = _next_run_dir(Path(output_dir))
        store = run_dir / STORE_NAME
        with _StageTimer(self.pipe) as stages:
            recording = record(self.pipe, request, store, self.capture_config, model_id=self.model_id,
                               show_progress=self.show_progress)
        timing = _timing(stages, recording.request, request.num_frames, recording.notes,
                         recording.timing["generation_s"])
        timing.update(attention_visualization=True, capture_s=recording.timing["capture_s"],
                      write_s=recording.timing["write_s"], run_dir=str(run_dir), store=str(store))
        begin = time.perf_counter()
        # The run directory already holds the store; overwrite only lets the analyzer write beside it.
        options = {"progress": self.show_progress, **self.analyze_options, "overwrite": True}
        try:
            timing["outputs"] = analyze(store, run_dir, **options)
        except Exception as exc:  # noqa: BLE001 - the video and the store are good; do not lose them
            timing["outputs"] = {}
            timing["analysis_error"] = describe(exc)
            _warn([f"the analysis failed ({timing['analysis_error']}); the store {store} is complete, "
                   f"re-run: wan-analyze {store} -o OUTDIR"])
        timing["analysis_s"] = time.perf_counter() - begin
        timing["total_s"] = time.perf_counter() - started
        return recording.frames, timing


def _check_output_dir(output_dir) -> None:
    """``output_dir`` must be a place where ``output_dir/run_NNN/store.zarr`` can be created."""
    try:
        text = os.fspath(output_dir)
    except TypeError:
        raise RecordError(f"output_dir must be a path, got {type(output_dir).__name__}") from None
    if not str(text).strip():
        raise RecordError("output_dir is empty; name a directory for the runs")
    if os.path.exists(text) and not os.path.isdir(text):
        raise RecordError(f"output_dir {inputs.shown(os.fsdecode(text))} is a file, not a directory")
    inputs.check_output_location(os.path.join(os.fsdecode(text), "run_000"))


def _warn(notes: list[str]) -> None:
    # _warn <- _generate_plain/_generate_recorded <- generate <- the caller's line
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=4)


def _check_analyze_options(options: dict) -> None:
    """Refuse analyzer options before any generation: a typo should not cost a whole video."""
    from analyzer.run import check_options  # the analyzer (matplotlib) is imported only when it is asked for

    check_options(options)


def _timing(stages: _StageTimer, request: GenerationRequest, requested_frames: int, notes: list[str],
            generation_s: float) -> dict:
    return {
        "text_encoding_s": stages.text_encoding_s,
        "denoising_step_s": list(stages.step_s),
        "decoding_s": stages.decoding_s,
        "generation_s": generation_s,
        "num_frames": request.num_frames,
        "num_frames_requested": requested_frames,
        "height": request.height,
        "width": request.width,
        "num_inference_steps": request.num_inference_steps,
        "notes": list(notes),
    }


def _next_run_dir(output_dir: Path) -> Path:
    """Create and return ``output_dir/run_NNN`` with the next free number; never reuse one."""
    output_dir.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in output_dir.iterdir() if (m := _RUN_DIR.match(p.name))]
    index = max(taken, default=-1) + 1
    while True:
        run_dir = output_dir / f"run_{index:03d}"
        try:
            run_dir.mkdir()  # exclusive: two processes sharing output_dir get different runs
            return run_dir
        except FileExistsError:
            index += 1
