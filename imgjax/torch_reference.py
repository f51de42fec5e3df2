"""PyTorch mirrors of the three imgjax models, for ``imgjax bench`` only: the same architectures
(layer by layer, same widths and shapes), losses, optimizers, augmentation and corruptions, so that
training throughput can be compared side by side on the same machine. Needs the ``bench`` extra.

Layouts differ (PyTorch: NCHW; JAX: NHWC), as each framework prefers; the arithmetic is the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ae import AEConfig
from .cnn import CNNConfig
from .gan import GANConfig, step_options


def space_to_depth(x, block: int = 2):
    return F.pixel_unshuffle(x, block)


def depth_to_space(x, block: int = 2):
    return F.pixel_shuffle(x, block)


# ----------------------------------------------------------------------------- CNN

class Classifier(nn.Module):
    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        w1, w2, w3 = config.widths
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.features = nn.Sequential(
            block(1, w1), nn.MaxPool2d(2), block(w1, w2), block(w2, w2), nn.MaxPool2d(2), block(w2, w3), nn.Flatten(),
            nn.Linear(7 * 7 * w3, config.hidden), nn.ReLU(), nn.Dropout(config.dropout))
        self.head = nn.Linear(config.hidden, config.num_classes)

    def forward(self, images):
        return self.head(self.features(images * 2.0 - 1.0))


def augment(images, max_shift: int = 2):
    """Random horizontal flips and shifts of up to ``max_shift`` pixels, as imgjax.cnn.augment."""
    n, _, h, w = images.shape
    flip = torch.rand(n, 1, 1, 1) < 0.5
    images = torch.where(flip, images.flip(-1), images)
    padded = F.pad(images, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * max_shift)
    padded = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return padded.gather(3, cols)


class OneCycleStep:
    """A model, its optimizer with a one-cycle schedule, and one step on a loss: the shape of the CNN
    and autoencoder steps (subclasses say the model, optimizer and loss)."""

    def __init__(self, model: nn.Module, optimizer_type, learning_rate: float, total_steps: int, **options):
        self.model = model
        self.optimizer = optimizer_type(model.parameters(), learning_rate, **options)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, learning_rate, total_steps=total_steps)

    def loss(self, images, labels):
        raise NotImplementedError

    def __call__(self, images, labels):
        self.model.train()
        loss = self.loss(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        return loss


class CNNStep(OneCycleStep):
    def __init__(self, learning_rate: float = 2e-3, total_steps: int = 1000):
        super().__init__(Classifier(), torch.optim.AdamW, learning_rate, total_steps, weight_decay=5e-4)

    def loss(self, images, labels):
        return F.cross_entropy(self.model(augment(images)), labels)


# ----------------------------------------------------------------------------- autoencoder

class DenoisingAutoencoder(nn.Module):
    def __init__(self, config: AEConfig = AEConfig()):
        super().__init__()
        half, quarter = config.widths
        n_half, n_quarter, n_decode = config.depths
        conv = lambda cin, cout, k=3: nn.Conv2d(cin, cout, k, padding=k // 2)
        self.encode_half = nn.ModuleList([conv(4, half)] + [conv(half, half) for _ in range(n_half - 1)])
        self.encode_quarter = nn.ModuleList([conv(half, quarter)] + [conv(quarter, quarter) for _ in range(n_quarter - 1)])
        self.upsample = conv(quarter, 4 * half, k=1)
        self.decode_half = nn.ModuleList([conv(half, half) for _ in range(n_decode)])
        self.output = conv(half, 4)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, images):
        h = space_to_depth(images * 2.0 - 1.0)
        for layer in self.encode_half:
            h = F.relu(layer(h))
        skip = h
        h = F.avg_pool2d(h, 2)
        for layer in self.encode_quarter:
            h = F.relu(layer(h))
        h = F.relu(depth_to_space(self.upsample(h)) + skip)
        for layer in self.decode_half:
            h = F.relu(layer(h))
        return torch.clamp(images + depth_to_space(self.output(h)), 0.0, 1.0)


def random_corruption(images, shares=AEConfig().corruption_shares, n_boxes: int = 3, max_size: int = 12):
    """The training mix of imgjax.corruptions.random_corruption."""
    n, _, h, w = images.shape
    kind = torch.multinomial(torch.tensor(shares), n, replacement=True)[:, None, None, None]
    sigma = torch.empty(n, 1, 1, 1).uniform_(0.05, 0.4)
    noisy = torch.clamp(images + sigma * torch.randn_like(images), 0.0, 1.0)
    amount = torch.empty(n, 1, 1, 1).uniform_(0.02, 0.3)
    hit = torch.rand_like(images) < amount
    peppered = torch.where(hit, (torch.rand_like(images) < 0.5).float(), images)
    size = torch.randint(4, max_size + 1, (2, n, n_boxes, 1))
    top = (torch.rand(n, n_boxes, 1) * (h - size[0] + 1)).long()
    left = (torch.rand(n, n_boxes, 1) * (w - size[1] + 1)).long()
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= top) & (rows < top + size[0])  # (n, boxes, h)
    in_cols = (cols >= left) & (cols < left + size[1])
    mask = (in_rows[..., :, None] & in_cols[..., None, :]).any(1)[:, None]
    masked = torch.where(mask, torch.zeros_like(images), images)
    return torch.where(kind == 0, noisy, torch.where(kind == 1, peppered, masked))


class AEStep(OneCycleStep):
    def __init__(self, learning_rate: float = 2e-3, total_steps: int = 1000):
        super().__init__(DenoisingAutoencoder(), torch.optim.Adam, learning_rate, total_steps)

    def loss(self, images, labels):
        return F.mse_loss(self.model(random_corruption(images)), images)


# ----------------------------------------------------------------------------- GAN

class Generator(nn.Module):
    def __init__(self, config: GANConfig = GANConfig()):
        super().__init__()
        c7, c14, c28 = config.generator_widths
        self.embed = nn.Embedding(config.num_classes, config.class_embedding)
        self.project = nn.Linear(config.latent_dim + config.class_embedding, 7 * 7 * c7)
        self.norm0 = nn.BatchNorm1d(7 * 7 * c7)
        self.up1 = nn.Conv2d(c7, 4 * c14, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c14)
        self.refine1 = nn.Conv2d(c14, c14, 3, padding=1, bias=False)
        self.refine_norm1 = nn.BatchNorm2d(c14)
        self.up2 = nn.Conv2d(c14, 4 * c28, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c28)
        self.refine2 = nn.Conv2d(c28, c28, 3, padding=1, bias=False)
        self.refine_norm2 = nn.BatchNorm2d(c28)
        self.to_image = nn.Conv2d(c28, 1, 3, padding=1)
        self.c7 = c7

    def forward(self, latents, labels):
        h = F.relu(self.norm0(self.project(torch.cat([latents, self.embed(labels)], -1))))
        h = h.view(-1, self.c7, 7, 7)
        h = F.relu(self.norm1(depth_to_space(self.up1(h))))
        h = F.relu(self.refine_norm1(self.refine1(h)))
        h = F.relu(self.norm2(depth_to_space(self.up2(h))))
        h = F.relu(self.refine_norm2(self.refine2(h)))
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig = GANConfig()):
        super().__init__()
        c14, c7 = config.discriminator_widths
        self.conv14 = nn.Conv2d(4, c14, 3, padding=1)
        self.conv7 = nn.Conv2d(4 * c14, c7, 2, padding="same")
        self.std_group = config.minibatch_std_group
        self.std_by_class, self.num_classes = config.minibatch_std_by_class, config.num_classes
        self.refine7 = nn.Conv2d(c7 + (1 if self.std_group else 0), c7, 3, padding=1)
        self.score = nn.Linear(7 * 7 * c7, 1)
        self.class_projection = nn.Embedding(config.num_classes, 7 * 7 * c7)

    def forward(self, images, labels):
        h = F.leaky_relu(self.conv14(space_to_depth(images)), 0.2)
        h = F.leaky_relu(self.conv7(space_to_depth(h)), 0.2)
        if self.std_group and self.std_by_class:
            h = append_class_std(h, labels, self.std_group, self.num_classes)
        elif self.std_group:
            h = append_minibatch_std(h, self.std_group)
        h = F.leaky_relu(self.refine7(h), 0.2).flatten(1)
        return self.score(h)[:, 0] + (self.class_projection(labels) * h).sum(-1)


def append_minibatch_std(h, group: int):
    """imgjax.gan.append_minibatch_std for (N, C, H, W) features: groups of consecutive images."""
    n, _, height, width = h.shape
    group = math.gcd(group, n)
    grouped = h.view(n // group, group, *h.shape[1:])
    spread = (grouped.var(dim=1, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))
    return torch.cat([h, spread.repeat_interleave(group).view(n, 1, 1, 1).expand(n, 1, height, width)], 1)


def append_class_std(h, labels, group: int, num_classes: int):
    """imgjax.gan.append_class_std for (N, C, H, W) features."""
    n, _, height, width = h.shape
    group = math.gcd(group, n)
    features = h.reshape(n // group, group, -1)
    members = F.one_hot(labels.view(n // group, group), num_classes).to(h.dtype)
    count = members.sum(1).clamp(min=1.0)[..., None]
    mean = torch.einsum("bik,bif->bkf", members, features) / count
    square = torch.einsum("bik,bif->bkf", members, features * features) / count
    spread = ((square - mean * mean).clamp(min=0.0) + 1e-8).sqrt().mean(-1)
    per_image = torch.einsum("bik,bk->bi", members, spread).reshape(n, 1, 1, 1)
    return torch.cat([h, per_image.expand(n, 1, height, width)], 1)


class GANStep:
    """One simultaneous step, as imgjax.gan.train_step: G's loss through the current D, D's loss on
    the same (detached) fakes, both optimizers, then the EMA of G's weights and statistics."""

    def __init__(self, learning_rate: float = 2e-4, config: GANConfig = GANConfig(), total_steps: int = 1000):
        self.generator, self.discriminator = Generator(config), Discriminator(config)
        self.ema = Generator(config)
        self.ema.load_state_dict(self.generator.state_dict())
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), learning_rate, betas=config.adam_betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), learning_rate, betas=config.adam_betas)
        decay_steps = int(total_steps * config.decay_fraction)  # as imgjax.gan.learning_rate_schedule
        hold = total_steps - decay_steps
        def factor(step):
            done = min(max(step - hold, 0), decay_steps) / decay_steps
            return 1.0 - done if config.decay_shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
        self.schedules = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (self.g_optimizer, self.d_optimizer)]
        self.latent_dim, self.decay, self.r1_gamma = config.latent_dim, config.ema_decay, config.r1_gamma
        self.r1_interval, self.steps = config.r1_interval, 0

    def __call__(self, images, labels):
        real = images * 2.0 - 1.0
        fake = self.generator(torch.randn(len(images), self.latent_dim), labels)
        self.discriminator.requires_grad_(False)  # G's gradient flows through D's input only
        g_loss = F.softplus(-self.discriminator(fake, labels)).mean()
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.discriminator.requires_grad_(True)
        fake = fake.detach()
        with_r1 = step_options(self, self.steps)["with_r1"]  # JAX's schedule: it reads r1_gamma and r1_interval
        self.steps += 1
        real.requires_grad_(with_r1)
        real_scores = self.discriminator(real, labels)
        d_loss = (F.softplus(-real_scores) + F.softplus(self.discriminator(fake, labels))).mean()
        if with_r1:
            (score_gradients,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
            penalty = score_gradients.pow(2).sum((1, 2, 3)).mean()
            d_loss = d_loss + 0.5 * self.r1_gamma * self.r1_interval * penalty
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.g_optimizer.step()
        self.d_optimizer.step()
        for schedule in self.schedules:
            schedule.step()
        with torch.no_grad():
            averaged = [p for p in self.ema.state_dict().values() if p.dtype.is_floating_point]
            current = [p for p in self.generator.state_dict().values() if p.dtype.is_floating_point]
            torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
        return d_loss


STEPS = {"cnn": CNNStep, "ae": AEStep, "gan": GANStep}
