"""seqcore.torch in precision "int8": convert(model, precision="int8"), a
module's seqcore_precision, and the modules of torch's quantize_dynamic.
Oracles: the float32 module (the error, against torch's quantize_dynamic
error on the same weights), seqcore.ops in int8 on the same weights (the
same bits), refusals. Skipped when torch is not installed."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import seqcore.torch as st  # noqa: E402  (needs torch)

from seqcore import ops  # noqa: E402


def quantize_dynamic(module):
    """torch's dynamically quantized copy of module (quantize_dynamic swaps
    only children: module itself goes into a container and comes out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13: the quantized modules are deprecated
        holder = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(copy.deepcopy(module)),
                                                        {torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)
    return holder[0]


def relative_error(y, reference):
    return float((y - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_int8_errs_no_more_than_torchs_quantize_dynamic_on_the_same_weights(cls):
    torch.manual_seed(0)
    model = getattr(torch.nn, cls)(32, 64, num_layers=2)
    x = torch.randn(20, 4, 32)
    with torch.no_grad():
        reference = model(x)[0]
        theirs = quantize_dynamic(model)(x)[0]
        ours = st.convert(copy.deepcopy(model), precision="int8")(x)[0]
    ours_error, their_error = relative_error(ours, reference), relative_error(theirs, reference)
    print(f"{cls}: largest error relative to the largest output: seqcore int8 {ours_error:.2e}, "
          f"torch quantize_dynamic {their_error:.2e}")
    assert 0 < ours_error <= their_error


def test_int8_runs_seqcores_int8_forward_with_the_same_bits(monkeypatch):
    torch.manual_seed(0)
    module = st.convert(torch.nn.LSTM(8, 16), precision="int8")
    assert module.seqcore_precision == "int8"
    precisions = []
    real = ops.lstm_forward
    monkeypatch.setattr(ops, "lstm_forward", lambda *a, **k: precisions.append(k["precision"]) or real(*a, **k))
    x = torch.randn(6, 3, 8)
    with torch.no_grad():
        y, (h, c) = module(x)
    assert precisions == ["int8"]
    p = {n: w.detach().numpy() for n, w in module.named_parameters()}
    y_ops, h_ops, c_ops, _ = real(x.numpy(), None, None, p["weight_ih_l0"], p["weight_hh_l0"],
                                  p["bias_ih_l0"] + p["bias_hh_l0"], train=False, precision="int8")
    assert np.array_equal(y.numpy(), y_ops) and np.array_equal(h[0].numpy(), h_ops)


def test_weights_are_quantized_again_after_they_change():
    torch.manual_seed(0)
    model = torch.nn.GRU(8, 16)
    module = st.convert(copy.deepcopy(model), precision="int8")
    x = torch.randn(6, 3, 8)
    with torch.no_grad():
        before = module(x)[0]
        module.weight_hh_l0.mul_(0.5)  # in place: a new version of the tensor
        after = module(x)[0]
        fresh = st.convert(copy.deepcopy(module), precision="int8")(x)[0]
    assert not torch.equal(before, after) and torch.equal(after, fresh)


def test_a_training_call_in_int8_is_refused_naming_precision():
    module = st.convert(torch.nn.LSTM(4, 8), precision="int8")
    with pytest.raises(ValueError, match="precision: seqcore_precision 'int8' is for inference"):
        module(torch.randn(5, 2, 4))
    module.seqcore_precision = None  # back to float32: trains
    module(torch.randn(5, 2, 4))[0].sum().backward()


def test_int8_wants_a_float32_module_and_a_known_precision():
    module = st.convert(torch.nn.LSTM(4, 8).double(), precision="int8")
    with torch.no_grad(), pytest.raises(TypeError, match="seqcore_precision: 'int8' runs float32 modules"):
        module(torch.randn(5, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="precision: expected None, 'bf16' or 'int8', got 'int4'"):
        st.convert(torch.nn.GRU(4, 8), precision="int4")
    module = st.convert(torch.nn.GRU(4, 8))
    module.seqcore_precision = "fp16"
    with pytest.raises(ValueError, match="seqcore_precision: expected None, 'bf16' or 'int8'"):
        module(torch.randn(5, 2, 4))


def test_bf16_precision_runs_the_bf16_products_without_autocast(monkeypatch):
    module = st.convert(torch.nn.RNN(4, 8), precision="bf16")
    precisions = []
    real = ops.rnn_forward
    monkeypatch.setattr(ops, "rnn_forward", lambda *a, **k: precisions.append(k["precision"]) or real(*a, **k))
    y, _ = module(torch.randn(5, 2, 4))
    assert precisions == ["bf16"] and y.dtype == torch.float32
    y.sum().backward()  # bf16 trains


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_quantize_dynamic_modules_are_replaced_by_seqcores_in_int8(cls):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), getattr(torch.nn, cls)(8, 16, num_layers=2,
                                                                               bidirectional=True))
    quantized = quantize_dynamic(model)
    assert type(quantized[1]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    converted = st.convert(quantized)
    assert converted is quantized and type(converted[1]) is getattr(st, cls)
    assert converted[1].seqcore_precision == "int8"
    assert not any(p.requires_grad for p in converted[1].parameters())
    x = torch.randn(9, 3, 6)
    with torch.no_grad():
        reference = model[1](model[0](x))[0]
    with torch.no_grad():
        y = converted[1](converted[0](x))[0]
    converted[1](x.new_zeros(9, 3, 8))  # alone, no torch.no_grad() needed: nothing in it requires a gradient
    # the dequantized weights quantized again per row: within quantize_dynamic's own error of float32
    with torch.no_grad():
        their_error = relative_error(quantize_dynamic(model)[1](model[0](x))[0], reference)
    assert relative_error(y, reference) <= 2 * their_error
    # the module itself: the replacement is returned
    alone = st.convert(quantize_dynamic(getattr(torch.nn, cls)(8, 16)))
    assert type(alone) is getattr(st, cls)


def test_a_relu_rnn_runs_in_int8_as_seqcores_own_layer():
    torch.manual_seed(0)
    module = st.convert(torch.nn.RNN(4, 8, nonlinearity="relu"), precision="int8")
    x = torch.randn(5, 2, 4)
    with torch.no_grad():
        y = module(x)[0]
    p = {n: w.detach().numpy() for n, w in module.named_parameters()}
    y_ops, _, _ = ops.rnn_forward(x.numpy(), None, p["weight_ih_l0"], p["weight_hh_l0"],
                                  p["bias_ih_l0"] + p["bias_hh_l0"], train=False, precision="int8",
                                  nonlinearity="relu")
    assert np.array_equal(y.numpy(), y_ops) and (y >= 0).all()


def test_revert_forgets_the_precision():
    module = st.convert(torch.nn.LSTM(4, 8), precision="int8")
    st.revert(module)
    assert type(module) is torch.nn.LSTM and not hasattr(module, "seqcore_precision")
