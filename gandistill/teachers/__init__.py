"""Teachers: frozen pretrained GAN parts that produce distillation targets, selected by name.

>>> from gandistill.teachers import list_teachers
>>> list_teachers()
['sg2-d-on-g', 'sg2-discriminator', 'sg2-encoder', 'sg2-generator', 'sg2-latent', 'sg3-discriminator', 'sg3-generator', 'sg3-latent']

``create_teacher(name, ckpt=None, device="cpu", **kw)`` builds one (default checkpoint: the bundled
digits teacher); ``register_teacher`` plugs in your own (see :mod:`gandistill.teachers.registry`).
"""
from gandistill.teachers.base import Teacher, TeacherSample
from gandistill.teachers.registry import TEACHERS, create_teacher, describe_teacher, list_teachers, register_teacher

# the built-in teachers register themselves on import
from gandistill.teachers import d_on_g, discriminator, encoder, generator, latent, sg3  # noqa: E402,F401

__all__ = [
    "Teacher",
    "TeacherSample",
    "TEACHERS",
    "create_teacher",
    "describe_teacher",
    "list_teachers",
    "register_teacher",
]
