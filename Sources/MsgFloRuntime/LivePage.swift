/// The live view's page, served by the binary at `GET /` (no file, no CDN): the graph as our SVG
/// (`/live/graph.svg`), restyled by state from `/live/events` (Server-Sent Events); clicking an edge shows its last
/// messages (`/live/edge`), clicking a node its processes and recent stderr (`/live/node`). Untrusted names reach the
/// page only as escaped SVG text from the server or through `textContent`, never as markup.
enum LivePage {
    static func html(_ options: RuntimeOptions) -> String {
        let ide = RuntimeServer.escapeHTML(options.ide).replacingOccurrences(of: "\"", with: "")
        let idJS = options.runtimeID.replacingOccurrences(of: "\\", with: "").replacingOccurrences(of: "\"", with: "")
            .replacingOccurrences(of: "<", with: "")
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>msgflo live</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body { margin: 0; font-family: system-ui, "DejaVu Sans", sans-serif; color: #1d2b3a; background: #eef2f6; }
        header { display: flex; gap: 18px; align-items: baseline; padding: 8px 16px; background: #1d2b3a; color: #fff; }
        header h1 { font-size: 18px; margin: 0; }
        header a { color: #9cd3ff; }
        #status { font-size: 13px; }
        #status.down { color: #ff9c9c; font-weight: bold; }
        main { display: flex; height: calc(100vh - 40px); }
        #graph { flex: 1; overflow: auto; padding: 12px; }
        #graph svg { background: #fff; border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
        aside { width: 360px; overflow: auto; background: #fff; border-left: 1px solid #ccd5df; padding: 10px 14px; font-size: 13px; }
        aside h2 { font-size: 15px; margin: 4px 0 8px; word-break: break-all; }
        aside pre { background: #f4f6f8; padding: 4px 6px; margin: 3px 0; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
        .legend span { color: #1d2b3a; display: inline-block; padding: 1px 6px; margin-right: 4px; border-radius: 3px; font-size: 12px; }
        .node { cursor: pointer; }
        .node.alive rect.box { fill: #e9f8ee; stroke: #27ae60; stroke-width: 2; }
        .node.lost rect.box { fill: #fdecea; stroke: #c0392b; stroke-width: 2; }
        .node.pending rect.box { fill: #fff8e1; stroke: #d4a017; stroke-width: 2; stroke-dasharray: 6 3; }
        .node.virtual rect.box { fill: #f2f2f2; stroke: #95a5a6; }
        .node.selected rect.box { stroke: #2e86de; stroke-width: 3; }
        .edge.wired { stroke: #27ae60; }
        .edge.pending { stroke: #d4a017; stroke-dasharray: 6 4; }
        .edge.selected { stroke: #2e86de; stroke-width: 3; }
        .edge-hit { fill: none; stroke: transparent; stroke-width: 14; cursor: pointer; pointer-events: stroke; }
        .rate { font-size: 11px; fill: #1f5f99; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
        .depth { font-size: 11px; fill: #8e44ad; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
        </style></head>
        <body>
        <header><h1>msgflo</h1><span id="graphname"></span><span id="status">connecting…</span>
        <span class="legend"><span style="background:#e9f8ee">alive</span><span style="background:#fdecea">lost</span><span style="background:#fff8e1">pending</span></span>
        <a id="flowhub_url" href="\(RuntimeServer.escapeHTML(options.liveURL))">Open in Flowhub</a></header>
        <main><div id="graph"></div>
        <aside id="panel"><h2>Click a node or an edge</h2><p>Nodes: participants by role (green: alive, red: lost,
        yellow: pending). Edges: green when wired, dashed when pending; labels show messages per second.</p></aside></main>
        <script>
        "use strict";
        (function () {
          var addr = window.location.origin.replace("https://", "wss://").replace("http://", "ws://");
          var url = "\(ide)" + "#runtime/endpoint?" + encodeURIComponent("protocol=websocket&address=" + addr + "&id=\(idJS)");
          document.getElementById("flowhub_url").href = url;
        })();
        var SVGNS = "http://www.w3.org/2000/svg";
        var version = -1, loading = null, nodes = new Map(), edges = new Map(), selected = null, lastState = null;
        function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
        function edgeKey(src, tgt) { return src + "\\u0000" + tgt; }
        function loadGraph(v) {
          if (loading) return loading;
          loading = fetch("live/graph.svg").then(function (r) { return r.text(); }).then(function (text) {
            var doc = new DOMParser().parseFromString(text, "image/svg+xml");
            var svg = document.importNode(doc.documentElement, true);
            var holder = document.getElementById("graph");
            holder.textContent = "";
            holder.appendChild(svg);
            decorate(svg);
            version = v;
            loading = null;
          });
          return loading;
        }
        function decorate(svg) {
          nodes = new Map(); edges = new Map();
          var overlay = document.createElementNS(SVGNS, "g");
          overlay.setAttribute("class", "overlay");
          svg.appendChild(overlay);
          svg.querySelectorAll("g.node").forEach(function (g) {
            var id = g.getAttribute("data-id");
            var box = g.querySelector("rect.box");
            var depth = document.createElementNS(SVGNS, "text");
            depth.setAttribute("class", "depth");
            depth.setAttribute("x", Number(box.getAttribute("x")) + 4);
            depth.setAttribute("y", Number(box.getAttribute("y")) + Number(box.getAttribute("height")) + 13);
            overlay.appendChild(depth);
            nodes.set(id, { g: g, depth: depth });
            g.addEventListener("click", function () { select({ node: id }); });
          });
          svg.querySelectorAll("path.edge").forEach(function (p) {
            var src = p.getAttribute("data-src"), tgt = p.getAttribute("data-tgt");
            var hit = p.cloneNode(false);
            hit.setAttribute("class", "edge-hit");
            hit.removeAttribute("marker-end");
            p.parentNode.insertBefore(hit, p.nextSibling);
            var mid = p.getPointAtLength(p.getTotalLength() / 2);
            var label = document.createElementNS(SVGNS, "text");
            label.setAttribute("class", "rate");
            label.setAttribute("x", mid.x);
            label.setAttribute("y", mid.y - 5);
            label.setAttribute("text-anchor", "middle");
            overlay.appendChild(label);
            edges.set(edgeKey(src, tgt), { path: p, hit: hit, label: label, src: src, tgt: tgt });
            hit.addEventListener("click", function () { select({ src: src, tgt: tgt }); });
          });
        }
        function apply(s) {
          lastState = s;
          document.getElementById("graphname").textContent = "graph " + s.graph;
          var st = document.getElementById("status");
          st.textContent = (s.connected ? "broker connected" : "broker DISCONNECTED") + " · " +
            (s.pendingEdges ? s.pendingEdges + " edge(s) pending" : "all edges wired");
          st.className = s.connected ? "" : "down";
          if (s.version !== version) { loadGraph(s.version).then(function () { apply(lastState); }); return; }
          nodes.forEach(function (n, id) {
            var info = s.nodes[id];
            var state = info ? info.state : "virtual";
            n.g.setAttribute("data-state", state);
            n.g.setAttribute("class", "node " + state + (selected && selected.node === id ? " selected" : ""));
            n.depth.textContent = info && info.depth !== undefined ? "queued: " + info.depth : "";
          });
          s.edges.forEach(function (e) {
            var x = edges.get(edgeKey(e.src, e.tgt));
            if (!x) return;
            var sel = selected && selected.src === e.src && selected.tgt === e.tgt;
            x.path.setAttribute("class", "edge " + e.state + (sel ? " selected" : ""));
            x.path.setAttribute("data-state", e.state);
            x.label.textContent = e.rate > 0 ? e.rate + " msg/s" : (e.count > 0 ? "0 msg/s" : "");
          });
          if (selected) refreshPanel();
        }
        function select(what) { selected = what; if (lastState) apply(lastState); refreshPanel(); }
        function refreshPanel() {
          var q = selected.node !== undefined ? "live/node?role=" + encodeURIComponent(selected.node)
            : "live/edge?src=" + encodeURIComponent(selected.src) + "&tgt=" + encodeURIComponent(selected.tgt);
          var want = selected;
          fetch(q).then(function (r) { return r.ok ? r.json() : null; }).then(function (d) {
            if (want !== selected || !d) return;
            var panel = document.getElementById("panel");
            panel.textContent = "";
            if (want.node !== undefined) {
              panel.appendChild(el("h2", d.role + " (" + d.component + ")"));
              if (d.pid !== undefined) panel.appendChild(el("p", "child pid " + d.pid));
              panel.appendChild(el("h3", "Processes (" + d.processes.length + ")"));
              var ul = el("ul"); ul.id = "processes";
              d.processes.forEach(function (p) { ul.appendChild(el("li", p.id + ": " + (p.alive ? "alive" : "LOST") + ", heard " + p.silentFor + " s ago", p.alive ? "alive" : "lost")); });
              panel.appendChild(ul);
              if (d.queueDepths) { panel.appendChild(el("h3", "Queues")); Object.keys(d.queueDepths).forEach(function (k) { panel.appendChild(el("pre", k + ": " + d.queueDepths[k] + " waiting")); }); }
              panel.appendChild(el("h3", "Recent stderr and errors (" + d.stderr.length + ")"));
              var box = el("div"); box.id = "stderr";
              d.stderr.slice().reverse().forEach(function (l) { box.appendChild(el("pre", new Date(l.time * 1000).toLocaleTimeString() + " " + l.text)); });
              panel.appendChild(box);
            } else {
              panel.appendChild(el("h2", d.src + " → " + d.tgt));
              panel.appendChild(el("p", (d.state || "?") + (d.why ? " (" + d.why + ")" : "") + " · " + d.count + " messages seen · " + d.rate + " msg/s"));
              panel.appendChild(el("h3", "Last messages"));
              var list = el("div"); list.id = "messages";
              d.messages.slice().reverse().forEach(function (m) { list.appendChild(el("pre", JSON.stringify(m.data), "message")); });
              panel.appendChild(list);
            }
          });
        }
        // The whole state first, then deltas: changed nodes by id, changed edges by src and tgt (`liveEvents` counts
        // them, and keeps the last state each node had in a delta, for tests).
        var liveEvents = { state: 0, delta: 0, deltaNodes: new Map() }, edgeAt = new Map();
        var events = new EventSource("live/events");
        events.addEventListener("state", function (e) {
          var s = JSON.parse(e.data);
          liveEvents.state++;
          edgeAt = new Map();
          s.edges.forEach(function (x, i) { edgeAt.set(edgeKey(x.src, x.tgt), i); });
          apply(s);
        });
        events.addEventListener("delta", function (e) {
          var d = JSON.parse(e.data), s = lastState;
          if (!s || d.version !== s.version) return;
          liveEvents.delta++;
          s.graph = d.graph; s.connected = d.connected; s.broker = d.broker; s.pendingEdges = d.pendingEdges;
          Object.keys(d.nodes).forEach(function (id) {
            // Defined, not assigned: a role named __proto__ stays a node.
            Object.defineProperty(s.nodes, id, { value: d.nodes[id], writable: true, enumerable: true, configurable: true });
            liveEvents.deltaNodes.set(id, d.nodes[id].state);
          });
          d.edges.forEach(function (x) { var i = edgeAt.get(edgeKey(x.src, x.tgt)); if (i !== undefined) s.edges[i] = x; });
          apply(s);
        });
        events.onerror = function () { var st = document.getElementById("status"); st.textContent = "daemon unreachable, retrying…"; st.className = "down"; };
        </script>
        </body></html>

        """
    }
}
