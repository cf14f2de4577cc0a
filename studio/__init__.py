"""GAN Studio's Gradio app: `studio.app.build_app()`; state lives in `studio.services.Services`."""
