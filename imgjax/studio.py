"""The browser studio (Gradio Blocks): Generate, Classify and Denoise on the shipped checkpoints.

The UI calls the package's inference functions; no model code imports Gradio. This first version
covers the core interactions; issue 3 tracks the full studio (interpolation, sketchpad, brush masks,
before/after slider, limits, warm-up and the Spaces configuration).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from . import checkpoint, corruptions, data
from .metrics import psnr, ssim


class Studio:
    """The three shipped models, loaded once; plain functions from numpy to numpy."""

    def __init__(self):
        self.classifier, _ = checkpoint.load_model("cnn")
        self.autoencoder, _ = checkpoint.load_model("ae")
        self.generator, self.gan_card = checkpoint.load_model("gan")

    def generate(self, class_name: str, seed: int, count: int, truncation: float) -> np.ndarray:
        """A grid of ``count`` generated images of ``class_name`` (or one row per class for 'All')."""
        from .gan import generate_images, sample_latents
        from .images import image_grid
        count = int(np.clip(count, 1, 64))
        latent_dim = self.gan_card["config"]["latent_dim"]
        if class_name == "All classes":
            latents = np.tile(sample_latents(int(seed), count, latent_dim, truncation), (10, 1))
            labels, rows = np.repeat(np.arange(10), count), 10
        else:
            latents = sample_latents(int(seed), count, latent_dim, truncation)
            labels, rows = np.full(count, data.FASHION_CLASSES.index(class_name)), max(1, int(np.sqrt(count)))
        return image_grid(np.asarray(generate_images(self.generator, latents, labels)), rows=rows)

    def classify(self, image: np.ndarray) -> tuple[dict, np.ndarray]:
        """Top classes with probabilities and a saliency overlay (RGB) of what the model looked at."""
        from .cnn import classify_with_saliency
        x = to_model_input(image)
        probabilities, saliency = classify_with_saliency(self.classifier, x)
        top = {data.FASHION_CLASSES[i]: float(probabilities[0, i]) for i in np.argsort(-probabilities[0])[:5]}
        gray = np.repeat(x[0], 3, axis=-1)
        heat = np.stack([np.asarray(saliency[0]), np.zeros((28, 28)), np.zeros((28, 28))], -1)
        overlay = np.clip(0.6 * gray + 0.8 * heat, 0, 1)
        return top, np.asarray(Image.fromarray((overlay * 255).astype(np.uint8)).resize((224, 224), Image.NEAREST))

    def denoise(self, image: np.ndarray, kind: str, level: float, seed: int):
        """Corrupt a clean image, restore it; returns (corrupted, restored, figures text)."""
        import jax
        from .ae import restore
        clean = to_gray(image)[None, ..., None]
        key = jax.random.key(int(seed))
        if kind == "Gaussian noise":
            noisy = corruptions.gaussian_noise(key, clean, level)
        elif kind == "Salt and pepper":
            noisy = corruptions.salt_and_pepper(key, clean, level)
        else:
            noisy = corruptions.apply_mask(clean, corruptions.random_box_masks(key, clean.shape))
        restored = restore(self.autoencoder, np.asarray(noisy))
        figures = (f"PSNR noisy {float(psnr(clean, noisy)[0]):.2f} dB → restored {float(psnr(clean, restored)[0]):.2f} dB")
        if min(clean.shape[1:3]) >= 11:
            figures += f"; SSIM {float(ssim(clean, noisy)[0]):.3f} → {float(ssim(clean, restored)[0]):.3f}"
        return np.asarray(noisy)[0, ..., 0], restored[0, ..., 0], figures


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8 or float image (H, W[, C]) -> (H, W) float32 in [0, 1]."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].mean(-1) if array.shape[-1] >= 3 else array[..., 0]
    array = array.astype(np.float32)
    return array / 255.0 if array.max() > 1.0 else array


def to_model_input(image: np.ndarray) -> np.ndarray:
    """Any image -> (1, 28, 28, 1) float32 in [0, 1], light garment on dark (as in Fashion-MNIST)."""
    gray = to_gray(image)
    if np.median(gray) > 0.5:  # dark-on-light photos and drawings: invert to the training polarity
        gray = 1.0 - gray
    resized = Image.fromarray((gray * 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR)
    return (np.asarray(resized, np.float32) / 255.0)[None, ..., None]


def build_demo():
    import gradio as gr
    studio = Studio()
    test = data.load_split("test") if data.data_available() else None
    with gr.Blocks(title="imgjax studio") as demo:
        gr.Markdown("# imgjax studio\nFashion-MNIST models in JAX + Flax NNX: generate, classify, denoise.")
        with gr.Tab("Generate"):
            with gr.Row():
                class_name = gr.Dropdown(["All classes", *data.FASHION_CLASSES], value="Sneaker", label="Class")
                seed = gr.Number(0, precision=0, label="Seed")
                count = gr.Slider(1, 64, 16, step=1, label="Images")
                truncation = gr.Slider(0.2, 3.0, 1.5, step=0.1, label="Truncation")
            grid = gr.Image(label="Generated", format="png")
            gr.Button("Generate", variant="primary").click(
                studio.generate, [class_name, seed, count, truncation], grid, api_name="generate")
        with gr.Tab("Classify"):
            with gr.Row():
                upload = gr.Image(label="Image", type="numpy")
                with gr.Column():
                    label = gr.Label(num_top_classes=5, label="Top 5")
                    saliency = gr.Image(label="Saliency (red: pixels that moved the top class most)")
            gr.Button("Classify", variant="primary").click(studio.classify, upload, [label, saliency], api_name="classify")
            if test is not None:
                gr.Examples([[test.images[i]] for i in range(8)], inputs=upload)
        with gr.Tab("Denoise"):
            with gr.Row():
                clean = gr.Image(label="Clean image", type="numpy", image_mode="L")
                kind = gr.Radio(["Gaussian noise", "Salt and pepper", "Masked boxes"], value="Gaussian noise", label="Corruption")
                level = gr.Slider(0.0, 0.5, 0.2, step=0.01, label="Level (sigma or amount)")
                noise_seed = gr.Number(0, precision=0, label="Seed")
            with gr.Row():
                noisy = gr.Image(label="Corrupted")
                restored = gr.Image(label="Restored by the autoencoder")
            figures = gr.Markdown()
            gr.Button("Denoise", variant="primary").click(
                studio.denoise, [clean, kind, level, noise_seed], [noisy, restored, figures], api_name="denoise")
            if test is not None:
                gr.Examples([[test.images[i]] for i in range(8)], inputs=clean)
    return demo
