"""One data-parallel (or single-process) training run of a tiny float64 HopfieldMLP with centered EP.

    torchrun --standalone --nproc-per-node 2 ddp_worker.py OUT EPOCHS [--record FILE] [--die-at STEP]

Records the parameters after every optimizer step (rank 0, ``--record``); ``--die-at`` makes rank
1 (or the only process) exit hard at that global step, as a killed job would.
"""
import argparse
import os

import torch

import eqprop
from eqprop.callbacks import Callback


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(96, 20, generator=g, dtype=torch.float64)
    w = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = (x @ w).argmax(-1)
    return (x[:64], y[:64]), (x[64:], y[64:])


class Record(Callback):
    def __init__(self):
        self.params = []

    def on_batch_end(self, trainer, batch, result):
        self.params.append([p.detach().clone() for p in trainer.model.parameters()])


class Die(Callback):
    def __init__(self, step):
        self.step = step

    def before_step(self, trainer, batch):
        if batch.step == self.step and int(os.environ.get("RANK", "0")) == int(os.environ.get("WORLD_SIZE", "1")) - 1:
            os._exit(3)


def run(out, epochs, record=None, die_at=None, warm_start=False, loader=False):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = eqprop.models.HopfieldMLP([20, 16, 4]).double()
    rule = eqprop.rules.EP(variant="centered", beta=0.3, free_steps=12, nudge_steps=6, warm_start=warm_start)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    rec = Record()
    cbs = [rec] + ([Die(die_at)] if die_at is not None else [])
    train, test = data()
    if loader:  # a DataLoader (shuffled by torch's seeded generator); batches of 25 split 13/12 over 2 ranks
        train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=25, shuffle=True)
    t = eqprop.Trainer(model, rule, opt, train, test, callbacks=cbs, schedule="none", epochs=epochs,
                       batch_size=16, dtype="float64", progress=False, out=str(out))
    summary = t.fit()
    if record and t.rank == 0:
        torch.save({"params": rec.params, "summary": summary, "history": t.history,
                    "final": [p.detach().clone() for p in t.model.parameters()]}, record)


def spawned(rank, world, port, kwargs):
    """Entry of a process started by ``torch.multiprocessing`` (the environment torchrun would set)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        run(**kwargs)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("out")
    a.add_argument("epochs", type=int)
    a.add_argument("--record")
    a.add_argument("--die-at", type=int)
    a.add_argument("--warm-start", action="store_true")
    args = a.parse_args()
    run(args.out, args.epochs, args.record, args.die_at, args.warm_start)


if __name__ == "__main__":
    main()
