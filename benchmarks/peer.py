"""The peer: attention-map-diffusers 1.0.0, configured as its documentation suggests for Wan.

``AttentionCapture(pipe, relations=["video->text"], timesteps="all", heads="mean",
offload="cpu")`` around the pipeline call, then ``compute()`` to turn the retained q/k
into maps. It keeps everything in host memory under a byte budget (8 GiB by default) and
raises when the budget would be exceeded; we report that instead of a time.
"""

from __future__ import annotations


def peer_generate(pipe, call_kwargs: dict):
    """Run one generation under the peer's capture; return (frames, info)."""
    from attention_map_diffusers import AttentionCapture

    capture = AttentionCapture(pipe, relations=["video->text"], timesteps="all", heads="mean", offload="cpu")
    info = {"budget_exceeded": None}
    try:
        with capture:
            frames = pipe(**call_kwargs).frames[0]
        maps = capture.compute()
        info["maps"] = len(maps.records)
    except RuntimeError as exc:
        if "exceed" not in str(exc):
            raise
        info["budget_exceeded"] = str(exc).splitlines()[0]
        frames = None
    info["peak_capture_bytes"] = capture.collector.peak_capture_bytes
    capture.clear()
    return frames, info
