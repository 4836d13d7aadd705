"""The answer to the source question, computed on its own worked examples.

Every number printed is computed by convdot (or NumPy for the plain dot product) when the demo
runs; the seed Q&A's expected values are only named in the prose.
"""

from __future__ import annotations

import time

import numpy as np

from ._fmt import grid, side_by_side
from .compare import compare
from .nn import conv2d
from .signal import convolve2d, correlate2d

#: The seed Q&A's 5x5 image and symmetric 3x3 kernel.
A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
#: Its 3x3 patch (the top-left window of A) and the asymmetric kernel.
A3 = A[:3, :3].copy()
B2 = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def _section(title: str) -> str:
    return f"\n{title}\n{'-' * len(title)}"


def demo_text(layer: tuple[int, int, int, int] = (1, 32, 28, 28)) -> str:
    """Build the demo's text: the worked examples, then every method on a CNN layer of ``layer`` shape."""
    out: list[str] = ["When a CNN convolves an image, is it a dot product or a sum of element-wise products?",
                      "Both: they are the same number. Here is the seed example, computed."]

    out.append(_section("1. One output = sum of the element-wise (Hadamard) product"))
    prod = A3 * B2
    total = int(prod.sum())
    out.append(side_by_side([grid(A3), grid(B2), grid(prod)], ["*", "="],
                            ["window A3", "kernel B2", "element-wise product"]))
    cnn = int(conv2d(A3[None, None], B2[None, None])[0, 0, 0, 0])
    out.append(f"sum of the element-wise product = {total}")
    out.append(f"convdot.conv2d(A3, B2) (what a CNN layer computes)  = {cnn}")

    out.append(_section("2. The same number is the dot product of the flattened window and kernel"))
    a, b = A3.ravel(), B2.ravel()
    out.append(f"A3.ravel() = {a.tolist()}\nB2.ravel() = {b.tolist()}")
    out.append(f"np.dot(A3.ravel(), B2.ravel()) = {int(np.dot(a, b))}"
               "   (np.dot(A3, B2) would be a matrix product -- a different thing)")

    out.append(_section("3. All windows at once are one matrix multiply (im2col: W_row @ X_col)"))
    cols = np.lib.stride_tricks.sliding_window_view(A, (3, 3))  # (3, 3, 3, 3): every window of A
    x_col = cols.reshape(9, 9).T  # column j is window j flattened
    w_row = B2.reshape(1, 9)
    y = w_row @ x_col
    out.append("Each column of X_col is one 3x3 window of the 5x5 image A, flattened; W_row is B2 flattened.")
    out.append(side_by_side([grid(w_row), grid(x_col), grid(y)], ["@", "="],
                            ["W_row (1x9)", "X_col (9x9)", "W_row @ X_col"]))
    im2col = conv2d(A[None, None], B2[None, None], method="im2col")[0, 0]
    out.append("reshaped to 3x3 this is convdot.conv2d(A, B2, method='im2col'):\n" + "\n".join(grid(im2col)))
    out.append(f"its first element, {int(y[0, 0])}, is the window A3 above: the same {total}.")

    out.append(_section("4. Mathematical convolution flips the kernel first"))
    flipped = B2[::-1, ::-1]
    conv_val = int(convolve2d(A3, B2, "valid")[0, 0])
    out.append(side_by_side([grid(A3), grid(flipped), grid(A3 * flipped)], ["*", "="],
                            ["window A3", "B2 flipped (rotated 180 deg)", "element-wise product"]))
    out.append(f"convdot.convolve2d(A3, B2, 'valid') = [[{conv_val}]]   (as scipy.signal.convolve2d)")
    out.append(f"convdot.correlate2d(A3, B2, 'valid') = [[{int(correlate2d(A3, B2, 'valid')[0, 0])}]]   "
               "(no flip: what CNN layers compute)")
    out.append(f"They differ ({total} vs {conv_val}) because B2 is not symmetric under a 180-degree rotation; "
               "CNN frameworks call\ncross-correlation 'convolution' -- "
               "the learned kernel would simply be learned flipped.")

    out.append(_section("5. The 5x5 example with the symmetric kernel B"))
    c5 = convolve2d(A, B, "valid")
    out.append(side_by_side([grid(A), grid(B), grid(c5)], ["conv", "="], ["A", "B", "convolve2d(A, B, 'valid')"]))
    same = np.array_equal(c5, correlate2d(A, B, "valid"))
    out.append(f"B is symmetric, so flipping changes nothing: correlate2d gives the same result: {same}.")

    out.append(_section("6. Over depth: per-channel sums add up, plus a bias"))
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(3, 3, 3))  # (C_in=3, H, W): one 3x3 window of a 3-channel image
    w = rng.integers(-1, 2, size=(1, 3, 3, 3))
    per_ch = [int((x[c] * w[0, c]).sum()) for c in range(3)]
    layer_out = int(conv2d(x, w, bias=[1])[0, 0, 0])
    out.append(f"channel sums {per_ch} + bias 1 = {sum(per_ch) + 1} = convdot.conv2d(x, w, bias=[1]) = {layer_out}")
    one = conv2d(x, w[:, :, :1, :1])[0]  # 1x1 conv: at each pixel, a dot product along depth
    out.append(f"a 1x1 convolution is a dot product along depth: at pixel (0,0) "
               f"{int(np.dot(x[:, 0, 0], w[0, :, 0, 0]))} == {int(one[0, 0])}")
    out.append(f"a fully connected layer is a plain dot product: a kernel as large as the input gives one number, "
               f"{layer_out - 1} == {int(np.dot(x.ravel(), w.ravel()))}")

    n, c, h, wd = layer
    out.append(_section(f"7. Every formulation agrees on a CNN layer "
                        f"(N={n}, {c}->{c} channels, {h}x{wd}, 3x3, padding 1, float32)"))
    xl = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    wl = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    t0 = time.perf_counter()
    cmp = compare(xl, wl, padding=1, repeat=2)
    out.append(str(cmp).split("\n", 1)[1])
    out.append(f"(errors are float32 rounding against the float64-accumulated reference; compared in "
               f"{time.perf_counter() - t0:.2f} s)")

    out.append(_section("Answer"))
    out.append("One output of a convolution layer is the sum of the element-wise product of a window and the kernel,\n"
               "which is exactly the dot product of the two flattened; all windows together are one matrix multiply.\n"
               "CNN layers compute cross-correlation; mathematical convolution flips the kernel first.")
    return "\n".join(out)
