"""What `mlflow ui` costs in memory: its default against `--workers 1` (and without MLflow's job
runner), on one store, side by side.

    python benchmarks/bench_mlflow_ui.py [--store sqlite:///mlflow.db] [--repeats 3] [--settle 30]

Starts each variant (alternating, `repeats` times), waits for /health, one page load of the
experiment list and `--settle` seconds (the job runner's consumers start after the server), then sums the resident memory (RSS) of every process of the server's session and
counts them. Prints the medians and the ratio. The server is always stopped.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# (extra arguments, extra environment): MLflow 3 also starts a job runner with seven huey consumers
# for its GenAI jobs (judges, scorers), none of which a training experiment uses.
VARIANTS = {
    "default": ([], {}),
    "--workers 1": (["--workers", "1"], {}),
    "--workers 1, no jobs": (["--workers", "1"], {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_memory(session: int) -> tuple[int, float]:
    """(number of processes, summed RSS in MB) of the processes of session `session`."""
    listed = subprocess.run(["ps", "-e", "-o", "sid=,rss="], capture_output=True, text=True).stdout.split("\n")
    rss = [int(fields[1]) for fields in (line.split() for line in listed) if fields and int(fields[0]) == session]
    return len(rss), sum(rss) / 1024


def measure(store: str, extra: list[str], env: dict[str, str], settle: float) -> tuple[int, float]:
    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
                               "--host", "127.0.0.1", "--port", str(port), *extra],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"mlflow ui did not start:\n{log.read().decode()[-2000:]}")
                time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                                         data=b'{"max_results": 100}', headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()
        time.sleep(settle)  # let every worker and consumer finish importing
        return session_memory(os.getsid(server.pid))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server, its workers and its job runner
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite:///mlflow.db")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=30, help="seconds to wait after the first page load")
    args = parser.parse_args()
    results = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, (extra, env) in VARIANTS.items():
            results[name].append(measure(args.store, extra, env, args.settle))
    medians = {}
    for name, runs in results.items():
        processes = statistics.median(n for n, _ in runs)
        megabytes = statistics.median(mb for _, mb in runs)
        medians[name] = megabytes
        print(f"mlflow ui {name:20s}: {processes:.0f} processes, {megabytes:,.0f} MB RSS (median of {len(runs)})")
    for name in list(VARIANTS)[1:]:
        print(f"{name}: {medians[name] / medians['default']:.2f}x the default's memory")


if __name__ == "__main__":
    main()
