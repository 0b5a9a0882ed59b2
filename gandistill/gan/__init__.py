"""Training a StyleGAN2 teacher when none exists (StyleGAN2-ADA objective, adaptive augmentation).

>>> from gandistill.gan import gan_config, train_gan
>>> run = train_gan(gan_config("tiny", data="digits", kimg=1, out="runs/x"))   # doctest: +SKIP
"""
from gandistill.gan.ada import AdaAugment, AdaController, ada_adjust
from gandistill.gan.config import GAN_CONFIGS, GanConfig, gan_config
from gandistill.gan.loop import train_gan
from gandistill.gan.sample import bundled_teacher_path, generate_images, sample_grid

__all__ = ["GanConfig", "GAN_CONFIGS", "gan_config", "train_gan", "sample_grid", "bundled_teacher_path",
           "generate_images", "AdaAugment", "AdaController", "ada_adjust"]
