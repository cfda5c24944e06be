// The AMA page (PixMo-AskModelAnything): started when <body data-page="ama">.
// Markup: annotator_app/templates/ama/annotate.html.
import { AmaPage } from "./ama/page";

export function startAma(doc: Document = document): void {
  if (doc.body?.dataset.page !== "ama") {
    return;
  }
  const root = doc.querySelector<HTMLElement>("[data-ama]");
  if (root !== null) {
    new AmaPage(root).start();
  }
}

startAma();
