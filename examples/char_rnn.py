"""A character-level RNN language model (many-to-many): at every time step the network reads one character and
predicts the next; backpropagation through time carries the error of all T predictions back through the
recurrence. Trained on traditional nursery rhymes shipped in examples/data/ (public domain).

It samples text before training (random characters) and after (rhymes in the style of the text), and prints
the drop of the cross-entropy loss (nats per character, and perplexity) on the whole text.

Run: python examples/char_rnn.py [steps]
"""
import sys
import time
from pathlib import Path

import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.nn.functional import softmax

TEXT = Path(__file__).parent / "data" / "nursery_rhymes.txt"
HIDDEN, SEQ_LEN, BATCH, LR, CLIP = 128, 40, 32, 3e-3, 5.0


class CharRNN(nn.Module):
    """one-hot chars (N, T, V) -> RNN (H) -> Linear at every step -> next-char logits (N*T, V)."""

    def __init__(self, vocab_size: int, hidden_size: int, rng=None):
        super().__init__()
        self.rnn = nn.RNN(vocab_size, hidden_size, rng=rng)
        self.fc = nn.Linear(hidden_size, vocab_size, rng=rng)

    def forward(self, x, h0=None):
        out, h_n = self.rnn.forward(x, h0)
        n, t, h = out.shape
        self._steps = t
        return self.fc.forward(out.reshape(n * t, h)), h_n

    def backward(self, dlogits):
        d_out = self.fc.backward(dlogits)                          # dC/dh_t for every step, (N*T, H)
        return self.rnn.backward(d_out.reshape(-1, self._steps, d_out.shape[1]))  # BPTT through all T steps


def one_hot(idx: np.ndarray, v: int) -> np.ndarray:
    out = np.zeros(idx.shape + (v,), dtype=np.float32)
    np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
    return out


def text_loss(model, data: np.ndarray, v: int) -> float:
    """Mean cross-entropy (nats/char) of predicting every next character of the text, in windows of SEQ_LEN."""
    model.eval()
    loss = nn.CrossEntropyLoss()
    n = (len(data) - 1) // SEQ_LEN
    x = data[:n * SEQ_LEN].reshape(n, SEQ_LEN)
    y = data[1:n * SEQ_LEN + 1].reshape(n, SEQ_LEN)
    logits, _ = model(one_hot(x, v))
    value = loss(logits, y.reshape(-1))
    model.train()
    return value


def sample(model, chars: list[str], prime: str, length: int, rng: np.random.Generator,
           temperature: float = 0.7) -> str:
    """Feed `prime`, then draw each next character from softmax(logits / temperature) and feed it back."""
    model.eval()
    index = {c: i for i, c in enumerate(chars)}
    v = len(chars)
    h = None
    logits, h = model(one_hot(np.array([[index[c] for c in prime]]), v), h)
    out = []
    for _ in range(length):
        c = rng.choice(v, p=softmax(logits[-1].astype(np.float64) / temperature))
        out.append(chars[c])
        logits, h = model(one_hot(np.array([[c]]), v), h)
    model.train()
    return prime + "".join(out)


def main(steps: int = 800) -> None:
    text = TEXT.read_text(encoding="utf-8")
    chars = sorted(set(text))
    v = len(chars)
    data = np.array([chars.index(c) for c in text], dtype=np.int64)
    print(f"{TEXT.name}: {len(text)} characters, vocabulary of {v}; RNN hidden {HIDDEN}, "
          f"sequences of {SEQ_LEN}, batch {BATCH}, Adam lr {LR}, clip {CLIP}, {steps} steps")
    cnn_core.manual_seed(0)
    rng = np.random.default_rng(0)
    model = CharRNN(v, HIDDEN, rng=0)
    loss = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=LR)
    sched = optim.CosineAnnealingLR(opt, T_max=steps, eta_min=LR / 10)

    before = text_loss(model, data, v)
    print(f"\nbefore training: loss {before:.3f} nats/char (uniform guess: ln {v} = {np.log(v):.3f})")
    print("sample:\n" + sample(model, chars, "Mary", 160, np.random.default_rng(1)))

    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - SEQ_LEN - 1, size=BATCH)
        window = data[starts[:, None] + np.arange(SEQ_LEN + 1)]
        model.zero_grad()
        logits, _ = model(one_hot(window[:, :-1], v))
        value = loss(logits, window[:, 1:].reshape(-1))
        model.backward(loss.backward())
        optim.clip_grad_norm(model.parameters(), CLIP)   # tames exploding gradients through time
        opt.step()
        sched.step()
        if step % 250 == 0:
            print(f"step {step:5d}: batch loss {value:.3f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    seconds = time.perf_counter() - t0

    after = text_loss(model, data, v)
    print(f"\nafter training: loss {after:.3f} nats/char, down {before - after:.3f} from {before:.3f} "
          f"(perplexity {np.exp(before):.1f} -> {np.exp(after):.1f}); {steps} steps in {seconds:.1f} s")
    print("sample:\n" + sample(model, chars, "Mary", 300, np.random.default_rng(1)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 800)
