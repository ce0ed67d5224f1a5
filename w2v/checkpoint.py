"""Training checkpoints that survive a kill at any moment (SIGKILL included).

A checkpoint folder holds

- `state-<step>.npz`: center_vectors, outside_vectors ((V, d), in the dtype they are trained
  in: float64, or float32 for a `train.dtype=float32` run);
- `checkpoint.json`: step, lr (the step size of the next iteration), loss_smoothed, the training
  Generators' full `bit_generator.state`s, the caller's metadata, the config fingerprint and the
  name of its npz file.

Both are written with w2v.atomic (temporary file, then rename), the npz first: `checkpoint.json`
is the commit point. Killed before its rename, the folder still holds the previous json and the
npz it names; older npz files are deleted only after the new json is in place.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2v.atomic import atomic_path, atomic_write_text

CHECKPOINT_FILE = "checkpoint.json"
FORMAT_VERSION = 2  # 2: one Generator state per training stream (1: a single Generator)


@dataclass
class Checkpoint:
    """The state of a run after iteration `step`. center_vectors, outside_vectors: (V, d) in the
    run's dtype (float64 or float32). rng_states: the training Generators' bit_generator.state,
    in stream order."""
    step: int
    lr: float
    loss_smoothed: float | None
    rng_states: list[dict]
    center_vectors: np.ndarray
    outside_vectors: np.ndarray
    fingerprint: str
    metadata: dict


def save_checkpoint(checkpoint_dir, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` atomically into checkpoint_dir (created if missing)."""
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    arrays_name = f"state-{checkpoint.step}.npz"
    with atomic_path(folder / arrays_name) as tmp, open(tmp, "wb") as file:
        # a file object: np.savez would append ".npz" to a path not ending in it
        np.savez(file, center_vectors=checkpoint.center_vectors,
                 outside_vectors=checkpoint.outside_vectors)
    record = {
        "format": FORMAT_VERSION,
        "step": checkpoint.step,
        "lr": checkpoint.lr,
        "loss_smoothed": checkpoint.loss_smoothed,
        "rng_states": checkpoint.rng_states,
        "fingerprint": checkpoint.fingerprint,
        "metadata": checkpoint.metadata,
        "arrays": arrays_name,
    }
    atomic_write_text(folder / CHECKPOINT_FILE, json.dumps(record, indent=1))
    for old in folder.glob("state-*.npz"):
        if old.name != arrays_name:
            old.unlink(missing_ok=True)
    _remove_temporaries(folder)  # left by a process killed mid-write


def _remove_temporaries(folder: Path) -> None:
    for pattern in (".state-*.tmp", f".{CHECKPOINT_FILE}.*.tmp"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def _read_record(folder: Path) -> dict | None:
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"checkpoint_dir: {path} is unreadable ({error}); "
                         f"delete {folder} to train anew") from None
    if record.get("format") != FORMAT_VERSION:
        raise ValueError(f"checkpoint_dir: {path} has format {record.get('format')!r}, "
                         f"expected {FORMAT_VERSION}; delete {folder} to train anew")
    return record


def load_checkpoint(checkpoint_dir, fingerprint: str) -> Checkpoint | None:
    """The checkpoint in checkpoint_dir, None if there is none.

    Raises ValueError when it was written under another fingerprint (another training
    configuration or corpus): resuming it would silently mix two runs.
    """
    folder = Path(checkpoint_dir)
    record = _read_record(folder)
    if record is None:
        return None
    if record["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint_dir: the checkpoint in {folder} belongs to another training "
                         f"configuration or corpus (fingerprint {record['fingerprint'][:12]}, this "
                         f"run {fingerprint[:12]}); use another folder or delete it to train anew")
    with np.load(folder / record["arrays"]) as arrays:
        center_vectors = arrays["center_vectors"]
        outside_vectors = arrays["outside_vectors"]
    return Checkpoint(record["step"], record["lr"], record["loss_smoothed"], record["rng_states"],
                      center_vectors, outside_vectors, record["fingerprint"], record["metadata"])


def read_checkpoint_metadata(checkpoint_dir) -> dict | None:
    """The metadata stored with the last checkpoint in checkpoint_dir, None if there is none."""
    record = _read_record(Path(checkpoint_dir))
    return None if record is None else record["metadata"]


def clear_checkpoint(checkpoint_dir) -> None:
    """Delete the checkpoint (json first, so a kill midway leaves no resumable half) and the folder
    when nothing else is in it. Call it once a finished run's outputs are saved."""
    folder = Path(checkpoint_dir)
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    for path in folder.glob("state-*.npz"):
        path.unlink(missing_ok=True)
    _remove_temporaries(folder)
    try:
        folder.rmdir()
    except OSError:
        pass
