//! The reachability model drawn for people: Graphviz DOT ([`dot`]) and one
//! self-contained HTML page ([`html`]: inline SVG, CSS and script, no
//! network fetch, laid out here, so viewing it needs nothing installed).
//!
//! Services are nodes (grouped by bundle when known), each listing its
//! endpoints; edges go from a caller to the endpoint row they reach, and
//! are labelled with it. Trust-root (`:666`) edges are red and thick
//! (class `trust-root`), wildcard edges dashed orange (class `wildcard`),
//! the `internet` node and its edges blue (class `internet`), and
//! edge-reachable endpoints carry an `EDGE` mark (class `edge-reachable`).
//!
//! The page reads `#filter=HOST` (or the filter box) to show one service
//! with its direct neighbours and hide every other node and edge, and
//! `#edge=ID` (or a click on an edge) to show that edge's rule and call
//! sites in the side panel. Ids tests can find: `n-<hostname>` per node,
//! `e-<index>` per edge (its index in the model's `edges`).

use buswarden_rules::reach::{EdgeKind, INTERNET, Model};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The model as a Graphviz digraph (`dot -Tsvg` draws it).
pub fn dot(m: &Model) -> String {
    let mut o = String::new();
    o.push_str("digraph buswarden {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n");
    let _ = writeln!(
        o,
        "  {} [shape=doublecircle, color=\"#1f6feb\", label={}];",
        dot_str(INTERNET),
        dot_str(&format!(
            "internet\n{} {} ports {}",
            m.ingress.hostname,
            m.ingress.mode,
            m.ingress.open_ports.join(",")
        ))
    );
    let mut eps_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &m.endpoints {
        let mark = if e.edge { " [EDGE]" } else { "" };
        let claims = e
            .claims
            .as_deref()
            .map(|c| format!(" claims={c}"))
            .unwrap_or_default();
        eps_of
            .entry(e.host.as_str())
            .or_default()
            .push(format!("{} :{}{}{claims}{mark}", e.method, e.port, e.route));
    }
    let mut bundles: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for s in &m.services {
        bundles
            .entry(s.bundle.as_deref())
            .or_default()
            .push(&s.hostname);
    }
    for (bundle, hosts) in &bundles {
        let indent = if bundle.is_some() { "    " } else { "  " };
        if let Some(b) = bundle {
            let _ = writeln!(
                o,
                "  subgraph {} {{\n    label={};\n    style=dashed;",
                dot_str(&format!("cluster_{b}")),
                dot_str(&format!("bundle {b}"))
            );
        }
        for h in hosts {
            let mut label = h.to_string();
            for l in eps_of.get(h).into_iter().flatten() {
                label.push('\n');
                label.push_str(l);
            }
            let in_tree = m
                .services
                .iter()
                .find(|s| s.hostname == *h)
                .is_some_and(|s| s.in_tree);
            let style = if in_tree { "" } else { ", style=dashed" };
            let _ = writeln!(
                o,
                "{indent}{} [label={}{style}];",
                dot_str(h),
                dot_str(&label)
            );
        }
        if bundle.is_some() {
            o.push_str("  }\n");
        }
    }
    for e in &m.edges {
        let to = match &e.to {
            Some(id) => m.endpoint(id).map(|ep| ep.host.as_str()).unwrap_or("?"),
            None => continue,
        };
        // METHOD host:port/path -> METHOD :port/path (the node names the host).
        let label = match e.target.split_once(' ') {
            Some((meth, rest)) => {
                format!("{meth} :{}", rest.split_once(':').map_or(rest, |(_, p)| p))
            }
            None => e.target.clone(),
        };
        let mut attrs = vec![format!("label={}", dot_str(&label))];
        let mut classes = vec![];
        if e.trust_root {
            attrs.push("color=\"#d1242f\", penwidth=2.5, fontcolor=\"#d1242f\"".into());
            classes.push("trust-root");
        }
        if e.wildcard {
            attrs.push("style=dashed, color=\"#bc4c00\"".into());
            classes.push("wildcard");
        }
        if e.kind == EdgeKind::Internet {
            attrs.push("color=\"#1f6feb\"".into());
            classes.push("internet");
        }
        if e.kind == EdgeKind::Event {
            attrs.push("style=dotted".into());
            classes.push("event");
        }
        if !classes.is_empty() {
            attrs.push(format!("class={}", dot_str(&classes.join(" "))));
        }
        let _ = writeln!(
            o,
            "  {} -> {} [{}];",
            dot_str(&e.from),
            dot_str(to),
            attrs.join(", ")
        );
    }
    o.push_str("}\n");
    o
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const COL_W: f64 = 300.0;
const NODE_W: f64 = 250.0;
const HEAD_H: f64 = 22.0;
const ROW_H: f64 = 14.0;
const GAP: f64 = 18.0;
const MARGIN: f64 = 30.0;

struct Placed {
    x: f64,
    y: f64,
    h: f64,
}

/// Layers: the internet first, then every service after its callers
/// (longest path; a cycle is broken at its first host by name).
fn layers(hosts: &[&str], m: &Model) -> HashMap<String, usize> {
    let ix: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let n = hosts.len();
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let host_of: HashMap<&str, &str> = m
        .endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.host.as_str()))
        .collect();
    for e in &m.edges {
        let Some(to) = e.to.as_deref().and_then(|t| host_of.get(t)) else {
            continue;
        };
        if let (Some(&a), Some(&b)) = (ix.get(e.from.as_str()), ix.get(to))
            && a != b
        {
            succ[a].insert(b);
        }
    }
    let mut indeg = vec![0usize; n];
    for s in &succ {
        for &b in s {
            indeg[b] += 1;
        }
    }
    let mut rank = vec![0usize; n];
    let mut done = vec![false; n];
    let mut q: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut remaining = n;
    let mut next_cycle = 0usize;
    while remaining > 0 {
        let u = match q.pop_front() {
            Some(u) => u,
            None => {
                // A cycle: take the first host not placed yet.
                while done[next_cycle] {
                    next_cycle += 1;
                }
                next_cycle
            }
        };
        if done[u] {
            continue;
        }
        done[u] = true;
        remaining -= 1;
        for &v in &succ[u] {
            if done[v] {
                continue;
            }
            rank[v] = rank[v].max(rank[u] + 1);
            indeg[v] -= 1;
            if indeg[v] == 0 {
                q.push_back(v);
            }
        }
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_string(), rank[i]))
        .collect()
}

/// The model as one self-contained HTML page.
pub fn html(m: &Model) -> String {
    // Endpoint rows per host, in model order (sorted by id).
    let mut rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in m.endpoints.iter().enumerate() {
        rows.entry(e.host.as_str()).or_default().push(i);
    }
    let mut hosts: Vec<&str> = vec![INTERNET];
    hosts.extend(m.services.iter().map(|s| s.hostname.as_str()));
    let rank = layers(&hosts, m);
    let bundle_of: HashMap<&str, &str> = m
        .services
        .iter()
        .filter_map(|s| Some((s.hostname.as_str(), s.bundle.as_deref()?)))
        .collect();
    // Columns: by rank, each wrapped at `per_col` nodes. A deep graph (a
    // long chain or ring of calls) has its ranks merged into at most
    // `per_col` groups, in order, so the page stays roughly square.
    let per_col = ((hosts.len() as f64).sqrt().ceil() as usize).max(8);
    let ranks = rank.values().copied().max().unwrap_or(0) + 1;
    let mut by_rank: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for h in &hosts {
        let r = rank[*h];
        let group = if ranks > per_col {
            r * per_col / ranks
        } else {
            r
        };
        by_rank.entry(group).or_default().push(h);
    }
    let mut placed: HashMap<&str, Placed> = HashMap::new();
    let mut bundles_svg = String::new();
    let mut col = 0usize;
    let mut max_y: f64 = 0.0;
    for (_, mut list) in by_rank {
        list.sort_by_key(|h| (bundle_of.get(h).copied(), *h));
        for chunk in list.chunks(per_col) {
            let x = MARGIN + col as f64 * COL_W;
            let mut y = MARGIN + 20.0;
            let mut run: Option<(&str, f64)> = None;
            for h in chunk {
                let n_rows = rows.get(h).map_or(0, Vec::len);
                let hgt = HEAD_H + n_rows as f64 * ROW_H + 6.0;
                let b = bundle_of.get(h).copied();
                // Close or open the bundle frame around consecutive nodes.
                if run.map(|r| r.0) != b {
                    if let Some((name, top)) = run.take() {
                        frame(&mut bundles_svg, name, x, top, y - GAP + 6.0);
                    }
                    if let Some(name) = b {
                        run = Some((name, y));
                        y += 14.0;
                    }
                }
                placed.insert(h, Placed { x, y, h: hgt });
                y += hgt + GAP;
            }
            if let Some((name, top)) = run.take() {
                frame(&mut bundles_svg, name, x, top, y - GAP + 6.0);
            }
            max_y = max_y.max(y);
            col += 1;
        }
    }
    let width = MARGIN * 2.0 + col as f64 * COL_W;
    let height = max_y + MARGIN;

    // Where each endpoint row is.
    let mut row_y: HashMap<&str, (f64, f64)> = HashMap::new();
    for (h, list) in &rows {
        if let Some(p) = placed.get(h) {
            for (k, &i) in list.iter().enumerate() {
                row_y.insert(
                    m.endpoints[i].id.as_str(),
                    (p.x, p.y + HEAD_H + k as f64 * ROW_H + 6.5),
                );
            }
        }
    }

    let mut svg = String::with_capacity(1 << 16);
    let _ = write!(
        svg,
        r#"<svg id="graph" class="{fit}" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">"#,
        // A small deploy is scaled to the window; a large one scrolls.
        fit = if width <= 2400.0 { "fit" } else { "scroll" }
    );
    svg.push_str(r#"<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L8,4L0,8z" fill="context-stroke"/></marker></defs>"#);
    svg.push_str(&bundles_svg);
    // Edges under the nodes.
    svg.push_str(r#"<g id="edges">"#);
    for (i, e) in m.edges.iter().enumerate() {
        let Some(to) = e.to.as_deref() else { continue };
        let (Some(src), Some(&(tx, ty))) = (placed.get(e.from.as_str()), row_y.get(to)) else {
            continue;
        };
        let to_host = m.endpoint(to).map_or("", |ep| ep.host.as_str());
        let sx = src.x + NODE_W;
        let sy = src.y + HEAD_H / 2.0;
        let dx = (tx - sx).abs().max(60.0) / 2.0;
        let (c1, c2) = if tx > sx {
            (sx + dx, tx - dx)
        } else {
            (sx + 80.0, tx - 80.0)
        };
        let mut class = String::from("edge");
        match e.kind {
            EdgeKind::Call => class.push_str(" call"),
            EdgeKind::Event => class.push_str(" event"),
            EdgeKind::Internet => class.push_str(" internet"),
        }
        if e.trust_root {
            class.push_str(" trust-root");
        }
        if e.wildcard {
            class.push_str(" wildcard");
        }
        let _ = write!(
            svg,
            r#"<path id="e-{i}" class="{class}" data-from="{}" data-to="{}" d="M{sx:.0},{sy:.0}C{c1:.0},{sy:.0} {c2:.0},{ty:.0} {tx:.0},{ty:.0}"><title>{} -&gt; {}</title></path>"#,
            esc(&e.from),
            esc(to_host),
            esc(&e.from),
            esc(&e.target)
        );
    }
    svg.push_str("</g><g id=\"nodes\">");
    for h in &hosts {
        let Some(p) = placed.get(h) else { continue };
        let svc = m.services.iter().find(|s| s.hostname == *h);
        let mut class = String::from("node");
        if *h == INTERNET {
            class.push_str(" internet");
        }
        if svc.is_some_and(|s| !s.in_tree) {
            class.push_str(" api-only");
        }
        if svc.is_some_and(|s| s.ingress) {
            class.push_str(" ingress");
        }
        let _ = write!(
            svg,
            r#"<g id="n-{h}" class="{class}" data-host="{h}"><rect x="{:.0}" y="{:.0}" width="{NODE_W:.0}" height="{:.0}" rx="5"/><text class="host" x="{:.0}" y="{:.0}">{h}</text>"#,
            p.x,
            p.y,
            p.h,
            p.x + 8.0,
            p.y + 15.0,
            h = esc(h)
        );
        if *h == INTERNET {
            let _ = write!(
                svg,
                r#"<text class="ep" x="{:.0}" y="{:.0}">{} {} ports {}{}</text>"#,
                p.x + 8.0,
                p.y + HEAD_H + 10.0,
                esc(&m.ingress.hostname),
                esc(&m.ingress.mode),
                esc(&m.ingress.open_ports.join(",")),
                if m.ingress.configured {
                    ""
                } else {
                    " (assumed)"
                }
            );
        }
        for (k, &i) in rows.get(h).into_iter().flatten().enumerate() {
            let e = &m.endpoints[i];
            let mut ec = String::from("ep");
            if e.edge {
                ec.push_str(" edge-reachable");
            }
            if e.trust_root {
                ec.push_str(" trust-root");
            }
            if e.claims.is_none() {
                ec.push_str(" no-claims");
            }
            let claims = e
                .claims
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let _ = write!(
                svg,
                r#"<text class="{ec}" x="{:.0}" y="{:.0}">{}{} :{}{}{}</text>"#,
                p.x + 8.0,
                p.y + HEAD_H + k as f64 * ROW_H + 10.0,
                if e.edge { "EDGE " } else { "" },
                esc(&e.method),
                e.port,
                esc(&e.route),
                esc(&claims)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</g></svg>");

    let data = serde_json::to_string(&PageData::of(m))
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    let services: usize = m.services.len();
    let trust = m.edges.iter().filter(|e| e.trust_root).count();
    let wild = m.edges.iter().filter(|e| e.wildcard).count();
    let reach = m.endpoints.iter().filter(|e| e.edge).count();
    // Many internet edges hide everything else: past a few dozen they are
    // off at first (the EDGE marks on the endpoints stay), one click away.
    let busy = reach > 60;
    let body_class = if busy { "hide-internet" } else { "" };
    let checked = if busy { "" } else { " checked" };
    let mut page = String::with_capacity(svg.len() + data.len() + 8192);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>buswarden reachability</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>{CSS}</style></head>
<body class="{body_class}"><header><h1>buswarden reachability</h1>
<span id="summary">{services} services, {} endpoints ({reach} edge-reachable), {} edges ({trust} trust-root, {wild} wildcard)</span>
<label>filter <input id="filter" list="hosts" placeholder="service hostname"></label>
<label><input id="show-internet" type="checkbox"{checked}> internet edges</label>
<datalist id="hosts">{}</datalist>
<span class="legend"><b class="l-trust">trust-root :666</b> <b class="l-wild">wildcard</b> <b class="l-net">internet</b> <b class="l-event">event</b></span>
</header>
<main><div id="canvas">{svg}</div><aside id="panel"><p>Click an edge to see its rule and call sites; click a service to filter.</p></aside></main>
<script type="application/json" id="model">{data}</script>
<script>{JS}</script>
</body></html>
"#,
        m.endpoints.len(),
        m.edges.len(),
        m.services
            .iter()
            .map(|s| format!(r#"<option value="{}">"#, esc(&s.hostname)))
            .collect::<String>(),
    );
    page
}

fn frame(out: &mut String, name: &str, x: f64, top: f64, bottom: f64) {
    let _ = write!(
        out,
        r#"<g class="bundle" data-bundle="{n}"><rect x="{:.0}" y="{:.0}" width="{:.0}" height="{:.0}" rx="8"/><text x="{:.0}" y="{:.0}">bundle {n}</text></g>"#,
        x - 8.0,
        top - 4.0,
        NODE_W + 16.0,
        (bottom - top).max(20.0),
        x,
        top + 8.0,
        n = esc(name)
    );
}

/// What the page's script reads: per edge its ends, rule and sites.
#[derive(serde::Serialize)]
struct PageData<'m> {
    edges: Vec<PageEdge<'m>>,
}

#[derive(serde::Serialize)]
struct PageEdge<'m> {
    from: &'m str,
    to: &'m str,
    target: &'m str,
    rule: Option<&'m str>,
    tr: bool,
    wc: bool,
    sites: Vec<String>,
}

impl<'m> PageData<'m> {
    fn of(m: &'m Model) -> Self {
        let host_of: HashMap<&str, &str> = m
            .endpoints
            .iter()
            .map(|e| (e.id.as_str(), e.host.as_str()))
            .collect();
        PageData {
            edges: m
                .edges
                .iter()
                .map(|e| PageEdge {
                    from: &e.from,
                    to: e
                        .to
                        .as_deref()
                        .and_then(|t| host_of.get(t).copied())
                        .unwrap_or(""),
                    target: &e.target,
                    rule: e.rule.as_deref(),
                    tr: e.trust_root,
                    wc: e.wildcard,
                    sites: e
                        .sites
                        .iter()
                        .map(|s| format!("{}:{}:{} {}", s.file, s.line, s.column, s.what))
                        .collect(),
                })
                .collect(),
        }
    }
}

const CSS: &str = r#"
body{margin:0;font:13px system-ui,Helvetica,Arial,sans-serif;color:#1f2328;background:#fff}
header{display:flex;gap:16px;align-items:center;padding:8px 14px;border-bottom:1px solid #d0d7de;flex-wrap:wrap}
h1{font-size:16px;margin:0}
main{display:flex;align-items:flex-start}
#canvas{flex:1;overflow:auto;min-width:0}
#graph.fit{width:100%;height:auto}
#panel{width:300px;flex:none;min-height:200px;padding:10px 14px;border-left:1px solid #d0d7de;font-size:12px;position:sticky;top:0;word-break:break-all}
.node rect{fill:#f6f8fa;stroke:#57606a;stroke-width:1}
.node.internet rect{fill:#ddf4ff;stroke:#1f6feb;stroke-width:2}
.node.api-only rect{stroke-dasharray:4 3;fill:#fff}
.node.ingress rect{stroke:#1f6feb}
.node{cursor:pointer}
.node .host{font-weight:600;font-size:12px}
.ep{font:10px ui-monospace,monospace;fill:#424a53}
.ep.edge-reachable{fill:#0550ae;font-weight:600}
.ep.edge-reachable.no-claims{fill:#a40e26}
.ep.trust-root{fill:#d1242f}
.edge{fill:none;stroke:#8c959f;stroke-width:1.2;marker-end:url(#arrow);cursor:pointer;opacity:.75}
.edge:hover,.edge.selected{stroke-width:4;opacity:1}
.edge.trust-root{stroke:#d1242f;stroke-width:2.8;opacity:1}
.edge.wildcard{stroke:#bc4c00;stroke-dasharray:6 4}
.edge.internet{stroke:#1f6feb}
.edge.event{stroke-dasharray:2 3}
.bundle rect{fill:#fbefff;stroke:#8250df;stroke-dasharray:5 3}
.bundle text{fill:#8250df;font-size:10px}
.hidden{display:none}
.hide-internet .edge.internet{display:none}
.legend b{margin-right:8px;padding:1px 6px;border-radius:3px;color:#fff;font-weight:500}
.l-trust{background:#d1242f}.l-wild{background:#bc4c00}.l-net{background:#1f6feb}.l-event{background:#8c959f}
#panel code{display:block;margin:2px 0 6px;font-size:11px}
"#;

const JS: &str = r#"
(function(){
var data=JSON.parse(document.getElementById('model').textContent);
var panel=document.getElementById('panel');
var box=document.getElementById('filter');
function esc(s){return String(s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function show(i){
  var e=data.edges[i]; if(!e){return;}
  var old=document.querySelector('.edge.selected'); if(old){old.classList.remove('selected');}
  var p=document.getElementById('e-'+i); if(p){p.classList.add('selected');}
  var h='<h3 id="panel-edge" data-edge="'+i+'">'+esc(e.from)+' &rarr; '+esc(e.target)+'</h3>';
  if(e.tr){h+='<p class="trust-root"><b>trust root (:666)</b></p>';}
  if(e.wc){h+='<p class="wildcard"><b>wildcard grant</b></p>';}
  h+='<p>rule</p><code id="panel-rule">'+esc(e.rule||'(through the ingress firewall)')+'</code>';
  h+='<p>call sites</p><ul id="panel-sites">';
  e.sites.forEach(function(s){h+='<li><code>'+esc(s)+'</code></li>';});
  if(!e.sites.length){h+='<li>none recorded</li>';}
  panel.innerHTML=h+'</ul>';
}
function filter(host){
  box.value=host||'';
  var keep={};
  if(host){keep[host]=1;data.edges.forEach(function(e){if(e.from===host&&e.to){keep[e.to]=1;}if(e.to===host){keep[e.from]=1;}});}
  document.querySelectorAll('.node').forEach(function(n){var h=n.getAttribute('data-host');n.classList.toggle('hidden',!!host&&!keep[h]);n.classList.toggle('focus',h===host);});
  document.querySelectorAll('.edge').forEach(function(p){var on=!host||p.getAttribute('data-from')===host||p.getAttribute('data-to')===host;p.classList.toggle('hidden',!on);});
  document.querySelectorAll('.bundle').forEach(function(b){b.classList.toggle('hidden',!!host);});
  document.body.setAttribute('data-filter',host||'');
}
function fromHash(){
  var q=location.hash.replace(/^#/,'').split('&');
  var f='',e=null;
  q.forEach(function(kv){var p=kv.split('=');if(p[0]==='filter'){f=decodeURIComponent(p[1]||'');}if(p[0]==='edge'){e=p[1];}});
  filter(f); if(e!==null){show(+String(e).replace(/^e-/,''));}
}
document.getElementById('edges').addEventListener('click',function(ev){var t=ev.target.closest('.edge');if(t){show(+t.id.slice(2));}});
document.getElementById('nodes').addEventListener('click',function(ev){var t=ev.target.closest('.node');if(t){var h=t.getAttribute('data-host');location.hash='filter='+encodeURIComponent(box.value===h?'':h);}});
document.getElementById('show-internet').addEventListener('change',function(ev){document.body.classList.toggle('hide-internet',!ev.target.checked);});
box.addEventListener('change',function(){location.hash='filter='+encodeURIComponent(box.value);});
window.addEventListener('hashchange',fromHash);
fromHash();
})();
"#;
