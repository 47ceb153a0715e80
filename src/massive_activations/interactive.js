(function (id) {
  // Draws one figure of massive_activations.interactive.trajectory_explorer with plotly.js.
  // The book loads plotly.js with `defer`: wait for it when the page is still loading.
  function start() {
    var root = document.getElementById(id);
    if (!root || root.getAttribute("data-ready")) return;
    var status = root.querySelector(".ma-explorer-status");
    var plot = root.querySelector(".ma-explorer-plot");
    if (!window.Plotly) {
      status.textContent = "This interactive figure is drawn by plotly.js, which the built book " +
        "serves from _static/plotly/; open the book's HTML page to use it.";
      return;
    }
    var data = JSON.parse(root.querySelector("script.ma-explorer-data").textContent);
    var labels = data.labels;
    var pick = {
      model: root.querySelector('select[name="model"]'),
      layer: root.querySelector('select[name="layer"]'),
      hypothesis: root.querySelector('select[name="hypothesis"]')
    };
    var colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

    function fill(select, values, keep, text) {
      select.innerHTML = "";
      values.forEach(function (v) {
        var option = document.createElement("option");
        option.value = v;
        option.textContent = text ? text(v) : v;
        select.appendChild(option);
      });
      if (keep !== undefined && values.indexOf(keep) >= 0) select.value = keep;
    }

    function fillLayers() {
      fill(pick.layer, data.layers[pick.model.value], pick.layer.value);
    }

    function gaps(values) {
      return values.map(function (v) { return v === null ? NaN : v; });
    }

    function draw() {
      var model = pick.model.value, layer = pick.layer.value;
      var p = data.points[model][layer];
      var fits = (data.curves[model] || {})[layer] || {};
      var traces = [], missing = [];
      var chosen = pick.hypothesis ? pick.hypothesis.value : null;
      var shown = chosen === "__all__" ? data.hypotheses : (chosen ? [chosen] : []);
      shown.forEach(function (h) {
        var c = fits[h], color = colors[data.hypotheses.indexOf(h) % colors.length];
        if (!c) { missing.push(h); return; }
        if (c.lo && shown.length === 1) {
          traces.push({x: c.s, y: gaps(c.lo), mode: "lines", line: {width: 0},
                       hoverinfo: "skip", showlegend: false, type: "scatter"});
          traces.push({x: c.s, y: gaps(c.hi), mode: "lines", line: {width: 0},
                       fill: "tonexty", fillcolor: "rgba(214,39,40,0.18)",
                       name: h + " " + labels.band, hoverinfo: "skip", type: "scatter"});
        }
        traces.push({x: c.s, y: gaps(c.v), mode: "lines", name: h + " fit", type: "scatter",
                     line: {color: color, width: 2}});
      });
      var measured = {x: p.s, y: gaps(p.v), mode: "markers", type: "scatter",
                      name: "measured", marker: {color: "#222", size: 6}};
      if (p.lo) {
        measured.name = "measured (bars: " + labels.spread + ")";
        measured.error_y = {
          type: "data", symmetric: false, color: "#888", thickness: 1, width: 2,
          array: p.v.map(function (v, i) { return (v === null || p.hi[i] === null) ? NaN : p.hi[i] - v; }),
          arrayminus: p.v.map(function (v, i) { return (v === null || p.lo[i] === null) ? NaN : v - p.lo[i]; })
        };
      }
      traces.push(measured);
      var layout = {
        title: {text: model + " \u00b7 layer " + layer},
        // on a log axis, ticks at powers of ten only (1, 10, 100, 1k, ...)
        xaxis: {title: {text: labels.x}, type: labels.log_x ? "log" : "linear",
                dtick: labels.log_x ? 1 : undefined},
        yaxis: {title: {text: labels.y}, type: labels.log_y ? "log" : "linear",
                dtick: labels.log_y ? 1 : undefined},
        margin: {l: 64, r: 16, t: 48, b: 56},
        legend: {orientation: "h", y: -0.2},
        uirevision: model + "/" + layer,
        hovermode: "closest"
      };
      status.textContent = missing.length ?
        "No fit of " + missing.join(", ") + " for this layer (the fit failed or was not run)." : "";
      window.Plotly.react(plot, traces, layout, {responsive: true, displaylogo: false});
    }

    fill(pick.model, data.models);
    fillLayers();
    pick.model.addEventListener("change", function () { fillLayers(); draw(); });
    pick.layer.addEventListener("change", draw);
    if (pick.hypothesis) pick.hypothesis.addEventListener("change", draw);
    draw();
    root.setAttribute("data-ready", "1");
  }
  if (!window.Plotly && document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})
