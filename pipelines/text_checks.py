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
