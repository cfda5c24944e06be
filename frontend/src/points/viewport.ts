// The image of the points page: zoom and pan (buttons, wheel, +/-/0, dragging, two-finger
// pinch), and the mapping between screen positions and image percent, which every marker
// and every tap goes through. Pointer Events only, so mouse, pen and touch behave alike.
// Only the CSSOM is touched (element.style), which the CSP allows.
import type { Point } from "./model";

const MAX_ZOOM = 16; // times the "fit" scale
const TAP_SLOP_PX = { mouse: 5, pen: 8, touch: 12 } as const;

export interface ViewportEvents {
  /** A tap or click on the image (not on a marker), in image percent. */
  tap(point: Point): void;
  /** The pressed marker moved to `point` (first call: the drag starts). */
  markerDrag(marker: HTMLElement, point: Point, first: boolean): void;
  /** The dragged marker was let go. */
  markerDrop(marker: HTMLElement): void;
  /** The pressed marker was released without moving: a tap on it. */
  markerTap(marker: HTMLElement): void;
  /** The view moved or zoomed: markers need new screen positions. */
  moved(): void;
}

interface Press {
  id: number;
  kind: keyof typeof TAP_SLOP_PX;
  startX: number;
  startY: number;
  tx: number;
  ty: number;
  marker: HTMLElement | null;
  moved: boolean;
}

export class Viewport {
  private fit = 1;
  private scale = 1;
  private tx = 0;
  private ty = 0;
  private press: Press | null = null;
  private readonly pointers = new Map<number, { x: number; y: number }>();
  private pinch: { distance: number; scale: number } | null = null;

  constructor(
    readonly element: HTMLElement,
    private readonly image: HTMLImageElement,
    private readonly events: ViewportEvents,
  ) {
    if (image.complete && image.naturalWidth) {
      this.reset();
    }
    image.addEventListener("load", () => this.reset());
    window.addEventListener("resize", () => this.reset());
    element.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    element.addEventListener("pointerdown", (event) => this.onDown(event));
    element.addEventListener("pointermove", (event) => this.onMove(event));
    element.addEventListener("pointerup", (event) => this.onUp(event));
    element.addEventListener("pointercancel", (event) => this.onCancel(event));
    // The page scrolls around the image, never with a finger on it (CSS: touch-action).
    element.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  private get width(): number {
    return this.image.naturalWidth || this.image.width || 1;
  }

  private get height(): number {
    return this.image.naturalHeight || this.image.height || 1;
  }

  /** Zoom relative to "fit", for display. */
  get zoom(): number {
    return this.scale / this.fit;
  }

  reset(): void {
    const box = this.element;
    this.fit = Math.min(box.clientWidth / this.width, box.clientHeight / this.height) || 1;
    this.scale = this.fit;
    this.apply();
  }

  /** Image percent of a point on the screen (client coordinates). */
  toImage(clientX: number, clientY: number): Point {
    const box = this.element.getBoundingClientRect();
    const vx = clientX - box.left - this.element.clientLeft;
    const vy = clientY - box.top - this.element.clientTop;
    return {
      x: (((vx - this.tx) / this.scale) * 100) / this.width,
      y: (((vy - this.ty) / this.scale) * 100) / this.height,
    };
  }

  /** Position inside the viewport (CSS pixels) of an image point given in percent. */
  toView(point: Point): { left: number; top: number } {
    return {
      left: this.tx + ((point.x / 100) * this.width) * this.scale,
      top: this.ty + ((point.y / 100) * this.height) * this.scale,
    };
  }

  zoomBy(factor: number, at?: { x: number; y: number }): void {
    const cx = at?.x ?? this.element.clientWidth / 2;
    const cy = at?.y ?? this.element.clientHeight / 2;
    const next = Math.min(this.fit * MAX_ZOOM, Math.max(this.fit, this.scale * factor));
    this.tx = cx - ((cx - this.tx) * next) / this.scale;
    this.ty = cy - ((cy - this.ty) * next) / this.scale;
    this.scale = next;
    this.apply();
  }

  /** Pan so the image point is visible (it is centred when it was outside the view). */
  reveal(point: Point): void {
    const { left, top } = this.toView(point);
    const w = this.element.clientWidth;
    const h = this.element.clientHeight;
    if (left < 0 || top < 0 || left > w || top > h) {
      this.tx += w / 2 - left;
      this.ty += h / 2 - top;
      this.apply();
    }
  }

  private clamp(): void {
    const w = this.width * this.scale;
    const h = this.height * this.scale;
    const vw = this.element.clientWidth;
    const vh = this.element.clientHeight;
    this.tx = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, this.tx));
    this.ty = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, this.ty));
  }

  private apply(): void {
    this.clamp();
    this.image.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.events.moved();
  }

  private local(event: PointerEvent | WheelEvent): { x: number; y: number } {
    const box = this.element.getBoundingClientRect();
    return { x: event.clientX - box.left - this.element.clientLeft, y: event.clientY - box.top - this.element.clientTop };
  }

  private onWheel(event: WheelEvent): void {
    event.preventDefault();
    this.zoomBy(event.deltaY < 0 ? 1.2 : 1 / 1.2, this.local(event));
  }

  private onDown(event: PointerEvent): void {
    if (event.pointerType === "mouse" && event.button !== 0) {
      return;
    }
    this.pointers.set(event.pointerId, this.local(event));
    this.element.setPointerCapture(event.pointerId);
    if (this.pointers.size === 2) {
      // A second finger: pinch to zoom; the first finger's press is no tap any more.
      const [a, b] = [...this.pointers.values()];
      this.pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, scale: this.scale };
      this.press = null;
      return;
    }
    const marker = (event.target as HTMLElement).closest<HTMLElement>("[data-marker]");
    const kind = (event.pointerType in TAP_SLOP_PX ? event.pointerType : "mouse") as Press["kind"];
    this.press = {
      id: event.pointerId,
      kind,
      startX: event.clientX,
      startY: event.clientY,
      tx: this.tx,
      ty: this.ty,
      marker,
      moved: false,
    };
    this.element.focus({ preventScroll: true });
  }

  private onMove(event: PointerEvent): void {
    if (!this.pointers.has(event.pointerId)) {
      return;
    }
    const previous = this.pointers.get(event.pointerId);
    const now = this.local(event);
    this.pointers.set(event.pointerId, now);
    if (this.pinch && this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      if (previous) {
        // Move with the fingers' midpoint, then zoom around it.
        this.tx += (now.x - previous.x) / 2;
        this.ty += (now.y - previous.y) / 2;
      }
      const target = (this.pinch.scale * Math.hypot(a.x - b.x, a.y - b.y)) / this.pinch.distance;
      this.zoomBy(target / this.scale, mid);
      return;
    }
    const press = this.press;
    if (press === null || press.id !== event.pointerId) {
      return;
    }
    const dx = event.clientX - press.startX;
    const dy = event.clientY - press.startY;
    if (!press.moved && Math.hypot(dx, dy) < TAP_SLOP_PX[press.kind]) {
      return;
    }
    const first = !press.moved;
    press.moved = true;
    if (press.marker) {
      this.events.markerDrag(press.marker, this.toImage(event.clientX, event.clientY), first);
    } else {
      this.element.classList.add("dragging");
      this.tx = press.tx + dx;
      this.ty = press.ty + dy;
      this.apply();
    }
  }

  private onUp(event: PointerEvent): void {
    this.pointers.delete(event.pointerId);
    if (this.pinch) {
      if (this.pointers.size === 0) {
        this.pinch = null;
      }
      return;
    }
    const press = this.press;
    this.press = null;
    this.element.classList.remove("dragging");
    if (press === null || press.id !== event.pointerId) {
      return;
    }
    if (press.moved) {
      if (press.marker) {
        this.events.markerDrop(press.marker);
      }
      return;
    }
    if (press.marker) {
      this.events.markerTap(press.marker);
      return;
    }
    const point = this.toImage(event.clientX, event.clientY);
    if (point.x >= 0 && point.x <= 100 && point.y >= 0 && point.y <= 100) {
      this.events.tap(point);
    }
  }

  private onCancel(event: PointerEvent): void {
    this.pointers.delete(event.pointerId);
    if (this.pointers.size === 0) {
      this.pinch = null;
    }
    const press = this.press;
    this.press = null;
    this.element.classList.remove("dragging");
    if (press?.marker && press.moved) {
      this.events.markerDrop(press.marker);
    }
  }
}
