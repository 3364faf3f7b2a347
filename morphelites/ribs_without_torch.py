"""Import pyribs without letting it import torch.

pyribs tries ``import torch`` at import time (``ribs.typing``, its discount models and density
archive) only to accept torch tensors and to offer models we do not use. In the main process
that import costs ~230 MB of RSS and about a second of start-up (of the process tree's PSS only
15-20 MB, as the learner maps torch's shared libraries too), and the main process never needs
torch: the learner and independent-mode workers, which do, are processes of their
own. So the modules that use pyribs call :func:`import_ribs` before their ``from ribs ...``
imports; pyribs then works on numpy arrays, exactly as it does where torch is not installed.

How: while pyribs is imported, ``sys.modules["torch"]`` is ``None``, which makes ``import torch``
raise ImportError (pyribs catches it). The block is lifted right after, so any later
``import torch`` in the process works as usual. scipy's array-API helpers look torch up in
``sys.modules`` while scipy.stats is imported (by scikit-learn, which pyribs imports) and would
trip over the ``None``, so scikit-learn is imported before the block. If the blocked import fails
for any other reason (a changed pyribs, scipy or scikit-learn), pyribs is imported the ordinary
way, torch included: memory is lost, not function. The import also leaves the process the cores
it may run on (:mod:`morphelites.cpu_affinity`).
"""

from __future__ import annotations

import importlib
import sys

from morphelites.cpu_affinity import cores_kept

__all__ = ["import_ribs"]

#: What pyribs imports that must not see the torch block (see the module docstring).
_IMPORT_BEFORE_BLOCK = ("scipy.stats", "sklearn.cluster")
#: The pyribs packages imported under the block; ``ribs`` itself imports archives, emitters and
#: schedulers, which hold all its torch imports.
_RIBS_PACKAGES = ("ribs",)


def import_ribs() -> None:
    """Import pyribs once per process, without torch unless torch is already imported.

    Idempotent and cheap after the first call. Where torch is already in the process (the
    learner, tests that train), blocking it would change nothing but pyribs' tensor support, so
    pyribs is imported as usual.
    """
    with cores_kept():
        if "ribs" in sys.modules or "torch" in sys.modules:
            importlib.import_module("ribs")
        else:
            _import_ribs_without_torch()


def _import_ribs_without_torch() -> None:
    for name in _IMPORT_BEFORE_BLOCK:
        importlib.import_module(name)
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        for name in _RIBS_PACKAGES:
            importlib.import_module(name)
    except Exception:
        _forget_modules("ribs")
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    if "ribs" not in sys.modules:
        importlib.import_module("ribs")


def _forget_modules(package: str) -> None:
    """Drop ``package`` and its submodules from ``sys.modules`` (a half-finished import)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
