// Search by meaning inside the page, offline: the map's model's tokenizer (BERT WordPiece, re-implemented
// here) splits the query, a static table distilled from the model gives each token a vector, their sum is
// the query's vector, and every record is ranked by its dot product with the record's own vector (both
// projected to the map's principal axes and stored as int8; see semantic.py for how they are made).
var EmbedmapSemantic = (function () {
"use strict";
var S = null, row = null, table = null, points = null, dims = 0, loadMs = 0;

function int8s(b64) {
  var bin = atob(b64), out = new Int8Array(bin.length);
  for (var i = 0; i < bin.length; i++) out[i] = (bin.charCodeAt(i) << 24) >> 24;
  return out;
}
function load() {
  if (S !== null) return S !== false;
  var t0 = performance.now(), el = document.getElementById("embedmap-semantic");
  var data = el ? JSON.parse(el.textContent || "null") : null;
  if (!data) { S = false; return false; }
  S = data; dims = data.dims;
  row = new Map();
  data.vocab.split("\n").forEach(function (t, i) { row.set(t, i); });
  table = int8s(data.table); points = int8s(data.points);
  loadMs = performance.now() - t0;
  return true;
}

// ---- BERT's normaliser and pre-tokeniser, then WordPiece (greedy longest match, "##" continuations)
var CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}]/u, SPACE = /\s/u, PUNCT = /\p{P}/u, MARK = /\p{Mn}/gu;
function isCJK(c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
    (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
    (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}
function isPunct(ch, c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) || PUNCT.test(ch);
}
function normalise(text, spec) {
  var out = "";
  for (var ch of String(text)) {
    var c = ch.codePointAt(0);
    if (c === 0 || c === 0xFFFD || (ch !== "\t" && ch !== "\n" && ch !== "\r" && CONTROL.test(ch))) continue;
    if (SPACE.test(ch)) out += " ";
    else if (spec.chinese_chars && isCJK(c)) out += " " + ch + " ";
    else out += ch;
  }
  if (spec.strip_accents) out = out.normalize("NFD").replace(MARK, "");
  return spec.lowercase ? out.toLowerCase() : out;
}
function words(text, spec) {
  var out = [], cur = "";
  for (var ch of normalise(text, spec)) {
    if (SPACE.test(ch)) { if (cur) out.push(cur); cur = ""; }
    else if (isPunct(ch, ch.codePointAt(0))) { if (cur) out.push(cur); out.push(ch); cur = ""; }
    else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}
function wordPiece(word, spec, vocab) {
  var chars = Array.from(word);
  if (chars.length > spec.max_chars) return [spec.unk];
  var pieces = [], start = 0;
  while (start < chars.length) {
    var end = chars.length, found = null;
    while (start < end) {
      var sub = chars.slice(start, end).join("");
      if (start > 0) sub = spec.prefix + sub;
      if (vocab(sub)) { found = sub; break; }
      end--;
    }
    if (found === null) return [spec.unk];
    pieces.push(found); start = end;
  }
  return pieces;
}
// the query's tokens, as the model's tokenizer gives them (without its special tokens)
function tokenize(text) {
  if (!load()) return null;
  var has = function (t) { return row.has(t); }, out = [];
  words(text, S.spec).forEach(function (w) { out.push.apply(out, wordPiece(w, S.spec, has)); });
  return out;
}
// the k records nearest to the query by meaning, best first (only those with mask[p] set, when a mask is
// given), and how many of its tokens the table knows; null when the page carries no vectors
function rank(text, k, mask) {
  if (!load()) return null;
  var toks = tokenize(text), q = new Float32Array(dims), known = 0, d, p;
  toks.forEach(function (t) {
    var r = row.get(t);
    if (r === undefined) return;
    known++;
    for (d = 0; d < dims; d++) q[d] += table[r * dims + d];
  });
  if (!known) return { hits: [], known: 0, tokens: toks.length };
  for (d = 0; d < dims; d++) q[d] *= S.scale[d];
  var n = points.length / dims, best = [], bestS = [], floor = -Infinity;
  for (p = 0; p < n; p++) {
    if (mask && !mask[p]) continue;
    var s = 0, o = p * dims;
    for (d = 0; d < dims; d++) s += q[d] * points[o + d];
    if (best.length >= k && s <= floor) continue;
    var at = bestS.length;  // insert in order, best first
    while (at > 0 && bestS[at - 1] < s) at--;
    best.splice(at, 0, p); bestS.splice(at, 0, s);
    if (best.length > k) { best.pop(); bestS.pop(); }
    floor = bestS[bestS.length - 1];
  }
  return { hits: best, scores: bestS, known: known, tokens: toks.length };
}
function available() { return load(); }
// whether the page carries the data, without decoding it (that waits for the first search)
function present() {
  if (S !== null) return S !== false;
  var el = document.getElementById("embedmap-semantic");
  return !!el && (el.textContent || "").trim() !== "null" && (el.textContent || "").trim() !== "";
}
return Object.freeze({ available: available, present: present, tokenize: tokenize, rank: rank,
                       loadMs: function () { return loadMs; } });
})();
