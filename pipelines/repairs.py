"""Self-corrections in speech, for the rule-based clean (pipelines.rules).

A speech repair has a regular shape (Shriberg's reparandum - interregnum - repair): the
speaker says something, signals a break (a pause filler "er", or an editing phrase "no
wait", "sorry", "I mean", "actually"), then says what they meant. `mark_edits` turns the
editing phrases into marks, `apply_fixes` replaces each reparandum by its repair (see
`reparandum_start` for where it begins) unless the phrase after the mark adds a detail
rather than replacing one, and `pause_corrections` treats a pause between two words of
one kind, or between parallel phrases, as a correction too. Also the token helpers both
modules share. No Django here.
"""

from __future__ import annotations

from pipelines import text_checks

PAUSE = "<pause>"  # a filler or a cut marker: the speaker stopped here
FIX = "<fix>"  # "no wait", "no", "wait": what follows replaces what came before
FIX_SOFT = "<fix~>"  # "sorry", "actually", "rather": the same, but never a whole clause
FIX_WEAK = "<fix?>"  # "I mean": a correction when the repair is parallel, else a gloss
FIX_BACK = "<fix.>"  # a sentence opening with "Sorry," takes back the one before, if parallel
FIXES = (FIX, FIX_SOFT, FIX_WEAK, FIX_BACK)
SENTENCE_END = {".", "!", "?"}
PUNCT = {".", ",", "!", "?", ";", ":"}

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


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD_KINDS: dict[str, frozenset[str]] = {
    "colour": word_set(
        """red orange yellow green blue purple violet pink brown black white grey gray beige
        navy turquoise teal gold golden silver maroon cream tan crimson"""
    ),
    "position": word_set(
        """left right top bottom middle centre center front back behind above below under
        underneath beneath over on in inside outside near beside next between across
        towards toward away into onto up down upstairs downstairs foreground background
        north south east west"""
    ),
    "size": word_set("big small large little tiny huge tall short long wide narrow"),
    "number": text_checks.NUMBER_WORDS | word_set("a an one half quarter"),
}
# A repair that opens a new clause restarts the whole clause.
_CLAUSE_OPENERS = word_set(
    """it it's its he he's she she's they they're there there's here here's this that's
    these those i i'm we we're you"""
)
ARTICLES = word_set("a an the")

REPAIR_WINDOW = 10  # words back from a correction mark


def is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "'"


def base(token: str) -> str:
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


# --- editing phrases ---------------------------------------------------------------------


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


def mark_edits(tokens: list[str]) -> list[str]:
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


# --- where a repair begins, and applying it ------------------------------------------------


def _clause_start(tokens: list[str], end: int) -> int:
    k = end
    while k > 0 and tokens[k - 1] not in SENTENCE_END and tokens[k - 1] not in {",", ";"}:
        k -= 1
    return k


def words_before(tokens: list[str], end: int, limit: int) -> list[int]:
    """Indices of up to `limit` words before `end` in the same sentence, nearest last."""
    found: list[int] = []
    k = end - 1
    while k >= 0 and len(found) < limit and tokens[k] not in SENTENCE_END:
        if is_word(tokens[k]):
            found.append(k)
        k -= 1
    return found[::-1]


def words_after(tokens: list[str], start: int, limit: int) -> list[int]:
    found: list[int] = []
    k = start
    while k < len(tokens) and len(found) < limit and tokens[k] not in SENTENCE_END:
        if is_word(tokens[k]):
            found.append(k)
        k += 1
    return found


def _widen_alternatives(tokens: list[str], start: int) -> int:
    """Include "five or" in "five or six" and the whole of "forty nine"."""
    kind = kind_of(tokens[start])
    while True:
        before = words_before(tokens, start, 2)
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


def reparandum_start(tokens: list[str], mark: int) -> tuple[int, str] | None:
    """Where the words replaced by the repair after `mark` begin, and which rule found
    it (None: no words on one side)."""
    left = words_before(tokens, mark, REPAIR_WINDOW)
    right = words_after(tokens, mark + 1, 4)
    if not left or not right:
        return None
    first = base(tokens[right[0]])
    for k in reversed(left):  # the repair starts with a word said just before
        if base(tokens[k]) == first:
            return _widen_alternatives(tokens, k), "word"
    kind = kind_of(tokens[right[0]])
    if kind:
        for k in reversed(left):
            if kind_of(tokens[k]) == kind and tokens[k].lower() not in ARTICLES:
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
        n += is_word(token)
    return n


def _parallel(tokens: list[str], start: int, mark: int) -> bool:
    """Whether the repair restates the reparandum with a word of the same kind swapped
    ("on the left, I mean on the right side")."""
    before = [t for t in tokens[start:mark] if is_word(t)]
    after = [tokens[k] for k in words_after(tokens, mark + 1, len(before))]
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
        replaced = sum(is_word(t) for t in tokens[start:mark])
        too_long = _phrase_length(tokens, mark + 1) > replaced + 2
        return too_long and not _parallel(tokens, start, mark)
    return False


def apply_fixes(tokens: list[str]) -> list[str]:
    while any(m in tokens for m in FIXES):
        mark = min(tokens.index(m) for m in FIXES if m in tokens)
        found = reparandum_start(tokens, mark)
        if found is None:
            tokens = tokens[:mark] + tokens[mark + 1 :]
            continue
        start, rule = found
        repair = _phrase_length(tokens, mark + 1)
        replaced = sum(is_word(t) for t in tokens[start:mark])
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


def pause_corrections(tokens: list[str]) -> list[str]:
    """A pause between two words of one kind ("ten, er, twelve") or between parallel
    phrases ("a black suit, er, a navy suit") marks a correction."""
    i = 0
    while i < len(tokens):
        if tokens[i] != PAUSE:
            i += 1
            continue
        left = words_before(tokens, i, 4)
        right = words_after(tokens, i + 1, 4)
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
