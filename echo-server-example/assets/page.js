// Progressive enhancement for pages that opt in; every page works without it.
// A running experiment's page follows its progress live over the SSE route (same origin, the
// session cookie authenticates it) and reloads once when the run ends, so the numbers appear.
// Where EventSource is missing or the stream is refused, it falls back to reloading every few
// seconds while the status element is present (the server stops rendering it once settled).
const live = document.getElementById("live");
if (live) {
  const secs = Number(live.dataset.refresh) || 3;
  const reloadLater = () => {
    setTimeout(() => {
      if (document.visibilityState === "visible") {
        window.location.reload();
      } else {
        document.addEventListener("visibilitychange", () => window.location.reload(), { once: true });
      }
    }, secs * 1000);
  };
  if (live.dataset.events && "EventSource" in window) {
    const status = live.querySelector("[data-live-status]");
    const list = live.querySelector("[data-live-progress]");
    const runs = new Map();
    const source = new EventSource(live.dataset.events);
    let settled = false;
    source.addEventListener("progress", (event) => {
      const p = JSON.parse(event.data);
      runs.set(p.run_id, p);
      const done = [...runs.values()].reduce((n, r) => n + r.completed, 0);
      const total = [...runs.values()].reduce((n, r) => n + r.total, 0);
      if (status) status.textContent = p.status === "pending" ? "queued" : "running";
      if (list) {
        list.textContent = ` ${done} of ${total} answers: ` +
          [...runs.values()].map((r) => `${r.provider} ${r.completed}/${r.total} (${r.status})`).join(", ");
        list.dataset.done = String(done);
        list.dataset.total = String(total);
      }
    });
    source.addEventListener("done", (event) => {
      settled = true;
      source.close();
      const d = JSON.parse(event.data);
      if (status) status.textContent = d.status;
      window.location.reload();
    });
    source.addEventListener("error", (event) => {
      // A server `error` event (the experiment was deleted) or a refused or dropped stream:
      // stop the automatic reconnects and fall back to the plain reload.
      if (settled) return;
      settled = true;
      source.close();
      if (event.data && status) status.textContent = "no longer available";
      reloadLater();
    });
  } else {
    reloadLater();
  }
}

// Copy buttons: `<button data-copy="ID">` copies the value of the element with that id.
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById("copy-status");
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
      if (status) status.textContent = "Copied to the clipboard.";
    } catch {
      field.select();
      if (status) status.textContent = "Select the key and copy it with your keyboard.";
    }
  });
}
