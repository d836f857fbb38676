(function () {
"use strict";
var D = JSON.parse(document.getElementById("embedmap-data").textContent);
var N = D.x.length;
var X = new Float64Array(D.x), Y = new Float64Array(D.y);
// topic levels, broad first; the last one is the finest (D.topics / D.t)
var LV = D.levels.map(function (l) {
  return { name: l.name, topics: l.topics, t: new Int32Array(l.t) };
});
LV.push({ name: "topic", topics: D.topics, t: new Int32Array(D.t) });
var NL = LV.length, FINE = NL - 1;
var canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
var tip = document.getElementById("tip");
var W = 0, H = 0, dpr = 1;
var k = 1, k0 = 1, ox = 0, oy = 0;          // screen = (ox + x*k, oy - y*k)
var hover = -1, queued = false, i, j, L;
var stats = { draws: 0, firstDraw: -1, lastDraw: 0, lastSearch: 0, level: 0, labels: [] };

// ---- bounds
var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
for (i = 0; i < N; i++) {
  if (X[i] < minX) minX = X[i]; if (X[i] > maxX) maxX = X[i];
  if (Y[i] < minY) minY = Y[i]; if (Y[i] > maxY) maxY = Y[i];
}
if (!N) { minX = minY = 0; maxX = maxY = 1; }
var spanX = maxX - minX, spanY = maxY - minY;
if (spanX <= 0) { spanX = spanY > 0 ? spanY : 1; minX -= spanX / 2; maxX = minX + spanX; }
if (spanY <= 0) { spanY = spanX; minY -= spanY / 2; maxY = minY + spanY; }

// ---- uniform grid index for hover
var G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(N / 3))));
var cellW = spanX / G, cellH = spanY / G;
var cStart = new Int32Array(G * G + 1), cItems = new Int32Array(N), cell = new Int32Array(N);
function cx_(x) { var c = Math.floor((x - minX) / cellW); return c < 0 ? 0 : c >= G ? G - 1 : c; }
function cy_(y) { var c = Math.floor((y - minY) / cellH); return c < 0 ? 0 : c >= G ? G - 1 : c; }
for (i = 0; i < N; i++) { cell[i] = cx_(X[i]) + cy_(Y[i]) * G; cStart[cell[i] + 1]++; }
for (j = 0; j < G * G; j++) cStart[j + 1] += cStart[j];
var cFill = new Int32Array(G * G);
for (i = 0; i < N; i++) { var c = cell[i]; cItems[cStart[c] + cFill[c]++] = i; }
cell = null; cFill = null;

var baseR = N > 50000 ? 1.1 : N > 10000 ? 1.6 : N > 2000 ? 2.2 : 3.2;
var baseA = Math.max(0.25, Math.min(0.85, 0.85 * Math.pow(2000 / Math.max(N, 1), 0.3)));
function zoom() { return k / k0; }
function radius() { return baseR * Math.min(4, Math.max(0.7, Math.sqrt(zoom()))); }
// labels: the broad topics as large, light region titles at every zoom, and with them the topics of
// one finer level, placed without overlap: level 1 below 2x zoom, level 2 from 2x, ... (the finest at most)
function labelLevel() {
  if (NL === 1) return 0;
  var z = zoom();
  return Math.min(FINE, 1 + Math.max(0, Math.floor(Math.log(z) / Math.LN2 + 1e-9)));
}
// keep the points clear of the legend panel on wide screens, unless it is folded
function plotW() { return W > 800 && !legendFolded() ? W - 280 : W; }
function legendFolded() { var el = document.getElementById("legend"); return !!(el && el.classList && el.classList.contains("folded")); }

// frame the data box [x0, x1] x [y0, y1] in the plot area (clear of the panels); returns the scale
function frame(x0, x1, y0, y1) {
  // on wide screens keep the points below the header panel too (it holds the search box)
  var pad = 40, w = plotW(), head = document.getElementById("head");
  var top = W > 800 ? Math.max(pad, head.offsetTop + head.offsetHeight + 12) : pad;
  k = Math.max(1e-12, Math.min((w - 2 * pad) / (x1 - x0), (H - top - pad) / (y1 - y0)));
  ox = w / 2 - (x0 + x1) / 2 * k;
  oy = (top + H - pad) / 2 + (y0 + y1) / 2 * k;
  return k;
}
function fit() { k0 = frame(minX, maxX, minY, maxY); }
// zoom to the highlighted points (a topic clicked in the legend or on the map), at most 64x
function focusHighlight() {
  if (!hl) return;
  var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (var p = 0; p < N; p++) {
    if (!hl[p]) continue;
    if (X[p] < x0) x0 = X[p]; if (X[p] > x1) x1 = X[p];
    if (Y[p] < y0) y0 = Y[p]; if (Y[p] > y1) y1 = Y[p];
  }
  if (x0 > x1) return;
  var least = Math.max(spanX, spanY) / 64, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  var hx = Math.max(x1 - x0, least) / 2, hy = Math.max(y1 - y0, least) / 2;
  frame(cx - hx, cx + hx, cy - hy, cy + hy);
}
function resize(first) {
  dpr = window.devicePixelRatio || 1;
  var oldW = W, oldH = H;
  W = window.innerWidth; H = window.innerHeight;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  if (first) fit(); else { ox += (W - oldW) / 2; oy += (H - oldH) / 2; }
  request();
}
function request() { if (!queued) { queued = true; requestAnimationFrame(draw); } }

// ---- colour-by: each mode gives every point a group (GI) with a colour and a legend entry
var RAMP = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
            "#6ece58", "#b5de2b", "#fde725"];
var mode = null, GI = null, GROUPS = [], gStart = new Int32Array(1), order = new Int32Array(N);
var drawSeq = [];
function rampColor(f) {
  var pos = Math.max(0, Math.min(1, f)) * (RAMP.length - 1), a = Math.floor(pos);
  var b = Math.min(RAMP.length - 1, a + 1), t = pos - a, out = [];
  for (var q = 1; q < 7; q += 2) {
    var ca = parseInt(RAMP[a].substr(q, 2), 16), cb = parseInt(RAMP[b].substr(q, 2), 16);
    out.push(Math.round(ca + (cb - ca) * t));
  }
  return "rgb(" + out.join(",") + ")";
}
function metaText(m, p) {
  var c = D.meta[m];
  if (c.kind === "cat") return c.values[c.codes[p]];
  if (c.kind === "str") return c.s[p];
  return c.v[p] === null ? "" : String(c.v[p]);
}
function modeGroups(md) {
  var gi = new Int32Array(N), groups, q;
  if (md.kind === "topic") {
    gi = LV[md.level].t;
    groups = LV[md.level].topics.map(function (tp) {
      return { label: tp.label, color: tp.color, count: tp.count, back: tp.id < 0 };
    });
  } else if (md.kind === "cat") {
    groups = md.groups.map(function (g) {
      return { label: g.label, color: g.color, count: g.count, back: !!g.back };
    });
    if (md.g) gi.set(md.g);
    else {
      var codes = md.src === "p" ? D.p : D.meta[md.src].codes;
      for (q = 0; q < N; q++) gi[q] = md.map[codes[q]];
    }
  } else {
    // quantile bins: bin b holds values in [q[b], q[b+1]); the last bin includes the maximum
    var v = D.meta[md.src].v, edges = md.q, nb = edges.length - 1;
    groups = [];
    for (q = 0; q < nb; q++) groups.push({ label: "", color: rampColor(q / Math.max(1, nb - 1)),
                                           count: 0, back: false });
    groups.push({ label: "no value", color: "#cfcfcf", count: 0, back: true });
    for (q = 0; q < N; q++) {
      var b = nb;
      if (v[q] !== null) {
        var lo = 0, hi = nb - 1;          // last edge index e with edges[e] <= v, within bins
        while (lo < hi) {
          var mid = (lo + hi + 1) >> 1;
          if (edges[mid] <= v[q]) lo = mid; else hi = mid - 1;
        }
        b = lo;
      }
      gi[q] = b; groups[b].count++;
    }
  }
  return { gi: gi, groups: groups };
}
function setMode(index) {
  mode = D.colorby[index];
  var mg = modeGroups(mode), M = mg.groups.length;
  GI = mg.gi; GROUPS = mg.groups;
  // points grouped by colour (counting sort): grey groups first, then biggest to smallest
  gStart = new Int32Array(M + 1);
  var fill = new Int32Array(M);
  for (i = 0; i < N; i++) gStart[GI[i] + 1]++;
  for (j = 0; j < M; j++) gStart[j + 1] += gStart[j];
  for (i = 0; i < N; i++) { var g = GI[i]; order[gStart[g] + fill[g]++] = i; }
  var front = [];
  for (j = 0; j < M; j++) front.push(j);
  if (mode.kind !== "num")
    front.sort(function (a, b) { return GROUPS[b].count - GROUPS[a].count; });
  drawSeq = front.filter(function (g) { return GROUPS[g].back; })
    .concat(front.filter(function (g) { return !GROUPS[g].back; }));
  sel.clear(); if (lastQuery && !lassoed) runSearch(lastQuery);
  recompute(); buildLegend(); hover = -1; hideTip(); request();
}

// ---- highlight: legend selection and search matches; hl marks the points drawn in colour
var sel = new Set();           // "L:g" for a topic of level L, "c:g" for a colour group
var matches = null, matchCount = 0, hl = null;
var hits = LV.map(function (l) { return new Int32Array(l.topics.length); });
// the points of the legend's selection (any selected topic or colour group), or null when none is selected
function selMask() {
  if (!sel.size) return null;
  var byL = LV.map(function () { return null; }), byC = null, m = new Uint8Array(N);
  sel.forEach(function (key) {
    var a = key.split(":"), g = +a[1];
    if (a[0] === "c") { byC = byC || new Uint8Array(GROUPS.length); byC[g] = 1; }
    else { var l = +a[0]; byL[l] = byL[l] || new Uint8Array(LV[l].topics.length); byL[l][g] = 1; }
  });
  for (i = 0; i < N; i++) {
    var ok = byC !== null && byC[GI[i]] === 1;
    for (L = 0; L < NL && !ok; L++) if (byL[L] && byL[L][LV[L].t[i]]) ok = true;
    if (ok) m[i] = 1;
  }
  return m;
}
function recompute() {
  if (!sel.size && !matches) { hl = null; return; }
  var inSel = selMask();
  hl = new Uint8Array(N);
  hits.forEach(function (h) { h.fill(0); });
  for (i = 0; i < N; i++) {
    if (matches && !matches[i]) continue;
    if (inSel && !inSel[i]) continue;
    hl[i] = 1;
    for (L = 0; L < NL; L++) hits[L][LV[L].t[i]]++;
  }
}

// ---- drawing
function drawGroup(g, r, only, keep) {
  var d = 2 * r, s = gStart[g], e = gStart[g + 1], n = 0, round = r >= 2.5;
  ctx.fillStyle = GROUPS[g].color;
  ctx.beginPath();
  for (var q = s; q < e; q++) {
    var p = order[q];
    if (only && !only[p]) continue;
    if (keep < ALL && KEEP[p] >= keep) continue;
    var sx = ox + X[p] * k, sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    if (round) { ctx.moveTo(sx + r, sy); ctx.arc(sx, sy, r, 0, 6.283185307179586); }
    else ctx.rect(sx - r, sy - r, d, d);
    if (++n === 4000) { ctx.fill(); ctx.beginPath(); n = 0; }
  }
  ctx.fill();
}
function drawDimmed(r, keep) {
  var d = 2 * r, n = 0;
  ctx.fillStyle = "#9a9a9a";
  ctx.beginPath();
  for (var p = 0; p < N; p++) {
    if (hl[p]) continue;
    if (keep < ALL && KEEP[p] >= keep) continue;
    var sx = ox + X[p] * k, sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    ctx.rect(sx - r, sy - r, d, d);
    if (++n === 4000) { ctx.fill(); ctx.beginPath(); n = 0; }
  }
  ctx.fill();
}

function boxesHit(b, placed) {
  for (var q = 0; q < placed.length; q++) {
    var o = placed[q];
    if (b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1]) return true;
  }
  return false;
}
// the header and legend panels float over the map: labels are not placed beneath them
function panelBoxes() {
  var out = [];
  ["head", "legend"].forEach(function (id) {
    var el = document.getElementById(id);
    if (!el || !el.getBoundingClientRect) return;
    var r = el.getBoundingClientRect();
    if (r.width && r.height) out.push([r.left, r.top, r.right, r.bottom]);
  });
  return out;
}
var FONT = "px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif";
// a label's box at (sx, sy), its lines centred there: [x0, y0, x1, y1]
function labelBox(tp, sx, sy, fs, weight) {
  ctx.font = weight + " " + fs + FONT;
  var w = 0, lh = fs + 2;
  for (var l = 0; l < tp.lines.length; l++) w = Math.max(w, ctx.measureText(tp.lines[l]).width);
  var h = lh * tp.lines.length;
  return [sx - w / 2 - 3, sy - h / 2 - 2, sx + w / 2 + 3, sy + h / 2 + 2];
}
function inView(b) { return b[0] >= 2 && b[1] >= 2 && b[2] <= W - 2 && b[3] <= H - 2; }
// the first free place for a label near its topic's centre: on it, then above, below, beside and
// diagonally, one and two label heights away; null when none is free (the label is not drawn)
function freePlace(tp, sx, sy, fs, weight, placed) {
  var b = labelBox(tp, sx, sy, fs, weight), w = b[2] - b[0], h = b[3] - b[1];
  for (var s = 0; s <= 2; s++) {
    var dx = s * (w / 2 + 8), dy = s * (h + 4);
    var moves = s === 0 ? [[0, 0]] : [[0, -dy], [0, dy], [dx, 0], [-dx, 0], [dx, -dy], [-dx, -dy], [dx, dy], [-dx, dy]];
    for (var m = 0; m < moves.length; m++) {
      var c = [b[0] + moves[m][0], b[1] + moves[m][1], b[2] + moves[m][0], b[3] + moves[m][1]];
      if (inView(c) && !boxesHit(c, placed)) return c;
    }
  }
  return null;
}
function drawText(tp, b, fs, weight, fill, halo) {
  ctx.font = weight + " " + fs + FONT;
  var lh = fs + 2, cx = (b[0] + b[2]) / 2, top = (b[1] + b[3]) / 2 - lh * tp.lines.length / 2;
  for (var l = 0; l < tp.lines.length; l++) {
    var ly = top + lh * (l + 0.5);
    ctx.strokeStyle = "rgba(255,255,255,0.92)"; ctx.lineWidth = halo; ctx.strokeText(tp.lines[l], cx, ly);
    ctx.fillStyle = fill; ctx.fillText(tp.lines[l], cx, ly);
  }
}
// the broad topic (level 0) that topic g of level l lies in
function regionOf(l, g) {
  for (; l > 0 && g >= 0; l--) g = LV[l].topics[g].parent;
  return g;
}
function drawLabels() {
  var lv = labelLevel(), placed = panelBoxes(), shown = [], boxes = [], titled = {};
  var small = Math.max(0.6, Math.min(1, W / 1000));  // narrow windows (phones) get smaller type
  var regions = NL > 1 ? LV[0].topics : [], TOP = LV[lv].topics;
  ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round"; ctx.globalAlpha = 1;
  function biggest(topics) {
    for (var g = 0; g < topics.length; g++) if (topics[g].id >= 0) return Math.max(1, topics[g].count);
    return 1;
  }
  // broad titles first (largest topic first): large and light, where their region is
  var big = biggest(regions), g, tp, sx, sy, fs, b;
  var titles = [];
  for (g = 0; g < regions.length; g++) {
    tp = regions[g];
    if (tp.id < 0 || (hl && !hits[0][g])) continue;
    sx = ox + tp.cx * k; sy = oy - tp.cy * k;
    fs = Math.round((17 + 9 * Math.sqrt(tp.count / big)) * small);
    b = freePlace(tp, sx, sy, fs, "600", placed);
    if (!b) continue;
    placed.push(b); shown.push(tp.label); boxes.push({ label: tp.label, level: 0, g: g, box: b });
    titles.push([tp, b, fs]); titled[g] = tp.label;
  }
  // then the finer level's labels, most points first, as many as find room: more as the zoom grows
  var maxL = Math.max(8, Math.round(W * H / 12000)), fine = [], n = 0;
  big = biggest(TOP);
  for (g = 0; g < TOP.length && n < maxL; g++) {
    tp = TOP[g];
    if (tp.id < 0 || (hl && !hits[lv][g]) || (NL > 1 && titled[regionOf(lv, g)] === tp.label)) continue;
    sx = ox + tp.cx * k; sy = oy - tp.cy * k;
    if (sx < 0 || sy < 0 || sx > W || sy > H) continue;  // its centre is off screen
    fs = Math.round((11 + 4 * Math.sqrt(tp.count / big)) * Math.max(0.85, small));
    b = freePlace(tp, sx, sy, fs, "600", placed);
    if (!b) continue;
    placed.push(b); shown.push(tp.label); boxes.push({ label: tp.label, level: lv, g: g, box: b });
    fine.push([tp, b, fs, sx, sy]); n++;
  }
  titles.forEach(function (t) {
    drawText(t[0], t[1], t[2], "600", "rgba(55,55,55,0.62)", 4);
  });
  fine.forEach(function (f) {
    var b = f[1], cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
    if (Math.abs(cx - f[3]) > 1 || Math.abs(cy - f[4]) > 1) {  // moved off its centre: a leader line back
      var ex = Math.max(b[0], Math.min(b[2], f[3])), ey = Math.max(b[1], Math.min(b[3], f[4]));
      ctx.strokeStyle = "rgba(60,60,60,0.55)"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(f[3], f[4]); ctx.lineTo(ex, ey); ctx.stroke();
      ctx.fillStyle = "rgba(60,60,60,0.75)"; ctx.beginPath(); ctx.arc(f[3], f[4], 2, 0, 6.283185307179586); ctx.fill();
    }
    drawText(f[0], b, f[2], "600", "#1a1a1a", 4);
  });
  stats.level = lv; stats.labels = shown; stats.boxes = boxes;
}

// the density layer: points in view counted on a grid of 4-pixel cells, blurred, and shaded beneath
// the points (light to dark blue-grey by the square root of the count), so where 100,000s of points
// crowd reads as a landscape; on by default from 50,000 points, a checkbox in the legend's head
var CELL = 4, densityOn = N >= 50000, densityCanvas = null, densityMax = 0;
function blur(a, w, h, r) {  // a box blur along x, then y, of radius r cells, in place
  var tmp = new Float32Array(a.length), x, y, s, q;
  for (y = 0; y < h; y++) {
    s = 0; q = y * w;
    for (x = -r; x < w; x++) {
      if (x + r < w) s += a[q + x + r];
      if (x - r - 1 >= 0) s -= a[q + x - r - 1];
      if (x >= 0) tmp[q + x] = s;
    }
  }
  for (x = 0; x < w; x++) {
    s = 0;
    for (y = -r; y < h; y++) {
      if (y + r < h) s += tmp[(y + r) * w + x];
      if (y - r - 1 >= 0) s -= tmp[(y - r - 1) * w + x];
      if (y >= 0) a[y * w + x] = s;
    }
  }
}
function drawDensity() {
  var gw = Math.max(1, Math.ceil(W / CELL)), gh = Math.max(1, Math.ceil(H / CELL)), grid = new Float32Array(gw * gh);
  var p, c, r, sx, sy;
  for (p = 0; p < N; p++) {
    sx = ox + X[p] * k; sy = oy - Y[p] * k;
    if (sx < 0 || sy < 0 || sx >= W || sy >= H) continue;
    grid[Math.floor(sy / CELL) * gw + Math.floor(sx / CELL)] += 1;
  }
  blur(grid, gw, gh, 2); blur(grid, gw, gh, 2);
  var top = 0;
  for (c = 0; c < grid.length; c++) if (grid[c] > top) top = grid[c];
  densityMax = top;
  if (!top) return;
  if (!densityCanvas) densityCanvas = document.createElement("canvas");
  densityCanvas.width = gw; densityCanvas.height = gh;
  var dctx = densityCanvas.getContext("2d"), img = dctx.createImageData(gw, gh), px = img.data, v;
  for (c = 0; c < grid.length; c++) {
    v = Math.sqrt(grid[c] / top);
    r = c * 4;
    px[r] = Math.round(215 - 160 * v); px[r + 1] = Math.round(225 - 150 * v); px[r + 2] = Math.round(240 - 110 * v);
    px[r + 3] = Math.round(235 * Math.min(1, v * 1.6));
  }
  dctx.putImageData(img, 0, 0);
  ctx.save(); ctx.globalAlpha = 0.85; ctx.imageSmoothingEnabled = true;
  ctx.drawImage(densityCanvas, 0, 0, gw * CELL, gh * CELL); ctx.restore();
}

// thinning: with more than BUDGET points in view (the overview of a map of millions) a frame draws an
// evenly spread share of them: a point is drawn when its key (a hash of its index, so the same points
// frame after frame) is under the share; zooming in draws more, and every point once fewer than BUDGET
// are in view. The density layer beneath counts every point; search, hover and the lasso use them all.
var BUDGET = D.budget > 0 ? D.budget : Infinity, KEEP = null, ALL = 65536;
stats.drawnShare = 1;
function keepBelow(only) {  // this frame's share, in 1/65536ths: ALL draws every point
  if (N <= BUDGET) return ALL;
  var n = 0, p, sx, sy;
  for (p = 0; p < N; p++) {
    if (only && !only[p]) continue;
    sx = ox + X[p] * k; sy = oy - Y[p] * k;
    if (sx >= 0 && sy >= 0 && sx <= W && sy <= H) n++;
  }
  if (n <= BUDGET) return ALL;
  if (!KEEP) {
    KEEP = new Uint16Array(N);
    for (p = 0; p < N; p++) KEEP[p] = Math.imul(p + 1, 2654435761) >>> 16;  // Knuth's multiplicative hash
  }
  return Math.floor(ALL * BUDGET / n);
}

// search hits in view, ringed (a white halo, then a red ring) so a few stand out on a dimmed map
var MAX_RINGS = 5000;
function drawRings(r) {
  stats.rings = 0;
  if (!matches || !matchCount) return;
  var R = r + 3.5, d = R + 3, n = 0, p, sx, sy;
  ctx.beginPath();
  for (p = 0; p < N && n < MAX_RINGS; p++) {
    if (!matches[p]) continue;
    sx = ox + X[p] * k; sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    ctx.moveTo(sx + R, sy); ctx.arc(sx, sy, R, 0, 6.283185307179586); n++;
  }
  ctx.globalAlpha = 1;  // one path, stroked twice: the halo, then the ring on it
  ctx.strokeStyle = "rgba(255,255,255,0.95)"; ctx.lineWidth = 4; ctx.stroke();
  ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2; ctx.stroke();
  stats.rings = n;
}

function draw() {
  var t0 = performance.now();
  queued = false;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.globalAlpha = 1; ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  if (!N) {
    ctx.fillStyle = "#888"; ctx.font = "20px system-ui,sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillText("no points", W / 2, H / 2);
  } else {
    var r = radius(), a = Math.min(0.95, baseA * Math.max(1, Math.pow(zoom(), 0.25))), q;
    if (densityOn) { drawDensity(); a *= 0.6; }
    var keep = keepBelow(null), dimA = 0.08;
    stats.drawnShare = keep / ALL;
    if (keep < ALL) {  // each drawn point stands for ALL / keep: as opaque as that many stacked
      a = Math.min(0.95, 1 - Math.pow(1 - a, ALL / keep)); dimA = 1 - Math.pow(1 - dimA, ALL / keep);
    }
    if (hl) {
      ctx.globalAlpha = dimA; drawDimmed(r, keep);
      ctx.globalAlpha = Math.max(a, 0.7);
      keep = keep < ALL ? keepBelow(hl) : ALL;  // the highlighted points by their own count in view
      for (q = 0; q < drawSeq.length; q++) drawGroup(drawSeq[q], r, hl, keep);
    } else {
      ctx.globalAlpha = a;
      for (q = 0; q < drawSeq.length; q++) drawGroup(drawSeq[q], r, null, keep);
    }
    drawRings(r);
    drawThumbs();
    drawLabels();
    if (lasso && lasso.length > 1) {
      ctx.globalAlpha = 1; ctx.strokeStyle = "#d62728"; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(lasso[0][0], lasso[0][1]);
      for (q = 1; q < lasso.length; q++) ctx.lineTo(lasso[q][0], lasso[q][1]);
      ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);
    }
    if (hover >= 0) {
      ctx.globalAlpha = 1; ctx.lineWidth = 2; ctx.strokeStyle = "#111";
      ctx.beginPath(); ctx.arc(ox + X[hover] * k, oy - Y[hover] * k, r + 3, 0, 6.283185307179586);
      ctx.stroke();
    }
  }
  var t1 = performance.now();
  stats.draws++; stats.lastDraw = t1 - t0;
  if (stats.firstDraw < 0) stats.firstDraw = t1;
}

// ---- image records: zoomed in far enough that few are in view, each is drawn as its thumbnail
var THUMBS = D.thumbs || null, thumbImg = new Map(), MAX_THUMBS_IN_VIEW = 300;
function thumbOf(p) {
  var im = thumbImg.get(p);
  if (!im) {
    im = new Image(); im.onload = request;  // decoded off the frame; drawn once ready
    im.src = "data:image/jpeg;base64," + THUMBS[p]; thumbImg.set(p, im);
  }
  return im.complete && im.naturalWidth ? im : null;
}
function drawThumbs() {
  stats.thumbs = 0;
  if (!THUMBS || zoom() < 2) return;
  var x0 = -ox / k, x1 = (plotW() - ox) / k, y0 = (oy - H) / k, y1 = oy / k, inView = [];
  for (var c0 = cx_(x0), c1 = cx_(x1), cy = cy_(y0); cy <= cy_(y1); cy++) for (var cx = c0; cx <= c1; cx++) {
    var c = cx + cy * G;
    for (var q = cStart[c]; q < cStart[c + 1]; q++) {
      var p = cItems[q];
      if (!THUMBS[p] || (hl && !hl[p]) || X[p] < x0 || X[p] > x1 || Y[p] < y0 || Y[p] > y1) continue;
      inView.push(p);
      if (inView.length > MAX_THUMBS_IN_VIEW) return;  // too many: the points stay dots
    }
  }
  var side = Math.min(64, Math.max(20, 8 * Math.sqrt(zoom())));
  ctx.globalAlpha = 1;
  inView.forEach(function (p) {
    var im = thumbOf(p);
    if (!im) return;
    var s = side / Math.max(im.naturalWidth, im.naturalHeight), w = im.naturalWidth * s, h = im.naturalHeight * s;
    var sx = ox + X[p] * k, sy = oy - Y[p] * k;
    ctx.drawImage(im, sx - w / 2, sy - h / 2, w, h);
    ctx.strokeStyle = GROUPS[GI[p]].color; ctx.lineWidth = 2; ctx.strokeRect(sx - w / 2, sy - h / 2, w, h);
    stats.thumbs++;
  });
}

// ---- hover
function pick(mx, my) {
  if (!N) return -1;
  var px = (mx - ox) / k, py = (oy - my) / k, rad = (radius() + 4) / k;
  var c0 = cx_(px - rad), c1 = cx_(px + rad), r0 = cy_(py - rad), r1 = cy_(py + rad);
  if ((c1 - c0 + 1) * (r1 - r0 + 1) > 4096) return -1;   // zoomed far out: skip the lookup
  var best = -1, bestD = rad * rad;
  for (var cy = r0; cy <= r1; cy++) for (var cx = c0; cx <= c1; cx++) {
    var c = cx + cy * G;
    for (var q = cStart[c]; q < cStart[c + 1]; q++) {
      var p = cItems[q];
      if (hl && !hl[p]) continue;
      var dx = X[p] - px, dy = Y[p] - py, d2 = dx * dx + dy * dy;
      if (d2 <= bestD) { bestD = d2; best = p; }
    }
  }
  return best;
}
function row(key, value) {
  var d = document.createElement("div"); d.className = "row";
  var s = document.createElement("span"); s.className = "k"; s.textContent = key + ":";
  d.appendChild(s); d.appendChild(document.createTextNode(value));
  tip.appendChild(d);
}
function showTip(p, mx, my) {
  tip.textContent = "";
  row("id", D.id[p]);
  for (L = 0; L < NL; L++) row(LV[L].name, LV[L].topics[LV[L].t[p]].label);
  var part = D.parts[D.p[p]];
  if (part) row("partition", part);
  for (var e = 0; e < D.meta.length; e++) row(D.meta[e].name, metaText(e, p));
  if (D.text[p]) {
    var t = document.createElement("div"); t.className = "txt"; t.textContent = D.text[p];
    tip.appendChild(t);
  }
  if (THUMBS && THUMBS[p]) {  // an image record: its thumbnail (a JPEG of the page's own data, never a URL)
    var im = document.createElement("img"); im.className = "thumb"; im.alt = "";
    im.src = "data:image/jpeg;base64," + THUMBS[p];
    tip.appendChild(im);
  }
  tip.style.display = "block";
  var tw = tip.offsetWidth, th = tip.offsetHeight;
  var left = mx + 14, top = my + 14;
  if (left + tw > W - 4) left = Math.max(4, mx - tw - 14);
  if (top + th > H - 4) top = Math.max(4, my - th - 14);
  tip.style.left = left + "px"; tip.style.top = top + "px";
}
function hideTip() { tip.style.display = "none"; }

// ---- pan / zoom
var drag = null, lastMove = null, moveQueued = false;
var lasso = null;  // the screen points of a lasso being drawn (shift-drag)
canvas.addEventListener("pointerdown", function (ev) {
  if (ev.shiftKey) {
    lasso = [[ev.clientX, ev.clientY]]; drag = null;
    canvas.setPointerCapture(ev.pointerId); hover = -1; hideTip(); return;
  }
  drag = { x: ev.clientX, y: ev.clientY, ox: ox, oy: oy };
  canvas.setPointerCapture(ev.pointerId); canvas.classList.add("dragging");
  hover = -1; hideTip();
});
canvas.addEventListener("pointerup", function (ev) {
  if (lasso) {
    var ring = lasso; lasso = null;
    try { canvas.releasePointerCapture(ev.pointerId); } catch (e) {}
    if (ring.length >= 3) selectLasso(ring); else request();
    return;
  }
  // a click (no drag) on a topic's label focuses that topic: the others dimmed, zoomed to its points
  if (drag && Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) < 4) {
    var hitBox = labelAt(ev.clientX, ev.clientY);
    if (hitBox) {
      sel.clear(); sel.add(hitBox.level + ":" + hitBox.g);
      recompute(); syncLegend(); focusHighlight(); request();
    }
  }
  drag = null; canvas.classList.remove("dragging");
  try { canvas.releasePointerCapture(ev.pointerId); } catch (e) {}
});
canvas.addEventListener("pointercancel", function () {
  drag = null; canvas.classList.remove("dragging");
});
canvas.addEventListener("pointerleave", function () {
  if (!drag) { hover = -1; hideTip(); request(); }
});
canvas.addEventListener("pointermove", function (ev) {
  if (lasso) {
    var last = lasso[lasso.length - 1];
    if (Math.abs(ev.clientX - last[0]) + Math.abs(ev.clientY - last[1]) >= 3) { lasso.push([ev.clientX, ev.clientY]); request(); }
    return;
  }
  if (drag) {
    ox = drag.ox + ev.clientX - drag.x; oy = drag.oy + ev.clientY - drag.y; request(); return;
  }
  lastMove = ev;
  if (!moveQueued) {
    moveQueued = true;
    requestAnimationFrame(function () {
      moveQueued = false;
      var p = pick(lastMove.clientX, lastMove.clientY);
      if (p !== hover) { hover = p; request(); }
      if (p >= 0) showTip(p, lastMove.clientX, lastMove.clientY); else hideTip();
    });
  }
});
function zoomTo(nk, cx, cy) {
  nk = Math.max(k0 * 0.2, Math.min(k0 * 20000, nk));
  var f = nk / k;
  ox = cx - (cx - ox) * f;   // keep the point under (cx, cy) fixed
  oy = cy - (cy - oy) * f;
  k = nk;
}
canvas.addEventListener("wheel", function (ev) {
  ev.preventDefault();
  var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaMode === 2 ? ev.deltaY * H : ev.deltaY;
  zoomTo(k * Math.exp(-dy * 0.0015), ev.clientX, ev.clientY);
  hover = -1; hideTip(); request();
}, { passive: false });
canvas.addEventListener("dblclick", function () { fit(); request(); });
window.addEventListener("resize", function () { resize(false); });

// ---- legend: the topic tree (colour by topic), a flat list, or a ramp for numbers
var legend = document.getElementById("legend"), list = document.getElementById("legend-list");
var filterEl = document.getElementById("filter"), modeEl = document.getElementById("colorby");
var nodes = [];
function syncLegend() {
  legend.classList.toggle("sel", sel.size > 0);
  for (var q = 0; q < nodes.length; q++) nodes[q].el.classList.toggle("on", sel.has(nodes[q].key));
}
function toggleSel(key) {
  var adding = !sel.has(key);
  if (adding) sel.add(key); else sel.delete(key);
  if (lastQuery && !lassoed) runSearch(lastQuery);  // a search ranks within the selection
  recompute(); hover = -1; hideTip(); syncLegend();
  if (adding && key.charAt(0) !== "c") focusHighlight();  // a topic: zoom to what is highlighted
  request();
}
function labelAt(x, y) {
  var boxes = stats.boxes || [];
  for (var q = boxes.length - 1; q >= 0; q--) {  // the finer labels were drawn last, on top
    var b = boxes[q].box;
    if (x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]) return boxes[q];
  }
  return null;
}
function addItem(label, color, count, key, depth, parent) {
  var it = document.createElement("div"); it.className = "item";
  it.style.paddingLeft = (4 + 14 * depth) + "px";
  var car = document.createElement("span"); car.className = "car";
  var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = color;
  var lab = document.createElement("span"); lab.className = "lab"; lab.textContent = label;
  lab.title = label;
  var cnt = document.createElement("span"); cnt.className = "cnt";
  cnt.textContent = count.toLocaleString();
  it.appendChild(car); it.appendChild(sw); it.appendChild(lab); it.appendChild(cnt);
  var node = { el: it, car: car, key: key, label: label, parent: parent, kids: [], open: true };
  it.addEventListener("click", function (ev) {
    if (ev && ev.target === car && node.kids.length) { node.open = !node.open; refreshTree(); }
    else toggleSel(key);
  });
  list.appendChild(it); nodes.push(node);
  if (parent) parent.kids.push(node);
  return node;
}
function refreshTree() {
  var q = filterEl.value.toLowerCase(), n, a;
  for (n = 0; n < nodes.length; n++) nodes[n].vis = !q;
  if (q) {
    for (n = 0; n < nodes.length; n++)
      if (nodes[n].label.toLowerCase().indexOf(q) >= 0)
        for (a = nodes[n]; a && !a.vis; a = a.parent) a.vis = true;
  } else {
    for (n = 0; n < nodes.length; n++)
      for (a = nodes[n].parent; a; a = a.parent) if (!a.open) nodes[n].vis = false;
  }
  for (n = 0; n < nodes.length; n++) {
    var nd = nodes[n];
    nd.el.style.display = nd.vis ? "" : "none";
    nd.car.textContent = nd.kids.length ? (nd.open || q ? "\u25be" : "\u25b8") : "";
  }
}
var kids = LV.map(function (l) { return l.topics.map(function () { return []; }); });
for (L = 1; L < NL; L++)
  LV[L].topics.forEach(function (tp, g) { if (tp.parent >= 0) kids[L - 1][tp.parent].push(g); });
var nTopics = LV.reduce(function (s, l) { return s + l.topics.length; }, 0);
function addTopic(l, g, depth, parent) {
  var tp = LV[l].topics[g];
  var node = addItem(tp.label, tp.color, tp.count, l + ":" + g, depth, parent);
  node.open = nTopics <= 60;   // big trees start folded to their broad topics
  if (l < FINE) kids[l][g].forEach(function (c) {
    if (tp.id >= 0 || LV[l + 1].topics[c].id >= 0) addTopic(l + 1, c, depth + 1, node);
  });
}
function addRamp(md) {
  var bar = document.createElement("div"); bar.className = "ramp";
  bar.style.background = "linear-gradient(to right," + RAMP.join(",") + ")";
  var ends = document.createElement("div"); ends.className = "rampl";
  [md.min, "median " + md.median, md.max].forEach(function (v) {
    var s = document.createElement("span"); s.textContent = String(v); ends.appendChild(s);
  });
  var note = document.createElement("div"); note.className = "rampn";
  note.textContent = "colour by rank (quantiles)";
  list.appendChild(bar); list.appendChild(ends); list.appendChild(note);
}
function buildLegend() {
  list.textContent = ""; nodes = [];
  if (mode.kind === "topic" && mode.level === FINE && NL > 1) {
    for (var g = 0; g < LV[0].topics.length; g++) addTopic(0, g, 0, null);
  } else if (mode.kind === "topic") {
    LV[mode.level].topics.forEach(function (tp, q) {
      addItem(tp.label, tp.color, tp.count, mode.level + ":" + q, 0, null);
    });
  } else {
    if (mode.kind === "num") addRamp(mode);
    GROUPS.forEach(function (gr, q) {
      if (gr.label && gr.count) addItem(gr.label, gr.color, gr.count, "c:" + q, 0, null);
    });
  }
  refreshTree(); syncLegend();
}
D.colorby.forEach(function (md, q) {
  var o = document.createElement("option"); o.value = String(q); o.textContent = md.name;
  modeEl.appendChild(o);
});
modeEl.addEventListener("change", function () { setMode(+modeEl.value || 0); });
// the panels fold to their head (on a narrow screen the legend starts folded); labels then use the room
function foldable(panelId, buttonId, folded) {
  var panel = document.getElementById(panelId), button = document.getElementById(buttonId);
  function set(f) {
    panel.classList.toggle("folded", f);
    button.textContent = f ? "\u25b8" : "\u25be";
    button.setAttribute("aria-expanded", f ? "false" : "true");
    request();
  }
  button.addEventListener("click", function () { set(!panel.classList.contains("folded")); });
  set(folded);
}
foldable("legend", "legend-toggle", window.innerWidth < 700);
foldable("head", "head-toggle", false);
var densityEl = document.getElementById("density");
densityEl.checked = densityOn;
densityEl.addEventListener("change", function () { densityOn = !!densityEl.checked; request(); });
document.getElementById("clear").addEventListener("click", function () {
  sel.clear(); if (lastQuery && !lassoed) runSearch(lastQuery);
  recompute(); syncLegend(); request();
});
filterEl.addEventListener("input", refreshTree);

// ---- search by meaning (when the page carries vectors, semantic.js): the 50 records nearest to the
// query; by words: every word (lower case) must occur in the record's id, title-like fields, text
// or one of its topic labels; haystacks are built once, on the first search
var searchEl = document.getElementById("search"), resultsEl = document.getElementById("results");
var infoEl = document.getElementById("search-info"), byEl = document.getElementById("search-mode");
var MAX_RESULTS = 50, HAY = null, results = [], timer = 0, lastQuery = null, scoped = -1;
var SEM = typeof EmbedmapSemantic !== "undefined" && EmbedmapSemantic.present();
var lastBy = { mode: "", known: 0, tokens: 0, note: "" };
if (SEM && byEl) {
  byEl.hidden = false;
  searchEl.placeholder = "search by meaning, or pick \u201cwords\u201d";
  byEl.addEventListener("change", function () { if (searchEl.value) runSearch(searchEl.value); });
}
function byMeaning() { return SEM && (!byEl || byEl.value !== "words"); }
function buildHay() {
  HAY = new Array(N);
  for (var p = 0; p < N; p++) {
    var s = D.id[p];
    for (var m = 0; m < D.search_meta.length; m++) s += "\n" + metaText(D.search_meta[m], p);
    HAY[p] = (s + "\n" + D.text[p]).toLowerCase();
  }
}
function labelHits(w) {
  return LV.map(function (l) {
    var any = false, a = new Uint8Array(l.topics.length);
    l.topics.forEach(function (tp, g) {
      if (tp.label.toLowerCase().indexOf(w) >= 0) { a[g] = 1; any = true; }
    });
    return any ? a : null;
  });
}
function runSearch(q) {
  var t0 = performance.now();
  lassoed = null; copyEl.hidden = true;
  q = String(q); lastQuery = q;
  var words = q.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
  // with topics or classes selected in the legend, only their records are searched and listed
  var inSel = selMask();
  scoped = inSel ? inSel.reduce(function (s, v) { return s + v; }, 0) : -1;
  var near = words.length && byMeaning() ? EmbedmapSemantic.rank(q, MAX_RESULTS, inSel) : null;
  results = [];
  lastBy = { mode: words.length ? (near && near.known ? "meaning" : "words") : "", known: near ? near.known : 0,
             tokens: near ? near.tokens : 0,
             note: near && !near.known ? "no word of the query is in the model's vocabulary: matched by words" : "" };
  if (!words.length) { matches = null; matchCount = 0; }
  else if (near && near.known) {
    var hit = new Uint8Array(N);
    near.hits.forEach(function (p) { hit[p] = 1; });
    results = near.hits.slice(); matches = hit; matchCount = results.length;
  } else {
    if (!HAY) buildHay();
    var lab = words.map(labelHits), m = new Uint8Array(N), count = 0, nw = words.length;
    for (var p = 0; p < N; p++) {
      if (inSel && !inSel[p]) continue;
      var h = HAY[p], ok = true;
      for (var w = 0; w < nw && ok; w++) {
        if (h.indexOf(words[w]) >= 0) continue;
        ok = false;
        for (L = 0; L < NL; L++) if (lab[w][L] && lab[w][L][LV[L].t[p]]) { ok = true; break; }
      }
      if (ok) { m[p] = 1; count++; if (results.length < MAX_RESULTS) results.push(p); }
    }
    matches = m; matchCount = count;
  }
  recompute(); showResults(words.length > 0); hover = -1; hideTip(); request();
  stats.lastSearch = performance.now() - t0;
}
// a record's topics, broadest first: "broad › sub-topic"
function topicPath(p) {
  var parts = [];
  for (L = 0; L < NL; L++) {
    var tp = LV[L].topics[LV[L].t[p]];
    if (tp && tp.id >= 0 && parts[parts.length - 1] !== tp.label) parts.push(tp.label);
  }
  return parts.length ? parts.join(" \u203a ") : "no topic";
}
var activeRow = -1;  // the result row the arrow keys moved to
function markActive(q) {
  var rows = resultsEl.children;
  if (!rows.length) { activeRow = -1; return; }
  activeRow = Math.max(0, Math.min(rows.length - 1, q));
  for (var q2 = 0; q2 < rows.length; q2++) rows[q2].classList.toggle("act", q2 === activeRow);
  if (rows[activeRow].scrollIntoView) rows[activeRow].scrollIntoView({ block: "nearest" });
}
function showResults(active) {
  resultsEl.textContent = ""; activeRow = -1;
  var within = scoped >= 0 && !lassoed ? " within the selection (" + scoped.toLocaleString() + ")" : "";
  infoEl.textContent = !active ? "" : lastBy.mode === "meaning" && !lassoed
    ? "the " + matchCount.toLocaleString() + " records nearest in meaning" + within + ", nearest first"
    : (lastBy.note ? lastBy.note + " · " : "") + (matchCount === 0 ? "no matching records" + within
      : matchCount.toLocaleString() + " matching record" + (matchCount === 1 ? "" : "s") + within +
        (matchCount > results.length ? " · first " + results.length + " listed" : ""));
  results.forEach(function (p) {
    var r = document.createElement("div"); r.className = "res";
    var id = document.createElement("span"); id.className = "rid"; id.textContent = D.id[p];
    var first = D.search_meta.length ? metaText(D.search_meta[0], p) : "";
    var tx = document.createElement("span"); tx.className = "rtx";
    tx.textContent = (first || D.text[p]).slice(0, 90);
    var path = document.createElement("div"); path.className = "rpath";
    path.textContent = topicPath(p);
    r.appendChild(id); r.appendChild(tx); r.appendChild(path);
    r.title = D.id[p];
    r.addEventListener("click", function () { focusRecord(p); });
    resultsEl.appendChild(r);
  });
}
// centre the record, zoomed in far enough for the finest labels, and show its tooltip
function focusRecord(p) {
  var w = plotW();
  zoomTo(k0 * Math.max(zoom(), Math.pow(2, FINE) * 2, 4), w / 2, H / 2);
  ox = w / 2 - X[p] * k; oy = H / 2 + Y[p] * k;
  hover = p; request(); showTip(p, w / 2, H / 2);
}
// the points inside a lasso (screen polygon, even-odd rule), highlighted and listed like search hits;
// "copy ids" copies all their ids, one per line
var lassoed = null;
function selectLasso(ring) {
  var n = ring.length, m = new Uint8Array(N), count = 0, p, inside, sx, sy;
  var px = ring.map(function (v) { return (v[0] - ox) / k; }), py = ring.map(function (v) { return (oy - v[1]) / k; });
  var x0 = Math.min.apply(null, px), x1 = Math.max.apply(null, px), y0 = Math.min.apply(null, py), y1 = Math.max.apply(null, py);
  results = []; lassoed = [];
  for (p = 0; p < N; p++) {
    sx = X[p]; sy = Y[p];
    if (sx < x0 || sx > x1 || sy < y0 || sy > y1) continue;
    inside = false;
    for (i = 0, j = n - 1; i < n; j = i++)
      if ((py[i] > sy) !== (py[j] > sy) && sx < (px[j] - px[i]) * (sy - py[i]) / (py[j] - py[i]) + px[i]) inside = !inside;
    if (!inside) continue;
    m[p] = 1; count++; lassoed.push(p);
    if (results.length < MAX_RESULTS) results.push(p);
  }
  searchEl.value = ""; lastQuery = null;
  matches = m; matchCount = count;
  recompute(); showResults(true);
  infoEl.textContent = count.toLocaleString() + " record" + (count === 1 ? "" : "s") + " in the lasso" +
    (count > results.length ? " · first " + results.length + " listed" : "");
  copyEl.hidden = count === 0;
  request();
}
var copyEl = document.getElementById("copy-ids");
copyEl.addEventListener("click", function () {
  var text = (lassoed || []).map(function (p) { return D.id[p]; }).join("\n");
  stats.copied = text;
  function fallback() {
    var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area);
    area.select(); try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }
  if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).catch(fallback);
  else fallback();
  copyEl.textContent = "copied " + (lassoed || []).length.toLocaleString();
  setTimeout(function () { copyEl.textContent = "copy ids"; }, 1500);
});
function searchSoon() {
  clearTimeout(timer);
  timer = setTimeout(function () { runSearch(searchEl.value); }, N > 20000 ? 200 : 80);
}
searchEl.addEventListener("input", searchSoon);
searchEl.addEventListener("keydown", function (ev) {
  if (ev.key === "Enter") {
    clearTimeout(timer);
    if (searchEl.value !== lastQuery) runSearch(searchEl.value);
    if (results.length) focusRecord(results[activeRow >= 0 ? activeRow : 0]);
  } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    if (searchEl.value !== lastQuery) { clearTimeout(timer); runSearch(searchEl.value); }
    markActive(activeRow < 0 ? 0 : activeRow + (ev.key === "ArrowDown" ? 1 : -1));
  } else if (ev.key === "Escape") {
    clearTimeout(timer); searchEl.value = ""; runSearch("");
  }
});
function fromHash() {
  var h = window.location.hash || "";
  if (h.indexOf("#q=") !== 0) return;
  var q = h.slice(3).replace(/\+/g, " ");
  try { q = decodeURIComponent(q); } catch (e) { /* keep the raw text */ }
  searchEl.value = q; runSearch(q);
}
window.addEventListener("hashchange", fromHash);

// ---- read-only hook for tests and automation; it only reads state the page already has
function indexOfId(id) { return D.id.indexOf(String(id)); }
window.embedmap = Object.freeze({
  level: function () { return stats.level; },
  labelsShown: function () { return stats.labels.slice(); },
  rings: function () { return stats.rings || 0; },
  activeResult: function () { return activeRow; },
  selected: function () { return Array.from(sel); },
  density: function () { return { on: densityOn, max: densityOn ? densityMax : 0 }; },
  lassoed: function () { return (lassoed || []).map(function (p) { return D.id[p]; }); },
  copied: function () { return stats.copied || ""; },
  // each drawn label: its text, level and screen box [x0, y0, x1, y1] in CSS pixels
  labelBoxes: function () {
    return (stats.boxes || []).map(function (l) { return { label: l.label, level: l.level, g: l.g, box: l.box.slice() }; });
  },
  panels: function () { return panelBoxes(); },
  zoom: function () { return zoom(); },
  colorBy: function () { return mode ? mode.name : ""; },
  legend: function () {
    return nodes.filter(function (n) { return n.el.style.display !== "none"; })
      .map(function (n) { return n.label; });
  },
  results: function () { return results.map(function (p) { return D.id[p]; }); },
  matchCount: function () { return matchCount; },
  // how many records the last search looked at: those of the legend's selection, or -1 for all
  searchScope: function () { return scoped; },
  // how the last search ranked: mode "meaning" or "words" ("" before any), the query's tokens and how
  // many of them the page's table knows, and whether the page can search by meaning at all
  searchMode: function () {
    return { mode: lastBy.mode, known: lastBy.known, tokens: lastBy.tokens, semantic: !!SEM };
  },
  screenOf: function (id) {
    var p = indexOfId(id);
    return p < 0 ? null : { x: ox + X[p] * k, y: oy - Y[p] * k };
  },
  // image records drawn as their thumbnails in the last frame, and how many records have one
  thumbnails: function () { return { drawn: stats.thumbs || 0, records: THUMBS ? THUMBS.filter(Boolean).length : 0 }; },
  timings: function () {
    return { draws: stats.draws, firstDraw: stats.firstDraw, lastDraw: stats.lastDraw,
             lastSearch: stats.lastSearch, drawnShare: stats.drawnShare };
  }
});

setMode(0);
resize(true);
fromHash();
})();
