// Installed once per page (on load): binds plotly_click on the plots that choose a head, again
// whenever one is redrawn into a new element. A click is written to window.__headTabClick and
// sent by clicking the hidden button #head-click-btn, whose event reads it (read_click.js).
() => {
  if (window.__headTabInstalled) return;
  window.__headTabInstalled = true;
  const PLOTS = ["attention-plot", "head-importance-plot", "head-stats-plot"];
  const NAME = /^(encoder|decoder|cross):\d+:\d+$/;
  function send(id, gd, ev) {
    const pt = ev && ev.points && ev.points[0];
    const head = pt && typeof pt.customdata === 'string' && NAME.test(pt.customdata) ? pt.customdata : '';
    // A map's cell, or a head map's named head: not a dot of the lines view, whose row is no label.
    if (!pt || (!head && pt.data.type !== 'heatmap')) return;
    let panel = '';
    if (pt.xaxis && pt.yaxis) {
      const xd = pt.xaxis.domain, yd = pt.yaxis.domain;
      const a = (gd.layout.annotations || []).find(a => a.xref === 'paper' && a.yref === 'paper'
        && a.x >= xd[0] - 1e-6 && a.x <= xd[1] + 1e-6 && Math.abs(a.y - yd[1]) < 1e-3);
      if (a) panel = String(a.text);
    }
    const row = Array.isArray(pt.pointNumber) ? pt.pointNumber[0] : pt.pointNumber;
    const x = String(pt.x === undefined ? "" : pt.x);
    window.__headTabClick = JSON.stringify({plot: id, y: String(pt.y === undefined ? '' : pt.y),
      row: typeof row === "number" ? row : null, x: x, panel: panel, head: head, t: Date.now()});
    const btn = document.querySelector('#head-click-btn');
    if (btn) btn.click();
  }
  setInterval(() => {
    for (const id of PLOTS) {
      const gd = document.querySelector('#' + id + ' .js-plotly-plot');
      if (!gd || !gd.on) continue;
      const fn = gd.__headTabFn || (gd.__headTabFn = ev => send(id, gd, ev));
      const bound = gd._ev && gd._ev.listeners && gd._ev.listeners('plotly_click').includes(fn);
      if (!bound) gd.on('plotly_click', fn);
    }
  }, 300);
}
