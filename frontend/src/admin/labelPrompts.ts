// The Django admin's label-prompt list (annotator_app/work/forms.py): "Add a prompt"
// appends an empty row, "Remove" drops one. The rows are plain inputs sharing one name,
// so the form posts the same way with or without this script.

function renumber(list: HTMLElement): void {
  list.querySelectorAll<HTMLElement>("[data-label-prompts-row]").forEach((row, index) => {
    row.querySelector("input")?.setAttribute("aria-label", `Label prompt ${index + 1}`);
    row
      .querySelector("[data-label-prompts-remove]")
      ?.setAttribute("aria-label", `Remove label prompt ${index + 1}`);
  });
}

function setup(root: HTMLElement): void {
  const list = root.querySelector<HTMLElement>("[data-label-prompts-list]");
  const add = root.querySelector<HTMLButtonElement>("[data-label-prompts-add]");
  const template = list?.querySelector<HTMLElement>("[data-label-prompts-row]");
  if (!list || !add || !template) {
    return;
  }
  const blank = template.cloneNode(true) as HTMLElement;
  const blankInput = blank.querySelector("input");
  if (blankInput) {
    blankInput.value = "";
    blankInput.setAttribute("value", "");
  }
  list.addEventListener("click", (event) => {
    const button = (event.target as HTMLElement).closest("[data-label-prompts-remove]");
    const row = button?.closest<HTMLElement>("[data-label-prompts-row]");
    if (!row) {
      return;
    }
    const rows = list.querySelectorAll("[data-label-prompts-row]");
    if (rows.length > 1) {
      const next = row.nextElementSibling ?? row.previousElementSibling;
      row.remove();
      next?.querySelector("input")?.focus();
    } else {
      const input = row.querySelector("input");
      if (input) {
        input.value = "";
        input.focus();
      }
    }
    renumber(list);
  });
  add.addEventListener("click", () => {
    const row = blank.cloneNode(true) as HTMLElement;
    list.append(row);
    renumber(list);
    row.querySelector("input")?.focus();
  });
  // Enter in a row adds the next one instead of submitting the whole admin form.
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.target as HTMLElement).matches("input")) {
      event.preventDefault();
      add.click();
    }
  });
}

export function startLabelPrompts(doc: Document = document): void {
  doc.querySelectorAll<HTMLElement>("[data-label-prompts]").forEach(setup);
}

startLabelPrompts();
