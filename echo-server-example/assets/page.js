// Progressive enhancement for pages that opt in; every page works without it.
// A running experiment's page reloads itself every few seconds while the status element is
// present (the server stops rendering it once the experiment settles).
const live = document.getElementById("live");
if (live) {
  const secs = Number(live.dataset.refresh) || 3;
  setTimeout(() => {
    if (document.visibilityState === "visible") {
      window.location.reload();
    } else {
      document.addEventListener("visibilitychange", () => window.location.reload(), { once: true });
    }
  }, secs * 1000);
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
