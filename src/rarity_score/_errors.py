"""The errors of a missing optional package or missing weights, and :func:`require`.

A base module (it imports nothing of the package): the image readers, the extractors and the
report all raise these, and none of them may import another for it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependency", "WeightsUnavailable", "require"]


class MissingDependency(ImportError):  # noqa: N818 - the contract's name
    """An optional package that this feature needs is not installed.

    The message names the package and the pip extra that provides it, e.g.
    ``"vgg16-fc2 needs torchvision: pip install 'rarity-score[images]'"``.
    """


class WeightsUnavailable(ValueError):  # noqa: N818 - the contract's name
    """The weights of an extractor cannot be had: no network and no local copy, or a weights file
    that is missing or does not hold weights for this model.

    The message is one paragraph meant for the user as it stands: it names the expected file,
    where to get it, the folder to put it in, and ``--weights PATH``.
    """


def require(
    module: str, *, what: str, package: str | None = None, extra: str = "images"
) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``package`` and ``extra``.

    Args:
        module: import name, e.g. ``"torchvision"`` or ``"PIL"``.
        what: the feature that needs it, for the message (``"vgg16-fc2"``).
        package: the pip name when it differs from ``module`` (``"pillow"`` for ``PIL``).
        extra: the optional extra of rarity-score that installs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependency(
            f"{what} needs {package or module}: pip install 'rarity-score[{extra}]'"
        ) from error
