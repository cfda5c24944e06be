// Zoom and pan of the image: buttons, the mouse wheel, +/- keys and dragging. Only the
// CSSOM is touched (element.style), which the CSP allows; the markup has no styles.

const MIN_SCALE_FACTOR = 1; // never smaller than "fit"
const MAX_SCALE_FACTOR = 8;

export function setupZoom(root: HTMLElement): void {
  const viewport = root.querySelector<HTMLElement>("[data-zoom-viewport]");
  const image = root.querySelector<HTMLImageElement>("[data-zoom-target]");
  if (!viewport || !image) {
    return;
  }
  let fit = 1;
  let scale = 1;
  let x = 0;
  let y = 0;

  const apply = () => {
    image.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
  };
  const clamp = () => {
    const w = image.naturalWidth * scale;
    const h = image.naturalHeight * scale;
    const vw = viewport.clientWidth;
    const vh = viewport.clientHeight;
    x = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, x));
    y = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, y));
  };
  const reset = () => {
    if (!image.naturalWidth) {
      return;
    }
    fit = Math.min(viewport.clientWidth / image.naturalWidth, viewport.clientHeight / image.naturalHeight);
    scale = fit;
    clamp();
    apply();
  };
  // Zoom by `factor`, keeping the image point under (cx, cy) where it is.
  const zoomAt = (factor: number, cx: number, cy: number) => {
    const next = Math.min(fit * MAX_SCALE_FACTOR, Math.max(fit * MIN_SCALE_FACTOR, scale * factor));
    x = cx - ((cx - x) * next) / scale;
    y = cy - ((cy - y) * next) / scale;
    scale = next;
    clamp();
    apply();
  };
  const centre = (factor: number) => zoomAt(factor, viewport.clientWidth / 2, viewport.clientHeight / 2);

  if (image.complete) {
    reset();
  }
  image.addEventListener("load", reset);
  window.addEventListener("resize", reset);
  root.querySelector("[data-zoom='in']")?.addEventListener("click", () => centre(1.5));
  root.querySelector("[data-zoom='out']")?.addEventListener("click", () => centre(1 / 1.5));
  root.querySelector("[data-zoom='reset']")?.addEventListener("click", reset);
  viewport.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const box = viewport.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - box.left, event.clientY - box.top);
    },
    { passive: false },
  );
  viewport.addEventListener("keydown", (event) => {
    if (event.key === "+" || event.key === "=") {
      centre(1.5);
    } else if (event.key === "-") {
      centre(1 / 1.5);
    } else if (event.key === "0") {
      reset();
    }
  });
  let drag: { px: number; py: number; x: number; y: number } | null = null;
  viewport.addEventListener("pointerdown", (event) => {
    drag = { px: event.clientX, py: event.clientY, x, y };
    viewport.setPointerCapture(event.pointerId);
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", (event) => {
    if (drag) {
      x = drag.x + event.clientX - drag.px;
      y = drag.y + event.clientY - drag.py;
      clamp();
      apply();
    }
  });
  const end = () => {
    drag = null;
    viewport.classList.remove("dragging");
  };
  viewport.addEventListener("pointerup", end);
  viewport.addEventListener("pointercancel", end);
}
