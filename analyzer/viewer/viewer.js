"use strict";
// The wan-attention viewer. Every text from the store goes in through textContent, never as markup.
(function () {
  const MEAN = "mean";
  const $ = (id) => document.getElementById(id);
  const boot = JSON.parse($("viewer-data").textContent);
  window.__drawCount = 0;
  window.__lastDrawMs = null;
  window.__errors = [];

  // ---- data sources: everything inline, or fetched from the local server ----
  function b64bytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function decodeSlice(raw) {
    return { scales: raw.scales, maps: raw.maps.map(b64bytes), winners: new Uint16Array(b64bytes(raw.winners).buffer) };
  }
  function inlineSource(data) {
    const cache = new Map();
    return {
      meta: data.meta,
      has(branch, step, layer) { return (branch + "|" + step + "|" + layer) in data.slices; },
      slice(branch, step, layer) {
        const key = branch + "|" + step + "|" + layer;
        if (!cache.has(key)) {
          const raw = data.slices[key];
          cache.set(key, raw ? decodeSlice(raw) : null);
        }
        return Promise.resolve(cache.get(key));
      },
      frameUrl(i) { return data.frames[i] || null; },
      shares(branch) { return Promise.resolve(data.meta.branches.find((b) => b.name === branch).shares); },
      scalesOf(branch, layer) {  // every slice's scales for this layer key, for a colour scale common to steps
        const out = [];
        for (const key of Object.keys(data.slices)) {
          const parts = key.split("|");
          if (parts[0] === branch && parts[2] === String(layer)) out.push(data.slices[key].scales);
        }
        return out;
      },
    };
  }
  async function serveSource() {
    const get = async (url) => {
      const r = await fetch(url);
      if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
      return r.json();
    };
    const meta = await get("api/meta");
    const cache = new Map();
    const shares = new Map();
    return {
      meta,
      has() { return true; },
      slice(branch, step, layer) {
        const key = branch + "|" + step + "|" + layer;
        if (!cache.has(key)) {
          const q = new URLSearchParams({ branch, step: String(step), layer: String(layer) });
          cache.set(key, get("api/slice?" + q).then(decodeSlice));
        }
        return cache.get(key);
      },
      frameUrl(i) { return meta.video_written[i] ? "api/frame?i=" + i : null; },
      shares(branch) {
        if (!shares.has(branch)) shares.set(branch, get("api/shares?" + new URLSearchParams({ branch })));
        return shares.get(branch);
      },
      scalesOf() { return []; },
    };
  }

  // ---- colours ----
  const STOPS = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
    [250, 193, 39], [252, 255, 164]];  // inferno
  const LUT = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255 * (STOPS.length - 1), k = Math.min(Math.floor(x), STOPS.length - 2), f = x - k;
    for (let c = 0; c < 3; c++) LUT[i * 3 + c] = STOPS[k][c] + f * (STOPS[k + 1][c] - STOPS[k][c]);
  }
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
    "#31a354", "#756bb1", "#636363"];
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

  // ---- state ----
  let src, meta, state;
  const [F, H, W] = [0, 1, 2];

  function branchMeta(name) { return meta.branches.find((b) => b.name === name); }
  function latentFrame(pixel) {
    const spans = meta.pixel_frames;
    for (let f = 0; f < spans.length; f++) if (pixel >= spans[f][0] && pixel <= spans[f][1]) return f;
    return Math.min(spans.length - 1, Math.floor(pixel / 4));
  }
  function stepText(key) {
    if (key === MEAN) return "mean over steps";
    const s = branchMeta(state.branch).steps.find((x) => String(x.position) === String(key));
    if (!s) return "step ?";
    return "step " + s.index + " (timestep " + s.timestep.toFixed(1) + ", sigma " + s.sigma.toFixed(3) +
      (s.expert >= 0 ? ", expert " + s.expert : "") + ")";
  }
  function layerText(key) {
    if (key === MEAN) return "mean over layers";
    const l = meta.layers[Number(key)];
    return l ? l.label : "layer ?";
  }

  // ---- building the page ----
  function setText(id, text) { $(id).textContent = text; }

  function buildStatic() {
    document.title = meta.title;
    setText("title", meta.title);
    setText("status", "store " + meta.location + " — status " + meta.status + " — latent grid " +
      meta.grid.join(" × ") + " — video " + meta.video_shape.slice(0, 3).join(" × ") +
      (boot.mode === "serve" ? " — served from the store: every step and layer at full resolution" : ""));
    const ul = $("reductions");
    const reductions = meta.reductions || [];
    if (!reductions.length) {
      const li = document.createElement("li");
      li.textContent = "nothing: every step and layer is here";
      ul.appendChild(li);
    }
    for (const r of reductions) {
      const li = document.createElement("li");
      li.textContent = r;
      ul.appendChild(li);
    }
    // the words, per branch
    const box = $("words");
    for (const b of meta.branches) {
      const title = document.createElement("div");
      title.className = "branch-title";
      title.textContent = b.name === "uncond" ? "Negative prompt (uncond branch):" :
        (b.name === "cond" ? "Prompt:" : "Branch " + b.name + ":");
      box.appendChild(title);
      const line = document.createElement("div");
      line.className = "word-line";
      line.dataset.branch = b.name;
      b.words.forEach((w, i) => {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "word" + (w.special || w.punctuation ? " special" : "");
        btn.textContent = w.text;
        btn.dataset.branch = b.name;
        btn.dataset.word = String(i);
        btn.title = "tokens " + w.tokens.join(", ");
        btn.addEventListener("click", () => { selectWord(b.name, i); });
        line.appendChild(btn);
      });
      box.appendChild(line);
    }
    // the metadata
    const tbody = $("meta").tBodies[0];
    for (const [k, v] of Object.entries(meta.attributes || {})) {
      const tr = document.createElement("tr");
      const a = document.createElement("td"), b = document.createElement("td");
      a.textContent = k;
      let text = typeof v === "string" ? v : JSON.stringify(v);
      if (text.length > 2000) text = text.slice(0, 2000) + "…";
      b.textContent = text;
      tr.append(a, b);
      tbody.appendChild(tr);
    }
    // the frame slider
    $("frame-slider").max = String(meta.num_video_frames - 1);
    // the colour bar
    const cb = $("colorbar").getContext("2d"), img = cb.createImageData(256, 12);
    for (let x = 0; x < 256; x++) for (let y = 0; y < 12; y++) {
      const o = (y * 256 + x) * 4;
      img.data[o] = LUT[x * 3]; img.data[o + 1] = LUT[x * 3 + 1]; img.data[o + 2] = LUT[x * 3 + 2]; img.data[o + 3] = 255;
    }
    cb.putImageData(img, 0, 0);
  }

  function fillSelectors() {
    const b = branchMeta(state.branch);
    const step = $("step"), layer = $("layer");
    step.replaceChildren();
    const stepKeys = [MEAN].concat(b.steps.map((s) => String(s.position)));
    for (const key of stepKeys) {
      const o = document.createElement("option");
      o.value = key;
      o.textContent = stepText(key) + (hasAny(key, null) ? "" : " (not in this file)");
      step.appendChild(o);
    }
    layer.replaceChildren();
    const layerKeys = [MEAN];
    if (meta.layers.length > 1 || (meta.layers.length === 1 && meta.layers[0].block >= 0)) {
      meta.layers.forEach((l, i) => { if (l.block >= 0) layerKeys.push(String(i)); });
    }
    for (const key of layerKeys) {
      const o = document.createElement("option");
      o.value = key;
      o.textContent = layerText(key) + (hasAny(null, key) ? "" : " (not in this file)");
      layer.appendChild(o);
    }
    step.value = stepKeys.includes(state.step) ? state.step : MEAN;
    layer.value = layerKeys.includes(state.layer) ? state.layer : MEAN;
    state.step = step.value;
    state.layer = layer.value;
  }
  function hasAny(step, layer) {
    if (boot.mode === "serve") return true;
    for (const key of Object.keys(boot.slices)) {
      const p = key.split("|");
      if (p[0] === state.branch && (step === null || p[1] === step) && (layer === null || p[2] === layer)) return true;
    }
    return false;
  }

  // ---- drawing ----
  const work = document.createElement("canvas");
  function frameOfMap(map, f) {  // the (H, W) bytes of latent frame f
    const hw = meta.grid[H] * meta.grid[W];
    return map.subarray(f * hw, (f + 1) * hw);
  }
  function commonMax(branch, layer, word, current) {
    if (!$("common-scale").checked) return current;
    let m = current;
    for (const scales of src.scalesOf(branch, layer)) m = Math.max(m, scales[word]);
    if (boot.mode === "serve" && state.stepMax && state.stepMax[branch] && layer === MEAN) {
      m = Math.max(m, state.stepMax[branch][word] || 0);
    }
    return m;
  }
  function drawOverlay(slice) {
    const canvas = $("overlay"), stage = $("stage");
    const cw = stage.clientWidth, ch = stage.clientHeight || Math.round(cw * meta.video_shape[1] / meta.video_shape[2]);
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    canvas.style.opacity = String(Number($("opacity").value) / 100);
    if (!slice) { setText("scale-max", "—"); return; }
    const w = state.word, scale = slice.scales[w], top = commonMax(state.branch, state.layer, w, scale);
    const factor = top > 0 ? scale / top : 0;
    const bytes = frameOfMap(slice.maps[w], latentFrame(state.frame));
    const gw = meta.grid[W], gh = meta.grid[H];
    work.width = gw; work.height = gh;
    const wctx = work.getContext("2d"), img = wctx.createImageData(gw, gh);
    for (let i = 0; i < bytes.length; i++) {
      const v = Math.min(255, Math.round(bytes[i] * factor)), o = i * 4;
      img.data[o] = LUT[v * 3]; img.data[o + 1] = LUT[v * 3 + 1]; img.data[o + 2] = LUT[v * 3 + 2]; img.data[o + 3] = 255;
    }
    wctx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(work, 0, 0, canvas.width, canvas.height);
    setText("scale-max", top.toPrecision(3));
    setText("scale-note", $("common-scale").checked ? "(attention, word's sub-tokens summed; scale common to the steps here)"
      : "(attention, word's sub-tokens summed; scaled to this map)");
  }
  function segWords() {
    const words = branchMeta(state.branch).words;
    const idx = words.map((w, i) => i).filter((i) => !words[i].special && !words[i].punctuation);
    return idx.length ? idx : words.map((w, i) => i);
  }
  function drawSegmentation(slice) {
    const canvas = $("segmentation"), gw = meta.grid[W], gh = meta.grid[H];
    if (canvas.width !== gw || canvas.height !== gh) { canvas.width = gw; canvas.height = gh; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, gw, gh);
    const legend = $("legend");
    legend.replaceChildren();
    if (!slice) return;
    const words = segWords(), f = latentFrame(state.frame), hw = gw * gh;
    const img = ctx.createImageData(gw, gh), counts = new Array(words.length).fill(0);
    const place = new Map(words.map((w, k) => [w, k]));
    const winners = slice.winners.subarray(f * hw, (f + 1) * hw);
    for (let q = 0; q < hw; q++) {
      const k = place.has(winners[q]) ? place.get(winners[q]) : 0;
      counts[k]++;
      const c = rgb(PALETTE[k % PALETTE.length]), o = q * 4;
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    words.forEach((w, k) => {
      const span = document.createElement("span"), sw = document.createElement("i");
      sw.style.background = PALETTE[k % PALETTE.length];
      span.appendChild(sw);
      span.appendChild(document.createTextNode(branchMeta(state.branch).words[w].text + " " +
        Math.round(100 * counts[k] / hw) + "%"));
      legend.appendChild(span);
    });
  }
  function drawShares(shares) {
    const canvas = $("shares"), ctx = canvas.getContext("2d"), cw = canvas.width, ch = canvas.height;
    ctx.clearRect(0, 0, cw, ch);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cw, ch);
    const b = branchMeta(state.branch);
    if (!shares) { ctx.fillStyle = "#555"; ctx.fillText("computing the shares…", 10, 20); return; }
    const pad = 28, n = b.steps.length;
    let top = 0;
    for (const row of shares) if (row) for (const v of row) top = Math.max(top, v);
    top = top > 0 ? top : 1;
    const x = (i) => pad + (n > 1 ? i * (cw - pad - 8) / (n - 1) : (cw - pad) / 2);
    const y = (v) => ch - 18 - v / top * (ch - 28);
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(pad, 6); ctx.lineTo(pad, ch - 18); ctx.lineTo(cw - 4, ch - 18); ctx.stroke();
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    ctx.fillText((100 * top).toFixed(0) + "%", 2, 12);
    ctx.fillText("0", 14, ch - 18);
    ctx.fillText("steps", cw - 36, ch - 4);
    const pos = b.steps.findIndex((s) => String(s.position) === state.step);
    if (pos >= 0) {
      ctx.strokeStyle = "#d00"; ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(x(pos), 6); ctx.lineTo(x(pos), ch - 18); ctx.stroke();
      ctx.setLineDash([]);
    }
    const words = segWords();
    const order = words.filter((w) => w !== state.word).concat(words.includes(state.word) ? [state.word] : []);
    for (const w of order) {
      const k = words.indexOf(w);
      ctx.strokeStyle = PALETTE[k % PALETTE.length];
      ctx.lineWidth = w === state.word ? 3 : 1;
      ctx.beginPath();
      let started = false;
      shares.forEach((row, i) => {
        if (!row) { started = false; return; }
        if (started) ctx.lineTo(x(i), y(row[w])); else { ctx.moveTo(x(i), y(row[w])); started = true; }
      });
      ctx.stroke();
    }
  }
  function showFrame() {
    const url = src.frameUrl(state.frame), img = $("frame"), none = $("no-frame");
    if (url) {
      if (img.getAttribute("src") !== url) img.src = url;
      img.style.visibility = "visible";
      none.hidden = true;
    } else {
      img.style.visibility = "hidden";
      none.hidden = false;
      none.textContent = "frame " + state.frame + " was not recorded";
    }
    $("frame-slider").value = String(state.frame);
    setText("frame-label", "frame " + state.frame + " / " + (meta.num_video_frames - 1) +
      " (latent frame " + latentFrame(state.frame) + ")");
  }

  let drawToken = 0;
  async function redraw() {
    const t0 = performance.now(), token = ++drawToken;
    const s = { ...state };
    showFrame();
    setText("step-label", stepText(s.step) + " — " + layerText(s.layer));
    const word = branchMeta(s.branch).words[s.word];
    setText("word-label", "word: " + (word ? word.text : "?") + (s.branch === "uncond" ? " (negative prompt)" : ""));
    for (const btn of document.querySelectorAll("#words button")) {
      btn.classList.toggle("selected", btn.dataset.branch === s.branch && Number(btn.dataset.word) === s.word);
    }
    let slice = null;
    if (src.has(s.branch, s.step, s.layer)) {
      try { slice = await src.slice(s.branch, s.step, s.layer); } catch (e) { reportError(e); }
      setText("slice-note", slice ? "" : "could not load this map");
    } else {
      setText("slice-note", stepText(s.step) + " of " + layerText(s.layer) +
        " is not in this file (see what it leaves out; `wan-analyze view STORE --serve` has every one)");
    }
    if (token !== drawToken) return;
    drawOverlay(slice);
    drawSegmentation(slice);
    let shares = null;
    const pending = src.shares(s.branch);
    if (boot.mode !== "serve") shares = await pending;
    drawShares(shares);
    if (boot.mode === "serve" && !shares) {
      pending.then((v) => { if (token === drawToken) drawShares(v); }).catch(reportError);
    }
    window.__lastDrawMs = performance.now() - t0;
    window.__drawCount += 1;
  }

  function selectWord(branch, word) {
    const changed = branch !== state.branch;
    state.branch = branch;
    state.word = word;
    if (changed) fillSelectors();
    redraw();
  }
  function moveStep(delta) {
    const sel = $("step"), i = Math.max(0, Math.min(sel.options.length - 1, sel.selectedIndex + delta));
    if (i !== sel.selectedIndex) { sel.selectedIndex = i; state.step = sel.value; redraw(); }
  }
  function setFrame(i) {
    state.frame = Math.max(0, Math.min(meta.num_video_frames - 1, i));
    redraw();
  }
  let timer = null;
  function togglePlay() {
    if (timer) { clearInterval(timer); timer = null; setText("play", "Play"); return; }
    setText("play", "Pause");
    timer = setInterval(() => setFrame((state.frame + 1) % meta.num_video_frames), 1000 / (meta.fps || 16));
  }
  function reportError(e) {
    window.__errors.push(String(e && e.message || e));
    setText("slice-note", "error: " + String(e && e.message || e));
  }

  async function start() {
    src = boot.mode === "serve" ? await serveSource() : inlineSource(boot);
    meta = src.meta;
    const first = meta.branches[0];
    const firstWord = Math.max(0, first.words.findIndex((w) => !w.special && !w.punctuation));
    // served: start on a step, one read; the mean over the steps reads the whole store
    const startStep = boot.mode === "serve" && first.steps.length ? String(first.steps[0].position) : MEAN;
    state = { branch: first.name, word: firstWord, step: startStep, layer: MEAN, frame: 0 };
    buildStatic();
    fillSelectors();
    $("step").addEventListener("change", (e) => { state.step = e.target.value; redraw(); });
    $("layer").addEventListener("change", (e) => { state.layer = e.target.value; redraw(); });
    $("frame-slider").addEventListener("input", (e) => setFrame(Number(e.target.value)));
    $("opacity").addEventListener("input", () => { $("overlay").style.opacity = String(Number($("opacity").value) / 100); });
    $("common-scale").addEventListener("change", redraw);
    $("play").addEventListener("click", togglePlay);
    $("frame").addEventListener("load", () => { if (!$("overlay").width || $("overlay").height !== $("stage").clientHeight) redraw(); });
    document.addEventListener("keydown", (e) => {
      const tag = e.target && e.target.tagName;
      if (tag === "SELECT" || (tag === "INPUT" && e.target.type !== "checkbox")) return;  // their own arrow keys
      if (e.key === "ArrowLeft") setFrame(state.frame - 1);
      else if (e.key === "ArrowRight") setFrame(state.frame + 1);
      else if (e.key === "ArrowUp") moveStep(-1);
      else if (e.key === "ArrowDown") moveStep(1);
      else if (e.key === " ") togglePlay();
      else return;
      e.preventDefault();
    });
    await redraw();
  }
  start().catch((e) => { reportError(e); throw e; });
})();
