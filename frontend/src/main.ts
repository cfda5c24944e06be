// Entry of the annotator UI, loaded by the pages as /static/assets/app.js (a module
// script; the CSP forbids inline scripts). Later pages (capture, points, AMA) hang
// their code off the `data-page` attribute of <body>.
import { apiFetch, readCookie } from "./csrf";
import "./capture";
import "./points";
import "./ama";
import "./admin/labelPrompts";
import "./admin/importProgress";
import "./admin/exports";
import "./review/captions";

export { apiFetch, readCookie };

/** Marks the document as scripted so CSS can hide no-JS fallbacks. */
export function start(root: HTMLElement = document.documentElement): void {
  root.dataset.js = "on";
}

start();
