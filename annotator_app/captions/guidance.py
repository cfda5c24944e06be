"""What the capture page asks annotators to talk about (PixMo-Cap's seven questions)."""

GUIDING_QUESTIONS: tuple[str, ...] = (
    "What is the image at first glance?",
    "What are the objects and their counts?",
    "What does the text say?",
    "What are the positions of the objects?",
    "What subtle details are noticeable?",
    "What is in the background?",
    "What is the style and color?",
)
