"""Old vs new RRAM simulation in one process, interleaved rounds: ms per BP batch (issue 13 follow-up).

The "before" code is commit 44dbe86's ``src/eqprop`` copied as a package ``eqprop_old``:

    mkdir -p /tmp/old /tmp/oldpkg && git archive 44dbe86 src | tar -x -C /tmp/old
    cp -r /tmp/old/src/eqprop /tmp/oldpkg/eqprop_old
    grep -rl eqprop /tmp/oldpkg/eqprop_old | xargs sed -i -E 's/\beqprop\./eqprop_old./g; s/from eqprop import/from eqprop_old import/g'
    python benchmarks/rram_speed_ab.py 256 200 60 6 ideal,flicker,all          # HIDDEN BATCH BATCHES ROUNDS PRESETS [OLDPKG_DIR]
"""
import torch, time, sys, json
sys.path.insert(0, sys.argv[6] if len(sys.argv) > 6 else "/tmp/oldpkg"); sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "src"))
torch.set_num_threads(1)
import torch.nn.functional as F
import eqprop.devices as ND, eqprop.optim as NO, eqprop_old.devices as OD, eqprop_old.optim as OO
from eqprop.models.bnn import BinaryMLP
from eqprop.data import load_dataset
from eqprop.data.transforms import to_float
H, B, nb, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
presets = sys.argv[5].split(",")
d = load_dataset("mnist", split="train", root=None)
x = to_float(d.images[:B*nb]).reshape(B*nb, -1); y = d.labels[:B*nb]
runs = {}
for code, D, O in (("before", OD, OO), ("after", ND, NO)):
    for p in presets:
        torch.manual_seed(0)
        m = BinaryMLP([784, H, 10]); dev = O.RRAMOptimizer(m.binary_parameters(), D.preset(p), lr=8.0, seed=0)
        fl = torch.optim.Adam(m.float_parameters(), lr=8e-3); runs[(code, p)] = dict(m=m, dev=dev, fl=fl, s=[], u=[], i=0)
def step(r):
    i = r["i"] % nb; r["i"] += 1
    xb, yb = x[i*B:(i+1)*B], y[i*B:(i+1)*B]
    t0 = time.perf_counter()
    r["dev"].zero_grad(); r["fl"].zero_grad(); F.cross_entropy(r["m"](xb), yb).backward()
    t1 = time.perf_counter(); r["dev"].step(); t2 = time.perf_counter(); r["fl"].step(); t3 = time.perf_counter()
    return t3 - t0, t2 - t1
for r in runs.values():
    for _ in range(2): step(r)
for _ in range(rounds):
    for r in runs.values():
        for _ in range(max(1, nb // rounds)):
            s, u = step(r); r["s"].append(s); r["u"].append(u)
ms = lambda v: round(1000 * sum(v) / len(v), 2)
out = {f"{c}:{p}": {"ms_per_batch": ms(r["s"]), "device_update_ms": ms(r["u"]), "n": len(r["s"])} for (c, p), r in runs.items()}
for c in ("before", "after"):
    out[f"{c}:ratio_all_to_ideal"] = round(out[f"{c}:all"]["ms_per_batch"] / out[f"{c}:ideal"]["ms_per_batch"], 2)
for p in presets:
    out[f"speedup:{p}"] = round(out[f"before:{p}"]["ms_per_batch"] / out[f"after:{p}"]["ms_per_batch"], 2)
print(json.dumps({"model": f"784-{H}-10", "batch": B, **out}))
