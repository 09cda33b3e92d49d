"""Checkpoints: a model (language model, sequence classifier or tagger) with its vocabulary, optimizer, random state
and step, in one directory, written atomically and read without executing
anything. The format's writer and its reader stay in this one file, over 500
lines, so that a change to one is made in sight of the other.

Layout of a checkpoint directory (format "seqcore.checkpoint", version 1):

    weights.npz     the model's parameters by name ("rnn.weight_ih_l0", ...), np.savez
    model.json      format, version, the model's class name and ``config()``
    vocab.json      the Vocabulary (its own ``save`` format), if one was given
    optimizer.json  the optimizer's class name and hyperparameters, if one was given
    optimizer.npz   its per-parameter state, "<slot>.<param>" as ``state_dict()``
    state.json      step, the user's ``extra`` (epoch, chunk index, ...) and the
                    state of every numpy Generator inside the model, by
                    attribute path ("dropout.rng", "rnn._rng")
    manifest.json   format, version, and each file's size and sha256; written last

Reading. ``load_checkpoint`` checks the manifest first (format, version, every
file's size and sha256), then each file: arrays come from ``np.load(...,
allow_pickle=False)``, the model class from a fixed whitelist
(``LanguageModel``, ``SequenceClassifier``, ``SequenceTagger``), the optimizer class from another (SGD, Adam, AdamW).
Nothing in a checkpoint is ever executed. Anything wrong raises
``CheckpointError`` (a ValueError) naming the file and what is wrong.

Atomicity: a directory swap. ``save_checkpoint(DIR, ...)``

1. writes every file into a fresh sibling ``.DIR.tmp-<pid>-<hex>`` (each file
   fsynced, the manifest last, then the directory fsynced);
2. renames an existing DIR to ``.DIR.old-<pid>-<hex>``;
3. renames the temporary directory to DIR and fsyncs the parent;
4. removes the old directory, and what earlier saves that were killed left:
   every ``.DIR.old-*`` and the ``.DIR.tmp-*`` of processes no longer running.

Each rename is atomic, so a crash at any point leaves one complete checkpoint:
before 2, DIR is the previous one (a ``.tmp-`` leftover is ignored); between 2
and 3, DIR is missing and the previous checkpoint is whole under
``.DIR.old-*``, which ``load_checkpoint(DIR)`` then reads in DIR's place (it
renames nothing); from 3 on, DIR is the new one. The next save cleans up. One
writer per DIR at a time (in a data-parallel run, rank 0). A save refuses to
replace a directory that is neither empty nor a checkpoint, and refuses a
model or optimizer state holding NaN or inf (nothing is written).

Resuming continues the same trajectory bitwise: ``load_checkpoint(DIR)`` gives
the model with its weights and random state and the optimizer with its state
(``Checkpoint.model``, ``Checkpoint.optimizer``); ``Checkpoint.restore_into``
puts the same into objects the caller built. The recurrent state carried
between chunks of truncated BPTT is not part of a checkpoint: resume at a
point where it is reset (an epoch boundary), or accept a fresh state.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Type, Union

import numpy as np

from .._atomic import atomic_write, atomic_write_json, fsync_directory
from ..nn.language_model import LanguageModel
from ..nn.module import Layer, random_generators
from ..nn.sequence_models import SequenceClassifier, SequenceTagger
from ..text.vocab import Vocabulary
from .optim import SGD, Adam, AdamW, Optimizer, plain_value

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "seqcore.checkpoint"
VERSION = 1

# The only classes a checkpoint can name: looked up here, never imported by name.
MODEL_CLASSES: Dict[str, Type[Layer]] = {cls.__name__: cls for cls in (LanguageModel, SequenceClassifier,
                                                                        SequenceTagger)}
OPTIMIZER_CLASSES: Dict[str, Type[Optimizer]] = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}

WEIGHTS, MODEL, VOCAB, STATE, MANIFEST = "weights.npz", "model.json", "vocab.json", "state.json", "manifest.json"
OPTIMIZER_INFO, OPTIMIZER_STATE = "optimizer.json", "optimizer.npz"
REQUIRED_FILES = (WEIGHTS, MODEL, STATE)
OPTIONAL_FILES = (VOCAB, OPTIMIZER_INFO, OPTIMIZER_STATE)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, corrupt, truncated or foreign
    files, or contents that do not fit together. The message names the file."""


# ---------------------------------------------------------------------------
# what a checkpoint holds once read


@dataclass
class Checkpoint:
    """A checkpoint read by ``load_checkpoint``.

    ``model`` is rebuilt from its class and config, with the saved weights and
    random state; ``optimizer`` (or None) is rebuilt on that model with its
    saved state. ``optimizer_state`` is the optimizer's ``state_dict()`` as
    saved (hyperparameters and "<slot>.<param>" arrays), ``rng_state`` the
    saved ``bit_generator.state`` by generator path.
    """

    path: str
    model: Layer
    vocab: Optional[Vocabulary]
    step: int
    extra: Dict[str, Any]
    rng_state: Dict[str, Dict[str, Any]]
    optimizer: Optional[Optimizer] = None
    optimizer_class: Optional[str] = None
    optimizer_state: Dict[str, Any] = field(default_factory=dict)

    def restore_into(self, model: Layer, optimizer: Optional[Optimizer] = None) -> None:
        """Copies the saved weights and random state into ``model`` and the
        saved optimizer state into ``optimizer``, so that training them goes
        on bitwise as the saved run would have. ``model`` must have the saved
        model's parameters (names, shapes, dtypes) and generators; nothing is
        changed unless everything fits (CheckpointError otherwise)."""
        if not isinstance(model, Layer):
            raise TypeError(f"model: expected a seqcore.nn.Layer, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a seqcore.train.Optimizer, got {type(optimizer).__name__}")
        # -- check everything first
        _check_params_fit(self.model.params, model.params, "model")
        generators = random_generators(model)
        _check_generators_fit(self.rng_state, generators, "model")
        if optimizer is not None:
            if self.optimizer_class is None:
                raise CheckpointError(f"{self.path}: holds no optimizer state to restore")
            if type(optimizer).__name__ != self.optimizer_class:
                raise CheckpointError(f"{self.path}: holds {self.optimizer_class} state, "
                                      f"not {type(optimizer).__name__}")
            try:  # validates everything before it changes anything
                optimizer.load_state_dict(self.optimizer_state)
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{self.path}: the optimizer state does not fit this optimizer: "
                                      f"{_message(e)}") from None
        # -- then change (cannot fail: checked above)
        model.load_state_dict(self.model.state_dict())
        _set_generators(self.rng_state, generators, self.path)


# ---------------------------------------------------------------------------
# saving


def save_checkpoint(directory: PathLike, model: Layer, optimizer: Optional[Optimizer] = None,
                    vocab: Optional[Vocabulary] = None, *, step: int,
                    extra: Optional[Mapping[str, Any]] = None) -> None:
    """Writes the checkpoint directory ``directory`` (see the module's
    docstring for its files), replacing a previous checkpoint there atomically.

    ``step``: an int >= 0, the number of optimizer steps taken; ``extra``: a
    JSON-ready dict of the caller's own (epoch, chunk index, ...). Raises
    ValueError, before writing anything, for a parameter or optimizer buffer
    holding NaN or inf, and FileExistsError where ``directory`` is a file or a
    non-empty directory that is not a checkpoint."""
    # -- check and gather everything before touching the disk
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected a str or os.PathLike, got {type(directory).__name__}")
    if type(model) not in MODEL_CLASSES.values():
        raise TypeError(f"model: expected one of the classes a checkpoint can rebuild ({', '.join(MODEL_CLASSES)}), "
                        f"got {type(model).__name__}")
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step: expected an int >= 0, got {step!r}")
    extra = _checked_extra(extra)
    if vocab is not None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab: expected a seqcore.text.Vocabulary, got {type(vocab).__name__}")
        if model.vocab_size is None or len(vocab) != model.vocab_size:
            raise ValueError(f"vocab: has {len(vocab)} tokens, the model's vocab_size is {model.vocab_size}")
    weights = model.state_dict()
    for name, p in weights.items():
        if not np.isfinite(p).all():
            raise ValueError(f"model: parameter {name!r} contains NaN or inf; refusing to write a poisoned "
                             f"checkpoint")
    optimizer_files = _optimizer_files(optimizer, model) if optimizer is not None else None
    model_doc = {"format": FORMAT, "version": VERSION, "class": type(model).__name__, "config": model.config()}
    state_doc = {"step": int(step), "extra": extra,
                 "rng": {path: _jsonable(g.bit_generator.state) for path, g in random_generators(model).items()}}

    directory = os.path.abspath(os.fspath(directory))
    parent, name = os.path.split(directory)
    _check_replaceable(directory)
    os.makedirs(parent, exist_ok=True)

    # -- 1. everything into a fresh sibling directory, the manifest last
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    try:
        atomic_write(os.path.join(tmp, WEIGHTS), lambda f: np.savez(f, **weights))
        atomic_write_json(os.path.join(tmp, MODEL), model_doc)
        if vocab is not None:
            vocab.save(os.path.join(tmp, VOCAB))
        if optimizer_files is not None:
            info, slots = optimizer_files
            atomic_write_json(os.path.join(tmp, OPTIMIZER_INFO), info)
            atomic_write(os.path.join(tmp, OPTIMIZER_STATE), lambda f: np.savez(f, **slots))
        atomic_write_json(os.path.join(tmp, STATE), state_doc)
        files = sorted(f for f in os.listdir(tmp) if f in REQUIRED_FILES + OPTIONAL_FILES)
        manifest = {"format": FORMAT, "version": VERSION,
                    "files": {f: {"size": os.path.getsize(os.path.join(tmp, f)),
                                  "sha256": _sha256(os.path.join(tmp, f))} for f in files}}
        atomic_write_json(os.path.join(tmp, MANIFEST), manifest)
        fsync_directory(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    # -- 2, 3. swap it into place: every moment, one complete checkpoint is there
    old = None
    try:
        if os.path.lexists(directory):
            old = os.path.join(parent, f".{name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(directory, old)
        try:
            os.rename(tmp, directory)
        except BaseException:
            if old is not None:
                os.rename(old, directory)  # put the previous one back
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_directory(parent)

    # -- 4. the previous checkpoint, and leftovers of saves that were killed
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _remove_leftovers(parent, name)


def _checked_extra(extra: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise TypeError(f"extra: expected a dict with str keys, got {extra!r}")
    extra = dict(extra)
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise type(e)(f"extra: expected JSON data (dicts, lists, str, finite numbers, bools, None): {e}") from None
    return extra


def _optimizer_files(optimizer: Optimizer, model: Layer) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """(optimizer.json's document, optimizer.npz's arrays) of an optimizer on ``model``."""
    cls = type(optimizer).__name__
    if OPTIMIZER_CLASSES.get(cls) is not type(optimizer):
        raise TypeError(f"optimizer: expected one of {sorted(OPTIMIZER_CLASSES)} (the classes a checkpoint can "
                        f"rebuild), got {cls}")
    params = model.params
    for name, p in optimizer.params.items():
        if params.get(name) is not p:
            raise ValueError(f"optimizer: its parameter {name!r} is not the model's parameter of that name; "
                             f"build the optimizer on the model")
    state = optimizer.state_dict()
    hyper = {k: plain_value(state.pop(k)) for k in type(optimizer).HYPER}
    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in hyper.items()}
    slots = {}
    for key, v in state.items():
        a = np.asarray(v)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"optimizer: state {key!r} contains NaN or inf; refusing to write a poisoned "
                             f"checkpoint")
        slots[key] = a
    return {"class": cls, "hyper": hyper}, slots


def _check_replaceable(directory: str) -> None:
    """A save may replace nothing, an empty directory or a checkpoint; never
    anything else (it would be deleted)."""
    if not os.path.lexists(directory):
        return
    if os.path.islink(directory) or not os.path.isdir(directory):
        raise FileExistsError(f"directory: {directory} exists and is not a directory; refusing to replace it")
    if os.listdir(directory) and not os.path.isfile(os.path.join(directory, MANIFEST)):
        raise FileExistsError(f"directory: {directory} is a non-empty directory that is not a seqcore checkpoint "
                              f"(no {MANIFEST}); refusing to replace it")


def _remove_leftovers(parent: str, name: str) -> None:
    """Removes ``.name.old-*`` (superseded now that ``name`` is complete) and
    the ``.name.tmp-<pid>-*`` of processes that are no longer running."""
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if entry.startswith(f".{name}.old-"):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.startswith(f".{name}.tmp-"):
            pid = entry[len(f".{name}.tmp-"):].partition("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or no way to ask: leave it
        return True
    return True


# ---------------------------------------------------------------------------
# loading


def load_checkpoint(directory: PathLike) -> Checkpoint:
    """Reads a checkpoint written by ``save_checkpoint``: the model rebuilt with
    its weights and random state, the vocabulary, the optimizer rebuilt on the
    model with its state, step and extra (see ``Checkpoint``).

    Where ``directory`` is missing because a save was killed between its two
    renames, the previous checkpoint (``.DIR.old-*``) is read instead.
    FileNotFoundError where there is neither; CheckpointError for anything
    missing, corrupt, truncated or foreign inside."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected a str or os.PathLike, got {type(directory).__name__}")
    path = os.path.abspath(os.fspath(directory))
    if not os.path.lexists(path):
        path = _interrupted_swap(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: not a directory; a seqcore checkpoint is a directory")
    files = _verified_files(path)

    model_doc = _read_json(path, MODEL)
    _check_format(model_doc, path, MODEL)
    cls_name, config = model_doc.get("class"), model_doc.get("config")
    if cls_name not in MODEL_CLASSES:
        raise CheckpointError(f"{_at(path, MODEL)}: unknown model class {cls_name!r} "
                              f"(a checkpoint can hold {sorted(MODEL_CLASSES)})")
    if not isinstance(config, dict):
        raise CheckpointError(f"{_at(path, MODEL)}: field 'config' is missing or not a JSON object")
    try:
        model = MODEL_CLASSES[cls_name](**config)
    except (TypeError, ValueError, MemoryError) as e:
        raise CheckpointError(f"{_at(path, MODEL)}: cannot build {cls_name} from its config {config}: "
                              f"{_message(e)}") from None

    weights = _read_npz(path, WEIGHTS)
    _check_params_fit(weights, model.params, _at(path, WEIGHTS))
    model.load_state_dict(weights)

    state = _read_json(path, STATE)
    step, extra, rng_state = state.get("step"), state.get("extra"), state.get("rng")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{_at(path, STATE)}: field 'step' is missing or not an int >= 0")
    if not isinstance(extra, dict):
        raise CheckpointError(f"{_at(path, STATE)}: field 'extra' is missing or not a JSON object")
    if not isinstance(rng_state, dict) or not all(isinstance(v, dict) for v in rng_state.values()):
        raise CheckpointError(f"{_at(path, STATE)}: field 'rng' is missing or not a JSON object of objects")
    generators = random_generators(model)
    _check_generators_fit(rng_state, generators, _at(path, STATE))
    _set_generators(rng_state, generators, _at(path, STATE))

    vocab = None
    if VOCAB in files:
        try:
            vocab = Vocabulary.load(os.path.join(path, VOCAB))
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        if len(vocab) != model.vocab_size:
            raise CheckpointError(f"{_at(path, VOCAB)}: has {len(vocab)} tokens, the model's vocab_size "
                                  f"is {model.vocab_size}")

    ckpt = Checkpoint(path=path, model=model, vocab=vocab, step=step, extra=extra, rng_state=rng_state)
    if (OPTIMIZER_INFO in files) != (OPTIMIZER_STATE in files):
        raise CheckpointError(f"{path}: has one of {OPTIMIZER_INFO} and {OPTIMIZER_STATE} without the other")
    if OPTIMIZER_INFO in files:
        _load_optimizer(ckpt, path)
    return ckpt


def _load_optimizer(ckpt: Checkpoint, path: str) -> None:
    info = _read_json(path, OPTIMIZER_INFO)
    cls_name, hyper = info.get("class"), info.get("hyper")
    if cls_name not in OPTIMIZER_CLASSES:
        raise CheckpointError(f"{_at(path, OPTIMIZER_INFO)}: unknown optimizer class {cls_name!r} "
                              f"(a checkpoint can hold {sorted(OPTIMIZER_CLASSES)})")
    cls = OPTIMIZER_CLASSES[cls_name]
    if not isinstance(hyper, dict) or sorted(hyper) != sorted(cls.HYPER):
        raise CheckpointError(f"{_at(path, OPTIMIZER_INFO)}: field 'hyper' must hold exactly "
                              f"{sorted(cls.HYPER)} for {cls_name}")
    slots = _read_npz(path, OPTIMIZER_STATE)
    state = {**hyper, **slots}
    try:
        optimizer = cls(ckpt.model, **hyper)
        optimizer.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{_at(path, OPTIMIZER_STATE)}: not a {cls_name} state for this model: "
                              f"{_message(e)}") from None
    ckpt.optimizer, ckpt.optimizer_class, ckpt.optimizer_state = optimizer, cls_name, state


def _interrupted_swap(path: str) -> str:
    """The previous checkpoint a save left as ``.DIR.old-*`` when it was killed
    between its two renames (the newest complete one); FileNotFoundError if none."""
    parent, name = os.path.split(path)
    candidates = []
    if os.path.isdir(parent):
        for entry in os.listdir(parent):
            old = os.path.join(parent, entry)
            if entry.startswith(f".{name}.old-") and os.path.isfile(os.path.join(old, MANIFEST)):
                candidates.append((os.path.getmtime(os.path.join(old, MANIFEST)), old))
    if not candidates:
        raise FileNotFoundError(f"directory: no checkpoint at {path}")
    return max(candidates)[1]


def _verified_files(path: str) -> Dict[str, Dict[str, Any]]:
    """The manifest's files, each checked present with its size and sha256."""
    manifest = _read_json(path, MANIFEST)
    _check_format(manifest, path, MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise CheckpointError(f"{_at(path, MANIFEST)}: field 'files' is missing or not a JSON object of objects")
    unknown = sorted(set(files) - set(REQUIRED_FILES + OPTIONAL_FILES))
    if unknown:
        raise CheckpointError(f"{_at(path, MANIFEST)}: lists files a checkpoint does not have: {unknown}")
    lacking = [f for f in REQUIRED_FILES if f not in files]
    if lacking:
        raise CheckpointError(f"{_at(path, MANIFEST)}: does not list the required files {lacking}")
    for f, entry in files.items():
        file_path = os.path.join(path, f)
        if not os.path.isfile(file_path):
            raise CheckpointError(f"{file_path}: missing (the manifest lists it)")
        size = os.path.getsize(file_path)
        if size != entry.get("size"):
            raise CheckpointError(f"{file_path}: truncated or changed: {size} bytes, the manifest says "
                                  f"{entry.get('size')!r}")
        if _sha256(file_path) != entry.get("sha256"):
            raise CheckpointError(f"{file_path}: corrupt: its sha256 differs from the manifest's")
    return files


def _check_format(doc: Dict[str, Any], path: str, name: str) -> None:
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{_at(path, name)}: not a seqcore checkpoint (expected \"format\": \"{FORMAT}\", "
                              f"got {doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{_at(path, name)}: checkpoint format version {doc.get('version')!r} is not "
                              f"supported (this seqcore reads version {VERSION})")


def _read_json(path: str, name: str) -> Dict[str, Any]:
    """A JSON object from a checkpoint file."""
    file_path = _at(path, name)
    try:
        with open(file_path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{file_path}: missing; not a seqcore checkpoint, or a save that never "
                              f"completed") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, or an int too long to read
        raise CheckpointError(f"{file_path}: not a seqcore checkpoint file (invalid or truncated JSON: "
                              f"{e})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{file_path}: not a seqcore checkpoint file (expected a JSON object)")
    return doc


def _read_npz(path: str, name: str) -> Dict[str, np.ndarray]:
    """Every array of a checkpoint .npz file; numbers only, never pickles."""
    file_path = _at(path, name)
    try:
        npz = np.load(file_path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # BadZipFile, a pickle refused, a damaged header: all "not readable"
        raise CheckpointError(f"{file_path}: not a readable .npz of numeric arrays: {_message(e)}") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise CheckpointError(f"{file_path}: array {k!r} has dtype {a.dtype}, expected numbers")
    return arrays


def _check_params_fit(saved: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], where: str) -> None:
    """The saved parameters have the target model's names, shapes and dtypes,
    and are finite."""
    missing, unexpected = sorted(set(target) - set(saved)), sorted(set(saved) - set(target))
    if missing or unexpected:
        raise CheckpointError(f"{where}: parameter names differ from the model's: the model has {missing} "
                              f"not saved, the checkpoint has {unexpected} not in the model")
    for name, p in target.items():
        a = saved[name]
        if a.shape != p.shape:
            raise CheckpointError(f"{where}: parameter {name!r} has shape {a.shape}, the model's is {p.shape}")
        if a.dtype != p.dtype:
            raise CheckpointError(f"{where}: parameter {name!r} has dtype {a.dtype}, the model's is {p.dtype}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{where}: parameter {name!r} contains NaN or inf")


# ---------------------------------------------------------------------------
# random state


def _jsonable(state: Any) -> Any:
    """A bit generator's state as JSON data (PCG64's 128-bit ints stay ints)."""
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return state.tolist()
    if isinstance(state, np.generic):
        return state.item()
    return state


def _check_generators_fit(rng_state: Mapping[str, Any], generators: Mapping[str, np.random.Generator],
                          where: str) -> None:
    if set(rng_state) != set(generators):
        raise CheckpointError(f"{where}: random generators do not match the model's: saved {sorted(rng_state)}, "
                              f"the model has {sorted(generators)}")
    for path, g in generators.items():
        kind = type(g.bit_generator).__name__
        if rng_state[path].get("bit_generator") != kind:
            raise CheckpointError(f"{where}: generator {path!r} is {rng_state[path].get('bit_generator')!r}, "
                                  f"the model's is {kind}")


def _set_generators(rng_state: Mapping[str, Any], generators: Mapping[str, np.random.Generator],
                    where: str) -> None:
    for path, g in generators.items():
        try:
            g.bit_generator.state = rng_state[path]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise CheckpointError(f"{where}: generator {path!r}: invalid state: {_message(e)}") from None


# ---------------------------------------------------------------------------
# small helpers


def _at(path: str, name: str) -> str:
    return os.path.join(path, name)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _message(e: BaseException) -> str:
    """An exception's message (KeyError's without the repr quotes)."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
