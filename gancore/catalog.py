"""What the product knows about each model besides its code: task, title, studio presets, training recipe.

Torch-free, so the studio can show it before the engine is imported; `gancore.registry` maps the same names
to their config and model classes. A model added elsewhere (a test, a plug-in) registers both at once with
`registry.register(...)`, which also calls `add` here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("noise", "translate", "inpaint")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str                        # "noise" (z -> image), "translate" (image -> image), "inpaint"
    title: str
    # Training settings measured best for the model on digits (bench/dcgan_recipes.py, weights/dcgan_mnist.md),
    # applied under the user's own settings by `recipes.recommended`.
    recipe: dict = field(default_factory=dict)
    # The same for a folder or zip of the user's own colour pictures (bench/colour_recipes.py): training
    # settings, and model settings (augmentation) that `recipes.recommended_model_config` applies.
    picture_recipe: dict = field(default_factory=dict)
    picture_model: dict = field(default_factory=dict)
    # Studio presets: small configs that train in minutes on a laptop CPU. `image_size` per data source
    # ("mnist": 28 px grey, "upload": RGB pictures), the sizes the Train tab offers, and fixed settings.
    # `load_size_margin`: the training load size is image_size * (1 + margin) (random crops).
    studio: dict = field(default_factory=dict)


_MODELS: dict[str, ModelInfo] = {}


def add(info: ModelInfo) -> None:
    if info.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}")
    _MODELS[info.name] = info


def remove(name: str) -> None:
    _MODELS.pop(name, None)


def get(name: str) -> ModelInfo | None:
    return _MODELS.get(name)


def names() -> list[str]:
    return sorted(_MODELS)


def task_of(name: str) -> str:
    info = _MODELS.get(name)
    return info.task if info else ""


def is_pictures(data: str) -> bool:
    """Whether a run's data is the user's own pictures (a folder or zip), not the bundled or synthetic sets."""
    return bool(data) and data not in ("mnist", "synthetic")


def recipe_for(model: str, data: str = "mnist") -> dict:
    """Training settings measured best for `model` on this kind of data."""
    info = _MODELS.get(model)
    if info is None:
        return {}
    return info.picture_recipe if is_pictures(data) and info.picture_recipe else info.recipe


def model_settings_for(model: str, data: str = "mnist") -> dict:
    info = _MODELS.get(model)
    return dict(info.picture_model) if info is not None and is_pictures(data) else {}


def learning_rate(model: str, data: str = "mnist") -> float:
    return recipe_for(model, data).get("lr_g", 2e-4)


def batch_size(model: str, data: str = "mnist") -> int:
    return recipe_for(model, data).get("batch_size", 64)


def studio_models() -> list[tuple[str, str]]:
    """(label, name) of the models the Train tab offers: those with studio presets, in their rank order."""
    offered = [info for info in _MODELS.values() if info.studio]
    return [(info.studio.get("label", info.title), info.name)
            for info in sorted(offered, key=lambda i: (i.studio.get("rank", 99), i.name))]


def studio_settings(model: str, mnist: bool, image_size: int = 0) -> dict:
    """Config settings for a studio run of `model` on MNIST or on uploaded RGB pictures."""
    preset = _MODELS[model].studio
    if not preset:
        return {}
    sizes = preset.get("image_sizes")
    default = preset.get("image_size", {}).get("mnist" if mnist else "upload")
    size = int(image_size) if image_size and (not sizes or int(image_size) in sizes) else default
    out = dict(preset.get("fixed", {}))
    if size:
        out["image_size"] = size
    if "channels" in preset:
        out["image_channels"] = 1 if mnist else 3
    if "load_size_margin" in preset and size:
        out["load_size"] = size + int(size * preset["load_size_margin"])
    return out


add(ModelInfo("mlp", "noise", "MLP GAN (Goodfellow et al. 2014)",
              studio={"label": "MLP GAN: the original 2014 GAN, fastest", "rank": 2,
                      "image_size": {"mnist": 28, "upload": 28}, "channels": True}))
add(ModelInfo("dcgan", "noise", "DCGAN (Radford et al. 2016)",
              # hinge loss + spectral norm + minibatch std in the model config, Adam(0, 0.9) at a high
              # learning rate, EMA of G.
              recipe=dict(lr_g=8e-3, lr_d=8e-3, beta1=0.0, beta2=0.9, batch_size=64),
              # Colour pictures (bench/colour_recipes.py "projected-ms", docs/pictures.md): D judges a frozen
              # ImageNet EfficientNet-Lite0's features (Projected GAN) with minibatch std per head, G pays a
              # mode-seeking term (MSGAN) against collapse, adaptive DiffAugment (colour, translation, cutout;
              # ADA 0.6), a quarter of the digits' learning rate falling to 0 over the second half of the run,
              # batch 32, 16 channels in G's last block and in the heads, RGB at 64 px (the studio's image-size
              # choice still applies). At 10 CPU-minutes: 0.40x the digits recipe's KID on emoji, 0.38x on
              # zebra photos.
              picture_recipe=dict(lr_g=2e-3, lr_d=2e-3, beta1=0.0, beta2=0.9, batch_size=32, lr_decay_start=0.5),
              picture_model=dict(augment="color,translation,cutout", ada_target=0.6, base_channels=16,
                                 d_base_channels=16, d_features="lite0", mode_seeking=1.0, image_size=64,
                                 image_channels=3),
              studio={"label": "DCGAN: convolutional, sharp digits in a minute", "rank": 1,
                      "image_size": {"mnist": 28, "upload": 32}, "image_sizes": (28, 32, 64), "channels": True}))
add(ModelInfo("cyclegan", "translate", "CycleGAN (Zhu et al. 2017)",
              # One photo a step, as in the paper: at 256 px a step's activations take about 0.3 GB a photo
              # (the trainer's default batch of 64 wanted more than 24 GB), constant rate then linear decay.
              recipe=dict(batch_size=1, lr_decay_start=0.5),
              studio={"label": "CycleGAN: the same both ways, slower", "rank": 4,
                      "image_size": {"mnist": 64, "upload": 64}, "load_size_margin": 0.125,
                      "fixed": {"base_channels": 16, "res_blocks": 4, "d_base_channels": 32}}))
add(ModelInfo("cut", "translate", "CUT / FastCUT contrastive translation (Park et al. 2020)",
              # One photo a step on 128-px crops of 192-px loads, constant rate then linear decay to 0.
              recipe=dict(batch_size=1, lr_decay_start=0.5),
              # The studio: 64-px pictures (whole, no crops: uploads are often small), so a minute shows a change.
              studio={"label": "CUT: turns pictures of one kind into another (two sets, e.g. photos and sketches)",
                      "rank": 3, "image_size": {"mnist": 64, "upload": 64}, "load_size_margin": 0.125,
                      "fixed": {"crop_size": 0}}))
add(ModelInfo("maskrec", "inpaint", "Masked reconstruction (context encoder, Pathak et al. 2016)"))
