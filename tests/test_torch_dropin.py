"""seqcore.torch: the drop-in LSTM, GRU and RNN modules and convert/revert,
against torch.nn.LSTM / GRU / RNN with the same weights (oracle: torch).
Skipped when torch is not installed."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from children import CHILD_CWD, child_env

torch = pytest.importorskip("torch")
import seqcore.torch as st  # noqa: E402  (needs torch)
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from seqcore import ops  # noqa: E402

CLASSES = ("LSTM", "GRU", "RNN")
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
# (num_layers, bidirectional, batch_first)
CONFIGS = [(1, False, False), (2, False, False), (2, True, False), (2, True, True)]


def twins(cls, *args, dtype=torch.float64, **kwargs):
    """torch's module and seqcore's with the same (torch-initialised) weights."""
    ours = getattr(st, cls)(*args, **kwargs).to(dtype)
    theirs = getattr(torch.nn, cls)(*args, **kwargs).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    return theirs, ours


def state(cls, L, B, H, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(L, B, H, dtype=dtype, generator=g).requires_grad_()
    if cls != "LSTM":
        return h0, [h0]
    c0 = torch.randn(L, B, H, dtype=dtype, generator=g).requires_grad_()
    return (h0, c0), [h0, c0]


def loss_of(y, final):
    """A loss that weighs every output and final state differently."""
    finals = final if isinstance(final, tuple) else (final,)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    return (y * w).sum() + sum((k + 1) * (f ** 2).sum() for k, f in enumerate(finals))


def run(module, x, hx=None, leaves=(), seed=0):
    """Forward and backward of loss_of; returns outputs and gradients (of x,
    the leaves, every parameter), by name."""
    module.zero_grad()
    torch.manual_seed(seed)  # the dropout masks
    y, final = module(x, hx)
    loss_of(y, final).backward()
    out = {"y": y, **{f"final{k}": f for k, f in enumerate(final if isinstance(final, tuple) else (final,))}}
    out.update({f"d{k}": leaf.grad.clone() for k, leaf in enumerate(leaves)})
    out.update({f"d{name}": p.grad.clone() for name, p in module.named_parameters()})
    for leaf in leaves:
        leaf.grad = None
    return {k: v.detach() for k, v in out.items()}


def max_relative(ours, theirs):
    worst = {}
    assert ours.keys() == theirs.keys()
    for k in theirs:
        a, b = ours[k].double(), theirs[k].double()
        assert a.shape == b.shape, k
        worst[k] = float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))
    return worst


def check(ours, theirs, dtype):
    worst = max_relative(ours, theirs)
    print(" ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert max(worst.values()) <= TOL[dtype], worst


# ---------------------------------------------------------------------------
# parity with torch's modules


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{}{}{}".format(c[0], "-bi" if c[1] else "",
                                                                           "-bf" if c[2] else ""))
@pytest.mark.parametrize("cls", CLASSES)
def test_outputs_states_and_all_gradients_match_torch(cls, config, dtype):
    L, bidirectional, batch_first = config
    T, B, D, H = 6, 3, 5, 7
    theirs, ours = twins(cls, D, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                         dtype=dtype)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), dtype=dtype, generator=torch.Generator().manual_seed(0))
    x.requires_grad_()
    hx, leaves = state(cls, L * (2 if bidirectional else 1), B, H, dtype)
    check(run(ours, x, hx, [x, *leaves]), run(theirs, x, hx, [x, *leaves]), dtype)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_packed_sequences_in_and_out_match_torch(cls, batch_first, enforce_sorted):
    """Lengths with ties, unsorted (enforce_sorted=False) or sorted; hx in the batch's own order."""
    T, B, D, H, dtype = 7, 5, 4, 6, torch.float64
    lengths = torch.tensor([7, 7, 4, 3, 1] if enforce_sorted else [3, 7, 1, 7, 4])
    theirs, ours = twins(cls, D, H, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), dtype=dtype).requires_grad_()
    hx, leaves = state(cls, 4, B, H, dtype)
    results = []
    for module in (ours, theirs):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
        module.zero_grad()
        out, final = module(packed, hx)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        assert torch.equal(out.batch_sizes, packed.batch_sizes)
        for name in ("sorted_indices", "unsorted_indices"):
            a, b = getattr(out, name), getattr(packed, name)
            assert (a is None and b is None) if enforce_sorted else torch.equal(a, b)
        y, got_lengths = pad_packed_sequence(out, batch_first=batch_first)
        assert torch.equal(got_lengths, lengths)
        loss_of(y, final).backward()
        result = {"data": out.data, "y": y,
                  **{f"final{k}": f for k, f in enumerate(final if isinstance(final, tuple) else (final,))},
                  "dx": x.grad.clone(), **{f"dh{k}": s.grad.clone() for k, s in enumerate(leaves)},
                  **{f"d{n}": p.grad.clone() for n, p in module.named_parameters()}}
        x.grad = None
        for s in leaves:
            s.grad = None
        results.append({k: v.detach() for k, v in result.items()})
    check(*results, dtype)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_dropout_between_layers_draws_torchs_masks(cls, packed):
    """Masks come from torch's generator in torch's order: one seed, one result."""
    T, B, D, H, dtype = 6, 4, 5, 7, torch.float64
    theirs, ours = twins(cls, D, H, num_layers=3, bidirectional=True, dropout=0.4)
    x = torch.randn(T, B, D, dtype=dtype).requires_grad_()
    lengths = torch.tensor([6, 2, 5, 6])
    results = []
    for module in (ours, theirs):
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        torch.manual_seed(5)
        out, final = module(inp)
        y = pad_packed_sequence(out)[0] if packed else out
        loss_of(y, final).backward()
        results.append({"y": y.detach(), "dx": x.grad.clone(),
                        **{f"d{n}": p.grad.clone() for n, p in module.named_parameters()}})
        x.grad = None
        module.zero_grad()
    check(*results, dtype)
    # and the masks do something: another seed, another output
    torch.manual_seed(6)
    other = ours(pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x)[0]
    other = pad_packed_sequence(other)[0] if packed else other
    assert not torch.equal(other.detach(), results[0]["y"])
    # eval mode: no dropout, as torch
    ours.eval()
    theirs.eval()
    check({"y": ours(x)[0].detach()}, {"y": theirs(x)[0].detach()}, dtype)


@pytest.mark.parametrize("cls", CLASSES)
def test_unbatched_input_and_bias_false_match_torch(cls):
    T, D, H, dtype = 5, 3, 4, torch.float64
    theirs, ours = twins(cls, D, H, num_layers=2, bias=False)
    assert not any("bias" in n for n, _ in ours.named_parameters())
    x = torch.randn(T, D, dtype=dtype).requires_grad_()
    g = torch.Generator().manual_seed(3)
    h0 = torch.randn(2, H, dtype=dtype, generator=g).requires_grad_()
    hx = (h0, torch.randn(2, H, dtype=dtype, generator=g)) if cls == "LSTM" else h0
    a, b = run(ours, x, hx, [x, h0]), run(theirs, x, hx, [x, h0])
    assert a["y"].shape == (T, H) and a["final0"].shape == (2, H)
    check(a, b, dtype)


def test_a_gradient_at_the_final_state_only_matches_torch():
    """A classifier's loss reads h_n alone: no gradient reaches the outputs."""
    theirs, ours = twins("GRU", 4, 6, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 4, dtype=torch.float64).requires_grad_()
    grads = []
    for module in (ours, theirs):
        _, h = module(x)
        (h[-2:] ** 2).sum().backward()
        grads.append({"dx": x.grad.clone(), **{n: p.grad.clone() for n, p in module.named_parameters()}})
        x.grad = None
    check(*grads, torch.float64)


def test_two_forwards_then_one_backward_match_torch():
    """Each call keeps its own cache (gradient accumulation over two batches)."""
    theirs, ours = twins("LSTM", 3, 5, num_layers=2)
    xs = [torch.randn(4, 2, 3, dtype=torch.float64) for _ in range(2)]
    grads = []
    for module in (ours, theirs):
        loss = sum(loss_of(*module(x)) * (k + 1) for k, x in enumerate(xs))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    check(*grads, torch.float64)


def test_a_small_model_trains_as_with_torchs_lstm():
    """embedding -> LSTM -> linear, 50 steps of torch.optim.Adam: the same
    losses with the LSTM converted as without (float64)."""

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(11, 8)
            self.rnn = torch.nn.LSTM(8, 16, num_layers=2, dropout=0.2)
            self.head = torch.nn.Linear(16, 11)

        def forward(self, ids):
            return self.head(self.rnn(self.embedding(ids))[0])

    def train(convert):
        torch.manual_seed(0)
        model = Model().double()
        if convert:
            assert st.convert(model) is model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        data = torch.randint(0, 11, (13, 6), generator=torch.Generator().manual_seed(1))
        losses = []
        for _ in range(50):
            logits = model(data[:-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), data[1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return np.array(losses)

    plain, converted = train(False), train(True)
    assert plain[-1] < 0.8 * plain[0]  # it learns
    worst = float(np.max(np.abs(converted - plain) / np.abs(plain)))
    print(f"largest relative difference of the 50 losses: {worst:.1e}")
    assert worst <= 1e-9


# ---------------------------------------------------------------------------
# relu RNN and LSTM with a projection

VARIANTS = {"relu": ("RNN", dict(nonlinearity="relu")), "proj": ("LSTM", dict(proj_size=3))}


def variant_state(name, L, B, H, dtype, P=3, seed=1):
    """hx for the variant: an LSTM's h has P features (proj_size), its c H."""
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(L, B, P if name == "proj" else H, dtype=dtype, generator=g).requires_grad_()
    if name != "proj":
        return h0, [h0]
    c0 = torch.randn(L, B, H, dtype=dtype, generator=g).requires_grad_()
    return (h0, c0), [h0, c0]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L{}{}{}".format(c[0], "-bi" if c[1] else "",
                                                                           "-bf" if c[2] else ""))
@pytest.mark.parametrize("variant", VARIANTS)
def test_relu_rnn_and_projected_lstm_match_torch(variant, config):
    """float64: outputs, states and every gradient (weight_hr_l* included) to 1e-10."""
    cls, options = VARIANTS[variant]
    L, bidirectional, batch_first = config
    T, B, D, H = 6, 3, 5, 7
    theirs, ours = twins(cls, D, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first, **options)
    x = torch.randn((B, T, D) if batch_first else (T, B, D), dtype=torch.float64).requires_grad_()
    hx, leaves = variant_state(variant, L * (2 if bidirectional else 1), B, H, torch.float64)
    ours_run, theirs_run = run(ours, x, hx, [x, *leaves]), run(theirs, x, hx, [x, *leaves])
    if variant == "proj":
        assert ours_run["y"].shape[-1] == 3 * (2 if bidirectional else 1) and "dweight_hr_l0" in ours_run
    check(ours_run, theirs_run, torch.float64)


@pytest.mark.parametrize("variant", VARIANTS)
def test_relu_rnn_and_projected_lstm_packed_with_dropout_match_torch(variant):
    cls, options = VARIANTS[variant]
    T, B, D, H, dtype = 7, 5, 4, 6, torch.float64
    lengths = torch.tensor([3, 7, 1, 7, 4])
    theirs, ours = twins(cls, D, H, num_layers=3, bidirectional=True, dropout=0.3, **options)
    x = torch.randn(T, B, D, dtype=dtype).requires_grad_()
    results = []
    for module in (ours, theirs):
        torch.manual_seed(5)
        out, final = module(pack_padded_sequence(x, lengths, enforce_sorted=False))
        y = pad_packed_sequence(out)[0]
        loss_of(y, final).backward()
        results.append({"y": y.detach(), "dx": x.grad.clone(),
                        **{f"d{n}": p.grad.clone() for n, p in module.named_parameters()}})
        x.grad = None
        module.zero_grad()
    check(*results, dtype)


@pytest.mark.parametrize("variant", VARIANTS)
def test_relu_rnn_and_projected_lstm_are_bitwise_equal_on_1_2_and_3_threads(variant):
    cls, options = VARIANTS[variant]
    _, ours = twins(cls, 9, 40, num_layers=2, bidirectional=True, dtype=torch.float32, **options)
    x = torch.randn(12, 5, 9)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(run(ours, x.clone().requires_grad_(), None))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        assert all(torch.equal(results[0][k], other[k]) for k in results[0])


# ---------------------------------------------------------------------------
# modes, threads, state dicts


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "no_requires_grad"])
def test_without_gradients_the_inference_kernels_run_and_nothing_is_kept(mode, monkeypatch):
    theirs, ours = twins("LSTM", 3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    trains = []
    real = ops.lstm_forward
    monkeypatch.setattr(ops, "lstm_forward", lambda *a, **k: trains.append(k["train"]) or real(*a, **k))
    if mode == "no_requires_grad":
        ours.requires_grad_(False)
        y, (h, c) = ours(x)
    else:
        with getattr(torch, mode)():
            y, (h, c) = ours(x)
    assert trains == [False] * 4
    assert y.grad_fn is None and not y.requires_grad
    with torch.no_grad():
        y_torch, (h_torch, _) = theirs(x)
    check({"y": y, "h": h}, {"y": y_torch, "h": h_torch}, torch.float64)


def test_kernels_run_on_torchs_threads(monkeypatch):
    """torch.set_num_threads(n) sets the threads of seqcore's kernels in these
    modules; seqcore's own setting is left alone; results are the same."""
    ours = st.GRU(6, 8)
    x = torch.randn(5, 3, 6)
    threads = []
    real = ops.gru_forward
    monkeypatch.setattr(ops, "gru_forward", lambda *a, **k: threads.append(k["num_threads"]) or real(*a, **k))
    before_torch, before_seqcore = torch.get_num_threads(), ops.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(ours(x)[0].detach())
    finally:
        torch.set_num_threads(before_torch)
    assert threads == [1, 2]
    assert ops.get_num_threads() == before_seqcore
    assert torch.equal(outs[0], outs[1])


def test_state_dicts_move_unchanged_between_the_two():
    theirs, ours = twins("LSTM", 3, 5, num_layers=2, bidirectional=True)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    assert isinstance(ours, torch.nn.LSTM) and repr(ours).startswith("seqcore.torch.LSTM(3, 5")


def test_changing_a_weight_between_forward_and_backward_is_refused():
    """The kernels keep views of the weights: torch's version check applies."""
    ours = st.RNN(3, 4).double()
    y, _ = ours(torch.randn(2, 1, 3, dtype=torch.float64))
    with torch.no_grad():
        ours.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---------------------------------------------------------------------------
# convert and revert


class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GRU(4, 5))
        self.decoder = torch.nn.LSTM(5, 6, num_layers=2)
        self.extra = torch.nn.ModuleList([torch.nn.RNN(6, 2)])


def test_convert_changes_every_recurrent_module_in_place_and_revert_undoes_it():
    model = Nested()
    params = list(model.parameters())
    rng_before = torch.get_rng_state()
    assert st.convert(model) is model
    assert torch.equal(torch.get_rng_state(), rng_before)  # nothing drawn
    assert type(model.encoder[1]) is st.GRU and type(model.decoder) is st.LSTM and type(model.extra[0]) is st.RNN
    assert type(model.encoder[0]) is torch.nn.Linear
    assert all(a is b for a, b in zip(params, model.parameters()))  # the same Parameter objects
    x = torch.randn(4, 2, 3)
    y = model.decoder(model.encoder[1](model.encoder[0](x))[0])[0]
    assert st.revert(model) is model
    assert type(model.encoder[1]) is torch.nn.GRU and type(model.decoder) is torch.nn.LSTM
    assert type(model.extra[0]) is torch.nn.RNN
    y_torch = model.decoder(model.encoder[1](model.encoder[0](x))[0])[0]
    check({"y": y.detach()}, {"y": y_torch.detach()}, torch.float32)


def test_convert_accepts_the_module_itself_and_leaves_subclasses_alone():
    lstm = torch.nn.LSTM(2, 3)
    assert st.convert(lstm) is lstm and type(lstm) is st.LSTM

    class Custom(torch.nn.GRU):
        pass

    custom = Custom(2, 3)
    st.convert(custom)
    assert type(custom) is Custom


def test_convert_takes_relu_rnns_and_projected_lstms():
    model = torch.nn.Sequential(torch.nn.RNN(3, 3, nonlinearity="relu"), torch.nn.LSTM(3, 4, proj_size=2))
    st.convert(model)
    assert type(model[0]) is st.RNN and type(model[1]) is st.LSTM
    assert model[0].nonlinearity == "relu" and model[1].proj_size == 2


def test_convert_and_revert_want_a_module():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        st.convert("lstm")
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        st.revert(None)


# ---------------------------------------------------------------------------
# what is refused


def test_other_devices_are_refused():
    ours = st.GRU(3, 4, device="meta")
    with pytest.raises(TypeError, match="on the CPU, got torch.float32 on meta"):
        ours(torch.randn(2, 1, 3, device="meta"))


def test_bad_inputs_and_states_are_refused_with_the_argument_named():
    ours = st.LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    with pytest.raises(TypeError, match="input: expected dtype torch.float32 .the module's parameters.,"):
        ours(x.double())
    with pytest.raises(ValueError, match="input: expected 3 features"):
        ours(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="input: expected a 2-D .unbatched. or 3-D tensor"):
        ours(torch.randn(5, 2, 3, 1))
    with pytest.raises(TypeError, match="input: expected a torch.Tensor or a PackedSequence"):
        ours(x.numpy())
    with pytest.raises(TypeError, match="hx: expected a tuple .h_0, c_0. for LSTM"):
        ours(x, torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match=r"hx: expected c_0 of shape .* = \(2, 2, 4\), got \(1, 2, 4\)"):
        ours(x, (torch.zeros(2, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="contains NaN or inf"):
        ours(torch.full((5, 2, 3), float("nan")))


def test_import_seqcore_does_not_load_torch():
    code = "import sys, seqcore, seqcore.nn, seqcore.train; assert 'torch' not in sys.modules, 'torch loaded'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(),
                          cwd=CHILD_CWD, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_dropin_bench_trains_both_copies_on_the_same_path(tmp_path):
    """bench/torch_dropin.py, tiny: the plain and the converted copy report a
    speed, and (same weights, same batches) the same losses."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 400)
    path = Path(__file__).resolve().parents[1] / "bench" / "torch_dropin.py"
    spec = importlib.util.spec_from_file_location("bench_torch_dropin", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.main(["--data", str(corpus), "--hidden", "16", "--rounds", "2", "--block", "3", "--threads", "1",
                    "--quiet", "--validate"])
    assert [(x["cell"], x["precision"]) for x in r["results"]] == [
        (cell, precision) for cell in ("lstm", "gru", "rnn") for precision in ("fp32", "bf16")]
    for x in r["results"]:
        assert x["steps"] == 6 and x["torch_tokens_per_s"] > 0 and x["seqcore_torch_tokens_per_s"] > 0
        assert x["ratio"] == pytest.approx(x["seqcore_torch_tokens_per_s"] / x["torch_tokens_per_s"])
        # float32: the same path up to rounding; bf16 autocast: two bf16 computations, close
        tolerance = 1e-4 if x["precision"] == "fp32" else 2e-2
        assert x["seqcore_torch_last_loss"] == pytest.approx(x["torch_last_loss"], rel=tolerance)
        assert x["seqcore_torch_validation_loss"] == pytest.approx(x["torch_validation_loss"], rel=tolerance)
