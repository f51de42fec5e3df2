"""imgjax: image generation, classification and denoising on Fashion-MNIST with JAX, Flax NNX and Optax."""

__version__ = "0.1.0"
