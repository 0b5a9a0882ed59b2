"""Students: any timm backbone (+ CIFAR stem for small images) plus the projector MLP.

>>> from gandistill.students import create_student
>>> s = create_student("resnet18", img_size=32)   # CIFAR stem, 5-layer projector to 2048

Choice of a default: ``resnet18`` with the CIFAR stem is the paper's student. On a 2-core CPU
``resnet10t`` with the CIFAR stem (4.9M backbone params, deep 3x3 stem, one block per stage) trains
about 1.4x faster (fwd+bwd, 32px, batch 128: 6.5 vs 4.5 img/s measured on a heavily shared 2-core
machine); it suits quick CPU runs. Without the stem patch a 32px image ends at 1x1 and both are
4-6x faster but learn much weaker features.
"""
from .cifar_stem import apply_cifar_stem, is_resnet_family
from .projector import build_projector
from .student import Student, StudentConfig, UnknownStudentError, create_student, list_students

DEFAULT_STUDENT = "resnet18"

__all__ = ["DEFAULT_STUDENT", "Student", "StudentConfig", "UnknownStudentError", "apply_cifar_stem",
           "build_projector", "create_student", "is_resnet_family", "list_students"]
