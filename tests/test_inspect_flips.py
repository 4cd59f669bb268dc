"""Sign flips on a tiny hand-made run: every number below was worked out by hand.

Two prunable tensors, three levels (0, 1, 2):

    a.weight (1x4)  init [ 1 -1  1  1]   rewind [-1 -1  1  1]
        level 0     [ 1  1 -1  1]  mask [1 1 1 1]
        level 1     [-1  1  1  0]  mask [1 1 1 0]
        level 2     [ 1  1  0  0]  mask [1 1 0 0]
    b.weight (2x1)  init [ 1 -1]         rewind [ 1  1]
        level 0     [ 1 -1]        mask [1 1]
        level 1     [-1 -1]        mask [1 1]
        level 2     [-1  0]        mask [1 1]   (b[1] alive but exactly zero: sign 0)

Trajectories vs init (s_init, s_0, s_1, s_2), flips marked *:
    a0: + + -* +*  -> flip_count 2, last_flip 2
    a1: - +* + +   -> 1, 0
    a2: + -* +* 0  -> pruned at 2 (not in the histograms)
    a3: + + 0 0    -> pruned at 1
    b0: + + -* -   -> 1, 1
    b1: - - - 0    -> 0, -1
"""

from __future__ import annotations

import numpy as np
import pytest
from runfactory import write_run, write_safetensors

import signscope
from signscope.metrics import stream

A = np.array
INIT = {"a.weight": A([[1, -1, 1, 1]], np.float32), "b.weight": A([[1], [-1]], np.float32)}
REWIND = {"a.weight": A([[-1, -1, 1, 1]], np.float32), "b.weight": A([[1], [1]], np.float32)}
LEVELS = [
    {"a.weight": A([[1, 1, -1, 1]], np.float32), "b.weight": A([[1], [-1]], np.float32)},
    {"a.weight": A([[-1, 1, 1, 0]], np.float32), "b.weight": A([[-1], [-1]], np.float32)},
    {"a.weight": A([[1, 1, 0, 0]], np.float32), "b.weight": A([[-1], [0]], np.float32)},
]
MASKS = [
    {"a.weight": A([[1, 1, 1, 1]]), "b.weight": A([[1], [1]])},
    {"a.weight": A([[1, 1, 1, 0]]), "b.weight": A([[1], [1]])},
    {"a.weight": A([[1, 1, 0, 0]]), "b.weight": A([[1], [1]])},
]


@pytest.fixture(params=["f32", "f16", "bf16", "f64"])
def hand_run(request, tmp_path):
    """The run above in every supported dtype (magnitudes scaled: signs are what count)."""
    dtype = {"f32": np.float32, "f16": np.float16, "bf16": np.float32, "f64": np.float64}[
        request.param
    ]
    conv = lambda d: {k: (v * 0.37).astype(dtype) for k, v in d.items()}  # noqa: E731
    return write_run(
        tmp_path / "hand",
        [conv(lv) for lv in LEVELS],
        conv(INIT),
        masks=MASKS,
        rewind=conv(REWIND),
        bf16=request.param == "bf16",
    )


def rows(df, *cols):
    return [tuple(r[c] for c in cols) for r in df.iter_rows(named=True)]


def test_levels_table(hand_run):
    t = signscope.open_run(hand_run).flips()
    assert t["levels"].columns == ["run", "level", "density", "alive", "flips_prev", "flips_init"]
    assert rows(t["levels"], "level", "alive", "flips_prev", "flips_init") == [
        (0, 6, None, 2),
        (1, 5, 3, 3),
        (2, 4, 1, 2),
    ]
    assert t["levels"]["density"].to_list() == pytest.approx([1.0, 5 / 6, 4 / 6])
    assert set(t["levels"]["run"]) == {str(hand_run)}


def test_last_flip_and_flip_count(hand_run):
    t = signscope.open_run(hand_run).flips()
    assert t["last_flip"].columns == ["run", "last_flip", "count"]
    assert rows(t["last_flip"], "last_flip", "count") == [(-1, 1), (0, 1), (1, 1), (2, 1)]
    assert rows(t["flip_count"], "flip_count", "count") == [(0, 1), (1, 2), (2, 1)]


def test_at_level(hand_run):
    # Cut at level 1: alive at 1 are a0 a1 a2 b0 b1.
    # a0 + + -* (1 flip, last 1); a1 - +* + (1, 0); a2 + -* +* (2, 1); b0 + + -* (1, 1); b1 (0, -1)
    t = signscope.open_run(hand_run).flips(at_level=1)
    assert t["levels"]["level"].to_list() == [0, 1]
    assert rows(t["last_flip"], "last_flip", "count") == [(-1, 1), (0, 1), (1, 3)]
    assert rows(t["flip_count"], "flip_count", "count") == [(0, 1), (1, 3), (2, 1)]


def test_reference_rewind(hand_run):
    # Against the rewind signs: a0 -+*-*+* (3 flips, last 2); a1 -+*++ (1, 0);
    # a2 +-*+* (pruned at 2); b0 ++-*- (1, 1); b1 +-*-0 (1, 0).
    t = signscope.open_run(hand_run).flips(reference="rewind")
    assert rows(t["levels"], "level", "flips_prev", "flips_init") == [
        (0, None, 4),
        (1, 3, 3),
        (2, 1, 3),
    ]
    assert rows(t["last_flip"], "last_flip", "count") == [(0, 2), (1, 1), (2, 1)]
    assert rows(t["flip_count"], "flip_count", "count") == [(1, 3), (3, 1)]


def test_per_layer(hand_run):
    t = signscope.open_run(hand_run).flips(per_layer=True)
    lv = t["levels"]
    assert lv.columns == ["run", "layer", "level", "density", "alive", "flips_prev", "flips_init"]
    a = lv.filter(lv["layer"] == "a.weight")
    b = lv.filter(lv["layer"] == "b.weight")
    assert rows(a, "level", "alive", "flips_prev", "flips_init") == [
        (0, 4, None, 2),
        (1, 3, 2, 2),
        (2, 2, 1, 1),
    ]
    assert rows(b, "level", "alive", "flips_prev", "flips_init") == [
        (0, 2, None, 0),
        (1, 2, 1, 1),
        (2, 2, 0, 1),
    ]
    assert a["density"].to_list() == pytest.approx([1.0, 0.75, 0.5])
    # The global rows stay, under layer "*".
    assert rows(lv.filter(lv["layer"] == "*"), "level", "flips_prev") == [(0, None), (1, 3), (2, 1)]
    lf = t["last_flip"]
    assert rows(lf, "layer", "last_flip", "count") == [
        ("*", -1, 1),
        ("*", 0, 1),
        ("*", 1, 1),
        ("*", 2, 1),
        ("a.weight", 0, 1),
        ("a.weight", 2, 1),
        ("b.weight", -1, 1),
        ("b.weight", 1, 1),
    ]
    fc = t["flip_count"]
    assert rows(fc.filter(fc["layer"] != "*"), "layer", "flip_count", "count") == [
        ("a.weight", 1, 1),
        ("a.weight", 2, 1),
        ("b.weight", 0, 1),
        ("b.weight", 1, 1),
    ]


@pytest.mark.parametrize("chunk,workers", [(1, 1), (3, 2), (5, 2)])
def test_chunking_does_not_change_numbers(tmp_path, monkeypatch, chunk, workers):
    """Chunk boundaries inside a tensor, and several threads, give the same tables."""
    path = write_run(tmp_path / "r", LEVELS, INIT, masks=MASKS, rewind=REWIND)
    want = signscope.open_run(path).flips(per_layer=True)
    monkeypatch.setattr(stream, "CHUNK", chunk)
    monkeypatch.setattr(stream, "WORKERS", workers)
    got = signscope.open_run(path).flips(per_layer=True)
    for name in want:
        assert got[name].equals(want[name]), name


def test_plain_run_natural_order(tmp_path):
    """A plain folder: natural name order (ckpt_2 before ckpt_10), init* is the reference,
    alive means nonzero, and the numbers match the masked run."""
    folder = tmp_path / "plain"
    # Shuffle the names so that lexical order (1, 10, 2) would be wrong.
    for name, weights in (("ckpt_1", LEVELS[0]), ("ckpt_2", LEVELS[1]), ("ckpt_10", LEVELS[2])):
        write_safetensors(folder / f"{name}.safetensors", weights)
    write_safetensors(folder / "init_weights.safetensors", INIT)
    run = signscope.open_run(folder)
    assert run.kind == "plain"
    assert [c.path.name for c in map(run.checkpoint, run.levels)] == [
        "ckpt_1.safetensors",
        "ckpt_2.safetensors",
        "ckpt_10.safetensors",
    ]
    t = run.flips()
    # b1 at level 2 is zero, so in a plain run it is pruned: alive 3, and last_flip drops its -1.
    assert rows(t["levels"], "level", "alive", "flips_prev", "flips_init") == [
        (0, 6, None, 2),
        (1, 5, 3, 3),
        (2, 3, 1, 2),
    ]
    assert rows(t["last_flip"], "last_flip", "count") == [(0, 1), (1, 1), (2, 1)]


def test_plain_run_without_reference_is_an_error(tmp_path):
    write_safetensors(tmp_path / "p" / "a.safetensors", LEVELS[0])
    run = signscope.open_run(tmp_path / "p")
    with pytest.raises(signscope.SignscopeError, match=r"no init reference"):
        run.flips()
    with pytest.raises(
        signscope.SignscopeError, match=r"no rewind reference \(rewind.safetensors\)"
    ):
        run.flips(reference="rewind")


def test_at_level_out_of_range(hand_run):
    with pytest.raises(signscope.SignscopeError, match=r"level 7: .* has levels 0\.\.2"):
        signscope.open_run(hand_run).flips(at_level=7)


def test_run_label_is_the_path_as_given(tmp_path, monkeypatch):
    write_run(tmp_path / "r", LEVELS, INIT, masks=MASKS)
    monkeypatch.chdir(tmp_path)
    t = signscope.open_run("./r/").flips()
    assert set(t["levels"]["run"]) == {"./r/"}
