// Installed once per page, when "Draw as" first changes. In the lines view (explorer/lines_figures.py) each
// line is a layout shape named after its query ("q3"), and each query has a dot (a trace in legend group
// "q3"). Hovering a dot shows only that query's lines, as bertviz's head view does; leaving it shows them
// all again. The paths Plotly drew are hidden, the figure is left as it is: no redraw, so it answers at once
// (a relayout of the shapes takes ~100 ms).
() => {
  if (window.__linesHoverInstalled) return [];
  window.__linesHoverInstalled = true;
  const PLOTS = ['attention-plot', 'large-plot'];
  const QUERY = /^q\d+$/;
  function show(gd, query) {
    const shapes = (gd.layout && gd.layout.shapes) || [];
    for (const path of gd.querySelectorAll('.shapelayer path[data-index]')) {
      const name = (shapes[Number(path.dataset.index)] || {}).name || '';
      path.style.display = query && QUERY.test(name) && name !== query ? 'none' : '';
    }
  }
  function bind() {
    for (const id of PLOTS) {
      const gd = document.querySelector('#' + id + ' .js-plotly-plot');
      if (!gd || !gd.on) continue;
      if (!gd.__linesHover) {
        gd.__linesHover = {
          over: e => {
            const group = e.points && e.points[0] && e.points[0].data.legendgroup;
            if (QUERY.test(group || '')) show(gd, group);
          },
          out: () => show(gd, null),
        };
      }
      const fns = gd.__linesHover;
      const bound = gd._ev && gd._ev.listeners && gd._ev.listeners('plotly_hover').includes(fns.over);
      if (!bound) {  // anew after a purge, which drops a plot's listeners
        gd.on('plotly_hover', fns.over);
        gd.on('plotly_unhover', fns.out);
      }
    }
  }
  bind();
  setInterval(bind, 300);
  return [];
}
