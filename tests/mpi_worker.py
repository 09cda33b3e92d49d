"""One training run of tests/test_distributed.py: a small model on synthetic
data, trained alone (``python mpi_worker.py ...``) or on every rank of an MPI
job (``mpiexec -n R python mpi_worker.py ... --distributed``). Rank 0 (or the
lone process) saves the final weights to ``--weights`` (npz).

``--hang-rank r`` / ``--die-rank r``: rank r stops answering (sleeps) or
dies (SIGKILL) before step ``--fault-step``, to test that the others do not
wait forever."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

from seqcore.nn import LanguageModel, SequenceClassifier
from seqcore.train import SGD, Adam, Trainer

VOCAB = 13


def make_data(mode: str):
    """(train, val): a stream of ids, a list of id sequences of mixed
    lengths, or labelled sequences for a classifier."""
    rng = np.random.default_rng(1234)
    if mode == "stream":
        ids = rng.integers(0, VOCAB, 3000)
        return ids[:2500], ids[2500:]
    lengths = rng.integers(1, 12, 23)
    seqs = [rng.integers(1, VOCAB, n) for n in lengths]
    if mode == "sequences":
        return seqs[:17], seqs[17:]
    labels = np.array([int(s.sum()) % 3 for s in seqs])
    return (seqs[:17], labels[:17]), (seqs[17:], labels[17:])


def make_trainer(args, comm=None, out_dir=None) -> Trainer:
    dtype = np.dtype(args.dtype)
    if args.mode == "labeled":
        model = SequenceClassifier(3, vocab_size=VOCAB, embed_size=6, hidden_size=10, cell=args.cell,
                                   dtype=dtype, seed=3)
    else:
        model = LanguageModel(VOCAB, 6, 10, 2, cell=args.cell, dtype=dtype, seed=3)
    optimizer = Adam(model, lr=1e-2) if args.optimizer == "adam" else SGD(model, lr=0.5, momentum=0.9)
    train, val = make_data(args.mode)
    return Trainer(model, train, val, optimizer=optimizer, batch_size=args.batch, seq_len=7, steps=args.steps,
                   clip_norm=args.clip_norm, eval_every=args.eval_every, out_dir=out_dir,
                   checkpoint_every=args.checkpoint_every, progress=args.progress, seed=5, distributed=comm,
                   callbacks=[_fault(args, comm)] if comm is not None else ())


def _fault(args, comm):
    """A callback that makes rank ``--hang-rank`` or ``--die-rank`` fail."""
    def callback(trainer):
        if trainer.step + 1 != args.fault_step:
            return
        if comm.rank == args.hang_rank:
            time.sleep(3600)
        if comm.rank == args.die_rank:
            os.kill(os.getpid(), signal.SIGKILL)
    return callback


def parse(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["stream", "sequences", "labeled"], default="stream")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--clip-norm", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--out-dir", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--weights", required=True)
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--hang-rank", type=int, default=-1)
    p.add_argument("--die-rank", type=int, default=-1)
    p.add_argument("--fault-step", type=int, default=3)
    return p.parse_args(argv)


def run(args) -> dict:
    comm = None
    if args.distributed:
        from seqcore.distributed import Communicator
        comm = Communicator()
    trainer = make_trainer(args, comm, args.out_dir)
    if comm is not None and args.timeout is not None:
        # only now: the start (imports, the trainer's checks) may take the ranks
        # apart by more than a short timeout on a loaded machine
        comm.timeout = args.timeout
    if args.resume:
        trainer.restore()
    result = trainer.fit()
    if comm is None or comm.rank == 0:
        np.savez(args.weights, **trainer.model.params,
                 **{"_val_loss": np.nan if result.val is None else result.val.loss,
                    "_train_loss": np.nan if result.train_loss is None else result.train_loss,
                    "_tokens": result.tokens, "_size": 1 if comm is None else comm.size})
        print(f"done: {result.message}", flush=True)
    return trainer.model.params


if __name__ == "__main__":
    run(parse())
    sys.exit(0)
