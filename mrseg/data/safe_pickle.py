"""A restricted unpickler for foreign dataset pickles (D-Persona, Knegt, MedicalMatting files).

``pickle.load`` runs arbitrary code. :func:`safe_load` admits only what those files need:
plain containers and scalars (built into the pickle protocol, no import), and from numpy only
the helpers that rebuild arrays and dtypes (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray.scalar`` and their numpy 2 names).
Any other global (``os.system``, ``builtins.eval``, a class ...) is refused with
:class:`UnsafePickleError` naming the file and the global, before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # numpy arrays pickled by Python 2 / protocol 2 store bytes this way
})


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle references a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)  # dtype classes, e.g. numpy.dtypes.Float32DType
        raise UnsafePickleError(
            f"{self._source}: refused to load: the pickle asks for {module}.{name}, which is not a numpy "
            "array, list, dict, tuple or scalar (only those are allowed in dataset pickles)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused to load: persistent ids are not allowed")


def safe_load(path: str | os.PathLike) -> Any:
    """Load a pickle file admitting only numpy arrays, lists, dicts, tuples, sets and scalars.

    Raises ``FileNotFoundError`` for a missing file, :class:`UnsafePickleError` for a forbidden
    global and ``ValueError`` (naming the file) for a corrupt or truncated pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open("rb") as fh:
        try:
            return _RestrictedUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """:func:`safe_load` for bytes already in memory."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from err
