"""A complete example of the attention-visualization API: basic use, then manual control.

    python examples/example_attention_visualization.py --tiny      # offline, tiny random model, seconds on a CPU
    python examples/example_attention_visualization.py             # Wan2.1 1.3B from the hub, on a GPU

The tiny model has random weights: its maps check the plumbing, never meaning.
"""

from __future__ import annotations

import argparse
import os
import tempfile

PROMPT = "A cat walks on the grass, under a cloudy sky."


def load(args, workdir: str):
    """The model, and the sizes to generate at: small ones for the tiny model, the original's otherwise."""
    import torch

    from recorder import WanT2V

    if args.tiny:
        from recorder.tiny import save_tiny_pipeline

        path = save_tiny_pipeline(os.path.join(workdir, "tiny-wan"))
        model = WanT2V.from_pretrained(path, torch_dtype=torch.float32, show_progress=False)
        return model, dict(num_frames=9, height=32, width=48, num_inference_steps=2)
    model = WanT2V.from_pretrained(args.model, torch_dtype=torch.bfloat16, device_map="auto")
    return model, dict(num_frames=17, height=256, width=256, num_inference_steps=25)


def describe(label: str, video, timing_info: dict) -> None:
    steps = timing_info["denoising_step_s"]
    print(f"{label}: {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} "
          f"(asked for {timing_info['num_frames_requested']}) in {timing_info['total_s']:.2f} s: "
          f"text {timing_info['text_encoding_s']:.3f} s, {len(steps)} steps {sum(steps):.3f} s, "
          f"decode {timing_info['decoding_s']:.3f} s")
    if timing_info["attention_visualization"]:
        print(f"  store:  {timing_info['store']}")
        print(f"  report: {timing_info['outputs']['report']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="build a tiny random-weight model offline and use it")
    parser.add_argument("--model", default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", help="hub id or local directory")
    parser.add_argument("--output_dir", default=None, help="default: attention_outputs (a temp dir with --tiny)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as workdir:
        output_dir = args.output_dir or (os.path.join(workdir, "attention_outputs") if args.tiny
                                         else "attention_outputs")
        model, sizes = load(args, workdir)

        # 1. Basic use: one call generates, records and renders.
        video, timing_info = model.generate_with_attention_visualization(PROMPT, output_dir=output_dir, **sizes)
        describe("basic", video, timing_info)

        # 2. Manual control: every generate records while visualization is enabled ...
        model.enable_attention_visualization(output_dir, outputs="report,montage,words")
        for prompt in ("A red car drives down a long road.", "A small bird sits on a branch of a tree."):
            video, timing_info = model.generate(prompt, **sizes)
            describe("recorded", video, timing_info)
        # ... and after disabling, the pipeline is the plain one again.
        model.disable_attention_visualization()
        video, timing_info = model.generate(PROMPT, **sizes)
        describe("plain", video, timing_info)
        if args.tiny and not args.output_dir:
            print(f"(outputs were in the temporary {output_dir}; pass --output_dir to keep them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
