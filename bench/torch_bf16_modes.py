"""torch's two ways to run an LSTM or GRU in bfloat16, side by side in turns:
the module, input and gradient cast to torch.bfloat16, or float32 ones under
torch.autocast("cpu", bfloat16). bench/cells.py --precision bf16 compares
seqcore with the faster (here: the cast module; see the README).

    python bench/torch_bf16_modes.py [--threads 1] [--clock cpu] [--rounds 9]
"""

from __future__ import annotations

import argparse
import sys
import time

from seqcore import benchmark, timing


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu", help="cpu: this thread's CPU time (1 thread)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--config", type=int, nargs=4, default=[64, 32, 128, 256], metavar=("T", "B", "D", "H"))
    args = p.parse_args(argv)
    torch = benchmark.torch_or_none()
    if torch is None:
        print("torch is not installed")
        return 0
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu needs --threads 1")
    torch.set_num_threads(args.threads)
    T, B, D, H = args.config
    for name in ("LSTM", "GRU"):
        cast, auto = getattr(torch.nn, name)(D, H).to(torch.bfloat16), getattr(torch.nn, name)(D, H)
        x = torch.randn(T, B, D)
        x16, x32 = x.to(torch.bfloat16).requires_grad_(True), x.clone().requires_grad_(True)
        dy16, dy32 = torch.ones(T, B, H, dtype=torch.bfloat16), torch.ones(T, B, H)

        def cast_train():
            cast(x16)[0].backward(dy16)

        def autocast_train():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = auto(x32)[0]
            y.float().backward(dy32)

        def cast_infer():
            with torch.inference_mode():
                cast(x16.detach())

        def autocast_infer():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                auto(x)

        fns = dict(cast_train=cast_train, autocast_train=autocast_train, cast_infer=cast_infer,
                   autocast_infer=autocast_infer)
        seconds = timing.median_seconds_in_turns(fns, rounds=args.rounds,
                                                 clock=time.thread_time if args.clock == "cpu" else time.perf_counter)
        print(f"{name} {T}x{B}x{D}x{H}, {args.threads} thread(s), {args.clock} clock, tokens/s: "
              + ", ".join(f"{k} {T * B / v:,.0f}" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
