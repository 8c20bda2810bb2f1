"""wan-record: capture Wan cross-attention into a store."""


def __getattr__(name):
    # WanT2V is imported on first use, so that `import recorder` does not pull in torch.
    if name == "WanT2V":
        from recorder.api import WanT2V

        return WanT2V
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")
