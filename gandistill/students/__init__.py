"""Students: any timm backbone (+ CIFAR stem for small images) plus the projector MLP.

>>> from gandistill.students import create_student
>>> s = create_student("resnet18", img_size=32)   # CIFAR stem, 5-layer projector to 2048
"""
from .cifar_stem import apply_cifar_stem, is_resnet_family
from .projector import build_projector
from .student import Student, StudentConfig, UnknownStudentError, create_student, list_students

DEFAULT_STUDENT = "resnet18"

__all__ = ["DEFAULT_STUDENT", "Student", "StudentConfig", "UnknownStudentError", "apply_cifar_stem",
           "build_projector", "create_student", "is_resnet_family", "list_students"]
