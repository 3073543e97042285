// history_store viewer: small conveniences on top of pages that work without script.
"use strict";

function openTarget() {
  // A link to #item-N inside a collapsed tool call opens the call, so the item shows.
  const id = decodeURIComponent(window.location.hash.slice(1));
  const target = id ? document.getElementById(id) : null;
  if (!target) return;
  for (let node = target; node; node = node.parentElement) {
    if (node.tagName === "DETAILS") node.open = true;
  }
  target.classList.add("targeted");
  target.scrollIntoView({ block: "center" });
}

function setAll(open) {
  for (const details of document.querySelectorAll("details.item")) details.open = open;
}

document.addEventListener("DOMContentLoaded", () => {
  const expand = document.querySelector("button.expand-all");
  const collapse = document.querySelector("button.collapse-all");
  if (expand && collapse) {
    expand.hidden = false;
    collapse.hidden = false;
    expand.addEventListener("click", () => setAll(true));
    collapse.addEventListener("click", () => setAll(false));
  }
  openTarget();
});
window.addEventListener("hashchange", openTarget);
