"""gancore: the GAN Studio engine (models, training, checkpoints, inference, export). Never imports gradio."""
__version__ = "0.1.0"
