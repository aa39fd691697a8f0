"""The files behind the key-statistics cache: written atomically, checked when read, never lost.

* A file is written to ``<name>.<pid>.tmp`` beside its final name, flushed to disk and renamed into
  place, so a reader sees the old file or the new one, never half of one. A writer killed
  mid-write leaves its ``.tmp`` behind; the next writer in that folder removes the ``.tmp`` files
  whose process is gone.
* A file that is empty, truncated or corrupted raises :class:`CorruptStatisticsError` naming the
  file and saying what to do, not numpy's ``BadZipFile`` or ``EOFError``.
* When the chosen folder is not writable (a read-only checkout), the file goes to the user's cache
  folder instead, with a warning; if that fails too the caller still gets the computed result.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from nullspace.settings import user_cache_dir

__all__ = ["CorruptStatisticsError", "StaleStatisticsError", "arrays_sha256", "fallback_folder", "read_npz",
           "remove_abandoned_tmp_files", "write_npz", "write_npz_somewhere"]


class StaleStatisticsError(RuntimeError):
    """A cached statistics file exists but was computed from something else."""


class CorruptStatisticsError(StaleStatisticsError):
    """A cached statistics file cannot be read (empty, truncated, corrupted)."""


def arrays_sha256(arrays: dict[str, np.ndarray], header: dict) -> str:
    """SHA-256 of the arrays (in name order) and the header's token count, stored in the header."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    digest.update(str(header.get("token_count", -1)).encode())
    return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_abandoned_tmp_files(folder: Path) -> list[Path]:
    """Delete ``*.npz.<pid>.tmp`` files in ``folder`` whose writing process no longer runs."""
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob("*.npz*.tmp"):
        pid_text = tmp.name[:-len(".tmp")].rsplit(".", 1)[-1]
        if pid_text.isdigit() and _process_alive(int(pid_text)) and int(pid_text) != os.getpid():
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def write_npz(path: Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write ``arrays`` and ``header`` (with its checksum) to ``path`` atomically.

    Raises:
        OSError: the folder cannot be written (nothing is left behind).
    """
    header = {**header, "sha256": arrays_sha256(arrays, header)}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header, sort_keys=True)), **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_tmp_files(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fallback_folder(folder: Path, cache_root: Path) -> Path:
    """Where a file meant for ``folder`` (under ``cache_root``) goes when ``folder`` is read-only:
    the same relative place under the user's cache folder."""
    try:
        relative = folder.resolve().relative_to(cache_root.resolve())
    except ValueError:
        relative = Path(folder.name)
    return user_cache_dir() / "key_statistics" / relative


def write_npz_somewhere(path: Path, arrays: dict[str, np.ndarray], header: dict, cache_root: Path) -> Path | None:
    """:func:`write_npz` to ``path``, else (not writable) to :func:`fallback_folder`, with a warning.

    Returns the path written, or None when neither place could be written (warned; the caller
    keeps its result in memory).
    """
    try:
        write_npz(path, arrays, header)
        return path
    except OSError as first:
        other = fallback_folder(path.parent, cache_root) / path.name
        try:
            write_npz(other, arrays, header)
        except OSError as second:
            warnings.warn(f"the statistics could not be cached: {path} ({first}) and {other} ({second}) are not "
                          "writable. They are returned but will be recomputed next time; set NULLSPACE_CACHE_DIR "
                          "to a writable folder.", stacklevel=3)
            return None
        warnings.warn(f"{path.parent} is not writable ({first.strerror or first}); the statistics were saved to "
                      f"{other} instead. Set NULLSPACE_CACHE_DIR to choose the cache folder.", stacklevel=3)
        return other


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and header of a file written by :func:`write_npz`, after checking its checksum.

    Raises:
        CorruptStatisticsError: the file is empty, truncated, not such a file, or its checksum fails;
            the message names the file and what to do.
    """
    advice = (f"Delete it (rm '{path}') and run again to recompute it, or pass recompute=True "
              "(key_statistics, prepare_workbench).")
    try:
        if path.stat().st_size == 0:
            raise CorruptStatisticsError(f"the statistics file {path} is empty (an interrupted copy?). {advice}")
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in data.files if name != "header"}
    except CorruptStatisticsError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise CorruptStatisticsError(f"the statistics file {path} cannot be read: it is truncated or corrupted "
                                     f"({type(err).__name__}: {err}). {advice}") from err
    if header.get("sha256") != arrays_sha256(arrays, header):
        raise CorruptStatisticsError(f"the statistics file {path} is corrupt (its checksum does not match its "
                                     f"contents). {advice}")
    return arrays, header
