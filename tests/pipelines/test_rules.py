"""The rule-based clean, one disfluency kind at a time, and what it must leave alone."""

from __future__ import annotations

import pytest

from pipelines.repairs import kind_of
from pipelines.rules import rule_clean

CASES = {
    "fillers": [
        ("Um, there is a, uh, red car.", "There is a red car."),
        ("Erm there is a hmm red car", "There is a red car."),
        ("It has, you know, a red roof.", "It has a red roof."),
        ("I mean, it is a big dog.", "It is a big dog."),
        ("There are, like, three dogs.", "There are three dogs."),
        ("There are like three dogs.", "There are three dogs."),
        ("There's like a lot of people here.", "There's a lot of people here."),
        ("The dog is... brown.", "The dog is brown."),
    ],
    "openers": [
        ("Okay so, this is a kitchen. So the floor is tiled.", "This is a kitchen. The floor is tiled."),
        ("Um so yeah there's a lamp", "There's a lamp."),
        ("So many birds fly. So, it is loud.", "So many birds fly. It is loud."),
    ],
    "stutters": [
        ("Th- the dog is b- brown.", "The dog is brown."),
        ("The c-c-cat sleeps on the-the mat.", "The cat sleeps on the mat."),
        ("we see a- a tree and a- a bench", "We see a tree and a bench."),
    ],
    "false starts and restarts": [
        ("There is a- there are two dogs.", "There are two dogs."),
        ("It's a- it's a street at night.", "It's a street at night."),
        ("It's a... it's a street at night.", "It's a street at night."),
        ("On the table there's a, there are some oranges.", "On the table there are some oranges."),
        ("The boats are- the boats are white.", "The boats are white."),
        ("The kitchen has a- has a toaster.", "The kitchen has a toaster."),
    ],
    "immediate repetitions": [
        ("The the cat sat on the the mat.", "The cat sat on the mat."),
        ("In the in the corner, a lamp.", "In the corner, a lamp."),
        ("There is, there is a cup.", "There is a cup."),
        ("It's sort of a, sort of a greenish wall.", "It's sort of a greenish wall."),
    ],
    "repeated sentences": [
        ("The dog is brown. The dog is brown. It sleeps.", "The dog is brown. It sleeps."),
        ("It's a lake. Um, it's a lake.", "It's a lake."),
        ("A boy runs. A boy runs on the beach.", "A boy runs on the beach."),
    ],
    "self-corrections": [
        ("There are three, no wait, two cats.", "There are two cats."),
        ("there are three no wait two cats on the sofa", "There are two cats on the sofa."),
        ("A man holds a red, sorry, a blue umbrella.", "A man holds a blue umbrella."),
        ("The lamp is on the left, I mean on the right side.", "The lamp is on the right side."),
        ("It costs forty nine, I mean fifty nine dollars.", "It costs fifty nine dollars."),
        ("The door is green, er, blue.", "The door is blue."),
        ("About ten, uh, twelve birds sit there.", "About twelve birds sit there."),
        ("I see five or six, actually six people.", "I see six people."),
        ("It's a dog, no wait, it's a fox.", "It's a fox."),
        ("The cat is under the table, no wait, on the table.", "The cat is on the table."),
        ("A bottle of dish soap, I mean hand soap, and a sponge.", "A bottle of hand soap, and a sponge."),
        ("A blue car, no sorry, red.", "A red car."),
        ("He wears a black suit, er, a navy suit.", "He wears a navy suit."),
        ("It's a cat. Sorry, it's a dog.", "It's a dog."),
    ],
    "kept as said": [
        ("I think it's probably a bakery. Maybe it's early.", "I think it's probably a bakery. Maybe it's early."),
        ("There are maybe fifteen or twenty people.", "There are maybe fifteen or twenty people."),
        ("I see two, maybe three people.", "I see two, maybe three people."),
        ("It's a really, really old building.", "It's a really, really old building."),
        ("I think that that dog is old.", "I think that that dog is old."),
        ("It looks like a cat.", "It looks like a cat."),
        ("The cloud is like a horse.", "The cloud is like a horse."),
        ("There is no one in the room.", "There is no one in the room."),
        ("No, there are no cars on the road.", "No, there are no cars on the road."),
        ("It is actually a small house.", "It is actually a small house."),
        ("The sign says OPEN in 24 hour letters", "The sign says OPEN in 24 hour letters."),
        ("A five- or six-year-old boy in a black-and-white shirt.", "A five- or six-year-old boy in a black-and-white shirt."),
        ("The man on the left, I mean the one with the hat, smiles.", "The man on the left, the one with the hat, smiles."),
        ("The dog is brown. The cat is brown.", "The dog is brown. The cat is brown."),
        ("There's a big dog, uh, a big cat and a bird.", "There's a big dog, a big cat and a bird."),
        ("It is blue, sorry, I am not sure.", "It is blue, I am not sure."),
        ("It's a cat. Sorry, I can't see well.", "It's a cat. I can't see well."),
        ("The sky is orange, like at sunset.", "The sky is orange, like at sunset."),
    ],
    "tidying": [
        ("a red car ,, next to   a tree .", "A red car, next to a tree."),
        ("i see a dog. it is brown", "I see a dog. It is brown."),
        ("um uh", ""),
        ("", ""),
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("spoken", "cleaned"),
    [pytest.param(s, c, id=f"{kind}: {s[:40]}") for kind, pairs in CASES.items() for s, c in pairs],
)
def test_rule_clean(spoken: str, cleaned: str) -> None:
    assert rule_clean(spoken) == cleaned


def test_rules_are_deterministic_and_idempotent() -> None:
    text = "Um, there's a- there are three, no wait, two red cups. There are two red cups."
    once = rule_clean(text)
    assert once == "There are two red cups."
    assert rule_clean(once) == once == rule_clean(text)


def test_word_kinds() -> None:
    assert [kind_of(w) for w in ("Blue", "twelve", "7", "left", "huge", "sofa")] == [
        "colour",
        "number",
        "number",
        "position",
        "size",
        "",
    ]
