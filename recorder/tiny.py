"""Build a tiny random-weight Wan pipeline offline, for tests, the demo and benchmarks.

It has the real architecture (UMT5 text encoder, Wan VAE, WanTransformer3DModel,
UniPC flow-matching scheduler) at toy sizes, and a SentencePiece-style Unigram
tokenizer with a fixed vocabulary, so nothing is downloaded and every build is the same. Saved with
``save_pretrained``, it loads through the same ``WanPipeline.from_pretrained`` path
as a hub id. Its maps are noise: it checks plumbing and exactness, never meaning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# A fixed Unigram vocabulary, written out rather than trained: training breaks score ties
# in hash-map order, so two builds could number the same piece differently. Whole words
# of common prompts are single pieces; any other word splits into sub-word pieces and
# characters, as the real UMT5 vocabulary splits rare words.
_WORDS = (
    "a an the of on in at under over with and to is it its cat cats dog bird horse car road "
    "street city garden beach sunset sky cloud tree branch grass moon night day light water "
    "waves rocks table coffee cup walks walk runs run rides sits drives red small long busy "
    "wooden soft astronaut people"
).split()
_SUFFIXES = ("s", "y", "ed", "ing", "er", "ly")
_CHARACTERS = ("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ" "0123456789" ",.!?;:'\"-()/&")
_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in UMT5


def _vocabulary() -> list[tuple[str, float]]:
    """(piece, log-probability) pairs; longer known pieces score higher than spelling out."""
    vocab = [(special, 0.0) for special in _SPECIALS]
    vocab += [("\u2581" + word, -4.0) for word in _WORDS]
    vocab += [(suffix, -6.0) for suffix in _SUFFIXES]
    vocab += [("\u2581", -8.0)]
    vocab += [(char, -10.0) for char in _CHARACTERS]
    vocab += [("\u2581" + char, -9.0) for char in _CHARACTERS]
    return vocab


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of the tiny pipeline. Defaults follow diffusers' own Wan tests."""

    num_layers: int = 2
    num_heads: int = 2
    head_dim: int = 12
    text_dim: int = 32
    two_experts: bool = False
    boundary_ratio: float = 0.875
    ti2v: bool = False  # Wan 2.2 TI2V-5B's layout: residual VAE, z_dim 48, spatial factor 16, per-token timesteps
    seed: int = 0


def build_tokenizer():
    """A Unigram tokenizer with UMT5's special tokens (<pad>=0, </s>=1, <unk>=2), the same on every build."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast  # on use: keeps --help light

    tok = Tokenizer(models.Unigram(_vocabulary(), unk_id=_SPECIALS.index("<unk>")))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)


def build_tiny_pipeline(config: TinyConfig = TinyConfig()):
    """Return a WanPipeline with random weights (eval mode, float32, CPU)."""
    import torch  # on use: keeps --help light
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel  # on use: keeps --help light

    torch.manual_seed(config.seed)
    tokenizer = build_tokenizer()
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=config.text_dim, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0,
        eos_token_id=1, decoder_start_token_id=0,
    )).eval()
    if config.ti2v:
        latent_channels = 48
        vae = AutoencoderKLWan(base_dim=12, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                               out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                               latents_mean=[0.0] * 48, latents_std=[1.0] * 48).eval()
    else:
        latent_channels = 16
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True]).eval()

    def transformer():
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=config.num_heads, attention_head_dim=config.head_dim,
            in_channels=latent_channels, out_channels=latent_channels, text_dim=config.text_dim, freq_dim=256, ffn_dim=32,
            num_layers=config.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        ).eval()

    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
        transformer=transformer(),
        transformer_2=transformer() if config.two_experts else None,
        boundary_ratio=config.boundary_ratio if config.two_experts else None,
        expand_timesteps=config.ti2v,
    )


def save_tiny_pipeline(path: str | os.PathLike, config: TinyConfig = TinyConfig()) -> str:
    """Build the tiny pipeline and ``save_pretrained`` it to ``path`` (which must not exist)."""
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists")
    build_tiny_pipeline(config).save_pretrained(path)
    return path
