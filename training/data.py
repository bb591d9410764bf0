"""Corpus reading, encoding and length-bucketed, token-budget batching."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from .text import BOS_ID, EOS_ID, PAD_ID, Vocab, tokenize_en, tokenize_zh


@dataclass
class Corpus:
    pairs: list[tuple[str, str]]  # (English, Chinese) as read
    skipped: int  # malformed lines (no tab, empty side, undecodable bytes)
    path: str


def read_tsv(path: str | Path) -> Corpus:
    """Read `English<TAB>Chinese` lines. Malformed lines are counted and skipped, never fatal."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    pairs, skipped = [], 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                skipped += 1
                continue
            if not line.strip():
                continue  # blank lines are not pairs, nor errors
            parts = line.split("\t")
            # Some TSV exports carry extra columns (attribution); the first two are the pair.
            if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
                skipped += 1
                continue
            pairs.append((parts[0].strip(), parts[1].strip()))
    return Corpus(pairs, skipped, str(path))


def hold_out(
    pairs: list[tuple[str, str]], n: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split pairs into (rest, held out) with about `n` held-out pairs, whole English sentences at a time.

    Pairs that share a lower-cased English sentence stay together (as train and dev do),
    so no held-out English sentence is ever trained on. Order within each part is kept.
    """
    groups: dict[str, list[int]] = {}
    for i, (en, _) in enumerate(pairs):
        groups.setdefault(" ".join(en.lower().split()), []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    held: set[int] = set()
    for key in keys:
        if len(held) >= n:
            break
        held.update(groups[key])
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def write_tsv(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    Path(path).write_text("".join(f"{en}\t{zh}\n" for en, zh in pairs), encoding="utf-8")


@dataclass
class Example:
    src: list[int]  # English ids, ending with </s>
    tgt: list[int]  # Chinese ids, <s> … </s>


def tokenize_pairs(pairs: list[tuple[str, str]], lowercase: bool) -> list[tuple[list[str], list[str]]]:
    return [(tokenize_en(en, lowercase), tokenize_zh(zh)) for en, zh in pairs]


def encode_source(tokens: list[str], vocab: Vocab) -> list[int]:
    # The encoder sees the words and a closing </s> (no <s>: it would carry no information).
    return vocab.encode(tokens) + [EOS_ID]


def encode_pairs(
    tokenized: list[tuple[list[str], list[str]]], src_vocab: Vocab, tgt_vocab: Vocab, max_tokens: int
) -> tuple[list[Example], int]:
    """Encode pairs; pairs longer than `max_tokens` on either side are dropped (count returned)."""
    out, dropped = [], 0
    for en, zh in tokenized:
        if not en or not zh or len(en) > max_tokens or len(zh) > max_tokens:
            dropped += 1
            continue
        out.append(Example(encode_source(en, src_vocab), [BOS_ID] + tgt_vocab.encode(zh) + [EOS_ID]))
    return out, dropped


def join(parts: list[Example]) -> Example:
    """Several pairs as one: the English ids run on (each inner </s> dropped), and so do the Chinese
    (each inner </s> and <s> dropped). The same ids as encoding the texts joined with a space."""
    src = [i for e in parts[:-1] for i in e.src[:-1]] + parts[-1].src
    tgt = parts[0].tgt[:-1] + [i for e in parts[1:-1] for i in e.tgt[1:-1]] + parts[-1].tgt[1:]
    return Example(src, tgt)


def epoch_examples(examples: list[Example], share: float, seed: int, max_tokens: int) -> list[Example]:
    """One epoch's examples: `share` of them are 2 or 3 random training pairs joined (concatenation
    augmentation, Nguyen et al. 2021), the rest single pairs; as many examples as pairs.

    Tatoeba holds one sentence per pair, so without joins the model never sees a sentence boundary
    inside its input. Joins longer than `max_tokens` on either side are drawn again with two pairs,
    then left out. The result depends only on the arguments: a resumed epoch sees the same examples.
    """
    if not share or len(examples) < 2:
        return examples
    rng = random.Random(seed)
    n_joins = round(len(examples) * share)
    singles = rng.sample(range(len(examples)), len(examples) - n_joins)
    out = [examples[i] for i in singles]
    for _ in range(n_joins):
        for k in (min(rng.choice((2, 3)), len(examples)), 2):
            joined = join([examples[i] for i in rng.sample(range(len(examples)), k)])
            if len(joined.src) <= max_tokens + 1 and len(joined.tgt) <= max_tokens + 2:
                out.append(joined)
                break
    return out


def pad(seqs: list[list[int]], pad_id: int = PAD_ID) -> torch.Tensor:
    t = max(len(s) for s in seqs)
    return torch.tensor([s + [pad_id] * (t - len(s)) for s in seqs], dtype=torch.long)


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) English ids
    tgt_in: torch.Tensor  # (B, T) decoder input: <s> y1 … yn
    tgt_out: torch.Tensor  # (B, T) what each position predicts: y1 … yn </s>

    @property
    def n_target_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device) -> Batch:
        return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device))


def collate(examples: list[Example]) -> Batch:
    src = pad([e.src for e in examples])
    tgt = pad([e.tgt for e in examples])
    return Batch(src, tgt[:, :-1], tgt[:, 1:])


def make_batches(
    examples: list[Example], max_tokens: int, seed: int, shuffle: bool = True, pool_factor: int = 50
) -> list[list[int]]:
    """Group example indices into batches of at most `max_tokens` padded tokens.

    Indices are shuffled, then sorted by length inside large pools, so each
    batch holds sentences of similar length (little padding) while the batch
    order still varies from epoch to epoch. A batch's cost is counted as
    n_sentences × the longer of its padded source and target lengths.
    The result depends only on (examples, max_tokens, seed): resuming a run
    regenerates exactly the same batches.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    if shuffle:
        rng.shuffle(order)
    length = lambda i: max(len(examples[i].src), len(examples[i].tgt))
    pool_size = max(1, pool_factor * max(1, max_tokens // 20))
    batches: list[list[int]] = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=length)
        batch: list[int] = []
        longest = 0
        for i in pool:
            new_longest = max(longest, length(i))
            if batch and new_longest * (len(batch) + 1) > max_tokens:
                batches.append(batch)
                batch, new_longest = [], length(i)
            batch.append(i)
            longest = new_longest
        if batch:
            batches.append(batch)
    if shuffle:
        rng.shuffle(batches)
    return batches
