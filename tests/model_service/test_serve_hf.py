"""`serve --hf-model`: a transformers image-text-to-text folder behind the same protocol.

Two tiny random models, built and saved here (no hub):
- a LLaVA folder (CLIP vision tower, Llama decoder, CLIP image processor, chat template),
  served by the real `python -m model_service.serve --hf-model` and asked with images:
  every answer must equal what transformers' own `generate` makes of the same prompt and
  image, alone, streamed, and when requests share a batch;
- Molmo2, which transformers 5 ships natively: its model decodes through the same backend
  exactly as its own `generate`. Its image processor needs torchvision, which has no CPU
  build on the package registries reachable here (PyPI's wheel is built against CUDA
  torch and does not load next to the CPU torch 2.13), so Molmo2 runs text-only in this
  test; the model_service Docker image installs torchvision for real Molmo2 folders.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from PIL import Image

from model_service.serve.engine import Engine
from model_service.serve.hf_backends import VisionBackend
from model_service.serve.server import ModelServer, ServeSettings
from tests.molmo_fixtures import draw_example, png_bytes, png_data_url, start_server, stop_server

WORDS = ["<eos>", "<unk>", "<image>", "user:", "assistant:"] + [f"w{i}" for i in range(60)]


def word_tokenizer(extra: dict[str, int], template: str) -> Any:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)} | extra
    model = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    specials = ["<image>", *extra]
    return PreTrainedTokenizerFast(
        tokenizer_object=model, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>",
        additional_special_tokens=specials, chat_template=template,
    )  # fmt: skip


TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {% for c in m.content %}"
    "{% if c.type == 'image' %}<image> {% else %}{{ c.text }} {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = word_tokenizer({}, TEMPLATE)
    images = CLIPImageProcessorPil(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
    )
    processor = LlavaProcessor(
        image_processor=images, tokenizer=tokenizer, chat_template=TEMPLATE, patch_size=14,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=28, patch_size=14, projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(WORDS), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        ),
        image_token_index=WORDS.index("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # larger weights: answers that differ from image to image
        for p in model.parameters():
            p.mul_(8.0)
    model.generation_config.eos_token_id = 0
    processor.save_pretrained(str(folder))
    model.save_pretrained(str(folder))
    return folder


def reference(folder: Path, image: Image.Image, question: str, max_tokens: int) -> str:
    """What transformers' own generate answers, greedy, with the image placeholder token
    suppressed (the server never emits it)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=[image], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_tokens, do_sample=False,
            suppress_tokens=[WORDS.index("<image>")],
        )  # fmt: skip
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    return str(processor.tokenizer.decode(new, skip_special_tokens=True))


@pytest.fixture(scope="module")
def llava_server(llava_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("llava") / "serve.log"
    args = [
        "--hf-model",
        str(llava_folder),
        "--name",
        "tiny-llava",
        "--device",
        "cpu",
        "--threads",
        "2",
    ]
    proc, base = start_server(args, log)
    try:
        yield f"{base}/v1"
    finally:
        stop_server(proc)


def ask(client: openai.OpenAI, image: Image.Image, question: str, **extra: Any) -> Any:
    content = [
        {"type": "image_url", "image_url": {"url": png_data_url(image)}},
        {"type": "text", "text": question},
    ]
    return client.chat.completions.create(
        model="tiny-llava", messages=[{"role": "user", "content": content}],
        temperature=0, max_tokens=12, **extra,
    )  # fmt: skip


@pytest.mark.slow  # builds transformers VLMs: 30-200 s on 2 loaded cores
def test_a_transformers_vlm_folder_answers_as_transformers_does(
    llava_folder: Path, llava_server: str
) -> None:
    client = openai.OpenAI(base_url=llava_server, api_key="unused", timeout=120, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-llava"]
    cases = [(draw_example("square"), "w1 w2 w3"), (draw_example("disc"), "w4 w5"),
             (Image.new("RGB", (50, 40), (0, 200, 0)), "w1 w2 w3")]  # fmt: skip
    # PNG round trip: the server decodes exactly these pixels.
    cases = [(Image.open(io.BytesIO(png_bytes(im))).convert("RGB"), q) for im, q in cases]
    want = [reference(llava_folder, image, q, 12) for image, q in cases]
    assert len(set(want)) > 1  # the image changes the answer
    with ThreadPoolExecutor(3) as pool:  # together, so they share batches
        got = list(pool.map(lambda c: ask(client, *c).choices[0].message.content, cases))
    assert got == want
    chunks = list(ask(client, *cases[0], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want[0]
    two_images = [
        {"type": "image_url", "image_url": {"url": png_data_url(image)}} for image, _ in cases[:2]
    ]
    with pytest.raises(openai.BadRequestError, match="at most 1 image"):
        client.chat.completions.create(
            model="tiny-llava", messages=[{"role": "user", "content": two_images}]
        )


def tiny_molmo2() -> tuple[Any, Any]:
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration

    image_words = {"<im_start>": 70, "<im_end>": 71, "<im_patch>": 72, "<low_res_im_start>": 73}
    config = Molmo2Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                       "image_size": [28, 28], "patch_size": 14},
        adapter_config={"vision_feature_layer": [-1], "hidden_size": 32, "num_attention_heads": 2,
                        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 64,
                        "text_hidden_size": 64},
        text_config={"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "head_dim": 16, "vocab_size": 80, "additional_vocab_size": 16,
                     "num_hidden_layers": 2, "intermediate_size": 128,
                     "max_position_embeddings": 512},
        image_start_token_id=70, image_end_token_id=71, image_patch_id=72,
        low_res_image_start_token_id=73, frame_start_token_id=74, frame_end_token_id=75,
    )  # fmt: skip
    torch.manual_seed(1)
    model = Molmo2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    model.generation_config.eos_token_id = 0
    return model, word_tokenizer(image_words, TEMPLATE)


@pytest.mark.slow  # builds transformers VLMs: 30-200 s on 2 loaded cores
def test_molmo2_decodes_through_the_backend_as_its_own_generate() -> None:
    model, tokenizer = tiny_molmo2()
    backend = VisionBackend(model, tokenizer)
    engine = Engine(backend).start()
    server = ModelServer(("127.0.0.1", 0), engine, backend, ServeSettings("tiny-molmo2", "hf-vlm"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="x", max_retries=0
    )
    questions = ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9 w10"]
    try:
        with ThreadPoolExecutor(3) as pool:
            got = list(pool.map(lambda q: client.chat.completions.create(
                model="tiny-molmo2", messages=[{"role": "user", "content": q}],
                temperature=0, max_tokens=10,
            ).choices[0].message.content, questions))  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        engine.close()
    for question, answer in zip(questions, got, strict=True):
        messages = [{"role": "user", "content": [{"type": "text", "text": question}]}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=10, do_sample=False)
        want = tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
        assert answer == want
    assert len(set(got)) > 1
