"""Property tests on random runs (hypothesis), plus a cross-check of every flip number
against a direct numpy computation of the SPEC section 3 definitions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runfactory import from_bf16_bytes, to_bf16_bytes, write_run, write_safetensors

import signscope
from signscope.metrics import stream

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SHAPES = {"conv.weight": (3, 2, 2, 2), "fc.weight": (5, 7)}


def _random_levels(seed: int, n_levels: int, nested: bool, zero_alive: bool):
    """Init, per-level weights and masks. Nested masks shrink level by level; otherwise
    each level draws a fresh mask (weights can come back)."""
    rng = np.random.default_rng(seed)
    init = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
    init["bn.weight"] = rng.normal(size=3).astype(np.float32)
    init["bn.running_var"] = np.ones(3, np.float32)
    cur = {n: a.copy() for n, a in init.items()}
    masks_now = {n: np.ones(s, bool) for n, s in SHAPES.items()}
    levels, masks = [], []
    for _ in range(n_levels):
        for n, s in SHAPES.items():
            keep = rng.random(s) < 0.8
            masks_now[n] = masks_now[n] & keep if nested else keep
            cur[n] = cur[n] + rng.normal(scale=0.7, size=s).astype(np.float32)
            # No alive weight is exactly zero unless asked for.
            cur[n][cur[n] == 0] = np.float32(0.5)
            if zero_alive:
                cur[n][rng.random(s) < 0.05] = 0
        levels.append(
            {
                n: (np.where(masks_now[n], a, 0) if n in SHAPES else a).astype(np.float32)
                for n, a in cur.items()
            }
        )
        masks.append({n: m.copy() for n, m in masks_now.items()})
    return init, levels, masks


def _signs(a: np.ndarray) -> np.ndarray:
    return np.sign(a).astype(np.int8)


def _expected(init, levels, masks, names):
    """The definitions of SPEC section 3, written as plainly as possible."""
    total = sum(init[n].size for n in names)
    rows, prev = [], None
    for lvl, (w, m) in enumerate(zip(levels, masks, strict=True)):
        s = {n: _signs(w[n]) * m[n] for n in names}
        alive = sum(int(m[n].sum()) for n in names)
        f_init = sum(int(((s[n] * _signs(init[n])) < 0).sum()) for n in names)
        f_prev = None if prev is None else sum(int(((s[n] * prev[n]) < 0).sum()) for n in names)
        rows.append((lvl, alive / total, alive, f_prev, f_init))
        prev = s
    last_hist, count_hist = {}, {}
    for n in names:
        traj = [_signs(init[n]).ravel()] + [
            (_signs(w[n]) * m[n]).ravel() for w, m in zip(levels, masks, strict=True)
        ]
        flips = np.stack(
            [(traj[k - 1] * traj[k]) < 0 for k in range(1, len(traj))]
        )  # [level, weight]
        count = flips.sum(0)
        last = np.where(flips.any(0), flips.shape[0] - 1 - np.argmax(flips[::-1], axis=0), -1)
        final = masks[-1][n].ravel().astype(bool)
        for v in last[final]:
            last_hist[int(v)] = last_hist.get(int(v), 0) + 1
        for v in count[final]:
            count_hist[int(v)] = count_hist.get(int(v), 0) + 1
    return rows, sorted(last_hist.items()), sorted(count_hist.items())


def _table(df, *cols):
    return [tuple(r[c] for c in cols) for r in df.iter_rows(named=True)]


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n_levels=st.integers(1, 5),
    nested=st.booleans(),
    zero_alive=st.booleans(),
    chunk=st.sampled_from([3, 16, 1 << 20]),
    workers=st.sampled_from([1, 2]),
)
def test_flips_match_the_definitions(
    seed, n_levels, nested, zero_alive, chunk, workers, monkeypatch
):
    init, levels, masks = _random_levels(seed, n_levels, nested, zero_alive)
    with tempfile.TemporaryDirectory() as tmp, monkeypatch.context() as mp:
        mp.setattr(stream, "CHUNK", chunk)
        mp.setattr(stream, "WORKERS", workers)
        run = signscope.open_run(write_run(Path(tmp) / "r", levels, init, masks=masks))
        t = run.flips()
        rows, last_hist, count_hist = _expected(init, levels, masks, list(SHAPES))
        got = _table(t["levels"], "level", "density", "alive", "flips_prev", "flips_init")
        assert [r[2:] for r in got] == [r[2:] for r in rows]
        assert [r[1] for r in got] == pytest.approx([r[1] for r in rows])
        assert _table(t["last_flip"], "last_flip", "count") == last_hist
        assert _table(t["flip_count"], "flip_count", "count") == count_hist
        # Invariants of SPEC section 3.
        alive_last = rows[-1][2]
        assert t["last_flip"]["count"].sum() == alive_last == t["flip_count"]["count"].sum()
        assert t["flip_count"]["flip_count"].max() <= len(levels)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n_levels=st.integers(1, 4),
    dtype=st.sampled_from(["f32", "f16", "bf16"]),
)
def test_self_comparison_and_density(seed, n_levels, dtype):
    from runfactory import random_run

    with tempfile.TemporaryDirectory() as tmp:
        path = random_run(
            Path(tmp) / "r",
            seed=seed,
            n_levels=n_levels,
            bf16=dtype == "bf16",
            dtype=np.float16 if dtype == "f16" else np.float32,
        )
        run = signscope.open_run(path)
        m = signscope.masks(run, run, per_layer=True)
        assert (m["jaccard"] == 1.0).all()
        assert (m["intersection"] == m["union"]).all()
        s = signscope.signs(run, path, per_layer=True)
        assert (s.filter(s["both_alive"] > 0)["agreement"] == 1.0).all()
        # density matches the masks written in the files
        summary = run.summary()
        from signscope.tensordata import Handles, read_tensor

        with Handles() as h:
            for lvl in run.levels:
                ck = run.checkpoint(lvl)
                alive = sum(
                    int(np.count_nonzero(read_tensor(h, ck, f"mask/{n}"))) for n in run.prunable
                )
                total = sum(run.numel(n) for n in run.prunable)
                row = summary.row(lvl, named=True)
                assert row["alive"] == alive
                assert row["density"] == pytest.approx(alive / total)


@SETTINGS
@given(seed=st.integers(0, 10_000), n_levels=st.integers(1, 4), bf16=st.booleans())
def test_plain_run_equals_masked_run(seed, n_levels, bf16):
    """Without masks a weight is alive where it is nonzero: with no alive weight exactly
    zero, a plain folder of the same files gives the same numbers."""
    init, levels, masks = _random_levels(seed, n_levels, nested=True, zero_alive=False)
    if bf16:  # round once so that both runs hold identical values
        round_ = lambda d: {k: from_bf16_bytes(to_bf16_bytes(v), v.shape) for k, v in d.items()}  # noqa: E731
        init, levels = round_(init), [round_(lv) for lv in levels]
        for lv, m in zip(levels, masks, strict=True):
            for n in SHAPES:
                lv[n][m[n] & (lv[n] == 0)] = np.float32(0.5)
    with tempfile.TemporaryDirectory() as tmp:
        masked = signscope.open_run(
            write_run(Path(tmp) / "m", levels, init, masks=masks, bf16=bf16)
        )
        plain_dir = Path(tmp) / "p"
        for lvl, lv in enumerate(levels):
            write_safetensors(plain_dir / f"step_{lvl}.safetensors", lv, bf16=bf16)
        write_safetensors(plain_dir / "init.safetensors", init, bf16=bf16)
        plain = signscope.open_run(plain_dir)
        assert plain.kind == "plain" and sorted(plain.prunable) == sorted(SHAPES)
        a, b = masked.flips(per_layer=True), plain.flips(per_layer=True)
        for name in a:
            assert a[name].drop("run").equals(b[name].drop("run")), name
        assert (
            masked.summary().drop("run", "test_acc").equals(plain.summary().drop("run", "test_acc"))
        )
        assert signscope.masks(masked, plain)["jaccard"].to_list() == [1.0] * n_levels


@pytest.mark.parametrize("pad", [0, 1, 3, 8, 13])
def test_reads_at_any_file_offset_into_any_buffer(tmp_path, pad):
    """Handles.read starts the data at the file's offset modulo 64 inside the buffer (the
    kernel copies faster so); values must come out right whatever the offset, even an odd one
    that leaves float32 data unaligned in memory."""
    from signscope.reader import read_header
    from signscope.tensordata import Handles, read_buffer

    rng = np.random.default_rng(pad)
    weight = rng.standard_normal((7, 9)).astype(np.float32)
    path = write_safetensors(
        tmp_path / "x.safetensors", {"pad": np.zeros(pad, np.uint8), "w": weight}
    )
    ckpt = read_header(path)
    info = ckpt.tensors["w"]
    assert (info.begin - ckpt.tensors["pad"].begin) == pad
    for start, count in ((0, 63), (5, 40), (62, 1)):
        for slack in (0, 1, 7, 64):
            buf = read_buffer(count * 4 + slack)[slack:]
            with Handles() as handles:
                raw = handles.read(ckpt, info, start, count, buf)
            assert raw.nbytes == count * 4
            np.testing.assert_array_equal(raw.view("<f4"), weight.ravel()[start : start + count])
    with Handles() as handles:
        values = stream.load(handles, ckpt, "w", None, 0, info.numel)
    np.testing.assert_array_equal(np.unpackbits(values.neg)[: info.numel], weight.ravel() < 0)
