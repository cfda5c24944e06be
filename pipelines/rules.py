"""The rule-based clean: a spoken transcript without its speech artefacts, deterministically.

Speech repairs have a regular shape (Shriberg's reparandum - interregnum - repair):
the speaker says something (the reparandum), signals a break (a cut-off "th-", a
pause filler "er", or an editing phrase "no wait", "sorry", "I mean", "actually"), then
says what they meant (the repair). The written text keeps the repair only. The rules, in
order:

1. Fillers ("um", "uh", "er", "hmm", "you know", filler "like") become pause marks and
   editing phrases set off by a pause become correction marks.
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
from pipelines.text_checks import FUNCTION_WORDS

PAUSE = "<pause>"  # a filler or a cut marker: the speaker stopped here
FIX = "<fix>"  # "no wait", "no", "wait": what follows replaces what came before
FIX_SOFT = "<fix~>"  # "sorry", "actually", "rather": the same, but never a whole clause
FIX_WEAK = "<fix?>"  # "I mean": a correction when the repair is parallel, else a gloss
FIX_BACK = "<fix.>"  # a sentence opening with "Sorry," takes back the one before, if parallel
FIXES = (FIX, FIX_SOFT, FIX_WEAK, FIX_BACK)
SENTENCE_END = {".", "!", "?"}
PUNCT = {".", ",", "!", "?", ";", ":"}

FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "err", "hmm", "hm", "mm",
                     "mhm", "ah", "ahh", "eh"})  # fmt: skip
# Editing phrases, longest first; "no" needs a pause after it too (", no one is here").
EDIT_PHRASES = [
    ("no", "no", "wait"), ("oh", "no", "wait"), ("sorry", "i", "mean"), ("no", "i", "mean"),
    ("let", "me", "correct", "that"), ("scratch", "that"),
    ("no", "wait"), ("wait", "no"), ("no", "sorry"), ("sorry", "no"), ("no", "no"),
    ("i", "mean"), ("i", "meant"),
    ("or", "rather"), ("well", "actually"), ("no", "actually"), ("sorry",), ("wait",),
    ("actually",), ("rather",), ("correction",), ("no",), ("oops",),
]  # fmt: skip
_NEEDS_PAUSE_AFTER = {("no",), ("rather",), ("wait",)}
# Unmistakable even without a comma before them ("three no wait two cats").
_STRONG = {("no", "wait"), ("wait", "no"), ("no", "sorry"), ("sorry", "no"), ("sorry",),
           ("i", "mean"), ("i", "meant"), ("oh", "no", "wait")}  # fmt: skip
# Said at a sentence start, these take back the sentence before ("It's a cat. Sorry, ...").
_TAKE_BACK = {("no", "wait"), ("wait", "no"), ("no", "sorry"), ("sorry", "no"), ("sorry",),
              ("no", "no", "wait"), ("oh", "no", "wait"), ("oops",)}  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD_KINDS: dict[str, frozenset[str]] = {
    "colour": _words(
        """red orange yellow green blue purple violet pink brown black white grey gray beige
        navy turquoise teal gold golden silver maroon cream tan crimson"""
    ),
    "position": _words(
        """left right top bottom middle centre center front back behind above below under
        underneath beneath over on in inside outside near beside next between across
        towards toward away into onto up down upstairs downstairs foreground background
        north south east west"""
    ),
    "size": _words("big small large little tiny huge tall short long wide narrow"),
    "number": text_checks.NUMBER_WORDS | _words("a an one half quarter"),
}
# A repair that opens a new clause restarts the whole clause.
_CLAUSE_OPENERS = _words(
    """it it's its he he's she she's they they're there there's here here's this that's
    these those i i'm we we're you"""
)
# A phrase cannot end on these: one left hanging before a pause was abandoned.
_DANGLING = _words(
    """a an the of to with is are was were 's there's it's that's some on in at for my his
    her its their our your this these those from by into onto"""
)
# Said twice on purpose ("really, really old", "that that", "had had").
_REPEAT_OK = _words("really very so much far long many more that had bye")
_SUSPENDED_HYPHEN = _words("or and to")
_ARTICLES = _words("a an the")
_OPENERS = _words("okay ok alright yeah yes right well basically now actually")
_SO_SUBJECTS = _words("this there the it i here we in on that a an")
_THERE_BE = _words("is are was were")

REPAIR_WINDOW = 10  # words back from a correction mark
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


def _is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "'"


def _base(token: str) -> str:
    """Lowercased word without a clitic: "There's" -> "there"."""
    return token.lower().rstrip("-").split("'")[0]


def _same_word(a: str, b: str) -> bool:
    """Equal up to case and a plural or verb ending ("dog" / "dogs")."""
    return text_checks.stem(a.lower()) == text_checks.stem(b.lower())


def kind_of(word: str) -> str:
    """The closed word class a correction may swap within ("" when none)."""
    lowered = word.lower()
    if lowered.isdigit():
        return "number"
    for kind, words in _WORD_KINDS.items():
        if lowered in words:
            return kind
    return ""


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
        elif len(token) > 1 and token.endswith("-") and _is_word(token):
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


def _edit_phrase_at(tokens: list[str], i: int, out: list[str]) -> int:
    """Length of the editing phrase starting at tokens[i] (0: none there)."""
    before = out[-1] if out else "."
    for phrase in EDIT_PHRASES:
        n = len(phrase)
        if tuple(t.lower() for t in tokens[i : i + n]) != phrase:
            continue
        after = tokens[i + n] if i + n < len(tokens) else "."
        if after in SENTENCE_END or (phrase in _NEEDS_PAUSE_AFTER and after not in {",", PAUSE}):
            continue
        if before in {",", ";", PAUSE}:
            return n
        if before in SENTENCE_END:
            return n if phrase in _TAKE_BACK and len(out) > 1 else 0
        if phrase in _STRONG and not (phrase[0] == "i" and before.lower() in {"what", "i"}):
            return n
    return 0


def _mark_edits(tokens: list[str]) -> list[str]:
    """Editing phrases after a pause or comma become FIX; "I mean" elsewhere is a filler."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        matched = _edit_phrase_at(tokens, i, out)
        if matched:
            phrase = [t.lower() for t in tokens[i : i + matched]]
            mark = FIX if {"no", "wait"} & set(phrase) else FIX_SOFT
            if phrase[0] == "i":
                mark = FIX_WEAK
            if out and out[-1] in SENTENCE_END:
                mark = FIX_BACK
            while out and out[-1] in {",", ";", PAUSE} | SENTENCE_END:
                out.pop()  # a take-back joins the sentence it corrects
            out.append(mark)
            i += matched
            while i < len(tokens) and tokens[i] in {",", PAUSE}:
                i += 1
            continue
        if [t.lower() for t in tokens[i : i + 2]] == ["i", "mean"]:
            out.append(PAUSE)  # a sentence-opening "I mean": a filler
            i += 2
            continue
        out.append(tokens[i])
        i += 1
    return out


# --- 2./3. corrections --------------------------------------------------------------------


def _clause_start(tokens: list[str], end: int) -> int:
    k = end
    while k > 0 and tokens[k - 1] not in SENTENCE_END and tokens[k - 1] not in {",", ";"}:
        k -= 1
    return k


def _words_before(tokens: list[str], end: int, limit: int) -> list[int]:
    """Indices of up to `limit` words before `end` in the same sentence, nearest last."""
    found: list[int] = []
    k = end - 1
    while k >= 0 and len(found) < limit and tokens[k] not in SENTENCE_END:
        if _is_word(tokens[k]):
            found.append(k)
        k -= 1
    return found[::-1]


def _words_after(tokens: list[str], start: int, limit: int) -> list[int]:
    found: list[int] = []
    k = start
    while k < len(tokens) and len(found) < limit and tokens[k] not in SENTENCE_END:
        if _is_word(tokens[k]):
            found.append(k)
        k += 1
    return found


def _widen_alternatives(tokens: list[str], start: int) -> int:
    """Include "five or" in "five or six" and the whole of "forty nine"."""
    kind = kind_of(tokens[start])
    while True:
        before = _words_before(tokens, start, 2)
        if (
            kind == "number"
            and before
            and kind_of(tokens[before[-1]]) == "number"
            and tokens[before[-1]].lower() not in {"a", "an"}
        ):
            start = before[-1]
            continue
        if (
            len(before) == 2
            and tokens[before[1]].lower() == "or"
            and kind_of(tokens[before[0]]) in {kind, "number" if kind == "number" else kind}
        ):
            start = before[0]
            continue
        return start


def _reparandum_start(tokens: list[str], mark: int) -> tuple[int, str] | None:
    """Where the words replaced by the repair after `mark` begin, and which rule found
    it (None: no words on one side)."""
    left = _words_before(tokens, mark, REPAIR_WINDOW)
    right = _words_after(tokens, mark + 1, 4)
    if not left or not right:
        return None
    first = _base(tokens[right[0]])
    for k in reversed(left):  # the repair starts with a word said just before
        if _base(tokens[k]) == first:
            return _widen_alternatives(tokens, k), "word"
    kind = kind_of(tokens[right[0]])
    if kind:
        for k in reversed(left):
            if kind_of(tokens[k]) == kind and tokens[k].lower() not in _ARTICLES:
                return _widen_alternatives(tokens, k), "kind"
        if kind == "number":  # "a dog, actually two dogs"
            for k in reversed(left):
                if tokens[k].lower() in {"a", "an"}:
                    return k, "kind"
    if first in _CLAUSE_OPENERS:
        return max(_clause_start(tokens, mark), left[0]), "clause"
    for size in range(2, min(len(left), len(right)) + 1):  # "dish soap, I mean hand soap"
        if any(
            _same_word(tokens[left[len(left) - size + i]], tokens[right[i]]) for i in range(1, size)
        ):
            return left[len(left) - size], "aligned"
    return left[-1], "last"


def _phrase_length(tokens: list[str], start: int) -> int:
    """Words from `start` to the next comma, pause or sentence end."""
    n = 0
    for token in tokens[start:]:
        if token in SENTENCE_END or token in {",", ";", PAUSE}:
            break
        n += _is_word(token)
    return n


def _parallel(tokens: list[str], start: int, mark: int) -> bool:
    """Whether the repair restates the reparandum with a word of the same kind swapped
    ("on the left, I mean on the right side")."""
    before = [t for t in tokens[start:mark] if _is_word(t)]
    after = [tokens[k] for k in _words_after(tokens, mark + 1, len(before))]
    pairs = list(zip(before[1:], after[1:], strict=False))
    return any(a.lower() != b.lower() and kind_of(a) and kind_of(a) == kind_of(b) for a, b in pairs)


def _is_gloss(tokens: list[str], mark: int, start: int, rule: str) -> bool:
    """Whether the phrase after the mark adds to what came before instead of replacing
    it: "the man on the left, I mean the one with the hat"; "it's blue, sorry, I'm not
    sure"; "It's a cat. Sorry, I can't see well." """
    kind = tokens[mark]
    if kind == FIX_BACK:
        return rule not in {"word", "kind"}
    if kind == FIX_SOFT:
        return rule == "clause"
    if kind == FIX_WEAK and rule not in {"kind", "aligned"}:
        replaced = sum(_is_word(t) for t in tokens[start:mark])
        too_long = _phrase_length(tokens, mark + 1) > replaced + 2
        return too_long and not _parallel(tokens, start, mark)
    return False


def _apply_fixes(tokens: list[str]) -> list[str]:
    while any(m in tokens for m in FIXES):
        mark = min(tokens.index(m) for m in FIXES if m in tokens)
        found = _reparandum_start(tokens, mark)
        if found is None:
            tokens = tokens[:mark] + tokens[mark + 1 :]
            continue
        start, rule = found
        repair = _phrase_length(tokens, mark + 1)
        replaced = sum(_is_word(t) for t in tokens[start:mark])
        if _is_gloss(tokens, mark, start, rule):
            tokens[mark] = "." if tokens[mark] == FIX_BACK else ","
            continue
        if rule == "kind" and repair == 1 and replaced > 1 and start + 1 < mark:
            # "a blue car, no sorry, red": swap the word, keep the rest of the phrase.
            tokens = [
                *tokens[:start],
                tokens[mark + 1],
                *tokens[start + 1 : mark],
                *tokens[mark + 2 :],
            ]
            continue
        tokens = tokens[:start] + tokens[mark + 1 :]
    return tokens


def _pause_corrections(tokens: list[str]) -> list[str]:
    """A pause between two words of one kind ("ten, er, twelve") or between parallel
    phrases ("a black suit, er, a navy suit") marks a correction."""
    i = 0
    while i < len(tokens):
        if tokens[i] != PAUSE:
            i += 1
            continue
        left = _words_before(tokens, i, 4)
        right = _words_after(tokens, i + 1, 4)
        gap = tokens[left[-1] + 1 : right[0]] if left and right else []
        if not left or not right or any(t in SENTENCE_END for t in gap):
            i += 1
            continue
        a, b = tokens[left[-1]], tokens[right[0]]
        kind = kind_of(a)
        same_kind = kind and kind == kind_of(b) and a.lower() != b.lower()
        same_kind = same_kind and a.lower() not in {"a", "an"} and b.lower() not in {"a", "an"}
        if same_kind:
            start = _widen_alternatives(tokens, left[-1])
            tokens = tokens[:start] + tokens[right[0] :]
            i = start
            continue
        parallel = _parallel_start(tokens, left, right)
        if parallel is not None:
            tokens = tokens[:parallel] + tokens[right[0] :]
            i = parallel
            continue
        i += 1
    return tokens


def _parallel_start(tokens: list[str], left: list[int], right: list[int]) -> int | None:
    """Start of a phrase before a pause that the phrase after it restates with one change."""
    for size in (4, 3, 2):
        if len(left) < size or len(right) < size:
            continue
        before = [tokens[k].lower() for k in left[-size:]]
        after = [tokens[k].lower() for k in right[:size]]
        changed = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
        if before[0] != after[0] or len(changed) != 1:
            continue
        # "a black suit, er, a navy suit" (same head) or "a red, er, a blue car" (a word
        # of the same kind swapped); "a big dog, uh, a big cat" is a list, not a repair.
        x, y = changed[0]
        if before[-1] == after[-1] or (kind_of(x) and kind_of(x) == kind_of(y)):
            return left[-size]
    return None


# --- 4. cut-offs and restarts -------------------------------------------------------------


def _restart_from(tokens: list[str], end: int, following: str) -> int | None:
    """Nearest earlier word (within the window, same sentence) equal to `following`."""
    for k in reversed(_words_before(tokens, end, RESTART_WINDOW)):
        if _base(tokens[k]) == following:
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
            nxt = _words_after(tokens, i + 1, 1)
            prev = _words_before(out, len(out), 1)
            if nxt and prev:
                hanging = out[prev[0]]
                anchor = _base(tokens[nxt[0]])
                # An article is too common to mark where a hanging phrase began.
                cut = hanging.endswith("-") or (
                    hanging.lower() in _DANGLING and anchor not in _ARTICLES
                )
                if _restates_subject(hanging, tokens[nxt[0]]):
                    skip_word = nxt[0]  # "a woman is, she's pouring": drop "she's"
                    continue
                start = _restart_from(out, len(out), anchor) if cut else None
                if start is not None and sum(map(_is_word, out[start:])) <= MAX_ABANDONED:
                    del out[start:]
                    continue
            out.append(token)
            continue
        if len(token) > 1 and token.endswith("-") and _is_word(token):
            nxt = _words_after(tokens, i + 1, 1)
            following = tokens[nxt[0]].lower() if nxt else ""
            if following in _SUSPENDED_HYPHEN:
                out.append(token)  # "five- or six-year-old"
            elif following and following.startswith(token[:-1].lower()):
                skip_pause = True  # a stutter: "b- brown"; its cut is no restart
            else:
                start = _restart_from([*out, token], len(out) + 1, _base(following))
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
                    and all(_is_word(w) for w in a)
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
    return [s for s in out if any(_is_word(t) for t in s)]


def _key(sentence: list[str]) -> list[str]:
    return [t.lower() for t in sentence if _is_word(t)]


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
                words = [k for k, t in enumerate(out[-1]) if _is_word(t)]
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
        if not _is_word(token) and (not parts or parts[-1] in PUNCT):
            if parts and token in SENTENCE_END and parts[-1] in {",", ";", ":"}:
                parts[-1] = token  # ", ." -> "."
            continue  # leading or doubled punctuation
        parts.append(token)
    text = ""
    for part in parts:
        text += part if (not text or not _is_word(part)) else " " + part
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
            ends_phrase = _is_word(last or ".") and last not in FUNCTION_WORDS | _DANGLING
            if comma and ends_phrase and i < len(tokens) and _is_word(tokens[i]):
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
    tokens = _mark_edits(_pre_tokens(text))
    tokens = _apply_fixes(tokens)
    tokens = _pause_corrections(tokens)
    tokens = _remove_cutoffs(tokens)
    tokens = _drop_pause_commas(tokens)
    tokens = _remove_openers(tokens)
    tokens = _remove_repeats(tokens)
    tokens = _remove_repeated_sentences(tokens)
    return _capitalise(_join(tokens))
