"""Pretraining TFRecords of SOP instances, in the reference layout.

    python -m training.create_pretraining_data --input 'corpus/*.txt' \
        --spm_model vocab/albert.model --output_dir data/pretrain --max_seq_length 128

Input: one sentence per line, a blank line between documents; or, with --input_format
paragraphs, one paragraph per line, each a document split into sentences
(albert_keras/data/sentences.py states the rule). Each input file is
processed alone (read, normalise, tokenize, make instances dupe_factor times, shuffle
within each round) with a seed derived from --seed and the file's index and name, so
outputs are byte-identical whatever --num_workers, and memory is bounded by one input
file per worker. File i deals its instances round-robin into --num_output_files slices;
slice k of every file is concatenated, in file order, into output file k. Everything is
written in a temporary folder and moved into --output_dir only when all succeeded.
Progress (files done, instances, elapsed, an estimate of what remains) goes to stderr.

Beyond one machine, --runner direct|dataflow|flink|spark|portable runs the same per-file
work as an Apache Beam pipeline (training/pretraining_data_beam.py) and writes the same
files, byte for byte; the arguments this tool does not know go to Beam's
PipelineOptions. The default, --runner local, never imports Beam.

Masks: by default none are stored (masked_lm_* are written as zeros, so the reference
reader still parses the records) and the input pipeline masks dynamically. With
--static_masking the masks are computed once, by the same n-gram masking code, and
stored as the reference does.
"""


from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time

import tensorflow as tf

from albert_keras.data.corpus import INPUT_FORMATS, CorpusError
from training.pretraining_data_engine import (COUNTS, FileResult, FileTask, check_run,
                                              output_paths, process_file, slice_paths,
                                              summarize)

class Progress:
    """One stderr line per finished input file (at most one every `seconds`, and the
    last): files done, instances, elapsed time and an estimate of the rest from the
    input bytes still to read."""

    def __init__(self, inputs: list[str], seconds: float, stream=None):
        self.sizes = [tf.io.gfile.stat(path).length for path in inputs]
        self.total_bytes = sum(self.sizes)
        self.seconds, self.stream = seconds, stream or sys.stderr
        self.started = self.last = time.monotonic()
        self.files = self.bytes = self.instances = 0

    def file_done(self, result: FileResult):
        self.files += 1
        self.bytes += self.sizes[result.index]
        self.instances += result.instances.instances
        now = time.monotonic()
        if now - self.last < self.seconds and self.files < len(self.sizes):
            return
        self.last = now
        elapsed = now - self.started
        remaining = elapsed * (self.total_bytes - self.bytes) / max(self.bytes, 1)
        print(f"[create_pretraining_data] files {self.files}/{len(self.sizes)}, "
              f"instances {self.instances}, elapsed {_clock(elapsed)}, "
              f"remaining ~{_clock(remaining)}", file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run(args) -> dict:
    """Creates the records; returns the summary counts."""
    if args.runner != "local":
        from training.pretraining_data_beam import run_beam

        return run_beam(args)
    inputs, settings = check_run(args)
    os.makedirs(args.output_dir, exist_ok=True)
    progress = Progress(inputs, args.progress_seconds)
    work = tempfile.mkdtemp(prefix=".incomplete-", dir=args.output_dir)
    try:
        tasks = [
            FileTask(path=path, index=i, settings=settings,
                     slice_paths=slice_paths(work, i, args.num_output_files))
            for i, path in enumerate(inputs)
        ]
        workers = min(args.num_workers, len(tasks))
        results = []
        if workers == 1:
            for task in tasks:
                results.append(process_file(task))
                progress.file_done(results[-1])
        else:
            # spawn, not fork: the parent may hold TensorFlow threads.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap(process_file, tasks):
                    results.append(result)
                    progress.file_done(result)

        from albert_keras.data.records import concatenate_records

        finals = output_paths(work, args.num_output_files)
        for k, final in enumerate(finals):
            concatenate_records([result.slice_paths[k] for result in results], final)
        # Every shard is complete in the staging directory before the first is moved out,
        # so a failure above leaves OUTPUT_DIR without any.
        written = []
        for final in finals:
            target = os.path.join(args.output_dir, os.path.basename(final))
            os.replace(final, target)
            written.append(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    counts = {name: sum(result.counts()[name] for result in results) for name in COUNTS}
    firsts = {}
    for result in results:
        for name, key in result.firsts().items():
            firsts[name] = min(firsts.get(name, key), key)
    who = resource.RUSAGE_SELF if workers == 1 else resource.RUSAGE_CHILDREN
    return summarize(inputs, counts, firsts, written,
                     resource.getrusage(who).ru_maxrss / 1024)


def format_summary(summary: dict) -> str:
    lines = [
        f"input files        {summary['input_files']}",
        f"documents          {summary['documents']}",
        f"sentences          {summary['sentences']}",
        f"corpus tokens      {summary['corpus_tokens']}",
        f"instances          {summary['instances']}",
        f"instance tokens    {summary['instance_tokens']}",
        f"swapped share      {summary['swapped_share']:.4f}",
        f"skipped chunks     {summary['skipped_chunks']} (one-word chunks cannot be split)",
        f"truncated tokens   {summary['truncated_tokens']}",
        f"long lines         {summary['long_lines']} longer than max_seq_length - 3"
        + (f" (first: {summary['first_long_line']})" if summary["first_long_line"] else ""),
    ]
    if summary["invalid_utf8_lines_skipped"]:
        lines.append(
            f"invalid UTF-8      {summary['invalid_utf8_lines_skipped']} lines skipped "
            f"(first: {summary['first_invalid_line']})"
        )
    lines.append(f"peak RSS           {summary['worker_peak_rss_mib']:.0f} MiB (largest worker), "
                 f"{summary['launcher_peak_rss_mib']:.0f} MiB (this process)")
    lines.append(f"files written      {len(summary['files_written'])}")
    lines += [f"  {path}" for path in summary["files_written"]]
    return "\n".join(lines)


RUNNERS = ("local", "direct", "dataflow", "flink", "spark", "portable")


def parse_args(argv=None):
    """The tool's flags; with a Beam runner, the flags it does not know are kept in
    args.beam_args for Beam's PipelineOptions (--project, --region, --temp_location...)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="glob(s), comma-separated")
    parser.add_argument("--spm_model", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_seq_length", type=int, default=512)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--masked_lm_prob", type=float, default=0.15)
    parser.add_argument("--ngram", type=int, default=3)
    parser.add_argument("--dupe_factor", type=int, default=40)
    parser.add_argument("--short_seq_prob", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--num_output_files", type=int, default=8)
    parser.add_argument("--static_masking", action="store_true",
                        help="store masks in the records, as the reference does")
    parser.add_argument("--cased", action="store_true", help="do not lowercase")
    parser.add_argument("--on_invalid_utf8", choices=("error", "skip"), default="error",
                        help="fail on an undecodable line (default) or skip and count it")
    parser.add_argument("--input_format", choices=INPUT_FORMATS, default="sentences",
                        help="sentences: one sentence per line, a blank line between "
                             "documents; paragraphs: one paragraph (document) per line, "
                             "split into sentences on 。！？； and . ! ?")
    parser.add_argument("--progress_seconds", type=float, default=30.0,
                        help="at most one progress line per this many seconds (local runner)")
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                        help="local: a process pool on this machine, no Beam import; "
                             "the others run the Apache Beam pipeline on that runner")
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and args.runner == "local":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (flags for Beam's "
                     "PipelineOptions need a --runner other than local)")
    args.beam_args = beam_args
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = run(args)
    except (CorpusError, ValueError, FileNotFoundError, FileExistsError) as error:
        # CorpusError and ValueError include a Beam worker's bad line, re-raised by run_beam
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
