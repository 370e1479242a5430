// weft dashboard: renders /dashboard/api/mesh (live through Server-Sent
// Events from api/events, or polling when EventSource is missing) as an
// SVG service graph and tables. No dependencies, no network beyond
// weft-control.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var last = null;
  var focused = "";

  // el builds an element; text is set with textContent (never HTML).
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  function sv(tag, attrs, children) {
    var e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  function setAttrs(e, attrs) {
    for (var k in attrs || {}) {
      if (attrs[k] === null || attrs[k] === undefined) continue;
      if (k === "text") e.textContent = attrs[k];
      else if (k === "onclick") e.addEventListener("click", attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
  }
  function append(e, children) {
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }
  function cls(s) { return String(s || "none").replace(/\s+/g, "_"); }
  function pill(s) { return el("span", { "class": "pill pill-" + cls(s), text: s || "—" }); }

  function fmtRate(r) {
    if (r >= 100) return r.toFixed(0);
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2);
  }
  function fmtPct(f) { return (f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0) + "%"; }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    return (ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)) + " ms";
  }
  function edgeLabel(e) {
    return fmtRate(e.rps) + " rps · " + fmtPct(e.error_rate) + " err · p99 " + fmtMs(e.p99_ms);
  }
  function edgeClass(e) {
    if (!e.traffic) return "idle";
    if (e.error_rate >= 0.05) return "bad";
    if (e.error_rate >= 0.01) return "warn";
    return "ok";
  }

  // layout places nodes in layers: callers left, what they call to the
  // right (longest path from a node without callers; cycles are cut by
  // bounding the passes).
  function layout(nodes, edges) {
    var layer = {}, byId = {};
    nodes.forEach(function (n) { layer[n.id] = 0; byId[n.id] = n; });
    for (var pass = 0; pass < nodes.length; pass++) {
      var moved = false;
      edges.forEach(function (e) {
        if (e.from === e.to || !(e.from in layer) || !(e.to in layer)) return;
        if (layer[e.to] < layer[e.from] + 1 && layer[e.from] + 1 < nodes.length) {
          layer[e.to] = layer[e.from] + 1;
          moved = true;
        }
      });
      if (!moved) break;
    }
    var cols = [];
    nodes.forEach(function (n) { (cols[layer[n.id]] = cols[layer[n.id]] || []).push(n); });
    cols = cols.filter(function (c) { return c && c.length; });
    // One barycentre pass: order each layer by the mean row of its
    // callers, which removes most crossings in a mesh-sized graph.
    var row = {};
    cols.forEach(function (col, ci) {
      if (ci > 0) {
        col.forEach(function (n) {
          var s = 0, k = 0;
          edges.forEach(function (e) { if (e.to === n.id && e.from in row) { s += row[e.from]; k++; } });
          n._bary = k ? s / k : 1e9;
        });
        col.sort(function (a, b) { return a._bary - b._bary || (a.id < b.id ? -1 : 1); });
      }
      col.forEach(function (n, i) { row[n.id] = i; });
    });
    return cols;
  }

  // bezier is the point at t of a cubic Bézier curve.
  function bezier(p0, p1, p2, p3, t) {
    var u = 1 - t;
    return [0, 1].map(function (i) {
      return u * u * u * p0[i] + 3 * u * u * t * p1[i] + 3 * u * t * t * p2[i] + t * t * t * p3[i];
    });
  }

  function renderGraph(v) {
    var box = document.getElementById("graph");
    var nodes = v.nodes.slice(), edges = v.edges;
    if (!nodes.length) {
      box.replaceChildren(el("p", { "class": "muted", text: "No services or proxies yet." }));
      return;
    }
    var cols = layout(nodes, edges);
    var vertical = box.clientWidth < 640;
    var maxRows = Math.max.apply(null, cols.map(function (c) { return c.length; }));
    var gapL = vertical ? 170 : 300, gapR = vertical ? 130 : 96, pad = vertical ? 70 : 110;
    var pos = {};
    cols.forEach(function (col, ci) {
      col.forEach(function (n, ri) {
        var along = pad + ci * gapL, across = pad / 2 + 30 + (ri + (maxRows - col.length) / 2) * gapR;
        pos[n.id] = vertical ? { x: across + 20, y: along - 40 } : { x: along, y: across };
      });
    });
    var w = vertical ? maxRows * gapR + 80 : (cols.length - 1) * gapL + 2 * pad;
    var h = vertical ? (cols.length - 1) * gapL + pad + 30 : maxRows * gapR + 50;
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img",
      "aria-label": "service graph" });
    svg.appendChild(sv("defs", {}, ["ok", "warn", "bad", "idle"].map(function (k) {
      return sv("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5,
        markerUnits: "userSpaceOnUse", markerWidth: 11, markerHeight: 11, orient: "auto-start-reverse" },
        [sv("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrowhead-" + k,
          fill: { ok: "#2f9e44", warn: "#e8a317", bad: "#d9480f", idle: "#adb5bd" }[k] })]);
    })));
    var R = 20, outs = {}, ins = {};
    edges.forEach(function (e) {
      outs[e.from] = (outs[e.from] || 0) + 1;
      ins[e.to] = (ins[e.to] || 0) + 1;
    });
    edges.forEach(function (e) {
      var a = pos[e.from], b = pos[e.to];
      if (!a || !b) return;
      var k = edgeClass(e);
      var dx = b.x - a.x, dy = b.y - a.y, len = Math.sqrt(dx * dx + dy * dy) || 1;
      var sx = a.x + dx / len * R, sy = a.y + dy / len * R, tx = b.x - dx / len * (R + 4), ty = b.y - dy / len * (R + 4);
      var c1 = vertical ? [sx, (sy + ty) / 2] : [(sx + tx) / 2, sy];
      var c2 = vertical ? [tx, (sy + ty) / 2] : [(sx + tx) / 2, ty];
      var width = e.traffic ? Math.min(2 + Math.log10(1 + e.rps) * 2, 8) : 1.5;
      var g = sv("g", { "class": "edge " + k, "data-from": e.from, "data-to": e.to,
        "data-rps": e.rps.toFixed(3), "data-error-rate": e.error_rate.toFixed(4) }, [
        sv("path", { d: "M" + sx + "," + sy + " C" + c1 + " " + c2 + " " + tx + "," + ty,
          "stroke-width": width, "marker-end": "url(#arrow-" + k + ")" }),
        sv("title", { text: e.from + " → " + e.to })
      ]);
      if (e.traffic) {
        // The label sits where the edge is furthest from its siblings:
        // near the source when several edges converge on the target,
        // near the target when several leave the source.
        // (Vertically the names sit under the nodes: the middle it is.)
        var t = 0.5;
        if (!vertical && (ins[e.to] || 0) > 1 && (outs[e.from] || 0) <= 1) t = 0.3;
        else if (!vertical && (outs[e.from] || 0) > 1 && (ins[e.to] || 0) <= 1) t = 0.7;
        var p = bezier([sx, sy], c1, c2, [tx, ty], t);
        var lines = vertical ? [fmtRate(e.rps) + " rps · " + fmtPct(e.error_rate),
          "p99 " + fmtMs(e.p99_ms)] : [edgeLabel(e)];
        // Vertically, labels grow away from the graph's centre line, so
        // that two edges meeting at one node keep theirs apart.
        var anchor = "middle", lx = p[0];
        if (vertical) {
          anchor = p[0] < w / 2 ? "end" : "start";
          lx += anchor === "end" ? -6 : 6;
        }
        var label = sv("text", { x: lx, y: p[1] - (vertical ? 8 : 6), "text-anchor": anchor, "class": "edge-label" });
        lines.forEach(function (l, i) {
          label.appendChild(sv("tspan", { x: lx, dy: i ? "1.2em" : 0, text: l }));
        });
        g.appendChild(label);
      }
      svg.appendChild(g);
    });
    nodes.forEach(function (n) {
      var p = pos[n.id], shape;
      var stroke = "st-" + cls(n.proxy);
      if (n.kind === "service") {
        shape = sv("polygon", { points: [p.x, p.y - R, p.x + R, p.y + R * 0.8, p.x - R, p.y + R * 0.8].join(" ") });
      } else if (n.kind === "unknown") {
        shape = sv("rect", { x: p.x - R, y: p.y - R, width: 2 * R, height: 2 * R, rx: 4 });
      } else {
        shape = sv("circle", { cx: p.x, cy: p.y, r: R, "class": stroke });
      }
      var name = n.kind === "service" ? n.name.split(".")[0] : n.name;
      var g = sv("g", { "class": "node " + n.kind, "data-id": n.id, tabindex: 0,
        onclick: function () { focus(n); } }, [
        shape,
        sv("text", { x: p.x, y: p.y + R + 15, "text-anchor": "middle", "class": "name", text: name }),
        n.namespace ? sv("text", { x: p.x, y: p.y + R + 27, "text-anchor": "middle", "class": "ns", text: n.namespace }) : null,
        sv("title", { text: n.id + (n.proxy ? " · proxy " + n.proxy : "") })
      ]);
      if (n.gateway) g.appendChild(sv("text", { x: p.x, y: p.y + 4, "text-anchor": "middle", text: "GW" }));
      svg.appendChild(g);
    });
    box.replaceChildren(svg);
  }

  // focus scrolls to the service card of a clicked node (a service, or a
  // service the workload is an endpoint of).
  function focus(n) {
    var host = n.kind === "service" ? n.name : "";
    if (!host && last) {
      last.services.forEach(function (s) {
        s.endpoints.forEach(function (ep) { if (!host && ep.workload === n.name && ep.namespace === n.namespace) host = s.host; });
      });
    }
    if (!host) return;
    focused = host;
    document.querySelectorAll(".svc").forEach(function (c) {
      c.classList.toggle("focus", c.getAttribute("data-host") === host);
      if (c.getAttribute("data-host") === host) c.scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }

  function table(headers, rows) {
    return el("table", {}, [
      el("thead", {}, [el("tr", {}, headers.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows.map(function (r) {
        return el("tr", {}, r.map(function (c) {
          return c instanceof Node ? el("td", {}, [c]) : el("td", { text: c });
        }));
      }))
    ]);
  }

  function configBlock(c) {
    return el("div", { "class": "cfg" }, [
      el("div", {}, [el("strong", { text: c.kind + " " + c.namespace + "/" + c.name }), " ",
        el("span", { "class": "muted", text: c.source })]),
      el("ul", { "class": "lines" }, c.summary.map(function (s) { return el("li", { text: s }); })),
      el("details", {}, [el("summary", { text: "spec" }), el("pre", { text: JSON.stringify(c.spec, null, 2) })])
    ]);
  }

  function serviceCard(s) {
    var ports = s.ports.map(function (p) { return p.number + "/" + p.protocol; }).join(", ");
    var card = el("article", { "class": "card svc" + (s.host === focused ? " focus" : ""), "data-host": s.host }, [
      el("h3", { text: s.host }),
      el("div", { "class": "meta muted", text: s.namespace + " · " + (ports || "no ports") + " · " + s.resolution +
        (s.external ? " · mesh external" : "") }),
      el("h4", { text: "Endpoints (" + s.endpoints.length + ")" }),
      s.endpoints.length ? el("div", { "class": "scroll" }, [table(["address", "workload", "subsets", "health", "sidecar"],
        s.endpoints.map(function (ep) {
          return [ep.address, ep.workload ? ep.namespace + "/" + ep.workload : "–", (ep.subsets || []).join(", ") || "–",
            pill(ep.health), ep.sidecar ? pill(ep.sidecar) : el("span", { "class": "muted", text: "none" })];
        }))]) : el("p", { "class": "muted", text: "No endpoints." }),
      s.subsets.length ? el("h4", { text: "Subsets" }) : null,
      s.subsets.length ? el("div", {}, s.subsets.map(function (ss) {
        var l = Object.keys(ss.labels || {}).sort().map(function (k) { return k + "=" + ss.labels[k]; }).join(", ");
        return el("span", { "class": "chip", text: ss.name + " {" + l + "} · " + ss.endpoints + " endpoint" + (ss.endpoints === 1 ? "" : "s") });
      })) : null,
      el("h4", { text: "VirtualService" }),
      s.virtual_services.length ? el("div", {}, s.virtual_services.map(configBlock)) : el("p", { "class": "muted", text: "None: default routing." }),
      el("h4", { text: "DestinationRule" }),
      s.destination_rule ? configBlock(s.destination_rule) : el("p", { "class": "muted", text: "None." }),
      s.problems.length ? el("h4", { text: "Problems" }) : null,
      s.problems.length ? problemList(s.problems) : null
    ]);
    return card;
  }

  function problemList(ps) {
    return el("ul", { "class": "problems" }, ps.map(function (p) {
      return el("li", {}, [pill(p.severity), " ",
        p.kind ? el("strong", { text: p.kind + " " + p.namespace + "/" + p.name + ": " }) : null,
        p.path ? el("span", { "class": "mono", text: p.path + ": " }) : null,
        p.message, el("div", { "class": "muted", text: p.source })]);
    }));
  }

  function render(v) {
    last = v;
    var traffic = v.edges.filter(function (e) { return e.traffic; }).length;
    document.getElementById("summary").textContent = "config v" + (v.snapshot_version || "–") + " · " +
      v.services.length + " services · " + v.proxies.length + " proxies · " + traffic + " traffic edges · " +
      new Date(v.generated || Date.now()).toLocaleTimeString();
    document.getElementById("window").textContent = "rates over the last " + Math.round(v.window_seconds) +
      " s, scraped every " + v.scrape.interval_seconds + " s";
    renderGraph(v);
    document.getElementById("services").replaceChildren.apply(document.getElementById("services"),
      v.services.length ? v.services.map(serviceCard) : [el("p", { "class": "muted", text: "No services." })]);
    var types = ["CDS", "LDS", "EDS", "RDS", "SDS"];
    document.getElementById("proxies").replaceChildren(table(["proxy", "ip", "state"].concat(types),
      v.proxies.map(function (p) {
        // Istio's proxy name: the id's NAME.NAMESPACE part; the whole id
        // (and a NACK's message) on hover.
        var parts = p.id.split("~");
        var id = el("span", { "class": "mono", text: parts.length === 4 ? parts[2] : p.id,
          title: p.id + (p.nack ? "\nNACK: " + p.nack : "") });
        return [id, p.ip || "–", pill(p.state)].concat(types.map(function (t) {
          return p.types[t] ? pill(p.types[t]) : "–";
        }));
      })));
    document.getElementById("problems").replaceChildren(v.problems.length ? problemList(v.problems) :
      el("p", { "class": "muted", text: "None." }));
    document.getElementById("targets").replaceChildren(table(["proxy", "url", "flows", "error"],
      v.scrape_targets.map(function (t) { return [t.proxy, t.url, String(t.flows), t.error || "–"]; })));
  }

  function setLive(ok, text) {
    var l = document.getElementById("live");
    l.className = "pill " + (ok ? "pill-ok" : "pill-off");
    l.textContent = text;
  }

  function poll() {
    fetch("api/mesh", { cache: "no-store" }).then(function (r) { return r.json(); })
      .then(function (v) { render(v); setLive(true, "live (polling)"); })
      .catch(function () { setLive(false, "offline"); })
      .then(function () { setTimeout(poll, 5000); });
  }

  function connect() {
    if (!window.EventSource) { poll(); return; }
    var es = new EventSource("api/events");
    es.addEventListener("mesh", function (ev) {
      setLive(true, "live");
      render(JSON.parse(ev.data));
    });
    es.onerror = function () { setLive(false, "reconnecting…"); };
  }

  var resizeTimer = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (last) renderGraph(last); }, 150);
  });
  connect();
})();
