"""Measures shared by the clean and summary stages to judge an LLM's rewrite.

- content terms: lowercased alphabetic tokens minus stopwords, lightly stemmed, plus the
  numbers of the text (digits and number words normalised, so "three" == "3");
- numbers: every quantity a text states, as normalised strings;
- names: capitalised words that do not start a sentence (proper nouns, acronyms).

A rewrite fails when it drops too many of the source's content terms or states a
number or name that no source contains.
"""

from __future__ import annotations

import re
from itertools import pairwise

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*")
CAPITALISED_RE = re.compile(r"\b[A-Z][A-Za-z]*(?:'[a-z]+)?\b")

_STOPWORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves it's there's that's i'm i've you're they're
    we're he's she's isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't
    also maybe probably kind sort looks look like seems seem see seen shows show showing
    um uh uhm erm er hmm mhm ah oh okay ok yeah well basically actually really
    image picture photo photograph pic shot
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TENS) | frozenset(SCALES)
# Words that state a quantity without a number word: "a pair" may become "two".
IMPLIED_NUMBERS = {
    "a": "1", "an": "1", "single": "1", "once": "1", "alone": "1",
    "pair": "2", "couple": "2", "both": "2", "twice": "2", "double": "2", "twins": "2",
    "dozen": "12", "triple": "3",
}  # fmt: skip


def tokens(text: str) -> list[str]:
    """Lowercased word and number tokens (curly apostrophes straightened)."""
    return WORD_RE.findall(text.replace("’", "'").lower())


def stem(word: str) -> str:
    """A light suffix stripper: enough to match "dogs"/"dog", "sitting"/"sits"."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 5 and word.endswith(("ches", "shes")):
        return word[:-2]
    if len(word) > 5 and word.endswith("ing"):
        return _undouble(word[:-3])
    if len(word) > 4 and word.endswith("ed"):
        return _undouble(word[:-2])
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _undouble(word: str) -> str:
    if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def _digits(token: str) -> str:
    """ "1,000" -> "1000", "2.50" -> "2.5", "007" -> "7"."""
    if re.fullmatch(r"\d{1,3}(,\d{3})+", token):
        token = token.replace(",", "")
    token = token.replace(",", ".")
    if "." in token:
        whole, _, frac = token.partition(".")
        frac = frac.rstrip("0")
        return f"{int(whole or '0')}.{frac}" if frac else str(int(whole or "0"))
    return str(int(token))


def numbers(text: str) -> set[str]:
    """Every number a text states (digits or number words), normalised to digits.

    "twenty five" -> "25", "two hundred and ten" -> "210", "two three" -> "2", "3".
    """
    found: set[str] = set()
    total = current = 0
    last = ""  # kind of the previous number word: "unit", "ten", "scale" or ""

    def flush() -> None:
        nonlocal total, current, last
        if last:
            found.add(str(total + current))
        total = current = 0
        last = ""

    for word in tokens(text):
        if word[0].isdigit():
            flush()
            found.add(_digits(word))
        elif word in UNITS or word in TENS:
            value = UNITS.get(word) if word in UNITS else TENS[word]
            assert value is not None
            continues = last == "scale" or (last == "ten" and word in UNITS and value < 10)
            if not continues:
                flush()
            current += value
            last = "ten" if word in TENS else "unit"
        elif word in SCALES:
            scale = SCALES[word]
            current = max(current, 1) * scale
            if scale >= 1000:
                total, current = total + current, 0
            last = "scale"
        elif word == "and" and last == "scale":
            continue
        else:
            flush()
    flush()
    return found


def implied_numbers(text: str) -> set[str]:
    """The numbers a text states plus those implied by words such as "a" or "pair"."""
    implied = {IMPLIED_NUMBERS[t] for t in tokens(text) if t in IMPLIED_NUMBERS}
    return numbers(text) | implied


def content_terms(text: str) -> set[str]:
    """Stemmed content words and normalised numbers of `text`."""
    words = {
        stem(t)
        for t in tokens(text)
        if t[0].isalpha() and t not in STOPWORDS and t not in NUMBER_WORDS and len(t) > 1
    }
    return words | numbers(text)


def recall(source_terms: set[str], output: str) -> tuple[float, list[str]]:
    """Share of `source_terms` found in `output`, and the missing ones (sorted)."""
    if not source_terms:
        return 1.0, []
    missing = sorted(source_terms - content_terms(output))
    return 1 - len(missing) / len(source_terms), missing


def names(text: str) -> set[str]:
    """Capitalised words that do not open a sentence (and are not "I")."""
    found: set[str] = set()
    for match in CAPITALISED_RE.finditer(text):
        word = match.group()
        before = text[: match.start()].rstrip(" \"'“‘([")
        if not before or before[-1] in ".!?:\n" or word in {"I", "I'm", "I've", "I'd", "I'll"}:
            continue
        found.add(word)
    return found


def novel_names(output: str, sources: list[str]) -> list[str]:
    """Names in `output` whose words appear in none of `sources` (case-insensitive)."""
    known: set[str] = set()
    for source in sources:
        known |= {t for t in tokens(source)} | {stem(t) for t in tokens(source)}
    novel = []
    for name in sorted(names(output)):
        parts = tokens(name)
        if parts and not all(p in known or stem(p) in known for p in parts):
            novel.append(name)
    return novel


def novel_numbers(output: str, sources: list[str]) -> list[str]:
    """Numbers in `output` that none of `sources` states or implies."""
    known: set[str] = set()
    for source in sources:
        known |= implied_numbers(source)
    return sorted(numbers(output) - known, key=lambda n: (len(n), n))


def word_count(text: str) -> int:
    return len(tokens(text))


# --- what an LLM's rewrite must not contain -----------------------------------------------
#
# Each returns a reason ("" or [] when the text is fine). Small models derail in a few
# recurring ways: they loop until max_tokens, open with "Here's a rewritten version", list
# their edits, copy the instructions back, chain words with hyphens, or drop the grammar.

# A phrase of n >= 3 words repeated back to back this often, or any sentence said twice.
LOOP_RUN_LIMIT = 3
LOOP_SHARE_LIMIT = 0.25  # one 4-gram covering this share of the text
SALAD_HYPHEN_PARTS = 3  # "sofa-table-lamp": three or more words glued by hyphens
SALAD_MIN_WORDS = 12  # the function-word measure needs a sentence or two
SALAD_FUNCTION_SHARE = 0.12  # prose has 35-55 % function words, even a list some; salad none
PROMPT_NGRAM = 5  # this many words in a row from the instructions count as a copy

_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_COMMENTARY_RE = re.compile(
    r"\b(?:here(?:'s| is) (?:a|an|the|your|my) (?:re)?\w*|rewritten|rewrote|i (?:have |'ve )?"
    r"(?:removed|changed|corrected|fixed|kept|added|replaced|edited|cleaned)|changes? made|"
    r"the (?:original|cleaned|corrected|edited) (?:text|transcript|description|caption|version)|"
    r"(?:this|the) transcript|as requested|let me know|i hope this|note:|explanation:|"
    r"in this (?:version|rewrite)|speech artefacts?|filler words?)\b",
    re.IGNORECASE,
)
_HYPHEN_CHAIN_RE = re.compile(r"\b[\w']+(?:-[\w']+){" + str(SALAD_HYPHEN_PARTS - 1) + r",}\b")
_LIST_LINE_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s.strip()]


def repeated_ngram(words: list[str], *, word_run: int, ngram_run: int, min_n: int = 2) -> str:
    """A phrase of `min_n`..6 words said `ngram_run` times back to back, or one word
    `word_run` times in a row; "" when there is none."""
    run = 1
    for prev, cur in pairwise(words):
        run = run + 1 if cur == prev else 1
        if run >= word_run:
            return f"{cur!r} said {run} times in a row"
    for n in range(min_n, 7):
        for start in range(len(words) - n * ngram_run + 1):
            gram = words[start : start + n]
            if all(words[start + k * n : start + (k + 1) * n] == gram for k in range(ngram_run)):
                return f"{' '.join(gram)!r} repeated {ngram_run} times back to back"
    return ""


def loop_reason(text: str) -> str:
    """Why `text` looks like a generation loop ("" when it does not)."""
    words = tokens(text)
    found = repeated_ngram(words, word_run=4, ngram_run=LOOP_RUN_LIMIT, min_n=2)
    if found:
        return f"repetition loop: {found}"
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    if len(grams) >= 8:
        top = max(set(grams), key=grams.count)
        if grams.count(top) * 4 >= LOOP_SHARE_LIMIT * len(words) and grams.count(top) >= 3:
            return f"repetition loop: {' '.join(top)!r} occurs {grams.count(top)} times"
    seen: set[tuple[str, ...]] = set()
    for sentence in sentences(text):
        key = tuple(tokens(sentence))
        if len(key) >= 3 and key in seen:
            return f"repeated sentence: {sentence[:80]!r}"
        seen.add(key)
    return ""


def commentary_reason(text: str, sources: list[str]) -> str:
    """Talk about the task (a preamble, a list of edits) that no source contains."""
    if _LIST_LINE_RE.search(text) and not any(_LIST_LINE_RE.search(s) for s in sources):
        return "commentary: a list, not a description"
    source_text = " ".join(sources).lower()
    for match in _COMMENTARY_RE.finditer(text):
        if match.group().lower() not in source_text:
            return f"commentary: {match.group()!r}"
    return ""


def copied_reason(text: str, instructions: list[str], sources: list[str]) -> str:
    """A run of PROMPT_NGRAM words from the instructions that the sources do not have."""
    words = tokens(text)
    source_grams = _ngrams(tokens(" ".join(sources)), PROMPT_NGRAM)
    for instruction in instructions:
        copied = (_ngrams(tokens(instruction), PROMPT_NGRAM) & _ngrams(words, PROMPT_NGRAM)) - (
            source_grams
        )
        if copied:
            return f"copied from the instructions: {' '.join(sorted(copied)[0])!r}"
    return ""


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def salad_reason(text: str, sources: list[str]) -> str:
    """Word salad: hyphen-chained words the sources lack, or too few function words."""
    source_text = " ".join(sources).lower()
    for chain in _HYPHEN_CHAIN_RE.findall(text):
        if chain.lower() not in source_text:
            return f"word salad: hyphen-chained {chain[:60]!r}"
    words = tokens(text)
    if len(words) >= SALAD_MIN_WORDS:
        share = sum(w in FUNCTION_WORDS for w in words) / len(words)
        if share < SALAD_FUNCTION_SHARE:
            return f"broken grammar: {share:.0%} function words (prose has 35-55 %)"
    return ""


_FUNCTION_WORDS_TEXT = """a an the and or but of in on at to with for from by as is are was were be been
    it its this that these those there here he she they we i you his her their our my your
    has have had do does not no some any all each which who while than then so if when
    into onto over under behind next near above below between through up down out off"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


def rewording(output: str, source: str) -> float:
    """Share of `source`'s word count that `output` says differently: its words outside a
    longest common subsequence with `source` (deletions are free: a copy-edit deletes)."""
    out, src = tokens(output), tokens(source)
    if not src:
        return 0.0
    row = [0] * (len(src) + 1)
    for word in out:
        prev_diag = 0
        for j, other in enumerate(src, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if word == other else max(row[j], row[j - 1])
    return (len(out) - row[-1]) / len(src)
