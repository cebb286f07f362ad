"""Build bundled_corpus.txt from Jane Austen's six novels (Debian r-cran-janeaustenr).

The Debian package stores the novels as R character vectors in a lazy-load
database (data/Rdata.rdx + data/Rdata.rdb). This script reads them with a tiny
R-serialization reader (no R needed), splits each novel into chapters (one
document each), splits paragraphs into sentences and writes the ALBERT/BERT
pretraining format: one sentence per line, a blank line between documents.

Usage:
    python training/corpus/make_corpus.py \
        [/usr/lib/R/site-library/janeaustenr] [training/corpus/bundled_corpus.txt]
"""
import gzip
import re
import struct
import sys
import zlib

BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma",
         "northangerabbey", "persuasion"]


class RReader:
    """Minimal reader for R's XDR serialization (enough for .rdx and char vectors)."""

    def __init__(self, data):
        assert data[:2] == b"X\n", "not XDR-serialized R data"
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.p += 8  # writer and min-reader versions
        if version == 3:
            n = self.int()  # native encoding name
            self.p += n

    def int(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & 0x200, flags & 0x400
        if kind == 254:                      # NILVALUE
            return None
        if kind == 255:                      # REFSXP
            return self.refs[(flags >> 8) - 1]
        if kind == 1:                        # SYMSXP
            sym = self.item()
            self.refs.append(sym)
            return sym
        if kind == 2:                        # LISTSXP (pairlist) -> dict
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            head = {tag: self.item()}
            return {**head, **(self.item() or {})}
        if kind == 9:                        # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.d[self.p:self.p + n].decode("utf-8", "replace")
            self.p += n
            return s
        n = self.int()
        if kind in (10, 13):                 # LGLSXP / INTSXP
            val = list(struct.unpack_from(">%di" % n, self.d, self.p))
            self.p += 4 * n
        elif kind in (16, 19):               # STRSXP / VECSXP
            val = [self.item() for _ in range(n)]
        else:
            raise ValueError("unsupported R type %d" % kind)
        if has_attr:
            names = self.item().get("names")
            if names:
                val = dict(zip(names, val))
        return val


def load_books(pkg_dir):
    with gzip.open(pkg_dir + "/data/Rdata.rdx") as f:
        index = RReader(f.read()).item()
    with open(pkg_dir + "/data/Rdata.rdb", "rb") as f:
        rdb = f.read()
    books = {}
    for name in BOOKS:
        off, length = index["variables"][name]
        blob = rdb[off + 4:off + length]     # 4-byte uncompressed length, then zlib
        books[name] = RReader(zlib.decompress(blob)).item()
    return books


# The end of each novel; Northanger Abbey is followed by a modern editorial note.
END_MARKERS = {"THE END", "FINIS", "A NOTE ON THE TEXT"}
CHAPTER = re.compile(r"(CHAPTER|Chapter)\s+([IVXLC]+|\d+)")
VOLUME = re.compile(r"(VOLUME|Volume)\s+[IVX]+")
ABBREV = ("Mr", "Mrs", "Ms", "Dr", "St", "Col", "Capt", "Gen", "Lt", "Rev", "Esq",
          "Messrs", "vol", "Vol", "viz", "i.e", "e.g", "Jr", "Sr")
ABBREV_RE = re.compile(r"\b(?:%s)\.$" % "|".join(re.escape(a) for a in ABBREV))
# Candidate boundary: . ! or ? (optionally followed by closing quotes/brackets), then
# whitespace, then something that can start a sentence (opening quote or upper case).
BOUNDARY = re.compile(r"""([.!?]+["'\u201d\u2019)\]]*)\s+(?=["'\u201c\u2018(\[_]*[A-Z0-9])""")


def split_sentences(par):
    sentences, start = [], 0
    for m in BOUNDARY.finditer(par):
        head = par[start:m.end(1)]
        if (ABBREV_RE.search(head) or re.search(r"\b[A-Z]\.$", head)
                or (head.endswith("No.") and par[m.end()].isdigit())):
            continue                         # "Mr. Darcy", "J. Smith", "No. 97"
        sentences.append(head.strip())
        start = m.end()
    sentences.append(par[start:].strip())
    return [s for s in sentences if s]


def chapters(lines):
    """Yield lists of paragraphs, one list per chapter (front matter is dropped)."""
    doc, par = None, []
    for line in lines + [""]:
        line = (line or "").replace("_", "").strip()   # _italics_ markup
        if line.upper() in END_MARKERS:
            break
        if CHAPTER.fullmatch(line) or VOLUME.fullmatch(line):
            if doc:
                yield doc
            doc, par = ([] if CHAPTER.fullmatch(line) else None), []
            continue
        if line:
            par.append(line)
        elif par:
            if doc is not None:
                doc.append(" ".join(" ".join(par).split()))
            par = []
    if doc is not None and par:
        doc.append(" ".join(" ".join(par).split()))
    if doc:
        yield doc


def main(pkg_dir="/usr/lib/R/site-library/janeaustenr",
         out_path="training/corpus/bundled_corpus.txt"):
    docs = []
    for lines in load_books(pkg_dir).values():
        for doc in chapters(lines):
            sents = [s for p in doc for s in split_sentences(p)
                     if re.search(r"[A-Za-z]", s)]
            if len(sents) >= 2:
                docs.append(sents)
    text = "\n\n".join("\n".join(d) for d in docs) + "\n"
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    n_sent = sum(len(d) for d in docs)
    n_word = sum(len(s.split()) for d in docs for s in d)
    print("documents=%d sentences=%d words=%d bytes=%d"
          % (len(docs), n_sent, n_word, len(text.encode("utf-8"))))


if __name__ == "__main__":
    main(*sys.argv[1:])
