"""The student's model-card picture: python scripts/student_card_picture.py (needs ../shared)."""
# Model-card picture: test photos (never trained on), the teacher's and the student's translations.
import numpy as np
from pathlib import Path
from PIL import Image
from gancore.inference import load_model, translate
from gancore.imaging import tile, square_photo
T = load_model("weights/horse2zebra.safetensors"); S = load_model("weights/horse2zebra_student.safetensors")
root = Path("../shared/datasets/horse2zebra")
rows = []
for d, direction in (("testA", "AB"), ("testB", "BA")):
    for p in sorted((root / d).glob("*.jpg"))[:4]:
        im = np.array(Image.open(p).convert("RGB").resize((256, 256)))
        rows += [im, translate(T, im, direction)["output"], translate(S, im, direction)["output"]]
out = tile(np.stack(rows), cols=6)
Image.fromarray(out).resize((out.shape[1] // 2, out.shape[0] // 2), Image.LANCZOS).save("weights/horse2zebra_student.png")
print(out.shape)
