"""Check the attention visualization end to end, or run one generation with a prompt.

    python examples/test_attention_visualization.py --test_mode
        a quick self-check on a tiny random-weight model built offline: prints what it
        generated and where the outputs are, then PASS or FAIL (exit code 0 or 1)
    python examples/test_attention_visualization.py --prompt "A dog runs on the beach"
        one recorded generation with that prompt (tiny model unless --model is given)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

TEST_PROMPT = "A cat walks on the grass, under a cloudy sky."
TINY_SIZES = dict(num_frames=9, height=32, width=48, num_inference_steps=2, guidance_scale=5.0)
# Attention and padding mass are stored as float16: a row's sum is 1 to about this.
ROW_SUM_TOLERANCE = 5e-3


def load_model(model_id: str | None, workdir: str, quiet: bool):
    import torch

    from recorder import WanT2V

    if model_id is None:
        from recorder.tiny import save_tiny_pipeline

        path = save_tiny_pipeline(os.path.join(workdir, "tiny-wan"))
        return WanT2V.from_pretrained(path, torch_dtype=torch.float32, show_progress=not quiet)
    return WanT2V.from_pretrained(model_id, torch_dtype=torch.bfloat16, device_map="auto")


def check_run(video, timing_info: dict, plain_video) -> list[str]:
    """Every failed check as one line; an empty list is a PASS."""
    from shared import schema
    from shared.schema import Attr
    from shared.store import open_store

    failures = []
    paths = [timing_info["store"]]
    for written in timing_info["outputs"].values():
        paths += written if isinstance(written, list) else [written]
    failures += [f"missing output {p}" for p in paths if not os.path.exists(p)]
    if "report" not in timing_info["outputs"]:
        failures.append("the analyzer wrote no report")

    root = open_store(timing_info["store"])
    status = root.attrs[Attr.STATUS]
    if status != schema.STATUS_COMPLETE:
        failures.append(f"store status is {status!r}, not {schema.STATUS_COMPLETE!r}")
    complete = root[schema.STEP_COMPLETE.path][:]
    if not complete.all():
        failures.append(f"steps not complete: {np.flatnonzero(~complete).tolist()}")
    attention = root[schema.attention(schema.BRANCH_COND).path][:].astype(np.float64)
    padding = root[schema.padding_mass(schema.BRANCH_COND).path][:].astype(np.float64)
    row_sums = attention.sum(-1) + padding
    worst = float(np.nanmax(np.abs(row_sums - 1))) if np.isfinite(row_sums).all() else float("inf")
    if worst > ROW_SUM_TOLERANCE:
        failures.append(f"attention + padding_mass is off 1 by up to {worst:.2e} (tolerance {ROW_SUM_TOLERANCE})")
    stored_video = root[schema.VIDEO.path][:]
    if not np.array_equal(stored_video, (np.asarray(video) * 255).round().astype(np.uint8)):
        failures.append("the store's video differs from the returned video")
    if len(timing_info["denoising_step_s"]) != timing_info["num_inference_steps"]:
        failures.append("timing_info has not one time per denoising step")
    if plain_video is not None and not np.array_equal(plain_video, video):
        failures.append("the recorded video differs from the plain one (recording changed the output)")
    print(f"checked: {len(paths)} files, status {status}, {complete.size} steps complete, "
          f"{row_sums.size} attention rows sum to 1 within {worst:.1e}")
    return failures


def run_self_check(output_dir: str | None) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        model = load_model(None, workdir, quiet=True)
        out = output_dir or os.path.join(workdir, "attention_outputs")
        video, timing_info = model.generate_with_attention_visualization(TEST_PROMPT, output_dir=out, **TINY_SIZES)
        plain_video, _ = model.generate(TEST_PROMPT, **TINY_SIZES)
        print(f"generated {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} "
              f"in {timing_info['num_inference_steps']} steps, {timing_info['total_s']:.2f} s")
        print(f"store:   {timing_info['store']}")
        print(f"outputs: {timing_info['run_dir']} ({len(timing_info['outputs'])} kinds)"
              + ("" if output_dir else "  [a temporary folder, deleted on exit: pass --output_dir to keep it]"))
        try:
            failures = check_run(video, timing_info, plain_video)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check
            failures = [f"{type(exc).__name__}: {exc}"]
    for failure in failures:
        print(f"  FAIL: {failure}")
    print("FAIL" if failures else "PASS")
    return 1 if failures else 0


def one_prompt(prompt: str, model_id: str | None, output_dir: str) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        model = load_model(model_id, workdir, quiet=False)
        sizes = TINY_SIZES if model_id is None else {}
        video, timing_info = model.generate_with_attention_visualization(prompt, output_dir=output_dir, **sizes)
    print(f"generated {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} "
          f"(asked for {timing_info['num_frames_requested']}) in {timing_info['total_s']:.2f} s")
    print(f"store:  {timing_info['store']}")
    print(f"report: {timing_info['outputs'].get('report')}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--test_mode", action="store_true", help="self-check on the tiny model; exit 0 on PASS")
    mode.add_argument("--prompt", help="one recorded generation with this prompt")
    parser.add_argument("--model", default=None, help="hub id or local directory (default: a tiny model built here)")
    parser.add_argument("--output_dir", default=None,
                        help="where runs go (default: attention_outputs; a temp dir in --test_mode)")
    args = parser.parse_args(argv)
    if args.test_mode:
        if args.model:
            parser.error("--test_mode always uses the tiny model; --model is for --prompt")
        return run_self_check(args.output_dir)
    return one_prompt(args.prompt, args.model, args.output_dir or "attention_outputs")


if __name__ == "__main__":
    sys.exit(main())
