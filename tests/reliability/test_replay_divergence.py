"""scripts/replay_divergence.py: a diverged run replayed from its last good checkpoint stops where
the run did, and keeps the weights and batches of the steps before (the run folder untouched)."""
import importlib.util
import json

import torch
from conftest import CONFIG, REPO, TINY, cli

RBP_RUN = [*(t for t in TINY if not t.startswith("rule.")), "rule.name=rbp", "rule.free_steps=6"]


def _script():
    spec = importlib.util.spec_from_file_location("replay_divergence", REPO / "scripts" / "replay_divergence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_replay_stops_where_the_run_diverged_and_keeps_the_steps_before(tmp_path, capsys):
    run = tmp_path / "run"
    rc, out = cli(["train", CONFIG, *RBP_RUN, f"run.out={run}"])
    assert rc == 0, out
    rc, out = cli(["train", CONFIG, *RBP_RUN, "run.epochs=2", "optim.lr=1e30", f"run.out={run}"])
    assert rc != 0 and "training diverged at epoch 2, batch 2" in out, out
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    assert _script().main([str(run), "--keep", "3", "--out", str(tmp_path / "replay")]) == 0
    said = capsys.readouterr().out
    assert "stopped: DivergenceError: training diverged at epoch 2, batch 2" in said, said
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    kept = torch.load(tmp_path / "replay" / "last_steps.pt", weights_only=True)
    assert [k["step"] for k in kept] == [4, 5]  # 4 batches of 50 per epoch: epoch 2's two steps
    assert kept[0]["x"].shape[0] == 50 and kept[0]["y"].shape == (50,)
    assert not torch.equal(kept[0]["model"]["layers.0.weight"], kept[1]["model"]["layers.0.weight"])  # step 4 moved them
    rows = [json.loads(s) for s in (tmp_path / "replay" / "steps.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] > 1e6 and rows[0]["free_steps"] == 6 and rows[0]["resettled"] == 0
    examined = [json.loads(s) for s in (tmp_path / "replay" / "examined.jsonl").read_text().splitlines()]
    assert [e["step"] for e in examined] == [4, 5] and all(e["residual"] >= 0 for e in examined)
    # an override replays another run: at a sane rate it finishes
    assert _script().main([str(run), "--every", "9", "--out", str(tmp_path / "sane"), "optim.lr=0.01"]) == 0
    assert "the run finished without diverging" in capsys.readouterr().out
