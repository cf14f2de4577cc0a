"""The student's model-card picture (weights/horse2zebra_student.png): 256-px test photos, never trained on,
each beside the teacher's and the student's translation.

    python scripts/student_card_picture.py      # needs ../shared
"""
from pathlib import Path

import numpy as np
from PIL import Image

from gancore.imaging import tile
from gancore.inference import load_model, translate

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "datasets" / "horse2zebra"


def main():
    teacher, student = (load_model(ROOT / "weights" / f"{name}.safetensors")
                        for name in ("horse2zebra", "horse2zebra_student"))
    rows = []
    for folder, direction in (("testA", "AB"), ("testB", "BA")):
        for photo in sorted((TEST / folder).glob("*.jpg"))[:4]:
            im = np.asarray(Image.open(photo).convert("RGB"))
            rows += [im, translate(teacher, im, direction)["output"], translate(student, im, direction)["output"]]
    out = Image.fromarray(tile(np.stack(rows), cols=6))
    out.resize((out.width // 2, out.height // 2), Image.LANCZOS).save(ROOT / "weights" / "horse2zebra_student.png")


if __name__ == "__main__":
    main()
