"""The pretraining records as an Apache Beam pipeline, for corpora beyond one machine.

    python -m training.create_pretraining_data --runner direct --num_workers 2 \
        --input 'corpus/*.txt' --spm_model vocab/albert.model --output_dir data/pretrain

Same flags as the local tool; the ones it does not know go to Beam's PipelineOptions
(--project, --region, --temp_location, --flink_master, --job_endpoint...). The work per
input file is the local tool's own process_file, so the records are the same, and the
output files are the same bytes, in the same order:

  1. ProcessFile, one element per input file: process_file writes the file's slices
     (one per output file) under STAGING/file-INDEX-ATTEMPT/ and returns its FileResult,
     whose counts go to Beam metrics. A retried attempt writes a folder of its own; only
     the slices of the attempt Beam keeps are read. Memory: one input file per worker.
  2. JoinShard, one element per output file k, once stage 1 is complete (its results
     are a side input): slice k of every file, in file order, into STAGING/part-k.
  3. Commit, once every shard is joined: renames the shards into OUTPUT_DIR, then
     removes STAGING. A failed pipeline leaves no .tfrecord in OUTPUT_DIR, and the
     launcher removes STAGING.

STAGING is OUTPUT_DIR/.incomplete-RANDOM, on the output's own file system (any that
tf.io.gfile knows: local, gs://...). The report is read back from the pipeline's metrics:
counters for the counts, distribution minima for the first skipped and first long line
(see place_key), a distribution maximum for the workers' peak RSS.
"""

from __future__ import annotations

import posixpath
import re
import resource
import secrets

import apache_beam as beam
import tensorflow as tf
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from albert_keras.data.corpus import CorpusError
from training.pretraining_data_engine import (COUNTS, FIRSTS, FileTask, check_run,
                                              output_paths, process_file, slice_paths,
                                              summarize)

NAMESPACE = "create_pretraining_data"
RUNNER_NAMES = {"direct": "DirectRunner", "dataflow": "DataflowRunner",
                "flink": "FlinkRunner", "spark": "SparkRunner", "portable": "PortableRunner"}


class ProcessFile(beam.DoFn):
    """(index, path) -> FileResult, its slices written under the staging folder."""

    def __init__(self, settings, staging: str, num_output_files: int):
        self.settings, self.staging, self.num_output_files = settings, staging, num_output_files
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in COUNTS}
        self.firsts = {name: Metrics.distribution(NAMESPACE, name) for name in FIRSTS}
        self.peak_rss = Metrics.distribution(NAMESPACE, "peak_rss_kib")

    def process(self, element):
        index, path = element
        folder = posixpath.join(self.staging, f"file-{index:05d}-{secrets.token_hex(4)}")
        tf.io.gfile.makedirs(folder)
        task = FileTask(path=path, index=index, settings=self.settings,
                        slice_paths=slice_paths(folder, index, self.num_output_files))
        result = process_file(task)
        for name, value in result.counts().items():
            self.counters[name].inc(value)
        for name, key in result.firsts().items():
            self.firsts[name].update(key)
        self.peak_rss.update(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        yield result


class JoinShard(beam.DoFn):
    """k -> STAGING/part-k: slice k of every input file, in file order."""

    def __init__(self, staging: str, num_inputs: int, num_output_files: int):
        self.staging, self.num_inputs = staging, num_inputs
        self.num_output_files = num_output_files

    def process(self, k, results):
        from albert_keras.data.records import concatenate_records

        results = sorted(results, key=lambda result: result.index)
        if [result.index for result in results] != list(range(self.num_inputs)):
            raise RuntimeError(f"shard {k}: expected one result per input file, got the "
                               f"files {[result.index for result in results]}")
        shard = output_paths(self.staging, self.num_output_files)[k]
        concatenate_records([result.slice_paths[k] for result in results], shard)
        yield shard


class Commit(beam.DoFn):
    """Moves the joined shards into the output folder and removes the staging folder."""

    def __init__(self, staging: str, output_dir: str):
        self.staging, self.output_dir = staging, output_dir

    def process(self, _, shards):
        for shard in sorted(shards):
            target = posixpath.join(self.output_dir, posixpath.basename(shard))
            if not tf.io.gfile.exists(shard) and tf.io.gfile.exists(target):
                continue  # moved by an earlier attempt of this step
            tf.io.gfile.rename(shard, target, overwrite=False)
        tf.io.gfile.rmtree(self.staging)
        yield len(shards)


def pipeline_options(args) -> PipelineOptions:
    """The runner, and --num_workers as the DirectRunner's worker processes or
    Dataflow's initial workers. On a cluster each SDK process runs one bundle at a time
    (--number_of_worker_harness_threads=1): the per-file work is Python, bound by the
    GIL, and memory stays bounded by one input file per process. Flags given for Beam
    come last, so they win."""
    flags = [f"--runner={RUNNER_NAMES[args.runner]}"]
    if args.runner == "direct":
        flags += ["--direct_running_mode=multi_processing",
                  f"--direct_num_workers={args.num_workers}",
                  "--default_sdk_harness_log_level=WARNING"]
    else:
        flags.append("--number_of_worker_harness_threads=1")
    if args.runner == "dataflow" and args.num_workers > 1:
        flags.append(f"--num_workers={args.num_workers}")
    return PipelineOptions(flags + list(args.beam_args))


def build(pipeline, inputs, settings, staging: str, args):
    files = (pipeline
             | "Inputs" >> beam.Create(list(enumerate(inputs)))
             | "SpreadFiles" >> beam.Reshuffle())
    results = files | "ProcessFile" >> beam.ParDo(
        ProcessFile(settings, staging, args.num_output_files))
    shards = (pipeline
              | "ShardIndices" >> beam.Create(list(range(args.num_output_files)))
              | "JoinShard" >> beam.ParDo(
                  JoinShard(staging, len(inputs), args.num_output_files),
                  results=beam.pvalue.AsList(results)))
    return (pipeline
            | "CommitOnce" >> beam.Create([None])
            | "Commit" >> beam.ParDo(Commit(staging, args.output_dir),
                                     shards=beam.pvalue.AsList(shards)))


def run_beam(args) -> dict:
    """Runs the pipeline, waits for it, and returns the local tool's summary."""
    inputs, settings = check_run(args)
    tf.io.gfile.makedirs(args.output_dir)
    staging = posixpath.join(args.output_dir, f".incomplete-{secrets.token_hex(6)}")
    try:
        pipeline = beam.Pipeline(options=pipeline_options(args))
        build(pipeline, inputs, settings, staging, args)
        result = pipeline.run()
        state = result.wait_until_finish()
        if state != "DONE":
            raise RuntimeError(f"the Beam pipeline ended in state {state}")
    except Exception as error:
        # The pipeline has stopped (an interrupted launcher, by contrast, leaves a remote
        # job running, and its staging folder with it).
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
        raise _corpus_error(error) or error from None

    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts = dict.fromkeys(COUNTS, 0)
    for counter in metrics["counters"]:
        counts[counter.key.metric.name] += _value(counter)
    firsts, peak_kib = {}, 0
    for distribution in metrics["distributions"]:
        name, value = distribution.key.metric.name, _value(distribution)
        if value is None or not value.count:
            continue
        if name == "peak_rss_kib":
            peak_kib = max(peak_kib, value.max)
        else:
            firsts[name] = min(firsts.get(name, value.min), value.min)
    written = [posixpath.join(args.output_dir, posixpath.basename(path))
               for path in output_paths(staging, args.num_output_files)]
    return summarize(inputs, counts, firsts, written, peak_kib / 1024)


def _value(metric):
    """The committed value where the runner reports one, else the attempted."""
    try:
        committed = metric.committed
    except Exception:  # runners without committed metrics raise
        committed = None
    return committed if committed is not None else metric.attempted


def _corpus_error(error: Exception) -> CorpusError | None:
    """A worker's CorpusError comes back inside the runner's error text; the tool reports
    its one line (file, line, byte) as the local tool does."""
    found = re.search(r"CorpusError: (.+)", str(error))
    return CorpusError(found.group(1).strip()) if found else None
