"""The rule-based clean: a spoken transcript without its speech artefacts, deterministically.

Speech repairs have a regular shape (Shriberg's reparandum - interregnum - repair):
the speaker says something (the reparandum), signals a break (a cut-off "th-", a
pause filler "er", or an editing phrase "no wait", "sorry", "I mean", "actually"), then
says what they meant (the repair). The written text keeps the repair only. The rules, in
order:

1. Fillers ("um", "uh", "er", "hmm", "you know", filler "like") become pause marks and
   editing phrases set off by a pause become correction marks (steps 2 and 3 are in
   pipelines/repairs.py).
2. A correction mark replaces its reparandum by the repair. The reparandum starts at
   the nearest earlier word the repair starts with ("a red, sorry, a blue car"); else at
   the nearest word of the repair's kind (numbers, colours, positions, sizes: "three, no
   wait, two cats"), widened over alternatives ("five or six, actually six"); else where
   the two align word for word ("dish soap, I mean hand soap"); else, when the repair
   opens a clause ("a dog, no wait, it's a fox"), at the clause start; else it is the
   one word before the mark.
3. A pause between two words of one kind, or between two parallel phrases, is a
   correction too ("green, er, blue"; "a black suit, er, a navy suit").
4. Cut-offs: a fragment that the next word starts with is a stutter ("b- brown"); a
   cut-off or a phrase left hanging on a function word ("there's a, there are two"),
   followed by a word said a little earlier, is a restart from that word.
5. Words and phrases (up to six words) said twice in a row lose the copy, except
   intensifiers ("really, really"); a sentence said again loses the copy, and a sentence
   that the next one repeats and extends gives way to it.
6. Openers without content ("okay, so", "alright"), spacing, punctuation and capitals.

Everything is local to a sentence and bounded by small windows, so the rules never
reach across the description to delete content. No Django here.
"""

from __future__ import annotations

import re

from pipelines import text_checks
from pipelines.repairs import (
    ARTICLES,
    FIXES,
    PAUSE,
    PUNCT,
    SENTENCE_END,
    apply_fixes,
    base,
    is_word,
    mark_edits,
    pause_corrections,
    word_set,
    words_after,
    words_before,
)
from pipelines.text_checks import FUNCTION_WORDS

FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "err", "hmm", "hm", "mm",
                     "mhm", "ah", "ahh", "eh"})  # fmt: skip

# A phrase cannot end on these: one left hanging before a pause was abandoned.
_DANGLING = word_set(
    """a an the of to with is are was were 's there's it's that's some on in at for my his
    her its their our your this these those from by into onto"""
)
# Said twice on purpose ("really, really old", "that that", "had had").
_REPEAT_OK = word_set("really very so much far long many more that had bye")
_SUSPENDED_HYPHEN = word_set("or and to")
_OPENERS = word_set("okay ok alright yeah yes right well basically now actually")
_SO_SUBJECTS = word_set("this there the it i here we in on that a an")
_THERE_BE = word_set("is are was were")

RESTART_WINDOW = 8  # words back from a cut-off
MAX_ABANDONED = 5  # longest phrase a pause after a hanging word may abandon
MAX_REPEAT = 6  # longest phrase checked for an immediate repetition

_TOKEN_RE = re.compile(r"<pause>|[\w']+(?:-[\w']+)*-?|\.\.\.|[—–]|--|[.,!?;:]|\S")
_YOU_KNOW_RE = re.compile(
    r"\byou know\b(?!\s+(?:what|how|why|where|who|whether|if|that)\b)", re.IGNORECASE
)
_LIKE_QUANTITY_RE = re.compile(
    r"\b(is|are|was|were|'s|be|with|has|have)\s+like\s+"
    r"(?=(?:\d|a lot|about|around|maybe|" + "|".join(sorted(text_checks.NUMBER_WORDS)) + r")\b)",
    re.IGNORECASE,
)


# --- 1. tokens with pause and correction marks ------------------------------------------


def _pre_tokens(text: str) -> list[str]:
    """Tokens, with fillers as pauses and dashes, ellipses and cut-offs as pauses."""
    text = " ".join(text.replace("’", "'").replace("…", "...").split())
    text = _YOU_KNOW_RE.sub(f" {PAUSE} ", text)
    text = _LIKE_QUANTITY_RE.sub(lambda m: m.group(1) + " ", text)
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(text):
        lowered = token.lower()
        if lowered in FILLERS or token == "...":  # noqa: S105 (not a password)
            tokens.append(PAUSE)
        elif token in {"—", "–", "--", "-"}:
            tokens.append(",")  # a dash between words: a pause that may stay a comma
        elif len(token) > 1 and token.endswith("-") and is_word(token):
            tokens += [token[:-1] + "-", PAUSE]  # keep the fragment; the cut is a pause
        else:
            tokens.append(token)
    return _filler_likes(_split_glued_stutters(tokens))


def _filler_likes(tokens: list[str]) -> list[str]:
    """Filler "like": before a comma or pause, opening a sentence, or after "there's"
    (", like at sunset" compares and stays)."""
    out: list[str] = []
    for i, token in enumerate(tokens):
        if token.lower() == "like":
            before = out[-1].lower() if out else "."
            after = tokens[i + 1] if i + 1 < len(tokens) else "."
            there = before in {"there's", "there're"} or (
                len(out) > 1 and out[-2].lower() == "there" and before in _THERE_BE
            )
            if after in {",", PAUSE} or before in SENTENCE_END | {PAUSE} or there:
                out.append(PAUSE)
                continue
        out.append(token)
    return out


def _split_glued_stutters(tokens: list[str]) -> list[str]:
    """ "the-the" and "c-c-cat" (written without spaces) are stutters of the last part."""
    out: list[str] = []
    for token in tokens:
        parts = token.lower().split("-")
        if len(parts) > 1 and all(parts) and all(parts[-1].startswith(p) for p in parts[:-1]):
            out.append(token.split("-")[-1])
        else:
            out.append(token)
    return out


# --- 4. cut-offs and restarts -------------------------------------------------------------


def _restart_from(tokens: list[str], end: int, following: str) -> int | None:
    """Nearest earlier word (within the window, same sentence) equal to `following`."""
    for k in reversed(words_before(tokens, end, RESTART_WINDOW)):
        if base(tokens[k]) == following:
            return k
    return None


_CONTRACTED_AUX = {"'s": {"is", "was", "has"}, "'re": {"are", "were"}}


def _restates_subject(hanging: str, following: str) -> bool:
    """ "is" left hanging, then "she's": the pronoun restates the subject just said."""
    lowered = following.lower()
    pronoun, _, aux = lowered.partition("'")
    if pronoun not in {"he", "she", "it", "they", "we"} or not aux:
        return False
    return hanging.lower() in _CONTRACTED_AUX.get("'" + aux, set())


def _remove_cutoffs(tokens: list[str]) -> list[str]:
    """Stutters, and restarts after a cut-off fragment or a phrase left hanging."""
    out: list[str] = []
    skip_pause = False
    skip_word = -1
    for i, token in enumerate(tokens):
        if i == skip_word:
            continue
        if skip_pause and token == PAUSE:
            skip_pause = False
            continue
        skip_pause = False
        if token in {PAUSE, ","}:
            nxt = words_after(tokens, i + 1, 1)
            prev = words_before(out, len(out), 1)
            if nxt and prev:
                hanging = out[prev[0]]
                anchor = base(tokens[nxt[0]])
                # An article is too common to mark where a hanging phrase began.
                cut = hanging.endswith("-") or (
                    hanging.lower() in _DANGLING and anchor not in ARTICLES
                )
                if _restates_subject(hanging, tokens[nxt[0]]):
                    skip_word = nxt[0]  # "a woman is, she's pouring": drop "she's"
                    continue
                start = _restart_from(out, len(out), anchor) if cut else None
                if start is not None and sum(map(is_word, out[start:])) <= MAX_ABANDONED:
                    del out[start:]
                    continue
            out.append(token)
            continue
        if len(token) > 1 and token.endswith("-") and is_word(token):
            nxt = words_after(tokens, i + 1, 1)
            following = tokens[nxt[0]].lower() if nxt else ""
            if following in _SUSPENDED_HYPHEN:
                out.append(token)  # "five- or six-year-old"
            elif following and following.startswith(token[:-1].lower()):
                skip_pause = True  # a stutter: "b- brown"; its cut is no restart
            else:
                start = _restart_from([*out, token], len(out) + 1, base(following))
                if start is not None:
                    del out[start:]
            continue
        out.append(token)
    return out


# --- 5. repetitions -------------------------------------------------------------------------


def _remove_repeats(tokens: list[str]) -> list[str]:
    """Drop a phrase of up to MAX_REPEAT words said twice in a row (commas, pauses between)."""
    words = list(tokens)
    changed = True
    while changed:
        changed = False
        for n in range(MAX_REPEAT, 0, -1):
            i = 0
            while i < len(words):
                a = words[i : i + n]
                j = i + n
                while j < len(words) and words[j] in {",", PAUSE}:
                    j += 1
                b = words[j : j + n]
                same = len(a) == n and [w.lower() for w in a] == [w.lower() for w in b]
                if (
                    same
                    and all(is_word(w) for w in a)
                    and not (n == 1 and a[0].lower() in _REPEAT_OK)
                ):
                    del words[i:j]
                    changed = True
                else:
                    i += 1
    return words


def _sentences(tokens: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for token in tokens:
        out[-1].append(token)
        if token in SENTENCE_END:
            out.append([])
    return [s for s in out if any(is_word(t) for t in s)]


def _key(sentence: list[str]) -> list[str]:
    return [t.lower() for t in sentence if is_word(t)]


def _join_repeated_tails(sentences: list[list[str]]) -> list[list[str]]:
    """ "It says beware of the dog. Beware of the dog, in red letters.": the next sentence
    restarts the end of this one (three words or more) and goes on; keep one copy."""
    out: list[list[str]] = []
    for sentence in sentences:
        if out:
            prev, key = _key(out[-1]), _key(sentence)
            n = next((n for n in range(min(len(prev), len(key)) - 1, 2, -1)
                      if prev[-n:] == key[:n] and len(key) > n), 0)  # fmt: skip
            if n:
                words = [k for k, t in enumerate(out[-1]) if is_word(t)]
                out[-1] = out[-1][: words[-n]] + sentence
                continue
        out.append(sentence)
    return out


def _remove_repeated_sentences(tokens: list[str]) -> list[str]:
    """A sentence said again goes; one that the next repeats and extends gives way."""
    sentences = _join_repeated_tails(_sentences(tokens))
    kept: list[list[str]] = []
    seen: list[list[str]] = []
    for index, sentence in enumerate(sentences):
        key = _key(sentence)
        if key in seen:
            continue
        later = [_key(s) for s in sentences[index + 1 : index + 4]]
        if len(key) >= 3 and any(len(k) > len(key) and k[: len(key)] == key for k in later):
            continue
        seen.append(key)
        kept.append(sentence)
    return [t for s in kept for t in s]


# --- 6. openers, joining, capitals ----------------------------------------------------------


def _remove_openers(tokens: list[str]) -> list[str]:
    """ "Okay, so", "Alright", "Yeah so", "Well," at a sentence start; "So many" stays."""
    out: list[str] = []
    at_start = True
    i = 0
    while i < len(tokens):
        token = tokens[i]
        lowered = token.lower()
        nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        if at_start and token in {",", PAUSE}:
            i += 1
            continue
        if at_start and (
            (lowered in _OPENERS and (nxt in {",", PAUSE, "so"} or lowered in {"okay", "ok",
             "alright", "yeah"}))
            or (lowered == "so" and (nxt in {",", PAUSE} or nxt in _SO_SUBJECTS or nxt in {
                "there's", "it's", "that's", "here's"} or nxt in _OPENERS))
            or (lowered == "and" and nxt == "so")
        ):  # fmt: skip
            i += 1
            continue
        at_start = token in SENTENCE_END
        out.append(token)
        i += 1
    return out


def _join(tokens: list[str]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token == PAUSE:
            continue  # a pause leaves no mark; the commas around it decide
        if token in FIXES:
            continue
        if not is_word(token) and (not parts or parts[-1] in PUNCT):
            if parts and token in SENTENCE_END and parts[-1] in {",", ";", ":"}:
                parts[-1] = token  # ", ." -> "."
            continue  # leading or doubled punctuation
        parts.append(token)
    text = ""
    for part in parts:
        text += part if (not text or not is_word(part)) else " " + part
    return text


def _drop_pause_commas(tokens: list[str]) -> list[str]:
    """A filler takes the commas around it with it ("it's, um, switched on"), except a
    comma that ends a phrase ("a big dog, uh, a big cat")."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == PAUSE:
            comma = bool(out) and out[-1] == ","
            while out and out[-1] == ",":
                out.pop()
            i += 1
            while i < len(tokens) and tokens[i] in {",", PAUSE}:
                i += 1
            last = out[-1].lower() if out else ""
            ends_phrase = is_word(last or ".") and last not in FUNCTION_WORDS | _DANGLING
            if comma and ends_phrase and i < len(tokens) and is_word(tokens[i]):
                out.append(",")
            continue
        out.append(tokens[i])
        i += 1
    return out


def _capitalise(text: str) -> str:
    text = re.sub(r"\bi\b(?=$|[\s,.!?;:'])", "I", text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if text and text[-1].isalnum():
        text += "."
    return text


def rule_clean(text: str) -> str:
    """The transcript without speech artefacts, with tidy spacing and capitals."""
    tokens = mark_edits(_pre_tokens(text))
    tokens = apply_fixes(tokens)
    tokens = pause_corrections(tokens)
    tokens = _remove_cutoffs(tokens)
    tokens = _drop_pause_commas(tokens)
    tokens = _remove_openers(tokens)
    tokens = _remove_repeats(tokens)
    tokens = _remove_repeated_sentences(tokens)
    return _capitalise(_join(tokens))
