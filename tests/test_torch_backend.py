"""seqcore.torch as a PyTorch backend: autocast and 16-bit modules, saving
whole models, the registered operators (torch.compile, torch.export,
torch.library.opcheck), double backward. Oracles: torch's own modules under
the same settings, seqcore's float32 twin, eager against compiled.
Skipped when torch is not installed."""

import copy
import io
import pickle
import subprocess
import sys

import pytest

from children import CHILD_CWD, child_env

torch = pytest.importorskip("torch")
import seqcore.torch as st  # noqa: E402  (needs torch)

from seqcore import ops  # noqa: E402

CLASSES = ("LSTM", "GRU", "RNN")


def pair(cls, *args, **kwargs):
    """torch's module and its converted deep copy (the same weights)."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(*args, **kwargs)
    return theirs, st.convert(copy.deepcopy(theirs))


def finals_of(final):
    return list(final) if isinstance(final, tuple) else [final]


def step(module, x, hx=None, autocast=None):
    """Forward (under autocast when given) and backward of a loss that weighs
    every output; returns (output and final dtypes, outputs as float64,
    parameters' gradients, x's gradient)."""
    module.zero_grad()
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        y, final = module(x, hx)
    finals = finals_of(final)
    w = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
    loss = (y.double() * w).sum() + sum((k + 1) * f.double().pow(2).sum() for k, f in enumerate(finals))
    loss.backward()
    dtypes = [y.dtype] + [f.dtype for f in finals]
    outs = [y.detach().double()] + [f.detach().double() for f in finals]
    return dtypes, outs, {n: p.grad.clone() for n, p in module.named_parameters()}, x.grad


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


# ---------------------------------------------------------------------------
# autocast


@pytest.mark.parametrize("hx_dtype", [None, "float32", "low"], ids=["no-hx", "hx-f32", "hx-low"])
@pytest.mark.parametrize("x_dtype", ["float32", "low"], ids=["x-f32", "x-low"])
@pytest.mark.parametrize("autocast", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("cls", CLASSES)
def test_autocast_returns_torchs_dtypes(cls, autocast, x_dtype, hx_dtype):
    """LSTM and RNN give autocast's dtype, GRU its state's (torch's GRU is not
    on autocast's list); torch's LSTM fails under float16 autocast (oneDNN),
    seqcore's gives float16 as its RNN does."""
    theirs, ours = pair(cls, 5, 8, num_layers=2)
    dtype = {"float32": torch.float32, "low": autocast}  # low: autocast's own dtype
    x = torch.randn(6, 3, 5).to(dtype[x_dtype])
    hx = None
    if hx_dtype is not None:
        h = torch.randn(2, 3, 8).to(dtype[hx_dtype])
        hx = (h, h.clone()) if cls == "LSTM" else h
    got = step(ours, x, hx, autocast)[0]
    if cls == "LSTM" and autocast == torch.float16:
        assert got == [torch.float16] * 3
        return
    assert got == step(theirs, x, hx, autocast)[0]


@pytest.mark.parametrize("cls", CLASSES)
def test_bf16_autocast_runs_the_bf16_products_and_keeps_float32_gradients(cls, monkeypatch):
    theirs, ours = pair(cls, 16, 32, num_layers=2, bidirectional=True)
    precisions = []
    real = getattr(ops, f"{cls.lower()}_forward")
    monkeypatch.setattr(ops, f"{cls.lower()}_forward",
                        lambda *a, **k: precisions.append(k["precision"]) or real(*a, **k))
    x = torch.randn(20, 4, 16)
    _, outs, grads, dx = step(ours, x, autocast=torch.bfloat16)
    assert precisions == ["bf16"] * 4
    assert all(g.dtype == torch.float32 for g in grads.values()) and dx.dtype == torch.float32
    step(ours, x)  # outside autocast: float32 again
    assert precisions[4:] == ["fp32"] * 4
    # against torch under autocast: every gradient points the same way
    _, their_outs, their_grads, their_dx = step(theirs, x, autocast=torch.bfloat16)
    worst = min(cosine(grads[n], their_grads[n]) for n in grads)
    print(f"{cls}: smallest cosine of a parameter's gradient with torch's under autocast: {worst:.5f}")
    assert worst >= 0.99 and cosine(dx, their_dx) >= 0.99
    for a, b in zip(outs, their_outs):
        assert (a - b).abs().max() <= 0.05 * b.abs().max()


def test_float64_modules_ignore_autocast_as_torchs_do():
    _, ours = pair("LSTM", 4, 6)
    ours.double()
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    plain = step(ours, x)
    cast = step(ours, x, autocast=torch.bfloat16)
    assert cast[0] == [torch.float64] * 3
    assert all(torch.equal(a, b) for a, b in zip(plain[1], cast[1]))


def test_autocast_refuses_float64_input_to_a_float32_module():
    _, ours = pair("GRU", 4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(TypeError, match="input: expected float32 or a 16-bit float under autocast"):
            ours(torch.randn(5, 2, 4, dtype=torch.float64))


# ---------------------------------------------------------------------------
# bfloat16 and float16 modules


@pytest.mark.parametrize("cls", CLASSES)
def test_a_bfloat16_module_computes_what_its_float32_twin_does_under_bf16_autocast(cls):
    """bfloat16 parameters, input, outputs and gradients; the numbers are the
    bf16 products of seqcore's float32 twin (the same bf16 weights)."""
    _, ours = pair(cls, 6, 16, num_layers=2, bidirectional=True)
    ours.to(torch.bfloat16)
    twin = copy.deepcopy(ours).float()
    x = torch.randn(7, 3, 6).to(torch.bfloat16)
    # a bfloat16 state: under autocast torch's GRU returns its state's dtype (the twin then gives bfloat16 too)
    hx = torch.zeros(4, 3, 16, dtype=torch.bfloat16) if cls == "GRU" else None
    dtypes, outs, grads, dx = step(ours, x, hx)
    assert dtypes == [torch.bfloat16] * len(dtypes)
    assert all(g.dtype == torch.bfloat16 for g in grads.values()) and dx.dtype == torch.bfloat16
    twin_dtypes, twin_outs, twin_grads, _ = step(twin, x.float(), hx, autocast=torch.bfloat16)
    assert twin_dtypes == dtypes
    for a, b in zip(outs, twin_outs):
        assert torch.equal(a, b)
    for n in grads:
        assert torch.equal(grads[n], twin_grads[n].to(torch.bfloat16)), n


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", CLASSES)
def test_16_bit_modules_agree_with_torchs(cls, dtype):
    theirs, ours = pair(cls, 6, 16, num_layers=2)
    theirs.to(dtype)
    ours.to(dtype)
    x = torch.randn(7, 3, 6).to(dtype)
    a, b = step(ours, x), step(theirs, x)
    assert a[0] == b[0] == [dtype] * len(a[0])
    for n in a[2]:
        assert a[2][n].dtype == dtype and cosine(a[2][n], b[2][n]) >= 0.99, n
    for u, v in zip(a[1], b[1]):
        assert (u - v).abs().max() <= 0.05 * v.abs().max()


def test_a_16_bit_module_wants_its_dtype_outside_autocast():
    _, ours = pair("LSTM", 3, 4)
    ours.to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"input: expected dtype torch.bfloat16 \(the module's parameters\)"):
        ours(torch.randn(2, 1, 3))


# ---------------------------------------------------------------------------
# saving whole models


def whole_model():
    torch.manual_seed(3)
    model = torch.nn.ModuleDict({"lstm": torch.nn.LSTM(4, 6, num_layers=2, dropout=0.25),
                                 "gru": torch.nn.GRU(6, 5, bidirectional=True, batch_first=True),
                                 "rnn": torch.nn.RNN(10, 3, nonlinearity="tanh", bias=False)})
    st.convert(model)
    model["gru"].register_buffer("extra", torch.arange(3.0))
    model.eval()
    return model


def outputs(model, x):
    with torch.no_grad():
        y = model["lstm"](x)[0]
        y = model["gru"](y.transpose(0, 1))[0].transpose(0, 1)
        return model["rnn"](y)[0]


LOAD = """
import sys
{block}
import torch
model = torch.load(sys.argv[1])  # torch.load's defaults: weights_only=True
with torch.serialization.safe_globals([torch.nn.ModuleDict, torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN]):
    model = torch.load(sys.argv[1])
x, expected = torch.load(sys.argv[2])
with torch.no_grad():
    y = model["lstm"](x)[0]
    y = model["gru"](y.transpose(0, 1))[0].transpose(0, 1)
    y = model["rnn"](y)[0]
assert [type(m).__name__ for m in model.values()] == ["LSTM", "GRU", "RNN"]
assert all(type(m).__module__ == "torch.nn.modules.rnn" for m in model.values()), [type(m) for m in model.values()]
assert not model.training and torch.equal(model["gru"].extra, torch.arange(3.0))
print(float((y - expected).abs().max()), any(m.startswith("seqcore") and sys.modules[m] is not None for m in sys.modules))
"""


@pytest.mark.parametrize("seqcore_importable", [True, False], ids=["with-seqcore", "without-seqcore"])
def test_torch_save_of_a_converted_model_loads_with_torch_load_defaults(tmp_path, seqcore_importable):
    """In a fresh process, with the same safe_globals as torch's own modules
    need, and with seqcore not importable at all: torch's classes come back."""
    model = whole_model()
    x = torch.randn(5, 2, 4)
    torch.save(model, tmp_path / "model.pt")
    torch.save((x, outputs(model, x)), tmp_path / "expected.pt")
    assert b"seqcore" not in (tmp_path / "model.pt").read_bytes()
    block = "" if seqcore_importable else "sys.modules['seqcore'] = None  # import seqcore fails"
    code = LOAD.format(block=block)
    # without safe_globals torch.load refuses the module classes, as for torch's own modules: the child's
    # first torch.load must fail and the second succeed
    code = code.replace("model = torch.load(sys.argv[1])  # torch.load's defaults: weights_only=True\n",
                        "try:\n    torch.load(sys.argv[1])\n    raise SystemExit('loaded without safe_globals')\n"
                        "except Exception as e:\n    assert 'Unsupported global' in str(e), e\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.pt"), str(tmp_path / "expected.pt")],
                          capture_output=True, text=True, env=child_env(), cwd=CHILD_CWD, timeout=300)
    assert done.returncode == 0, done.stderr
    worst, seqcore_loaded = done.stdout.split()
    assert float(worst) <= 1e-5 and seqcore_loaded == "False"


def test_a_loaded_model_converts_again_and_deepcopy_keeps_the_class():
    model = whole_model()
    x = torch.randn(5, 2, 4)
    again = pickle.loads(pickle.dumps(model))
    assert type(again["lstm"]) is torch.nn.LSTM and type(again["rnn"]) is torch.nn.RNN
    st.convert(again)
    assert torch.equal(outputs(again, x), outputs(model, x))
    copied = copy.deepcopy(model)
    assert [type(m) for m in copied.values()] == [st.LSTM, st.GRU, st.RNN]
    assert torch.equal(outputs(copied, x), outputs(model, x))
    buffer = io.BytesIO()
    torch.save(model["lstm"], buffer)  # the module itself
    buffer.seek(0)
    assert type(torch.load(buffer, weights_only=False)) is torch.nn.LSTM


# ---------------------------------------------------------------------------
# the registered operators: compile, export, opcheck


class LanguageModel(torch.nn.Module):
    def __init__(self, cls="LSTM"):
        super().__init__()
        self.embedding = torch.nn.Embedding(20, 8)
        self.rnn = getattr(torch.nn, cls)(8, 16, num_layers=2)
        self.head = torch.nn.Linear(16, 20)

    def forward(self, ids):
        return self.head(self.rnn(self.embedding(ids))[0])


@pytest.mark.parametrize("cls", CLASSES)
def test_compile_fullgraph_traces_the_converted_layers_with_no_graph_break(cls):
    torch.manual_seed(0)
    model = st.convert(LanguageModel(cls))
    ids = torch.randint(0, 20, (9, 3))
    explanation = torch._dynamo.explain(model)(ids)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    results = []
    for run in (compiled, model):
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(run(ids).reshape(-1, 20), ids.roll(1, 0).reshape(-1))
        loss.backward()
        results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not st._SAVED  # what the backward needed went with the graph


def test_torchs_own_modules_still_graph_break_beside_converted_ones():
    """The allowance is for seqcore's classes only: torch's own LSTM in the
    same process is refused under fullgraph=True and compiles otherwise, as
    without seqcore."""
    assert st.COMPILES
    torch.manual_seed(0)
    model = LanguageModel("LSTM")
    ids = torch.randint(0, 20, (9, 3))
    with pytest.raises(Exception, match="Attempted to wrap RNN, GRU, or LSTM"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(ids)
    assert torch.allclose(torch.compile(model)(ids), model(ids), rtol=1e-5, atol=1e-6)


def test_compile_with_inductor_trains_as_eager():
    torch.manual_seed(0)
    model = st.convert(LanguageModel("LSTM"))
    ids = torch.randint(0, 20, (9, 3))
    compiled = torch.compile(model, fullgraph=True)
    grads = []
    for run in (compiled, model):
        model.zero_grad()
        run(ids).pow(2).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_compile_follows_autocast():
    torch.manual_seed(0)
    model = st.convert(LanguageModel("RNN"))
    ids = torch.randint(0, 20, (9, 3))
    compiled = torch.compile(model.rnn, fullgraph=True, backend="aot_eager")
    x = model.embedding(ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = compiled(x)
        y_eager, _ = model.rnn(x)
    assert y.dtype == h.dtype == torch.bfloat16 and torch.equal(y, y_eager)


def test_export_holds_the_operator():
    torch.manual_seed(0)
    model = st.convert(LanguageModel("GRU")).eval()
    ids = torch.randint(0, 20, (9, 3))
    with torch.no_grad():
        program = torch.export.export(model, (ids,))
        targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
        assert "seqcore.recurrent_forward.default" in targets
        assert torch.equal(program.module()(ids), model(ids))


def test_opcheck_passes_for_the_forward_operator():
    """torch.library's own checks: schema, fake tensors, autograd registration;
    AOT dispatch for inference (in training the handle differs call by call)."""
    module = st.LSTM(4, 6, num_layers=2, bidirectional=True).double()
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    weights = [getattr(module, n) for n in module._flat_weights_names]
    options = ("lstm", 2, True, True, "tanh", 0, "fp32")
    train = (x.requires_grad_(), None, None, weights, [], None, *options, True)
    torch.library.opcheck(st.recurrent_forward, train,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    infer = (x.detach(), None, None, [w.detach() for w in weights], [], None, *options, False)
    torch.library.opcheck(st.recurrent_forward, infer)


# ---------------------------------------------------------------------------
# gradients: once, twice with retain_graph, never through create_graph


def test_double_backward_is_refused_at_the_call_naming_what_to_do():
    _, ours = pair("LSTM", 3, 4)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y, _ = ours(x)
    with pytest.raises(RuntimeError, match=r"create_graph=True\) is not supported.*seqcore.torch.revert"):
        torch.autograd.grad(y.sum(), x, create_graph=True)


def test_a_retained_graph_gives_the_same_gradients_twice_then_is_freed():
    _, ours = pair("GRU", 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y, h = ours(x)
    first = torch.autograd.grad(y.pow(2).sum(), x, retain_graph=True)[0]
    second = torch.autograd.grad(y.pow(2).sum(), x)[0]
    assert torch.equal(first, second)
    del y, h
    assert not st._SAVED


def test_a_graph_dropped_without_backward_frees_what_it_kept():
    _, ours = pair("LSTM", 3, 4, num_layers=2)
    y, final = ours(torch.randn(5, 2, 3))
    assert len(st._SAVED) == 1
    del y, final
    assert not st._SAVED
    with torch.no_grad():
        ours(torch.randn(5, 2, 3))
    assert not st._SAVED  # inference keeps nothing


def test_activation_checkpointing_recomputes_and_matches_torch():
    """torch.utils.checkpoint drops what the forward saved (the handle too:
    seqcore's arrays go with it) and runs the forward again for backward."""
    theirs, ours = pair("LSTM", 4, 6, num_layers=2)
    x = torch.randn(5, 3, 4)
    grads = []
    for module in (ours, theirs):
        module.zero_grad()
        y = torch.utils.checkpoint.checkpoint(lambda t: module(t)[0], x, use_reentrant=False)
        y.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not st._SAVED
