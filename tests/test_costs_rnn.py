from costs_helpers import W, cost

from planner.costs import OpClass, lookup

LSTM_GATES = 3 * 4 + 5 + 5 + 4  # 3 sigmoids, 2 tanh, c = f*c + i*g, h = o*tanh(c)
GRU_GATES = 2 * 4 + 5 + 5


def test_lstm_bidirectional_with_bias():
    seq, batch, inp, h, dirs = 10, 4, 32, 64, 2
    c = cost("LSTM", [(seq, batch, inp), ((dirs, 4 * h, inp), "float32", W), ((dirs, 4 * h, h), "float32", W),
                      ((dirs, 8 * h), "float32", W)],
             [(seq, dirs, batch, h), (dirs, batch, h), (dirs, batch, h)],
             {"hidden_size": h, "direction": b"bidirectional"})
    step = 2 * batch * 4 * h * (inp + h) + 2 * batch * 4 * h + batch * h * LSTM_GATES
    assert c.flops == dirs * seq * step
    assert c.weight_bytes == (dirs * 4 * h * inp + dirs * 4 * h * h + dirs * 8 * h) * 4
    assert lookup("", "LSTM").op_class is OpClass.MATRIX


def test_lstm_hidden_size_from_r_and_peepholes():
    seq, batch, inp, h = 5, 2, 16, 32
    inputs = [(seq, batch, inp), (1, 4 * h, inp), (1, 4 * h, h), None, None, None, None, (1, 3 * h)]
    c = cost("LSTM", inputs, [(seq, 1, batch, h)])
    step = 2 * batch * 4 * h * (inp + h) + batch * h * LSTM_GATES + 2 * 3 * batch * h
    assert c.flops == seq * step


def test_gru_batch_first():
    batch, seq, inp, h = 3, 7, 20, 40
    c = cost("GRU", [(batch, seq, inp), (1, 3 * h, inp), (1, 3 * h, h)], [(batch, seq, 1, h)],
             {"hidden_size": h, "layout": 1})
    assert c.flops == seq * (2 * batch * 3 * h * (inp + h) + batch * h * GRU_GATES)


def test_rnn_activation_attribute():
    seq, batch, inp, h = 12, 1, 8, 16
    inputs = [(seq, batch, inp), (1, h, inp), (1, h, h), (1, 2 * h)]
    tanh = cost("RNN", inputs, [(seq, 1, batch, h)], {"hidden_size": h})
    relu = cost("RNN", inputs, [(seq, 1, batch, h)], {"hidden_size": h, "activations": [b"Relu"]})
    base = 2 * batch * h * (inp + h) + 2 * batch * h
    assert tanh.flops == seq * (base + batch * h * 5)
    assert relu.flops == seq * (base + batch * h * 1)


def test_rnn_unknown_input_shape():
    c = cost("LSTM", [None, (1, 16, 4), (1, 16, 4)], [None])
    assert c.flops == 0 and c.bytes_read == (64 + 64) * 4
