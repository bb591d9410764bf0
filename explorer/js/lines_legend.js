// Installed once per page, when "Draw as" first changes. In the lines view (explorer/lines_figures.py) each line
// is a layout shape named after its query ("q3"), and the legend lists the queries (their dots: traces in
// legend group "q3"). Plotly's legend shows and hides traces only: after each legend click (a restyle),
// this shows a query's lines exactly when its dots are, so a double-click on a query leaves only its lines.
() => {
  if (window.__linesLegendInstalled) return [];
  window.__linesLegendInstalled = true;
  const PLOTS = ['attention-plot', 'large-plot'];
  const QUERY = /^q\d+$/;
  function sync(gd) {
    const shapes = (gd.layout && gd.layout.shapes) || [];
    const shown = {};
    for (const t of gd.data || []) {
      if (QUERY.test(t.legendgroup || '')) shown[t.legendgroup] = shown[t.legendgroup] || t.visible !== 'legendonly';
    }
    let changed = false;
    const next = shapes.map(s => {
      if (!(s.name in shown) || (s.visible !== false) === shown[s.name]) return s;
      changed = true;
      return {...s, visible: shown[s.name]};
    });
    if (changed) Plotly.relayout(gd, {shapes: next});
  }
  function bind() {
    for (const id of PLOTS) {
      const gd = document.querySelector('#' + id + ' .js-plotly-plot');
      if (!gd || !gd.on) continue;
      const fn = gd.__linesLegendFn || (gd.__linesLegendFn = () => sync(gd));
      const bound = gd._ev && gd._ev.listeners && gd._ev.listeners('plotly_restyle').includes(fn);
      if (!bound) gd.on('plotly_restyle', fn);
    }
  }
  bind();  // now (the map is drawn: its element will hold the lines), and again whenever a plot is drawn
  setInterval(bind, 300);  // anew (a purge drops its listeners)
  return [];
}
