"""Form pieces of the work admin: label prompts edited as a list, one row per prompt.

The widget renders one text input per prompt (all with the same name) plus blank rows,
so it works without JavaScript (fill a blank row to add, empty a row to remove); the
frontend bundle adds "Add a prompt" and "Remove" buttons (frontend/src/admin/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from annotator_app.work.services import LABEL_PROMPT_MAX_CHARS, LABEL_PROMPTS_MAX

BLANK_ROWS = 2


class LabelPromptsWidget(forms.Widget):
    template_name = "work/widgets/label_prompts.html"

    class Media:
        css = {"all": ["css/label-prompts.css"]}
        js = [forms.Script("assets/app.js", type="module")]

    def format_value(self, value: Any) -> list[str]:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        prompts = self.format_value(value)
        context["widget"]["rows"] = [*prompts, *([""] * BLANK_ROWS)]
        context["widget"]["max_chars"] = LABEL_PROMPT_MAX_CHARS
        return context

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> list[str]:
        getlist = getattr(data, "getlist", None)
        if getlist is not None:
            return [str(v) for v in getlist(name)]
        value = data.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        # An empty list is a value ("no prompts"), not an omission.
        return False


class LabelPromptsField(forms.Field):
    """A list of label prompts: rows trimmed, blank rows dropped, duplicates refused."""

    widget = LabelPromptsWidget

    def to_python(self, value: Any) -> list[str]:
        rows = value if isinstance(value, list) else ([] if value in (None, "") else [value])
        prompts = [" ".join(str(row).split()) for row in rows]
        return [p for p in prompts if p]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > LABEL_PROMPTS_MAX:
            raise ValidationError(f"At most {LABEL_PROMPTS_MAX} label prompts.")
        seen: set[str] = set()
        for prompt in value:
            if len(prompt) > LABEL_PROMPT_MAX_CHARS:
                raise ValidationError(
                    f"{prompt[:40]!r}…: at most {LABEL_PROMPT_MAX_CHARS} characters per prompt."
                )
            if prompt.casefold() in seen:
                raise ValidationError(f"{prompt!r} is listed twice.")
            seen.add(prompt.casefold())
