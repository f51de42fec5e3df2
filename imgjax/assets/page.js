// imgjax studio, in the browser: checks and repairs that run before and beside Gradio's own code.
(() => {
  const MAX_BYTES = 10 * 1024 * 1024;  // user_input.MAX_FILE_BYTES
  const MAX_PIXELS = 25e6;  // user_input.MAX_PIXELS

  // One message line at the top of the page for files refused here (role=alert: read out at once).
  function show(message) {
    let box = document.getElementById("imgjax-alert");
    if (!box) {
      box = document.createElement("div");
      box.id = "imgjax-alert";
      box.setAttribute("role", "alert");
      box.addEventListener("click", () => show(""));
      document.body.prepend(box);
    }
    box.textContent = message ? `⚠️ ${message} (click to close)` : "";
    box.hidden = !message;
  }

  // Why a chosen file cannot be sent, or null. Too large a file makes the server answer 413, which
  // Gradio's upload does not catch (the page then spins for good); too many pixels makes the image
  // editor export a huge canvas first.
  async function problem(file) {
    if (file.size > MAX_BYTES) return "That file is larger than 10 MB: send a smaller one (PNG or JPEG).";
    if (!file.type.startsWith("image/")) return null;  // the server says what is wrong with it
    const url = URL.createObjectURL(file);
    try {
      const image = new Image();
      const loaded = new Promise((resolve) => { image.onload = image.onerror = resolve; });
      image.src = url;
      await loaded;
      const [width, height] = [image.naturalWidth, image.naturalHeight];
      if (width * height > MAX_PIXELS) {
        return `That image is too large (${width}x${height} pixels): at most 25 megapixels. Downscale it first.`;
      }
    } finally {
      URL.revokeObjectURL(url);
    }
    return null;
  }

  // Chosen, dropped and pasted files are held in the capture phase, checked, then passed on to Gradio;
  // a refused file is dropped with its message.
  const checked = new WeakSet();
  async function hold(event, files, passOn, refuse) {
    if (checked.has(event) || !files || !files.length) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    for (const file of files) {
      const reason = await problem(file);
      if (reason) return refuse(reason);
    }
    show("");
    passOn();
  }
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
    hold(event, input.files, () => {
      const again = new Event("change", { bubbles: true });
      checked.add(again);
      input.dispatchEvent(again);
    }, (reason) => { input.value = ""; show(reason); });
  }, true);
  // Dropped and pasted files: checked, then sent on in a new event carrying the same files.
  function refire(event, files, makeEvent) {
    hold(event, files, () => {
      const transfer = new DataTransfer();
      for (const file of files) transfer.items.add(file);
      const again = makeEvent(transfer);
      checked.add(again);
      event.target.dispatchEvent(again);
    }, show);
  }
  const init = { bubbles: true, cancelable: true };
  document.addEventListener("drop", (event) => refire(event, event.dataTransfer?.files,
    (transfer) => new DragEvent("drop", { ...init, dataTransfer: transfer })), true);
  document.addEventListener("paste", (event) => refire(event, event.clipboardData?.files,
    (transfer) => new ClipboardEvent("paste", { ...init, clipboardData: transfer })), true);
  // The upload's clipboard button reads the clipboard itself: a refused image fails the read.
  if (navigator.clipboard?.read) {
    const read = navigator.clipboard.read.bind(navigator.clipboard);
    navigator.clipboard.read = async () => {
      const items = await read();
      for (const item of items) {
        for (const type of item.types.filter((t) => t.startsWith("image/"))) {
          const reason = await problem(new File([await item.getType(type)], "pasted", { type }));
          if (reason) {
            show(reason);
            throw new DOMException(reason, "NotAllowedError");
          }
        }
      }
      show("");
      return items;
    };
  }

  // Names for controls Gradio leaves unnamed, and markup axe-core flags (WCAG 2.1 AA).
  function repair() {
    for (const item of document.querySelectorAll(".gallery-item:not([aria-label])")) {
      const name = (item.querySelector("img")?.getAttribute("src") || "").match(/example_\d+_([a-z-]+)\.png/);
      if (name) item.setAttribute("aria-label", `Example: ${name[1].replace(/-/g, " ")}`);
    }
    for (const meter of document.querySelectorAll("meter[aria-valuenow]")) {
      for (const name of ["aria-valuemin", "aria-valuemax", "aria-valuenow"]) meter.removeAttribute(name);
    }
    for (const icon of document.querySelectorAll("svg[id='icon']")) icon.removeAttribute("id");
    for (const button of document.querySelectorAll(".image-container > button:not([aria-label])")) {
      const label = button.closest(".block")?.querySelector("[data-testid='block-label']")?.textContent?.trim();
      button.setAttribute("aria-label", `Enlarge: ${label || "image"}`);
    }
  }
  // The sketchpad opens ready to draw and stays so after Clear, as does Denoise's image once "Brush
  // mask" is chosen: the brush is picked whenever no tool is.
  function brushReady(id) {
    const editor = document.getElementById(id);
    if (!editor || !editor.offsetParent) return;  // not on screen
    const tools = [...editor.querySelectorAll("button")]
      .filter((b) => ["Brush", "Erase", "Pan"].includes(b.getAttribute("aria-label")));
    if (tools.length && !tools.some((b) => b.classList.contains("highlight"))) {
      tools.find((b) => b.getAttribute("aria-label") === "Brush")?.click();
    }
  }
  function brushesReady() {
    brushReady("sketch");
    if (document.querySelector("input[type=radio][value='Brush mask']")?.checked) brushReady("denoise-input");
  }
  document.addEventListener("click", () => setTimeout(brushesReady, 50));

  new MutationObserver(() => { repair(); brushesReady(); })
    .observe(document.documentElement, { subtree: true, childList: true });
})();
