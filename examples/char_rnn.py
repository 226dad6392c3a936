"""A character-level language model (many-to-many): at every time step the network reads one character and
predicts the next; backpropagation through time carries the error of all T predictions back through the
recurrence. Trained on traditional nursery rhymes shipped in examples/data/ (public domain), the last tenth of
the text held out for validation.

The recurrent layer is the Elman RNN, an LSTM or a GRU (--cell; `all`, the default, trains each in turn on the
same text, steps and seeds). For each it samples text before training (random characters) and after (rhymes
in the style of the text), and prints the validation loss (cross-entropy in nats per character, and
perplexity) every EVERY steps; with several cells a table compares their best and final validation losses at
the end. The text is small (about 2,600 training characters), so long runs overfit: the validation loss
then rises again, which the table shows. Characters enter as integer indices into an nn.Embedding: a row
lookup of EMBED learned numbers per character (what a one-hot vector times a weight matrix computes, without
building the zeros), trained by its scatter-add backward.

Run: python examples/char_rnn.py [steps] [--cell rnn|lstm|gru|all]
"""
import argparse
import time
from pathlib import Path

import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.nn.functional import softmax

TEXT = Path(__file__).parent / "data" / "nursery_rhymes.txt"
HIDDEN, SEQ_LEN, BATCH, LR, CLIP = 128, 40, 32, 3e-3, 5.0
EMBED = 32        # length of each character's learned vector
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
VALIDATION = 0.1  # the last tenth of the text
EVERY = 50        # steps between validation losses


class CharRNN(nn.Module):
    """char indices (N, T) -> Embedding (N, T, E) -> recurrent layer (H) -> Linear at every step -> next-char
    logits (N*T, V)."""

    def __init__(self, vocab_size: int, hidden_size: int, cell: str = "rnn", embed_size: int = EMBED, rng=None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size, rng=rng)
        self.rnn = CELLS[cell](embed_size, hidden_size, batch_first=True, rng=rng)
        self.fc = nn.Linear(hidden_size, vocab_size, rng=rng)

    def forward(self, x, state=None):
        """-> (logits, state): the state (h_n, or the LSTM's (h_n, c_n)) carries on into the next call."""
        out, state = self.rnn.forward(self.embed.forward(x), state)
        n, t, h = out.shape
        self._steps = t
        return self.fc.forward(out.reshape(n * t, h)), state

    def backward(self, dlogits):
        d_out = self.fc.backward(dlogits)                          # dC/dh_t for every step, (N*T, H)
        d_x = self.rnn.backward(d_out.reshape(-1, self._steps, d_out.shape[1]))  # BPTT through all T steps
        return self.embed.backward(d_x)  # scatter-adds into the rows read; indices have no gradient (None)


def text_loss(model, data: np.ndarray) -> float:
    """Mean cross-entropy (nats/char) of predicting every next character of `data`, in windows of SEQ_LEN."""
    model.eval()
    loss = nn.CrossEntropyLoss()
    n = (len(data) - 1) // SEQ_LEN
    x = data[:n * SEQ_LEN].reshape(n, SEQ_LEN)
    y = data[1:n * SEQ_LEN + 1].reshape(n, SEQ_LEN)
    logits, _ = model(x)
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
    logits, h = model(np.array([[index[c] for c in prime]]), h)
    out = []
    for _ in range(length):
        c = rng.choice(v, p=softmax(logits[-1].astype(np.float64) / temperature))
        out.append(chars[c])
        logits, h = model(np.array([[c]]), h)
    model.train()
    return prime + "".join(out)


def train_cell(cell: str, data: np.ndarray, val: np.ndarray, chars: list[str], steps: int
               ) -> tuple[float, int, float, float]:
    """Train one CharRNN on `data` and report; returns (best validation loss, its step, the final one, seconds
    of training)."""
    v = len(chars)
    print(f"\n=== {cell}: nn.Embedding({v}, {EMBED}) -> nn.{CELLS[cell].__name__}, hidden {HIDDEN} ===")
    cnn_core.manual_seed(0)
    rng = np.random.default_rng(0)
    model = CharRNN(v, HIDDEN, cell, rng=0)
    loss = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=LR)
    sched = optim.CosineAnnealingLR(opt, T_max=steps, eta_min=LR / 10)

    before = text_loss(model, val)
    print(f"before training: validation loss {before:.3f} nats/char (uniform guess: ln {v} = {np.log(v):.3f})")
    print("sample:\n" + sample(model, chars, "Mary", 160, np.random.default_rng(1)))

    best, best_step, seconds = before, 0, 0.0
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - SEQ_LEN - 1, size=BATCH)
        window = data[starts[:, None] + np.arange(SEQ_LEN + 1)]
        model.zero_grad()
        logits, _ = model(window[:, :-1])
        value = loss(logits, window[:, 1:].reshape(-1))
        model.backward(loss.backward())
        optim.clip_grad_norm(model.parameters(), CLIP)   # tames exploding gradients through time
        opt.step()
        sched.step()
        if step % EVERY == 0 or step == steps:
            seconds += time.perf_counter() - t0
            current = text_loss(model, val)
            if current < best:
                best, best_step = current, step
            print(f"step {step:5d}: batch loss {value:.3f}, validation loss {current:.3f}  ({seconds:.1f} s)",
                  flush=True)
            t0 = time.perf_counter()

    after = text_loss(model, val)
    print(f"after training: validation loss {after:.3f} nats/char, down {before - after:.3f} from {before:.3f} "
          f"(perplexity {np.exp(before):.1f} -> {np.exp(after):.1f}); {steps} steps in {seconds:.1f} s")
    print("sample:\n" + sample(model, chars, "Mary", 300, np.random.default_rng(1)))
    return best, best_step, after, seconds


def main(steps: int = 300, cells: tuple[str, ...] = tuple(CELLS)) -> None:
    text = TEXT.read_text(encoding="utf-8")
    chars = sorted(set(text))
    encoded = np.array([chars.index(c) for c in text], dtype=np.int64)
    split = int(len(encoded) * (1 - VALIDATION))
    data, val = encoded[:split], encoded[split:]
    print(f"{TEXT.name}: {len(text)} characters ({len(data)} train, {len(val)} validation), vocabulary of "
          f"{len(chars)}; embedding {EMBED}, hidden {HIDDEN}, sequences of {SEQ_LEN}, batch {BATCH}, "
          f"Adam lr {LR}, clip {CLIP}, {steps} steps per cell")
    results = {cell: train_cell(cell, data, val, chars, steps) for cell in cells}
    if len(results) > 1:
        print(f"\nvalidation loss per character, {steps} steps each (same text, seeds and budget):")
        print(f"  {'cell':5s} {'best (step)':>16s} {'final':>7s} {'perplexity':>11s} {'seconds':>8s}")
        for cell, (best, best_step, after, seconds) in results.items():
            print(f"  {cell:5s} {best:7.3f} ({best_step:5d}) {after:7.3f} {np.exp(best):11.2f} {seconds:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="?", type=int, default=300, help="training steps per cell (default 300)")
    parser.add_argument("--cell", choices=(*CELLS, "all"), default="all",
                        help="the recurrent layer: rnn, lstm, gru, or all of them in turn (default)")
    args = parser.parse_args()
    main(args.steps, tuple(CELLS) if args.cell == "all" else (args.cell,))
