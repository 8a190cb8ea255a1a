"""Engine benchmark: prints JSON (same as `gan-studio bench`). Usage: python benchmarks/engine_bench.py [--quick] [--threads N]"""

import argparse
import json

from studio.engine.bench import run_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch may use (1: one core)")
    args = parser.parse_args()
    print(json.dumps(run_benchmark(args.model, args.device, args.quick, args.threads), indent=2))
