// The points page (PixMo-Points): started when <body data-page="points">.
// Markup: annotator_app/templates/points/annotate.html.
import { PointsPage } from "./points/page";

export function startPoints(doc: Document = document): void {
  if (doc.body?.dataset.page !== "points") {
    return;
  }
  const root = doc.querySelector<HTMLElement>("[data-points]");
  if (root !== null) {
    new PointsPage(root).start();
  }
}

startPoints();
