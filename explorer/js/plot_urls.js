// Installed once per page, before any link is written. Gradio's page has a <base href>, so Plotly
// refers to a plot's gradients (the colour bars) and clip paths by the page's full URL at the plot's
// first draw: url('http://host/?s=…#id'). Once the address bar follows the view (link_write.js,
// link_tabs.js: history.replaceState), those references name another document and the colour bars
// draw empty. So each URL change moves every plot's references, and what Plotly draws next, to it.
() => {
  if (window.__plotUrlsInstalled) return [];
  window.__plotUrlsInstalled = true;
  const here = () => location.href.split('#')[0];
  const replace = history.replaceState.bind(history);
  history.replaceState = (...args) => {
    const before = here();
    replace(...args);
    const now = here();
    if (now === before) return;
    const moved = v => (v && v.includes('url(') ? v.split(before + '#').join(now + '#') : v);
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
      if (gd._context && gd._context._baseUrl) gd._context._baseUrl = now;
      for (const el of gd.querySelectorAll('[style*="url("], [clip-path], [fill^="url("]')) {
        for (const prop of ['fill', 'stroke', 'clip-path']) {
          const style = el.style.getPropertyValue(prop);
          if (style.includes(before)) el.style.setProperty(prop, moved(style));
          const attr = el.getAttribute(prop);
          if (attr && attr.includes(before)) el.setAttribute(prop, moved(attr));
        }
      }
    }
  };
  return [];
}
