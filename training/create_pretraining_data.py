"""Pretraining TFRecords of SOP instances, in the reference layout.

    python -m training.create_pretraining_data --input 'corpus/*.txt' \
        --spm_model vocab/albert.model --output_dir data/pretrain --max_seq_length 128

Input: one sentence per line, a blank line between documents. Each input file is
processed alone (read, normalise, tokenize, make instances dupe_factor times, shuffle
within each round) with a seed derived from --seed and the file's index and name, so
outputs are byte-identical whatever --num_workers, and memory is bounded by one input
file per worker. File i deals its instances round-robin into --num_output_files slices;
slice k of every file is concatenated, in file order, into output file k. Everything is
written in a temporary folder and moved into --output_dir only when all succeeded.

Masks: by default none are stored (masked_lm_* are written as zeros, so the reference
reader still parses the records) and the input pipeline masks dynamically. With
--static_masking the masks are computed once, by the same n-gram masking code, and
stored as the reference does.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile

import numpy as np

from albert_keras.data.corpus import CorpusCounts, CorpusError, expand_input_pattern, read_documents
from albert_keras.data.instances import (InstanceCounts, create_instances, pad_instances,
                                         word_start_table)
from albert_keras.tokenizer import normalize_text
from albert_keras.vocabulary import check_special_pieces, read_model_proto

MASKING_BATCH = 256


@dataclasses.dataclass
class FileTask:
    path: str
    index: int
    slice_paths: list[str]
    model_proto: bytes
    lower_case: bool
    max_seq_length: int
    max_predictions: int
    masked_lm_prob: float
    max_ngram: int
    dupe_factor: int
    short_seq_prob: float
    seed: int
    static_masking: bool
    on_invalid_utf8: str


@dataclasses.dataclass
class FileResult:
    corpus: CorpusCounts
    instances: InstanceCounts
    corpus_tokens: int = 0
    long_lines: int = 0
    first_long_line: str | None = None


def derive_seed(*parts) -> int:
    """A 63-bit seed from the parts, stable across processes and Python versions."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _tokenized_documents(task: FileTask, processor, result: FileResult):
    max_tokens = task.max_seq_length - 3
    for document in read_documents(task.path, task.on_invalid_utf8, result.corpus):
        texts = [normalize_text(text, task.lower_case) for _, text in document]
        sentences = []
        for (number, _), ids in zip(document, processor.encode(texts)):
            if not ids:
                continue
            if len(ids) > max_tokens:
                result.long_lines += 1
                result.first_long_line = result.first_long_line or f"{task.path}:{number}"
            result.corpus_tokens += len(ids)
            sentences.append(ids)
        if sentences:
            yield sentences


def _masks(arrays, task: FileTask, file_seed: int, round_index: int, batch_index: int):
    from albert_keras.data.masking import mask_batch

    seed = [file_seed % (2**31), round_index * 2**20 + batch_index]
    masked = mask_batch(arrays, seed, task.max_predictions, task.masked_lm_prob, task.max_ngram)
    return {name: np.asarray(value) for name, value in masked.items()}


def process_file(task: FileTask) -> FileResult:
    """Writes one input file's instances into its slice files."""
    import sentencepiece as spm

    from albert_keras.data.records import RoundRobinWriter, serialize_instance

    processor = spm.SentencePieceProcessor(model_proto=task.model_proto)
    word_starts = word_start_table(
        [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    )
    result = FileResult(CorpusCounts(), InstanceCounts())
    documents = list(_tokenized_documents(task, processor, result))
    if not documents:
        raise CorpusError(f"{task.path}: no text (the file is empty or holds only blank lines)")

    file_seed = derive_seed(task.seed, task.index, os.path.basename(task.path))
    writer = RoundRobinWriter(task.slice_paths, first=task.index)
    no_masks = {  # dynamic masking: masked_lm_* stored as zeros
        "masked_lm_positions": np.zeros([MASKING_BATCH, task.max_predictions], np.int64),
        "masked_lm_ids": np.zeros([MASKING_BATCH, task.max_predictions], np.int64),
        "masked_lm_weights": np.zeros([MASKING_BATCH, task.max_predictions], np.float32),
    }
    try:
        for round_index in range(task.dupe_factor):
            rng = random.Random(derive_seed(file_seed, round_index))
            instances = []
            for document in documents:
                instances.extend(create_instances(
                    document, word_starts, task.max_seq_length, task.short_seq_prob, rng,
                    result.instances,
                ))
            rng.shuffle(instances)
            for start in range(0, len(instances), MASKING_BATCH):
                batch = instances[start:start + MASKING_BATCH]
                arrays = pad_instances(batch, task.max_seq_length)
                if task.static_masking:
                    arrays = _masks(arrays, task, file_seed, round_index, start // MASKING_BATCH)
                else:
                    arrays.update(no_masks)
                for row, instance in enumerate(batch):
                    writer.write(serialize_instance(
                        arrays["input_ids"][row], arrays["input_mask"][row],
                        arrays["segment_ids"][row], arrays["token_boundary"][row],
                        instance.label, arrays["masked_lm_positions"][row],
                        arrays["masked_lm_ids"][row], arrays["masked_lm_weights"][row],
                    ))
    finally:
        writer.close()
    return result


def _validate(args):
    if args.max_seq_length < 8:
        raise ValueError(f"--max_seq_length must be at least 8, got {args.max_seq_length}")
    if not 1 <= args.max_predictions_per_seq < args.max_seq_length:
        raise ValueError(
            f"--max_predictions_per_seq must be in [1, max_seq_length), got "
            f"{args.max_predictions_per_seq} with --max_seq_length {args.max_seq_length}"
        )
    if args.dupe_factor < 1 or args.num_workers < 1 or args.num_output_files < 1:
        raise ValueError("--dupe_factor, --num_workers and --num_output_files must be >= 1")
    if not 0.0 <= args.short_seq_prob <= 1.0 or not 0.0 < args.masked_lm_prob <= 1.0:
        raise ValueError("--short_seq_prob must be in [0, 1] and --masked_lm_prob in (0, 1]")
    if not 1 <= args.ngram <= 8:
        raise ValueError(f"--ngram must be in [1, 8], got {args.ngram}")


def output_paths(output_dir: str, num_files: int) -> list[str]:
    return [
        os.path.join(output_dir, f"part-{k:05d}-of-{num_files:05d}.tfrecord")
        for k in range(num_files)
    ]


def run(args) -> dict:
    """Creates the records; returns the summary counts."""
    _validate(args)
    inputs = expand_input_pattern(args.input)
    for path in inputs:
        if os.path.getsize(path) == 0:
            raise CorpusError(f"{path}: the input file is empty")
    model_proto = read_model_proto(args.spm_model)
    check_special_pieces(model_proto, source=args.spm_model)
    os.makedirs(args.output_dir, exist_ok=True)
    existing = [name for name in os.listdir(args.output_dir) if name.endswith(".tfrecord")]
    if existing:
        raise FileExistsError(
            f"{args.output_dir} already holds TFRecords ({existing[0]}, ...); "
            "use an empty folder so that old and new shards do not mix"
        )

    work = tempfile.mkdtemp(prefix=".incomplete-", dir=args.output_dir)
    try:
        tasks = [
            FileTask(
                path=path, index=i,
                slice_paths=[os.path.join(work, f"slice-{i:05d}-{k:05d}")
                             for k in range(args.num_output_files)],
                model_proto=model_proto, lower_case=not args.cased,
                max_seq_length=args.max_seq_length,
                max_predictions=args.max_predictions_per_seq,
                masked_lm_prob=args.masked_lm_prob, max_ngram=args.ngram,
                dupe_factor=args.dupe_factor, short_seq_prob=args.short_seq_prob,
                seed=args.seed, static_masking=args.static_masking,
                on_invalid_utf8=args.on_invalid_utf8,
            )
            for i, path in enumerate(inputs)
        ]
        workers = min(args.num_workers, len(tasks))
        if workers == 1:
            results = [process_file(task) for task in tasks]
        else:
            # spawn, not fork: the parent may hold TensorFlow threads.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                results = list(pool.imap(process_file, tasks))

        finals = output_paths(work, args.num_output_files)
        from albert_keras.data.records import concatenate_atomically

        for k, final in enumerate(finals):
            concatenate_atomically([task.slice_paths[k] for task in tasks], final)
        # Every shard is complete in the staging directory before the first is moved out,
        # so a failure above leaves OUTPUT_DIR without any.
        written = []
        for final in finals:
            target = os.path.join(args.output_dir, os.path.basename(final))
            os.replace(final, target)
            written.append(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    corpus, instances = CorpusCounts(), InstanceCounts()
    summary = {"input_files": len(inputs), "corpus_tokens": 0, "long_lines": 0}
    first_long = None
    for result in results:
        for field in ("documents", "sentences", "invalid_lines"):
            setattr(corpus, field, getattr(corpus, field) + getattr(result.corpus, field))
        corpus.first_invalid = corpus.first_invalid or result.corpus.first_invalid
        instances.add(result.instances)
        summary["corpus_tokens"] += result.corpus_tokens
        summary["long_lines"] += result.long_lines
        first_long = first_long or result.first_long_line
    summary.update(
        documents=corpus.documents,
        sentences=corpus.sentences,
        instances=instances.instances,
        instance_tokens=instances.tokens,
        swapped_share=instances.swapped / max(instances.instances, 1),
        skipped_chunks=instances.skipped_chunks,
        truncated_tokens=instances.truncated_tokens,
        invalid_utf8_lines_skipped=corpus.invalid_lines,
        first_invalid_line=corpus.first_invalid,
        first_long_line=first_long,
        files_written=written,
        peak_rss_mib=max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        ) / 1024,
    )
    return summary


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
    lines.append(f"peak RSS           {summary['peak_rss_mib']:.0f} MiB (largest process)")
    lines.append(f"files written      {len(summary['files_written'])}")
    lines += [f"  {path}" for path in summary["files_written"]]
    return "\n".join(lines)


def parse_args(argv=None):
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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = run(args)
    except (CorpusError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
