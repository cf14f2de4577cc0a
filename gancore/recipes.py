"""Training settings measured best per model, applied under the user's own settings (`training.recommended`).

Kept free of torch so the studio can show them before the engine is imported.
"""

TRAIN_DEFAULTS: dict[str, dict] = {
    # bench/dcgan_recipes.py, weights/dcgan_mnist.md: hinge loss + spectral norm + minibatch std in the
    # model config, Adam(0, 0.9) at a high learning rate, EMA of G.
    "dcgan": dict(lr_g=8e-3, lr_d=8e-3, beta1=0.0, beta2=0.9, batch_size=64),
}


def learning_rate(model: str) -> float:
    return TRAIN_DEFAULTS.get(model, {}).get("lr_g", 2e-4)
