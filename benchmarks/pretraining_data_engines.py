"""Creating pretraining records: the local tool and the Beam DirectRunner, side by side.

    python benchmarks/pretraining_data_engines.py [--files 8] [--workers 2] [--rounds 2] \
        [--dupe_factor 40] [--estimate_gb 100]

Splits the bundled corpus (training/corpus/bundled_corpus.txt) at document boundaries
into --files input files, then runs, in alternation, each in a fresh process:
  local   training.create_pretraining_data --num_workers W
  beam    the same with --runner direct (multi-processing, W worker processes)
and prints documents/s, instances/s and input MB/s per engine (median over rounds), the
peak RSS of the largest worker and of the launching process, and whether the two wrote
the same bytes. A second table gives one worker's peak RSS against the size of its input
file (the bound on memory is one input file per worker: 1/8 of the corpus, and the corpus
4 and 16 times over; at --dupe_factor 1, since one round is held at a time).
Last, on paper: worker-hours for --estimate_gb of input at the Beam run's rate per
worker, and a worker's memory for input files of 256 MB. The vocabulary is runs/demo/spm.model when `make demo` has run,
else one of 8,000 pieces trained here on the corpus.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CORPUS = os.path.join(ROOT, "training", "corpus", "bundled_corpus.txt")
DEMO_VOCAB = os.path.join(ROOT, "runs", "demo", "spm.model")


def split_corpus(path: str, parts: int, directory: str) -> list[str]:
    """The corpus's documents dealt in order into `parts` files of about equal size."""
    text = open(path, encoding="utf-8").read()
    documents = [d for d in text.split("\n\n") if d.strip()]
    target = len(text) / parts
    files, current, size = [], [], 0
    for document in documents:
        current.append(document)
        size += len(document)
        if size >= target * (len(files) + 1) and len(files) < parts - 1:
            files.append(current)
            current = []
    files.append(current)
    paths = []
    for i, chunk in enumerate(files):
        paths.append(os.path.join(directory, f"part-{i:02d}.txt"))
        with open(paths[-1], "w", encoding="utf-8") as f:
            f.write("\n\n".join(chunk) + "\n")
    return paths


def vocabulary(directory: str) -> str:
    if os.path.exists(DEMO_VOCAB):
        return DEMO_VOCAB
    from albert_keras.vocabulary import train_sentencepiece, write_sentencepiece_model
    from training.build_vocab import corpus_sentences

    proto = train_sentencepiece(corpus_sentences([CORPUS]), 8000, lower_case=True)
    return write_sentencepiece_model(proto, os.path.join(directory, "spm"))[0]


def child(argv):
    """One run of the tool in this process: prints wall time and the summary."""
    from training import create_pretraining_data as cpd

    start = time.perf_counter()
    summary = cpd.run(cpd.parse_args(argv))
    wall = time.perf_counter() - start
    print("@@" + json.dumps(dict(wall_s=wall, summary=summary)))


def run_child(argv) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *argv], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"child failed: {argv}\n{out.stderr[-3000:]}")
    line = [l for l in out.stdout.splitlines() if l.startswith("@@")][-1]
    return json.loads(line[2:])


def matmul_ceiling() -> float:
    """GFLOP/s of a float32 4096 x 4096 tf.matmul in this run (best of 3)."""
    import tensorflow as tf

    a = tf.random.normal((4096, 4096))
    best = float("inf")
    for _ in range(4):
        start = time.perf_counter()
        tf.matmul(a, a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max_seq_length", type=int, default=512)
    parser.add_argument("--dupe_factor", type=int, default=40)
    parser.add_argument("--estimate_gb", type=float, default=100.0)
    args = parser.parse_args()

    from benchmarks.harness import machine

    print(f"machine: {machine()}")
    print(f"float32 matmul ceiling, this run: {matmul_ceiling():.0f} GFLOP/s")
    work = tempfile.mkdtemp(prefix="pretraining-data-bench-")
    inputs = split_corpus(CORPUS, args.files, work)
    spm_model = vocabulary(work)
    megabytes = sum(os.path.getsize(p) for p in inputs) / 1e6
    common = ["--input", os.path.join(work, "part-*.txt"), "--spm_model", spm_model,
              "--max_seq_length", str(args.max_seq_length),
              "--dupe_factor", str(args.dupe_factor), "--num_output_files", "8",
              "--num_workers", str(args.workers)]
    engines = {"local": [], "beam": ["--runner", "direct"]}
    runs = {name: [] for name in engines}
    for round_index in range(args.rounds):
        for name, flags in engines.items():
            out = os.path.join(work, f"{name}-{round_index}")
            runs[name].append(run_child(common + ["--output_dir", out] + flags))
    local, beam = runs["local"][0]["summary"], runs["beam"][0]["summary"]
    same = all(filecmp.cmp(a, b, shallow=False)
               for a, b in zip(local["files_written"], beam["files_written"]))

    print(f"\ninput: {len(inputs)} files, {megabytes:.1f} MB, {local['documents']} documents,"
          f" {local['instances']} instances;"
          f" --max_seq_length {args.max_seq_length} --dupe_factor {args.dupe_factor};"
          f" {args.workers} workers; median of {args.rounds} rounds")
    print("| engine | wall s | documents/s | instances/s | input MB/s | peak RSS, "
          "largest worker (MiB) | peak RSS, launcher (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    walls = {}
    for name, results in runs.items():
        wall = walls[name] = statistics.median(r["wall_s"] for r in results)
        summary = results[0]["summary"]
        print(f"| {name} | {wall:.1f} | {summary['documents'] / wall:.1f} | "
              f"{summary['instances'] / wall:.0f} | {megabytes / wall:.2f} | "
              f"{max(r['summary']['worker_peak_rss_mib'] for r in results):.0f} | "
              f"{max(r['summary']['launcher_peak_rss_mib'] for r in results):.0f} |")
    machine_dependent = ("files_written", "worker_peak_rss_mib", "launcher_peak_rss_mib")
    same_report = all(local[k] == beam[k] for k in local if k not in machine_dependent)
    print(f"same bytes in all {len(local['files_written'])} output files: {same}; "
          f"same report: {same_report}")

    # Memory against input file size, one worker: 1/8 of the corpus, and the corpus 4 and
    # 16 times over in one file (the slope is taken between the two large files, both
    # well above the imports' own peak).
    print("\n| one input file (MB) | instances | peak RSS, worker (MiB) |")
    print("|---:|---:|---:|")
    sizes = []
    for parts, copies in ((args.files, 1), (1, 4), (1, 16)):
        chunk = os.path.join(work, f"one-{parts}-{copies}")
        os.makedirs(chunk)
        path = split_corpus(CORPUS, parts, chunk)[0]
        text = open(path, encoding="utf-8").read()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join([text] * copies))
        result = run_child(["--input", path, "--spm_model", spm_model,
                            "--max_seq_length", str(args.max_seq_length), "--dupe_factor", "1",
                            "--num_output_files", "8", "--num_workers", "1",
                            "--output_dir", os.path.join(chunk, "out")])
        size = os.path.getsize(path) / 1e6
        sizes.append((size, result["summary"]["worker_peak_rss_mib"]))
        print(f"| {size:.2f} | {result['summary']['instances']} | {sizes[-1][1]:.0f} |")
    (small, small_rss), (large, large_rss) = sizes[1], sizes[2]
    slope = (large_rss - small_rss) / (large - small)
    print(f"slope: {slope:.1f} MiB of RSS per MB of input file")

    # On paper: the Beam run's input rate per worker, scaled to the corpus asked for.
    per_worker = megabytes / walls["beam"] / args.workers
    worker_hours = args.estimate_gb * 1000 / per_worker / 3600
    print(f"\n{args.estimate_gb:.0f} GB at {per_worker:.3f} MB/s per worker "
          f"(--dupe_factor {args.dupe_factor}, --max_seq_length {args.max_seq_length}): "
          f"{worker_hours:.0f} worker-hours; "
          + ", ".join(f"{n} workers {worker_hours / n:.1f} h" for n in (50, 100, 200, 400))
          + f"; a worker with a 256 MB input file: about {large_rss + (256 - large) * slope:.0f} MiB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # the tool's own flags follow
        child(sys.argv[2:])
    else:
        main()
