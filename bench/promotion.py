"""Promote and roll back prod under steady traffic, and print what the clients saw.

    .venv/bin/python bench/promotion.py [--seconds 30] [--clients 2] [--poll 0.5]

Builds a registry (a git + DVC repository whose GTO tags register two models trained on the demo
generator, digests pinned, the gate's yes at each commit), starts `reprotab serve --stage prod`
(a real uvicorn process on 127.0.0.1) and sends 1-row requests from --clients threads for
--seconds, while prod is promoted to the second version and rolled back, twice, at even intervals.
Prints requests, failures (anything but 200, or no answer), responses whose `X-Model-Version`
header and body disagree (a mix inside one response), the versions seen, and for each registry
change how long until the first response from the new version.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=2, help="client threads (at most serve.limits.max_in_flight)")
    parser.add_argument("--poll", type=float, default=0.5, help="the service's --poll-seconds")
    args = parser.parse_args()

    from reprotab.registry import versions as registry
    from tests.helpers import server, train_model
    from tests.integration.test_hot_promotion import Traffic, registry_repo, start

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundles = {"v1.0.0": train_model(work / "a", seed=1), "v1.0.1": train_model(work / "b", seed=2)}
        repo = registry_repo(work / "repo", bundles)
        command, _ = start(repo, "--poll-seconds", str(args.poll))
        with server(command, cwd=repo) as url:
            traffics = [Traffic(url) for _ in range(args.clients)]
            for traffic in traffics:
                traffic.__enter__()
            changes: list[tuple[str, float]] = []
            step = args.seconds / 5
            lock = threading.Lock()
            try:
                for action in ("promote", "rollback", "promote", "rollback"):
                    time.sleep(step)
                    with lock:
                        if action == "promote":
                            registry.promote(repo, version="v1.0.1", stage="prod")
                            changes.append(("v1.0.1", time.monotonic()))
                        else:
                            registry.rollback(repo, stage="prod", reason="bench")
                            changes.append(("v1.0.0", time.monotonic()))
                time.sleep(step)
            finally:
                for traffic in traffics:
                    traffic.__exit__()
    answers = [a for t in traffics for a in t.answers]
    failures = [f for t in traffics for f in t.failures] + [a for a in answers if a[0] != 200]
    mixed = [a for a in answers if a[1] != a[2]]
    seen = sorted({a[1] for a in answers if a[1]})
    print(
        f"{len(answers):,} requests from {args.clients} clients over {args.seconds:g} s; "
        "prod promoted and rolled back twice"
    )
    print(f"  failed requests: {len(failures)}   [target: 0]")
    print(f"  responses mixing versions (header vs body): {len(mixed)}   [target: 0]")
    print(f"  versions seen: {', '.join(seen)}")
    timed = sorted((t, a[1]) for traffic in traffics for t, a in zip(traffic.times, traffic.answers, strict=True))
    for version, when in changes:
        first = next((t for t, v in timed if t >= when and v == version), None)
        delay = f"{first - when:.2f} s" if first is not None else "never"
        print(f"  registry moved prod to {version}: first answer from it after {delay} (poll every {args.poll:g} s)")


if __name__ == "__main__":
    main()
