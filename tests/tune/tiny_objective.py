"""A tiny tune objective for the tests: a known optimum, no training.

``TUNE_TEST_HANG=FILE``: the first trial writes FILE and then hangs (a worker to kill);
``TUNE_TEST_SLEEP=S``: every trial sleeps S seconds (two workers overlap).
"""
import os
import time


def objective(config, trial):
    hang = os.environ.get("TUNE_TEST_HANG")
    if hang:
        time.sleep(2.0)  # a worker that dies mid-trial, after its heartbeats began
        with open(hang, "w") as f:
            f.write(str(trial.number))
        time.sleep(3600)
    time.sleep(float(os.environ.get("TUNE_TEST_SLEEP", "0")))
    beta = config["rule"].get("beta", 0.3)  # rbp takes no beta
    return 1.0 - (beta - 0.3) ** 2 - (config["optim"]["lr"][0] - 0.01) ** 2
