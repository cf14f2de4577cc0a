"""GAN Studio entry point (also the Hugging Face Spaces `app_file`): launches `studio.app`.

    python app.py                 # http://127.0.0.1:7860
    python app.py --port 8000     # or GRADIO_SERVER_PORT=8000; GRADIO_SERVER_NAME=0.0.0.0 to listen on all
"""
import argparse
import os

from studio.app import launch

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="GAN Studio web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (env GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (env GRADIO_SERVER_PORT)")
    args = parser.parse_args()
    launch(args.host, args.port)
