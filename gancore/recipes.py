"""The settings measured best for each model and kind of data, under the user's own: the catalog's recipes
(digits, or the user's own pictures) applied to a TrainConfig and to the model's config."""
from __future__ import annotations

from gancore import catalog, registry
from gancore.config import override
from gancore.train_config import TrainConfig


def recommended(model: str = "dcgan", **changes) -> TrainConfig:
    """A TrainConfig with the settings measured best for `model` on the data `changes` name (digits, or the
    user's own pictures: its catalog recipes), then `changes`.

    `changes` set to None are ignored (unset command-line flags).
    """
    registry.get(model)                       # an unknown model name fails here, with the list of known ones
    recipe = catalog.recipe_for(model, changes.get("data") or TrainConfig.data)
    return override(TrainConfig(model=model, **recipe), **changes)


def recommended_model_config(model: str, data: str, **changes):
    """`model`'s config with the settings measured best for this kind of data (e.g. augmentation for a small
    set of pictures), then `changes`."""
    entry = registry.get(model)
    # Two steps: an unset change (None) keeps the recipe's value instead of erasing it.
    return override(override(entry.config_cls(), **catalog.model_settings_for(model, data)), **changes)
