"""The per-file work of training.create_pretraining_data, which both of its runners
(the local process pool in create_pretraining_data.py and the Apache Beam pipeline in
pretraining_data_beam.py) run: the checks before any work, one input file read,
normalised, tokenized and made into SOP instances with a seed of its own, dealt
round-robin into slice files; the output names and the report of a run."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import resource

import numpy as np
import tensorflow as tf

from albert_keras.data.corpus import CorpusCounts, CorpusError, expand_input_pattern, read_documents
from albert_keras.data.instances import (InstanceCounts, create_instances, cut_table,
                                         pad_instances,
                                         word_start_table)
from albert_keras.vocabulary import python_encoder, read_model_proto, vocabulary_from_bytes

MASKING_BATCH = 256


@dataclasses.dataclass
class DataSettings:
    """What every input file is processed with."""
    vocabulary_file: bytes  # a SentencePiece model or a WordPiece vocab.txt
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
    input_format: str = "sentences"

    @classmethod
    def from_args(cls, args, vocabulary_file: bytes) -> "DataSettings":
        return cls(
            vocabulary_file=vocabulary_file, lower_case=not args.cased,
            max_seq_length=args.max_seq_length, max_predictions=args.max_predictions_per_seq,
            masked_lm_prob=args.masked_lm_prob, max_ngram=args.ngram,
            dupe_factor=args.dupe_factor, short_seq_prob=args.short_seq_prob,
            seed=args.seed, static_masking=args.static_masking,
            on_invalid_utf8=args.on_invalid_utf8,
            input_format=getattr(args, "input_format", "sentences"),
        )


@dataclasses.dataclass
class FileTask:
    path: str
    index: int  # the file's place in the sorted input list
    slice_paths: list[str]  # where its instances go, one slice per output file
    settings: DataSettings


@dataclasses.dataclass
class FileResult:
    corpus: CorpusCounts
    instances: InstanceCounts
    corpus_tokens: int = 0
    long_lines: int = 0
    first_long_line: int | None = None  # line number
    index: int = 0
    slice_paths: list[str] = dataclasses.field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The additive counts, as named in COUNTS (summed over files by both engines)."""
        return {
            "documents": self.corpus.documents, "sentences": self.corpus.sentences,
            "invalid_lines": self.corpus.invalid_lines, "corpus_tokens": self.corpus_tokens,
            "long_lines": self.long_lines, "instances": self.instances.instances,
            "swapped": self.instances.swapped, "instance_tokens": self.instances.tokens,
            "skipped_chunks": self.instances.skipped_chunks,
            "truncated_tokens": self.instances.truncated_tokens,
        }

    def firsts(self) -> dict[str, int]:
        """The first skipped and the first long line, as named in FIRSTS, as place keys
        (see place_key)."""
        lines = zip(FIRSTS, (self.corpus.first_invalid, self.first_long_line))
        return {name: place_key(self.index, line) for name, line in lines if line}


COUNTS = tuple(FileResult(CorpusCounts(), InstanceCounts()).counts())
FIRSTS = ("first_invalid", "first_long")


def place_key(file_index: int, line: int) -> int:
    """(file, line) as one integer ordered as the files then the lines, so that the
    first place over many files is a minimum (a Beam distribution's min)."""
    return (file_index << 32) | line


def place_of(key: int, inputs: list[str]) -> str:
    return f"{inputs[key >> 32]}:{key & 0xFFFFFFFF}"


def derive_seed(*parts) -> int:
    """A 63-bit seed from the parts, stable across processes and Python versions."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _tokenized_documents(task: FileTask, encode, result: FileResult):
    settings = task.settings
    max_tokens = settings.max_seq_length - 3
    for document in read_documents(task.path, settings.on_invalid_utf8, result.corpus,
                                   settings.input_format):
        sentences = []
        for (number, _), ids in zip(document, encode([text for _, text in document])):
            if not ids:
                continue
            if len(ids) > max_tokens:
                result.long_lines += 1
                result.first_long_line = result.first_long_line or number
            result.corpus_tokens += len(ids)
            sentences.append(ids)
        if sentences:
            yield sentences


def _masks(arrays, settings: DataSettings, special, file_seed: int, round_index: int,
           batch_index: int):
    from albert_keras.data.masking import mask_batch

    seed = [file_seed % (2**31), round_index * 2**20 + batch_index]
    masked = mask_batch(arrays, seed, settings.max_predictions, settings.masked_lm_prob,
                        settings.max_ngram, special=special)
    return {name: np.asarray(value) for name, value in masked.items()}


def process_file(task: FileTask) -> FileResult:
    """Writes one input file's instances into its slice files: the per-file work of both
    engines, the local pool and the Beam pipeline."""
    from albert_keras.data.records import RoundRobinWriter, serialize_instance

    settings = task.settings
    vocabulary = vocabulary_from_bytes(settings.vocabulary_file)
    word_starts = word_start_table(list(vocabulary.pieces), vocabulary.kind)
    cuts = cut_table(list(vocabulary.pieces), word_starts)
    result = FileResult(CorpusCounts(), InstanceCounts(), index=task.index,
                        slice_paths=list(task.slice_paths))
    documents = list(_tokenized_documents(
        task, python_encoder(vocabulary, settings.lower_case), result))
    if not documents:
        raise CorpusError(f"{task.path}: no text (the file is empty or holds only blank lines)")

    file_seed = derive_seed(settings.seed, task.index, os.path.basename(task.path))
    writer = RoundRobinWriter(task.slice_paths, first=task.index)
    predictions = settings.max_predictions
    no_masks = {  # dynamic masking: masked_lm_* stored as zeros
        "masked_lm_positions": np.zeros([MASKING_BATCH, predictions], np.int64),
        "masked_lm_ids": np.zeros([MASKING_BATCH, predictions], np.int64),
        "masked_lm_weights": np.zeros([MASKING_BATCH, predictions], np.float32),
    }
    try:
        for round_index in range(settings.dupe_factor):
            rng = random.Random(derive_seed(file_seed, round_index))
            instances = []
            for document in documents:
                instances.extend(create_instances(
                    document, word_starts, settings.max_seq_length, settings.short_seq_prob,
                    rng, result.instances, special=vocabulary.special, cuts=cuts,
                ))
            rng.shuffle(instances)
            for start in range(0, len(instances), MASKING_BATCH):
                batch = instances[start:start + MASKING_BATCH]
                arrays = pad_instances(batch, settings.max_seq_length)
                if settings.static_masking:
                    arrays = _masks(arrays, settings, vocabulary.special, file_seed, round_index,
                                    start // MASKING_BATCH)
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


def check_run(args) -> tuple[list[str], DataSettings]:
    """The checks both engines make before any work: flags, inputs, vocabulary, and an
    output folder without TFRecords. Returns the sorted inputs and the settings."""
    _validate(args)
    inputs = expand_input_pattern(args.input)
    for path in inputs:
        if tf.io.gfile.stat(path).length == 0:
            raise CorpusError(f"{path}: the input file is empty")
    vocabulary_file = read_model_proto(args.spm_model, "vocabulary")
    vocabulary_from_bytes(vocabulary_file, source=args.spm_model)  # checked before any work
    existing = existing_records(args.output_dir)
    if existing:
        raise FileExistsError(
            f"{args.output_dir} already holds TFRecords ({existing[0]}, ...); "
            "use an empty folder so that old and new shards do not mix"
        )
    return inputs, DataSettings.from_args(args, vocabulary_file)


def existing_records(output_dir: str) -> list[str]:
    """The .tfrecord files in output_dir (local or gs://...), if it exists."""
    if not tf.io.gfile.isdir(output_dir):
        return []
    return sorted(name for name in tf.io.gfile.listdir(output_dir) if name.endswith(".tfrecord"))


def slice_paths(directory: str, file_index: int, num_output_files: int) -> list[str]:
    return [os.path.join(directory, f"slice-{file_index:05d}-{k:05d}")
            for k in range(num_output_files)]


def summarize(inputs: list[str], counts: dict, firsts: dict, written: list[str],
              worker_peak_rss_mib: float) -> dict:
    """The report of either engine, from the summed COUNTS and the first places, with
    the peak RSS of the largest process that ran process_file and of this one."""
    def place(name):
        return place_of(firsts[name], inputs) if name in firsts else None

    return dict(
        input_files=len(inputs),
        documents=counts["documents"],
        sentences=counts["sentences"],
        corpus_tokens=counts["corpus_tokens"],
        long_lines=counts["long_lines"],
        instances=counts["instances"],
        instance_tokens=counts["instance_tokens"],
        swapped_share=counts["swapped"] / max(counts["instances"], 1),
        skipped_chunks=counts["skipped_chunks"],
        truncated_tokens=counts["truncated_tokens"],
        invalid_utf8_lines_skipped=counts["invalid_lines"],
        first_invalid_line=place("first_invalid"),
        first_long_line=place("first_long"),
        files_written=written,
        worker_peak_rss_mib=worker_peak_rss_mib,
        launcher_peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
