"""Memory: the person's own past exchanges (what someone said -> what they answered), found again at chat time.

    X.jsonl (training rows) --build_memory--> X.memory/   (beside the data set, in the data folder)
    open_memory(X.jsonl).recall("are you free thursday?", k=4) -> the closest past exchanges

Fine-tuning teaches how a person texts; memory gives the model what they actually said. An
exchange's key is the other person's turn that the reply answered (the prompt's last message); the
ranking is scikit-learn's TF-IDF over character n-grams within word boundaries (typos and
"sooo" still match), hashed so the index needs no vocabulary and saves as plain arrays, compared by
cosine similarity as one sparse matrix product. Only training rows are indexed, so the held-out
conversations a report evaluates on never come back as memories.

The folder holds exchanges.jsonl (the text), vectors.npz (one normalized TF-IDF row per exchange),
idf.npy and memory.json (settings and counts). `prepare` only records which thread and people each
training row came from (sources.json, state "pending"): the index is built on first use (or by
`memory build`), because hashing a big export's exchanges takes longer than preparing it. It never
leaves the data folder: an export or push does not carry it. The facts the user writes are beside
it (facts.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import UserError

FORMAT_VERSION = 1
SUFFIX = ".memory"
PENDING = "pending"  # memory.json's state from `prepare` until the first use builds the vectors
# Hashed char_wb trigrams: ~25 features per short message (2-4-grams tripled the build time for
# the same top matches on the sample persona); 2^20 buckets keep collisions rare.
VECTORIZER = {"analyzer": "char_wb", "ngram_range": (3, 3), "n_features": 2**20}
KEY_CHARS = 300  # of the other person's turn: enough to match on, bounded work per row
SHOWN_CHARS = 200  # of each side of an exchange in the prompt: memories stay compact
MAX_K = 20
MIN_SCORE = 0.1  # below this a "memory" shares a few letter pairs with the message, not a topic
CACHE_SIZE = 2  # indexes kept open (the UI switches between a run or two)
SOURCES = "sources.json"  # prepare's per-row threads, kept until the first build


@dataclass(frozen=True)
class Exchange:
    """One thing the person answered: their reply to another person's turn."""

    them: str  # the other person's turn (in a group chat, "Name: text" lines)
    you: str  # the person's reply
    thread: str = ""  # the conversation's id; "" when the rows do not say
    title: str = ""
    people: tuple[str, ...] = ()  # the others in that thread

    def to_dict(self) -> dict[str, Any]:
        return vars(self) | {"people": list(self.people)}  # the fields in order, people as a JSON list


@dataclass(frozen=True)
class Recalled:
    exchange: Exchange
    score: float  # cosine similarity to the message, 0-1


def memory_path(train_file: str | os.PathLike) -> Path:
    """Where a data set's memory lives: X.jsonl -> X.memory/ (beside X.persona.json)."""
    path = Path(train_file)
    return path.with_name(path.name.removesuffix(".jsonl") + SUFFIX)


# ---- building ------------------------------------------------------------------------------------


def exchanges_from_rows(rows: Iterable[dict], sources: Sequence | None = None) -> list[Exchange]:
    """The exchanges of prompt/completion rows (text rows have none), with `sources`' thread and people.

    `sources` (persona.RowSource, one per row) come from `prepare`; without them a row's own
    "thread"/"title"/"people" keys are used when it has them.
    """
    found = []
    for index, row in enumerate(rows):
        prompt, completion = row.get("prompt"), row.get("completion")
        if not prompt or not completion or prompt[-1].get("role") != "user":
            continue
        you = "".join(m.get("content") or "" for m in completion).strip()
        them = (prompt[-1].get("content") or "").strip()
        if not you or not them:
            continue
        source = sources[index] if sources is not None else None
        thread = source.thread if source else str(row.get("thread") or "")
        title = source.title if source else str(row.get("title") or "")
        people = source.people if source else tuple(str(p) for p in row.get("people") or () if isinstance(p, str))
        found.append(Exchange(them, you, thread, title, tuple(people)))
    return found


def build_memory(exchanges: list[Exchange], out: str | os.PathLike, built_from: str = "") -> Path:
    """Index the exchanges into the folder `out`, replacing what it held only once all is written."""
    import numpy as np
    import scipy.sparse

    matrix, idf = _vectorize(exchanges)

    def write(folder: Path) -> dict:
        with open(folder / "exchanges.jsonl", "w", encoding="utf-8") as handle:
            encode = json.JSONEncoder(ensure_ascii=False).encode
            handle.writelines(encode(exchange.to_dict()) + "\n" for exchange in exchanges)
        scipy.sparse.save_npz(folder / "vectors.npz", matrix, compressed=False)
        np.save(folder / "idf.npy", idf, allow_pickle=False)
        settings = {**VECTORIZER, "ngram_range": list(VECTORIZER["ngram_range"]), "key_chars": KEY_CHARS}
        return {
            "vectorizer": settings,
            "exchanges": len(exchanges),
            "with_threads": sum(bool(e.thread) for e in exchanges),
            "built_from": built_from,
        }

    return _write_folder(Path(out), write)


def build_memory_for(
    train_file: str | os.PathLike, sources: Sequence | None = None, rows: list[dict] | None = None
) -> Path:
    """X.memory/ from the training rows of X.jsonl (read from the file when `rows` is None)."""
    from training.data.collector import collector_paused

    train_file = Path(train_file)
    with collector_paused():  # a big data set's rows: half the reading time went to rescanning them
        if rows is None:
            from training.train.dataset import read_rows

            rows = read_rows(train_file, field="data")
        if sources is None:
            sources = _recorded_sources(memory_path(train_file), len(rows))
        exchanges = exchanges_from_rows(rows, sources)
        if not exchanges:
            raise UserError(f"{train_file.name}: no prompt/reply rows to remember (text rows have no exchanges)")
        if sources is None:
            exchanges = _with_known_threads(exchanges, memory_path(train_file))
        return build_memory(exchanges, memory_path(train_file), built_from=train_file.name)


def _with_known_threads(exchanges: list[Exchange], folder: Path) -> list[Exchange]:
    """A rebuild keeps the threads and people the old index knew (the JSONL rows do not carry them)."""
    try:
        with open(folder / "exchanges.jsonl", encoding="utf-8") as handle:
            old = [_exchange(json.loads(line)) for line in handle if line.strip()]
    except (OSError, ValueError, KeyError, TypeError):
        return exchanges  # no earlier index (or an unreadable one): nothing to keep
    known = {(e.them, e.you): e for e in old if e.thread}
    return [e if e.thread or (e.them, e.you) not in known else known[(e.them, e.you)] for e in exchanges]


def index_in_memory(exchanges: list[Exchange]) -> MemoryIndex:
    """An index held only in memory (the report's, built from exactly the rows a run trained on)."""
    matrix, idf = _vectorize(exchanges)
    return MemoryIndex(None, exchanges, matrix, idf)


def remember_prepared(prepared, train_file: str | os.PathLike) -> Path | None:
    """X.memory/ for data `prepare` just saved at X.jsonl (persona.PreparedData), to be indexed on
    first use; None for text-only data.

    What the JSONL rows cannot say is recorded now: the thread, title and people of each training
    row (memory excludes by them). Any older index of the same name goes, since its rows are gone.
    """
    if not any("completion" in row for row in prepared.train):
        return None
    threads: dict[tuple, int] = {}
    rows = [threads.setdefault(tuple(source), len(threads)) for source in prepared.train_sources]
    table = [[thread, title, list(people)] for thread, title, people in threads]

    def write(folder: Path) -> dict:
        encode = json.JSONEncoder(ensure_ascii=False).encode
        (folder / SOURCES).write_text(encode({"threads": table, "rows": rows}), encoding="utf-8")
        return {"state": PENDING, "built_from": Path(train_file).name}

    return _write_folder(memory_path(train_file), write)


def is_pending(folder: str | os.PathLike) -> bool:
    """Whether a memory folder `prepare` made still waits for its first use to be indexed."""
    try:
        info = json.loads((Path(folder) / "memory.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # no folder (or a broken one): open_memory says what is wrong
    return isinstance(info, dict) and info.get("state") == PENDING


def _recorded_sources(folder: Path, row_count: int) -> list | None:
    """The per-row sources `prepare` recorded in `folder`, if they still match the file's rows."""
    from training.data.persona import RowSource

    try:
        recorded = json.loads((folder / SOURCES).read_text(encoding="utf-8"))
        table = [
            RowSource(str(thread), str(title), tuple(map(str, people))) for thread, title, people in recorded["threads"]
        ]
        sources = [table[index] for index in recorded["rows"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # none recorded, or unreadable: the rows' own keys, or the old index, say what they can
    return sources if len(sources) == row_count else None  # rows edited since: the table no longer lines up


_BUILDING = threading.Lock()  # one first-use build at a time: a second caller waits, then reads the result


def build_if_pending(folder: str | os.PathLike) -> None:
    """Index a folder `prepare` left pending, from the data set beside it (once, however many callers)."""
    folder = Path(folder)
    if not is_pending(folder):
        return
    with _BUILDING:
        if is_pending(folder):
            build_memory_for(folder.with_name(folder.name.removesuffix(SUFFIX) + ".jsonl"))


def _vectorizer():
    import numpy as np
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(**VECTORIZER, alternate_sign=False, norm=None, dtype=np.float32)


def _vectorize(exchanges: list[Exchange]):
    """(l2-normalized TF-IDF rows, idf) of the exchanges' keys: TfidfVectorizer's numbers, hashed.

    Each distinct key is hashed once ("ok", "lol" recur by the thousand): the n-gram analyzer is
    pure Python, the bulk of the build time. (Hashing in parallel processes was slower on a busy
    2-core machine: each worker imports scikit-learn first.)
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfTransformer

    positions: dict[str, int] = {}
    rows = np.fromiter(
        (positions.setdefault(e.them[:KEY_CHARS], len(positions)) for e in exchanges),
        dtype=np.int64,
        count=len(exchanges),
    )
    counts = _vectorizer().transform(list(positions))[rows]
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    matrix = tfidf.transform(counts).astype(np.float32).tocsr()
    # An n-gram no exchange has weighs nothing in a message, as outside TfidfVectorizer's vocabulary:
    # otherwise a message's unseen letters would lower every score (and the MIN_SCORE cut with them).
    seen = np.bincount(counts.indices, minlength=counts.shape[1]) > 0
    return matrix, np.where(seen, tfidf.idf_, 0).astype(np.float32)


def _write_folder(out: Path, write) -> Path:
    """A memory folder at `out`: `write(folder)` fills a new one and returns memory.json's fields; it
    replaces what `out` held only once all is written (the old one is moved aside, then removed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        info = {"format_version": FORMAT_VERSION, **write(temp)}
        (temp / "memory.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = out.with_name(f".{out.name}.old") if out.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


# ---- reading and recalling -----------------------------------------------------------------------


class MemoryIndex:
    """An opened X.memory/ folder: recall(message, k) ranks its exchanges against the message."""

    def __init__(self, path: Path | None, exchanges: list[Exchange], matrix, idf):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfTransformer

        self.path, self.exchanges = path, exchanges
        # Features x exchanges: a message's product touches only the postings of its own n-grams.
        self.postings = matrix.T.tocsr()
        self._vectorizer = _vectorizer()
        self._weights = TfidfTransformer(sublinear_tf=True)  # the rows' weighting, with their idf
        self._weights.idf_ = idf
        # Exclusions as index arrays, so a recall masks scores with numpy instead of a Python loop.
        self._by_thread: dict[str, list[int]] = {}
        self._by_person: dict[str, list[int]] = {}
        for index, exchange in enumerate(exchanges):
            for name in {exchange.thread, exchange.title} - {""}:
                self._by_thread.setdefault(name.casefold(), []).append(index)
            for person in exchange.people:
                self._by_person.setdefault(person.casefold(), []).append(index)
        self._np = np

    def __len__(self) -> int:
        return len(self.exchanges)

    def threads(self) -> list[str]:
        """Thread titles (or ids) present, for the UI's exclusion picker."""
        return sorted({e.title or e.thread for e in self.exchanges if e.thread})

    def people(self) -> list[str]:
        return sorted({person for e in self.exchanges for person in e.people})

    def recall(
        self, message: str, k: int = 4, exclude_threads: Iterable[str] = (), exclude_people: Iterable[str] = ()
    ) -> list[Recalled]:
        """The k exchanges whose key is most like `message`, best first; none from excluded threads or people."""
        np = self._np
        if k < 1 or not message.strip() or not self.exchanges:
            return []
        query = self._weights.transform(self._vectorizer.transform([message[-KEY_CHARS:]]))
        if query.nnz == 0:
            return []
        scores = (query @ self.postings).toarray().ravel()  # cosine: both sides are l2-normalized
        excluded = self._excluded(exclude_threads, exclude_people)
        if excluded:
            scores[excluded] = -1.0
        top = min(k, len(scores))
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [Recalled(self.exchanges[i], float(scores[i])) for i in best if scores[i] >= MIN_SCORE]

    def _excluded(self, threads: Iterable[str], people: Iterable[str]) -> list[int]:
        found: list[int] = []
        for name in threads:
            found.extend(self._by_thread.get(name.strip().casefold(), ()))
        for name in people:
            found.extend(self._by_person.get(name.strip().casefold(), ()))
        return found


_CACHE: OrderedDict[tuple, MemoryIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def open_memory(train_file_or_folder: str | os.PathLike) -> MemoryIndex:
    """The memory of a data set (X.jsonl) or a memory folder, from cache while its files are unchanged."""
    path = Path(train_file_or_folder)
    folder = path if path.suffix == SUFFIX else memory_path(path)
    info_file = folder / "memory.json"
    if not info_file.is_file():
        raise UserError(
            f"{folder.name}: no memory index; build it with `python -m training memory build "
            f"{folder.with_name(folder.name.removesuffix(SUFFIX) + '.jsonl')}`"
        )
    build_if_pending(folder)
    key = (str(folder.resolve()), info_file.stat().st_mtime_ns)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        index = _read(folder)
        _CACHE[key] = index
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index


def _read(folder: Path) -> MemoryIndex:
    import numpy as np
    import scipy.sparse

    try:
        info = json.loads((folder / "memory.json").read_text(encoding="utf-8"))
        if not isinstance(info, dict) or info.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError("memory.json: not a talklike memory this version reads")
        with open(folder / "exchanges.jsonl", encoding="utf-8") as handle:
            exchanges = [_exchange(json.loads(line)) for line in handle if line.strip()]
        matrix = scipy.sparse.load_npz(folder / "vectors.npz").tocsr()
        idf = np.load(folder / "idf.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{folder.name}: unreadable memory index ({error}); rebuild it with `python -m training memory build`"
        ) from None
    if matrix.shape[0] != len(exchanges) or idf.shape != (matrix.shape[1],):
        raise UserError(
            f"{folder.name}: the memory's files do not match; rebuild it with `python -m training memory build`"
        )
    return MemoryIndex(folder, exchanges, matrix, idf)


def _exchange(data: dict) -> Exchange:
    return Exchange(
        str(data["them"]),
        str(data["you"]),
        str(data.get("thread") or ""),
        str(data.get("title") or ""),
        tuple(str(p) for p in data.get("people") or ()),
    )
