"""CapQA validation: JSON shape, support by the caption, loops, duplicates, multi-turn."""

from __future__ import annotations

import json
import random

from pipelines import capqa
from pipelines.llm import LLMClient
from tests.llm_fixtures import reply

CAPTION = (
    "A red bicycle leans against a brick wall. Three yellow flowers grow in a blue pot on "
    "the left. Above the door a wooden sign says open."
)
SINGLE = capqa.Variation(topic="colours", style="short", multi_turn=False)
CHAT = capqa.Variation(topic="colours", style="short", multi_turn=True)


def pairs_json(*pairs: tuple[str, str]) -> str:
    return json.dumps({"pairs": [{"question": q, "answer": a} for q, a in pairs]})


def test_valid_pairs_are_kept_and_each_failure_has_its_reason() -> None:
    text = pairs_json(
        ("What colour is the bicycle?", "The bicycle is red."),
        ("How many flowers are there?", "Three yellow flowers."),
        ("", "A blue pot."),
        ("What is in the pot?", ""),
        ("What brand is the bicycle?", "It is a Peugeot racing bicycle."),
        ("What colour is the bicycle?", "Red."),
        ("What grows?", "flowers flowers flowers flowers flowers flowers"),
    )
    outcome = capqa.validate(text, CAPTION, SINGLE)
    assert [(i.question, i.answer) for i in outcome.items] == [
        ("What colour is the bicycle?", "The bicycle is red."),
        ("How many flowers are there?", "Three yellow flowers."),
    ]
    reasons = [r.reason for r in outcome.rejections]
    assert reasons == [
        capqa.REJECT_EMPTY_QUESTION,
        capqa.REJECT_EMPTY_ANSWER,
        capqa.REJECT_UNSUPPORTED,
        capqa.REJECT_DUPLICATE,
        capqa.REJECT_LOOP,
    ]
    assert "peugeot" in outcome.rejections[2].detail and "racing" in outcome.rejections[2].detail


def test_questions_already_stored_for_the_image_are_duplicates() -> None:
    seen = {capqa.question_key("what COLOUR is the bicycle")}
    outcome = capqa.validate(
        pairs_json(("What colour is the bicycle?", "Red.")), CAPTION, SINGLE, seen_questions=seen
    )
    assert outcome.items == [] and outcome.rejections[0].reason == capqa.REJECT_DUPLICATE


def test_replies_that_are_not_json_are_rejected_and_fenced_json_is_read() -> None:
    assert capqa.validate("Sure! Here are some questions.", CAPTION, SINGLE).rejections[
        0
    ].reason == (capqa.REJECT_NOT_JSON)
    fenced = "Here you go:\n```json\n" + pairs_json(("What does the sign say?", "Open.")) + "\n```"
    assert [i.answer for i in capqa.validate(fenced, CAPTION, SINGLE).items] == ["Open."]
    bare_list = json.dumps([{"question": "Where is the pot?", "answer": "On the left."}])
    assert len(capqa.validate(bare_list, CAPTION, SINGLE).items) == 1
    assert (
        capqa.validate('{"pairs": []}', CAPTION, SINGLE).rejections[0].reason
        == capqa.REJECT_NO_PAIRS
    )


def test_a_conversation_becomes_one_item_with_user_and_assistant_markers() -> None:
    text = pairs_json(
        ("What leans against the wall?", "A red bicycle."),
        ("What is above the door?", "A wooden sign."),
        ("What does it say?", "Open."),
    )
    (item,) = capqa.validate(text, CAPTION, CHAT).items
    assert item.multi_turn and item.answer == "Open."
    assert item.question == (
        "[USER] What leans against the wall? [ASSISTANT] A red bicycle. "
        "[USER] What is above the door? [ASSISTANT] A wooden sign. [USER] What does it say?"
    )


def test_variations_come_from_the_configured_lists_and_the_seed() -> None:
    topics, styles = ["t1", "t2", "t3"], ["s1", "s2"]
    first = [capqa.pick_variation(random.Random(7), topics, styles, 0.5) for _ in range(3)]
    again = [capqa.pick_variation(random.Random(7), topics, styles, 0.5) for _ in range(3)]
    assert first == again
    many = [capqa.pick_variation(random.Random(i), topics, styles, 0.5) for i in range(60)]
    assert {v.topic for v in many} == set(topics) and {v.style for v in many} == set(styles)
    assert {v.multi_turn for v in many} == {True, False}
    messages = capqa.build_messages(CAPTION, many[0], pairs=2)
    assert many[0].topic in messages[-1]["content"] and many[0].style in messages[-1]["content"]
    assert CAPTION.strip() in messages[-1]["content"] and messages[-2]["role"] == "assistant"


def test_generate_asks_the_llm_and_validates_its_reply(fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.push(reply(pairs_json(("What colour is the pot?", "The pot is blue."))))
    client = LLMClient(fake_llm.url, "test", "fake-llm", 2.0, max_retries=0)
    outcome = capqa.generate(client, CAPTION, SINGLE, pairs=1)
    assert [i.answer for i in outcome.items] == ["The pot is blue."]
    assert outcome.model_name == "fake-llm"
    assert json.dumps(CAPTION) in fake_llm.requests[0]["messages"][-1]["content"]
