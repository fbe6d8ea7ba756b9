#!/usr/bin/env python3
"""Read TensorBoard event files written by nemotron with TensorBoard's own loader and print the scalars.

    NEMOTRON_KEEP_TB_DIR=/tmp/nt_tb build-train/tests/test_train --gtest_filter='MetricsLogger.Progress*'
    /work/venv/bin/python tools/check_tensorboard_events.py /tmp/nt_tb [--expect-run-of-test]

Uses tensorboard.backend.event_processing.event_accumulator (the loader TensorBoard's UI uses), so
a file it cannot parse fails here as it would in TensorBoard. Prints one line per tag: the number
of points and the (step, value) pairs. With --expect-run-of-test, also checks the values that
tests/unit/train/test_metrics.cpp (MetricsLogger.ProgressJsonlAndTensorBoardOverARun) writes.
"""
import argparse
import math
import sys

from tensorboard.backend.event_processing import event_accumulator


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="an event file or a directory holding one")
    ap.add_argument("--expect-run-of-test", action="store_true")
    args = ap.parse_args()

    acc = event_accumulator.EventAccumulator(args.path, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        print("no scalars found", file=sys.stderr)
        return 1
    scalars = {}
    for tag in sorted(tags):
        points = [(e.step, e.value) for e in acc.Scalars(tag)]
        scalars[tag] = points
        shown = ", ".join(f"({s}, {v:.6g})" for s, v in points[:6]) + (" ..." if len(points) > 6 else "")
        print(f"{tag!r}: {len(points)} points: {shown}")

    if args.expect_run_of_test:
        def close(a, b):
            return math.isclose(a, b, rel_tol=1e-6)
        checks = [
            ("lm loss", 10, lambda p: all(close(v, 10.0 - s) for s, v in p)),
            ("lm loss vs samples", 10, lambda p: all(close(v, 10.0 - s / 8) for s, v in p)),
            ("learning-rate", 10, lambda p: all(close(v, 1e-4 * s) for s, v in p)),
            ("grad-norm", 10, lambda p: all(close(v, 1.0 + s) for s, v in p)),
            ("batch-size", 10, lambda p: all(v == 8 for _, v in p)),
            ("iteration-time", 2, lambda p: p == [(5, 0.5), (10, 0.5)]),
            ("throughput/tokens_per_sec", 2, lambda p: all(close(v, 2048.0) for _, v in p)),
            ("throughput/tflops/device", 2, lambda p: all(close(v, 2.0) for _, v in p)),
        ]
        failed = 0
        for tag, count, ok in checks:
            points = scalars.get(tag, [])
            good = len(points) == count and ok(points)
            failed += not good
            print(f"check {tag!r}: {'ok' if good else 'FAILED'}")
        print(f"{len(checks) - failed} passed, {failed} failed")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
