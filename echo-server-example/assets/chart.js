// Charts, enhanced: the server draws every chart as SVG with a table beside it, so this module
// only adds. Hovering or focusing a point or bar reads its value, interval and n aloud in the
// chart's readout line, and legend entries become toggle buttons that hide or show a series.
for (const figure of document.querySelectorAll("[data-chart]")) {
  const readout = figure.querySelector("[data-tip]");
  const marks = figure.querySelectorAll("svg .pt, svg .bar");
  for (const mark of marks) {
    const title = mark.querySelector("title");
    if (!title) continue;
    const text = title.textContent;
    // Keyboard users reach every mark with Tab; the label is its accessible name.
    mark.setAttribute("tabindex", "0");
    mark.setAttribute("role", "img");
    mark.setAttribute("aria-label", text);
    const show = () => {
      if (readout) readout.textContent = text;
      mark.classList.add("is-active");
    };
    const hide = () => mark.classList.remove("is-active");
    mark.addEventListener("mouseenter", show);
    mark.addEventListener("focus", show);
    mark.addEventListener("mouseleave", hide);
    mark.addEventListener("blur", hide);
  }

  const legend = figure.querySelector("[data-legend]");
  if (!legend) continue;
  for (const item of legend.querySelectorAll("li[data-series]")) {
    const name = item.dataset.series;
    const series = figure.querySelector(`svg .series[data-series="${CSS.escape(name)}"]`);
    if (!series) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "legend-toggle";
    button.setAttribute("aria-pressed", "true");
    button.append(...item.childNodes);
    button.addEventListener("click", () => {
      const on = button.getAttribute("aria-pressed") !== "true";
      button.setAttribute("aria-pressed", String(on));
      series.classList.toggle("is-off", !on);
      if (readout) readout.textContent = `${name} ${on ? "shown" : "hidden"}`;
    });
    item.append(button);
  }
}
