"""A random-weight Wan pipeline at the real Wan2.1-T2V-1.3B shapes, built without a download.

Transformer: 30 blocks (or fewer, to fit a small machine), 12 heads x 128, ffn 8960,
text_dim 4096 - the 1.3B model. VAE: the real Wan 2.1 VAE configuration. Text encoder:
one UMT5 layer of width 4096 (the real one has 24; text encoding runs once per
generation and is not what the benchmarks measure). Weights are random, so the video
is noise, but every tensor has the size and cost of the real model's.
"""

from __future__ import annotations

import torch

WAN_1_3B = dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, text_dim=4096, num_layers=30)


def _cast_keeping_fp32_modules(model, dtype) -> None:
    """Cast to ``dtype`` but keep the modules diffusers keeps in float32 (as from_pretrained does)."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in model.named_parameters():
        if dtype != torch.float32 and not keep.intersection(name.split(".")):
            param.data = param.data.to(dtype)


def build_wan_shaped_pipeline(num_layers: int = 30, device: str = "cpu", dtype: torch.dtype = torch.bfloat16,
                              seed: int = 0, real_vae: bool = True):
    """``real_vae=False`` swaps in the tiny test VAE: on a 2-core CPU the real one's decode
    takes minutes and would hide the transformer-side cost the benchmarks are about."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    from recorder.tiny import build_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    with torch.device(device):  # initialise on the target device: fast on a GPU
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=len(tokenizer), d_model=WAN_1_3B["text_dim"], d_kv=64, d_ff=1024, num_layers=1,
            num_heads=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval().to(dtype)
        vae = (AutoencoderKLWan() if real_vae else  # the real Wan 2.1 VAE configuration, float32
               AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True])).eval()
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=WAN_1_3B["num_attention_heads"],
            attention_head_dim=WAN_1_3B["attention_head_dim"], in_channels=16, out_channels=16,
            text_dim=WAN_1_3B["text_dim"], freq_dim=256, ffn_dim=WAN_1_3B["ffn_dim"], num_layers=num_layers,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
        ).eval()
        _cast_keeping_fp32_modules(transformer, dtype)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                       transformer=transformer)
    return pipe.to(device)
